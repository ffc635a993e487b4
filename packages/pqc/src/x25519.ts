/**
 * X25519 (RFC 7748). `node:crypto` (OpenSSL) on Node, `@noble/curves` elsewhere; same bytes. An all-zero
 * shared secret (a low-order peer point) is rejected with `X_PQC_BAD_CIPHERTEXT` on both paths.
 *
 * Keys are wrapped in small handles that keep the OpenSSL `KeyObject` once made, so a static key is imported
 * once, not per use. Raw keys go into OpenSSL as JWK (`{ kty: 'OKP', crv: 'X25519' }`): Node builds those
 * with `EVP_PKEY_new_raw_*_key`, while PKCS#8/SPKI DER goes through OpenSSL's generic decoders, which cost
 * 390 µs per private key on Node 20 (OpenSSL 3.0) against 48 µs for JWK (measured, bench/README "Speed").
 */
import { x25519 as nobleX25519 } from '@noble/curves/ed25519.js'
import type * as NodeCrypto from 'node:crypto'
import { PqcError } from './errors'
import { nodeCrypto } from './runtime'

export const X25519_BYTES = 32

type KeyObject = NodeCrypto.KeyObject

/** A private X25519 key; `publicKey` is computed on first use. */
export interface X25519PrivateKey {
  readonly secret: Uint8Array
  /** @internal OpenSSL handle, made on first native use. */
  node?: KeyObject
  /** @internal */
  pub?: Uint8Array
}

/** A public X25519 key (a peer's static key, or an ephemeral one seen once). */
export interface X25519PublicKey {
  readonly publicKey: Uint8Array
  /** @internal OpenSSL handle, made on first native use. */
  node?: KeyObject
}

interface BufferLike {
  toString(encoding: 'base64url'): string
}
interface BufferCtor {
  from(buffer: ArrayBufferLike, byteOffset: number, length: number): BufferLike
  from(text: string, encoding: 'base64url'): Uint8Array
}

function b64u(bytes: Uint8Array): string {
  const B = (globalThis as { Buffer?: BufferCtor }).Buffer!
  return B.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url')
}

function fromB64u(s: string): Uint8Array {
  const B = (globalThis as { Buffer?: BufferCtor }).Buffer!
  const b = B.from(s, 'base64url')
  return new Uint8Array(b.buffer, b.byteOffset, b.length)
}

function nodePrivate(c: typeof NodeCrypto, k: X25519PrivateKey): KeyObject {
  // `x` must be a string for Node's JWK validation; OpenSSL derives the public key from `d`.
  k.node ??= c.createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: b64u(k.secret), x: '' },
    format: 'jwk',
  })
  return k.node
}

function nodePublic(c: typeof NodeCrypto, k: X25519PublicKey): KeyObject {
  k.node ??= c.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(k.publicKey) }, format: 'jwk' })
  return k.node
}

function isZero(a: Uint8Array): boolean {
  let d = 0
  for (const x of a) d |= x
  return d === 0
}

/** Wrap a 32-byte secret (not copied: the caller keeps ownership and may wipe it). */
export function x25519Private(secret: Uint8Array): X25519PrivateKey {
  return { secret }
}

/** Wrap a 32-byte public key (not copied). */
export function x25519Public(publicKey: Uint8Array): X25519PublicKey {
  return { publicKey }
}

let rawExport: boolean | undefined

/** A fresh random private key (OpenSSL's key generation on Node: cheaper than importing random bytes). */
export function x25519Generate(): X25519PrivateKey {
  const c = nodeCrypto()
  if (c === undefined) return { secret: globalThis.crypto.getRandomValues(new Uint8Array(X25519_BYTES)) }
  const { privateKey, publicKey } = c.generateKeyPairSync('x25519')
  if (rawExport !== false) {
    // Node >= 24.7 exports raw keys directly (no base64url round trip); older versions throw once.
    try {
      const secret = privateKey.export({ format: 'raw-private' } as never) as Uint8Array
      const pub = publicKey.export({ format: 'raw-public' } as never) as Uint8Array
      rawExport = true
      return {
        secret: new Uint8Array(secret.buffer, secret.byteOffset, X25519_BYTES),
        pub: new Uint8Array(pub.buffer, pub.byteOffset, X25519_BYTES),
        node: privateKey,
      }
    } catch {
      rawExport = false
    }
  }
  const jwk = privateKey.export({ format: 'jwk' })
  return { secret: fromB64u(jwk.d!), pub: fromB64u(jwk.x!), node: privateKey }
}

/** Public key of a private-key handle (computed once). */
export function x25519PublicOf(k: X25519PrivateKey): Uint8Array {
  if (k.pub === undefined) {
    const c = nodeCrypto()
    if (c === undefined) k.pub = nobleX25519.getPublicKey(k.secret)
    else {
      const jwk = nodePrivate(c, k).export({ format: 'jwk' })
      k.pub = fromB64u(jwk.x!)
    }
  }
  return k.pub
}

/** X25519(private, public). Throws `X_PQC_BAD_CIPHERTEXT` for a low-order / invalid peer point. */
export function x25519Agree(priv: X25519PrivateKey, pub: X25519PublicKey): Uint8Array {
  const c = nodeCrypto()
  let out: Uint8Array
  try {
    if (c === undefined) out = nobleX25519.getSharedSecret(priv.secret, pub.publicKey)
    else {
      const s = c.diffieHellman({ privateKey: nodePrivate(c, priv), publicKey: nodePublic(c, pub) })
      out = new Uint8Array(s.buffer, s.byteOffset, s.length)
    }
  } catch (cause) {
    throw new PqcError('X_PQC_BAD_CIPHERTEXT', 'X25519 rejected the peer point', { cause })
  }
  if (isZero(out))
    throw new PqcError('X_PQC_BAD_CIPHERTEXT', 'X25519 shared secret is all-zero (low-order point)')
  return out
}
