/**
 * ML-KEM-1024 (FIPS 203) through the active backend, with the FIPS 203 §7.2/§7.3 input checks done here once
 * for every backend, so that all backends accept and reject the same inputs.
 */
import { activeBackend } from './backend/registry'
import { nobleBackend } from './backend/noble'
import { PqcError } from './errors'
import { assertBytes, equalBytes } from './bytes'
import { sha3_256 } from './kdf'
import type { Encapsulation, RawKeyPair } from './backend/types'

/** Encapsulation key (ek) length. */
export const ML_KEM_1024_PUBLIC_KEY_BYTES = 1568
/** Decapsulation key (dk) length. */
export const ML_KEM_1024_SECRET_KEY_BYTES = 3168
/** Ciphertext length. */
export const ML_KEM_1024_CIPHERTEXT_BYTES = 1568
/** Shared secret length. */
export const ML_KEM_1024_SHARED_SECRET_BYTES = 32
/** Key generation seed `d ‖ z`. */
export const ML_KEM_1024_SEED_BYTES = 64
/** Encapsulation randomness `m`. */
export const ML_KEM_1024_MSG_BYTES = 32

const Q = 3329 // ML-KEM modulus
const T_BYTES = 1536 // ByteEncode12 of k = 4 polynomials
const checkedSecretKeys = new WeakSet<Uint8Array>()
const checkedPublicKeys = new WeakSet<Uint8Array>()

/** FIPS 203 §7.2 modulus check: every 12-bit coefficient of t̂ is < q. Throws `X_PQC_BAD_KEY`. */
export function checkMlKemPublicKey(publicKey: Uint8Array): void {
  if (checkedPublicKeys.has(publicKey)) return
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ML_KEM_1024_PUBLIC_KEY_BYTES) {
    throw new PqcError(
      'X_PQC_BAD_KEY',
      `ML-KEM-1024 public key must be ${ML_KEM_1024_PUBLIC_KEY_BYTES} bytes`,
    )
  }
  for (let i = 0; i < T_BYTES; i += 3) {
    const b0 = publicKey[i] as number
    const b1 = publicKey[i + 1] as number
    const b2 = publicKey[i + 2] as number
    if ((b0 | ((b1 & 0x0f) << 8)) >= Q || ((b1 >> 4) | (b2 << 4)) >= Q) {
      throw new PqcError('X_PQC_BAD_KEY', 'ML-KEM-1024 public key fails the modulus check')
    }
  }
  checkedPublicKeys.add(publicKey)
}

/** FIPS 203 §7.3 hash check: H(ek) stored in dk matches. Throws `X_PQC_BAD_KEY`. */
export function checkMlKemSecretKey(secretKey: Uint8Array): void {
  if (checkedSecretKeys.has(secretKey)) return
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== ML_KEM_1024_SECRET_KEY_BYTES) {
    throw new PqcError(
      'X_PQC_BAD_KEY',
      `ML-KEM-1024 secret key must be ${ML_KEM_1024_SECRET_KEY_BYTES} bytes`,
    )
  }
  const ek = secretKey.subarray(T_BYTES, T_BYTES + ML_KEM_1024_PUBLIC_KEY_BYTES)
  const h = secretKey.subarray(
    T_BYTES + ML_KEM_1024_PUBLIC_KEY_BYTES,
    T_BYTES + ML_KEM_1024_PUBLIC_KEY_BYTES + 32,
  )
  if (!equalBytes(sha3_256(ek), h))
    throw new PqcError('X_PQC_BAD_KEY', 'ML-KEM-1024 secret key fails the hash check')
  checkedSecretKeys.add(secretKey)
}

/** ML-KEM-1024 key pair from a 64-byte seed `d ‖ z` (random when omitted). */
export function mlKemKeygen(seed?: Uint8Array): RawKeyPair {
  if (seed !== undefined) assertBytes(seed, 'seed', ML_KEM_1024_SEED_BYTES)
  const s = seed ?? globalThis.crypto.getRandomValues(new Uint8Array(ML_KEM_1024_SEED_BYTES))
  const kp = activeBackend().mlKemKeygen(s)
  checkedSecretKeys.add(kp.secretKey)
  checkedPublicKeys.add(kp.publicKey)
  return kp
}

/**
 * @internal A random key pair whose seed is not needed (one-time keys): the backend's own key generation when
 * it has one, else {@link mlKemKeygen} from fresh randomness.
 */
export function mlKemKeygenEphemeral(): RawKeyPair {
  const b = activeBackend()
  if (b.mlKemKeygenRandom === undefined) return mlKemKeygen()
  const kp = b.mlKemKeygenRandom()
  checkedSecretKeys.add(kp.secretKey)
  checkedPublicKeys.add(kp.publicKey)
  return kp
}

/**
 * @internal `copy` holds the same bytes as `original` (a key pair just made by {@link mlKemKeygen}, copied
 * into a larger array): mark it checked and let the backend reuse what it cached for the original.
 */
export function adoptMlKemKeyPair(original: RawKeyPair, copy: RawKeyPair): void {
  checkedPublicKeys.add(copy.publicKey)
  checkedSecretKeys.add(copy.secretKey)
  const b = activeBackend()
  b.adoptKey?.(original.publicKey, copy.publicKey)
  b.adoptKey?.(original.secretKey, copy.secretKey)
}

/** Encapsulate to `publicKey`. With `m` (32 bytes) the result is deterministic (known-answer tests). */
export function mlKemEncapsulate(publicKey: Uint8Array, m?: Uint8Array): Encapsulation {
  checkMlKemPublicKey(publicKey)
  if (m !== undefined) {
    assertBytes(m, 'm', ML_KEM_1024_MSG_BYTES)
    const b = activeBackend()
    return (b.derandomized ? b : nobleBackend).mlKemEncapsulate(publicKey, m)
  }
  return activeBackend().mlKemEncapsulate(publicKey)
}

/** Decapsulate. A wrong-length ciphertext throws `X_PQC_BAD_CIPHERTEXT`; an altered one yields a pseudo-random secret (implicit rejection). */
export function mlKemDecapsulate(cipherText: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (!(cipherText instanceof Uint8Array) || cipherText.length !== ML_KEM_1024_CIPHERTEXT_BYTES) {
    throw new PqcError(
      'X_PQC_BAD_CIPHERTEXT',
      `ML-KEM-1024 ciphertext must be ${ML_KEM_1024_CIPHERTEXT_BYTES} bytes`,
    )
  }
  checkMlKemSecretKey(secretKey)
  return activeBackend().mlKemDecapsulate(cipherText, secretKey)
}
