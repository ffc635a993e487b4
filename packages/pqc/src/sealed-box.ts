/**
 * Sealed box: one-shot public-key encryption to a hybrid KEM public key (HPKE-like "base" mode).
 *
 *   box = 0x01 ‖ ct_KEM (1600) ‖ AES-256-GCM(key, nonce, plaintext, ad = 0x01 ‖ ct_KEM ‖ ad)
 *   (key ‖ nonce) = HKDF-SHA256(ikm = ss, salt = SEALED_BOX_LABEL, info = "key+nonce", 44)
 *
 * Each box has a fresh KEM shared secret, so key and nonce never repeat. Anyone can seal (no sender
 * authentication: sign the plaintext with an Identity when the sender matters).
 */
import { aeadOpen, aeadSeal, AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from './aead'
import { assertBytes } from './bytes'
import { PqcError } from './errors'
import { HYBRID_CIPHERTEXT_BYTES, hybridDecapsulate, hybridEncapsulate } from './hybrid-kem'
import { hkdfSha256 } from './kdf'

/** Format version, the first byte of every box. */
export const SEALED_BOX_VERSION = 1
/** Bytes a box adds to its plaintext: version + KEM ciphertext + tag. */
export const SEALED_BOX_OVERHEAD_BYTES = 1 + HYBRID_CIPHERTEXT_BYTES + AEAD_TAG_BYTES

const SEALED_BOX_LABEL = new TextEncoder().encode('x-pqc sealed-box v1')
const INFO = new TextEncoder().encode('key+nonce')
const HEADER_BYTES = 1 + HYBRID_CIPHERTEXT_BYTES
const EMPTY = new Uint8Array(0)

function keys(sharedSecret: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  const okm = hkdfSha256(sharedSecret, SEALED_BOX_LABEL, INFO, AEAD_KEY_BYTES + AEAD_NONCE_BYTES)
  return { key: okm.subarray(0, AEAD_KEY_BYTES), nonce: okm.subarray(AEAD_KEY_BYTES) }
}

function aad(header: Uint8Array, ad: Uint8Array): Uint8Array {
  const out = new Uint8Array(header.length + ad.length)
  out.set(header, 0)
  out.set(ad, header.length)
  return out
}

/** Encrypt `plaintext` to `recipientPublicKey` (hybrid KEM), binding `ad` (authenticated, not encrypted). */
export function sealBox(recipientPublicKey: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array {
  assertBytes(plaintext, 'plaintext')
  if (ad !== undefined) assertBytes(ad, 'ad')
  const { cipherText, sharedSecret } = hybridEncapsulate(recipientPublicKey)
  const header = new Uint8Array(HEADER_BYTES)
  header[0] = SEALED_BOX_VERSION
  header.set(cipherText, 1)
  const { key, nonce } = keys(sharedSecret)
  const body = aeadSeal(key, nonce, plaintext, aad(header, ad ?? EMPTY))
  const out = new Uint8Array(HEADER_BYTES + body.length)
  out.set(header, 0)
  out.set(body, HEADER_BYTES)
  sharedSecret.fill(0)
  return out
}

/**
 * Open a box with the recipient's hybrid secret key. Throws `X_PQC_BAD_CIPHERTEXT` for a malformed box and
 * `X_PQC_DECRYPT_FAILED` when it was altered, sealed to another key, or `ad` differs.
 */
export function openBox(recipientSecretKey: Uint8Array, box: Uint8Array, ad?: Uint8Array): Uint8Array {
  assertBytes(box, 'box')
  if (ad !== undefined) assertBytes(ad, 'ad')
  if (box.length < SEALED_BOX_OVERHEAD_BYTES)
    throw new PqcError('X_PQC_BAD_CIPHERTEXT', 'sealed box too short')
  if (box[0] !== SEALED_BOX_VERSION)
    throw new PqcError('X_PQC_BAD_CIPHERTEXT', `unknown sealed box version ${box[0]}`)
  const header = box.subarray(0, HEADER_BYTES)
  const sharedSecret = hybridDecapsulate(header.subarray(1), recipientSecretKey)
  const { key, nonce } = keys(sharedSecret)
  sharedSecret.fill(0)
  return aeadOpen(key, nonce, box.subarray(HEADER_BYTES), aad(header, ad ?? EMPTY))
}
