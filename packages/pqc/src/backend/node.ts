/**
 * Native backend: Node's `node:crypto` ML-KEM-1024 / ML-DSA-87 / ML-DSA-44 (Node >= 24.7 built with
 * OpenSSL >= 3.5).
 * Keys travel as FIPS byte encodings; OpenSSL key objects are cached per key array (WeakMap), so repeated use
 * of one key costs one import. Seeds go in through the `raw-seed` format; expanded secret keys through a
 * PKCS#8 `expandedKey` wrapper (draft-ietf-lamps-kyber-certificates / dilithium-certificates).
 */
import type * as NodeCrypto from 'node:crypto'
import { nodeCrypto, nodeVersion } from '../runtime'
import type { PqcBackend } from './types'

type KeyObject = NodeCrypto.KeyObject

/** The ML-KEM functions of Node >= 24.7, absent from the Node 20 type definitions. */
interface NodeKem {
  encapsulate(key: KeyObject): { sharedKey: Buffer; ciphertext: Buffer }
  decapsulate(key: KeyObject, ciphertext: Uint8Array): Buffer
}

const OID_ML_KEM_1024 = '608648016503040403' // 2.16.840.1.101.3.4.4.3
const OID_ML_DSA_87 = '608648016503040313' // 2.16.840.1.101.3.4.3.19
const OID_ML_DSA_44 = '608648016503040311' // 2.16.840.1.101.3.4.3.17
const ML_KEM_1024_DK_BYTES = 3168
const ML_DSA_87_SK_BYTES = 4896
const ML_DSA_44_SK_BYTES = 2560

type KeyType = 'ml-kem-1024' | 'ml-dsa-87' | 'ml-dsa-44'

function derLen(n: number): number[] {
  if (n < 0x80) return [n]
  if (n < 0x100) return [0x81, n]
  return [0x82, n >> 8, n & 0xff]
}

function tlv(tag: number, body: Uint8Array): Uint8Array {
  const head = [tag, ...derLen(body.length)]
  const out = new Uint8Array(head.length + body.length)
  out.set(head, 0)
  out.set(body, head.length)
  return out
}

function hex(h: string): Uint8Array {
  return Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16))
}

/** PKCS#8 OneAsymmetricKey with the `expandedKey` choice: OCTET STRING inside the privateKey OCTET STRING. */
function pkcs8Expanded(oidHex: string, expanded: Uint8Array): Uint8Array {
  const version = Uint8Array.of(0x02, 0x01, 0x00)
  const alg = tlv(0x30, tlv(0x06, hex(oidHex)))
  const priv = tlv(0x04, tlv(0x04, expanded))
  const body = new Uint8Array(version.length + alg.length + priv.length)
  body.set(version, 0)
  body.set(alg, version.length)
  body.set(priv, version.length + alg.length)
  return tlv(0x30, body)
}

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length)
}

/**
 * Returns the backend, or a string saying why it is unavailable. Throws only on unexpected failures
 * (the registry turns both into a logged skip).
 */
export function createNodeBackend(): PqcBackend | string {
  const c: (typeof NodeCrypto & Partial<NodeKem>) | undefined = nodeCrypto()
  if (c === undefined) return 'node:crypto is not available'
  if (typeof c.encapsulate !== 'function' || typeof c.decapsulate !== 'function') {
    return `node ${nodeVersion() ?? '?'} has no crypto.encapsulate (needs Node >= 24.7 with OpenSSL >= 3.5)`
  }
  try {
    c.generateKeyPairSync('ml-kem-1024' as 'x25519')
    c.generateKeyPairSync('ml-dsa-87' as 'x25519')
    c.generateKeyPairSync('ml-dsa-44' as 'x25519')
  } catch (e) {
    return `OpenSSL ${process.versions.openssl ?? '?'} lacks ML-KEM-1024/ML-DSA-87/ML-DSA-44: ${(e as Error).message}`
  }
  const crypto = c as typeof NodeCrypto & NodeKem
  const pubCache = new WeakMap<Uint8Array, KeyObject>()
  const privCache = new WeakMap<Uint8Array, KeyObject>()

  function publicKeyObject(pk: Uint8Array, type: KeyType): KeyObject {
    let k = pubCache.get(pk)
    // The same array handed to another algorithm's call must not reuse this one's key object.
    if (k === undefined || (k.asymmetricKeyType as string | undefined) !== type) {
      k = crypto.createPublicKey({ key: pk, format: 'raw-public', asymmetricKeyType: type } as never)
      pubCache.set(pk, k)
    }
    return k
  }

  function privateKeyObject(sk: Uint8Array, oid: string, type: KeyType): KeyObject {
    let k = privCache.get(sk)
    if (k === undefined || (k.asymmetricKeyType as string | undefined) !== type) {
      k = crypto.createPrivateKey({ key: Buffer.from(pkcs8Expanded(oid, sk)), format: 'der', type: 'pkcs8' })
      privCache.set(sk, k)
    }
    return k
  }

  function keygen(seed: Uint8Array | undefined, type: KeyType, skBytes: number) {
    let priv: KeyObject
    let pub: KeyObject
    if (seed === undefined) {
      const kp = crypto.generateKeyPairSync(type as 'x25519')
      priv = kp.privateKey
      pub = kp.publicKey
    } else {
      priv = crypto.createPrivateKey({ key: seed, format: 'raw-seed', asymmetricKeyType: type } as never)
      pub = crypto.createPublicKey(priv)
    }
    const publicKey = u8(pub.export({ format: 'raw-public' } as never) as Buffer)
    const der = priv.export({ format: 'der', type: 'pkcs8' })
    // Seed-and-expanded PKCS#8: the expanded key is the trailing skBytes.
    const secretKey = u8(der).slice(der.length - skBytes)
    privCache.set(secretKey, priv)
    pubCache.set(publicKey, pub)
    return { publicKey, secretKey }
  }

  return {
    name: 'node',
    description: `node:crypto (OpenSSL ${process.versions.openssl ?? '?'})`,
    constantTime: true,
    derandomized: false,
    adoptKey: (original, copy) => {
      const pub = pubCache.get(original)
      if (pub !== undefined) pubCache.set(copy, pub)
      const priv = privCache.get(original)
      if (priv !== undefined) privCache.set(copy, priv)
    },
    mlKemKeygen: (seed64) => keygen(seed64, 'ml-kem-1024', ML_KEM_1024_DK_BYTES),
    // OpenSSL's own key generation: 62 µs against 138 µs for a `raw-seed` import (Node 24.21, OpenSSL 3.5).
    mlKemKeygenRandom: () => keygen(undefined, 'ml-kem-1024', ML_KEM_1024_DK_BYTES),
    mlKemEncapsulate: (publicKey) => {
      const r = crypto.encapsulate(publicKeyObject(publicKey, 'ml-kem-1024'))
      return { cipherText: u8(r.ciphertext), sharedSecret: u8(r.sharedKey) }
    },
    mlKemDecapsulate: (cipherText, secretKey) =>
      u8(crypto.decapsulate(privateKeyObject(secretKey, OID_ML_KEM_1024, 'ml-kem-1024'), cipherText)),
    mlDsaKeygen: (seed32) => keygen(seed32, 'ml-dsa-87', ML_DSA_87_SK_BYTES),
    mlDsaSign: (secretKey, message, context) =>
      u8(
        crypto.sign(null, message, {
          key: privateKeyObject(secretKey, OID_ML_DSA_87, 'ml-dsa-87'),
          context,
        } as never),
      ),
    mlDsaVerify: (publicKey, message, signature, context) =>
      dsaVerify(publicKey, message, signature, context, 'ml-dsa-87'),
    mlDsa44Keygen: (seed32) => keygen(seed32, 'ml-dsa-44', ML_DSA_44_SK_BYTES),
    mlDsa44Sign: (secretKey, message, context) =>
      u8(
        crypto.sign(null, message, {
          key: privateKeyObject(secretKey, OID_ML_DSA_44, 'ml-dsa-44'),
          context,
        } as never),
      ),
    mlDsa44Verify: (publicKey, message, signature, context) =>
      dsaVerify(publicKey, message, signature, context, 'ml-dsa-44'),
  }

  function dsaVerify(
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
    context: Uint8Array,
    type: 'ml-dsa-87' | 'ml-dsa-44',
  ): boolean {
    try {
      return crypto.verify(
        null,
        message,
        { key: publicKeyObject(publicKey, type), context } as never,
        signature,
      )
    } catch {
      return false
    }
  }
}
