/**
 * X25519 (RFC 7748). `node:crypto` (OpenSSL) on Node, `@noble/curves` elsewhere; same bytes. An all-zero
 * shared secret (a low-order peer point) is rejected with `X_PQC_BAD_CIPHERTEXT` on both paths.
 */
import { x25519 as nobleX25519 } from '@noble/curves/ed25519.js'
import { PqcError } from './errors'
import { nodeCrypto } from './runtime'

export const X25519_BYTES = 32

// DER prefixes of PKCS#8 / SPKI for OID 1.3.101.110 (RFC 8410), followed by the 32 raw key bytes.
const PKCS8_PREFIX = Uint8Array.of(
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x04,
  0x22,
  0x04,
  0x20,
)
const SPKI_PREFIX = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00)

function withPrefix(prefix: Uint8Array, key: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(prefix.length + key.length)
  b.set(prefix, 0)
  b.set(key, prefix.length)
  return b
}

function isZero(a: Uint8Array): boolean {
  let d = 0
  for (const x of a) d |= x
  return d === 0
}

/** Public key of a 32-byte X25519 secret. */
export function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
  const c = nodeCrypto()
  if (c === undefined) return nobleX25519.getPublicKey(secretKey)
  const priv = c.createPrivateKey({ key: withPrefix(PKCS8_PREFIX, secretKey), format: 'der', type: 'pkcs8' })
  const spki = c.createPublicKey(priv).export({ format: 'der', type: 'spki' })
  return new Uint8Array(spki.buffer, spki.byteOffset + SPKI_PREFIX.length, X25519_BYTES).slice()
}

/** X25519(secretKey, publicKey). Throws `X_PQC_BAD_CIPHERTEXT` for a low-order / invalid peer point. */
export function x25519SharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const c = nodeCrypto()
  let out: Uint8Array
  try {
    if (c === undefined) out = nobleX25519.getSharedSecret(secretKey, publicKey)
    else {
      const privateKey = c.createPrivateKey({
        key: withPrefix(PKCS8_PREFIX, secretKey),
        format: 'der',
        type: 'pkcs8',
      })
      const pub = c.createPublicKey({ key: withPrefix(SPKI_PREFIX, publicKey), format: 'der', type: 'spki' })
      const s = c.diffieHellman({ privateKey, publicKey: pub })
      out = new Uint8Array(s.buffer, s.byteOffset, s.length)
    }
  } catch (cause) {
    throw new PqcError('X_PQC_BAD_CIPHERTEXT', 'X25519 rejected the peer point', { cause })
  }
  if (isZero(out))
    throw new PqcError('X_PQC_BAD_CIPHERTEXT', 'X25519 shared secret is all-zero (low-order point)')
  return out
}
