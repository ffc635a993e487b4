/**
 * Hybrid KEM ML-KEM-1024 + X25519 with an X-Wing-style combiner (draft-connolly-cfrg-xwing-kem, with
 * ML-KEM-1024 in place of ML-KEM-768 and our own domain label):
 *
 *   expand   = SHAKE256(seed, 96);  (d ‖ z) = expand[0..64);  skX = expand[64..96)
 *   pk       = ek_M (1568) ‖ pkX (32)                                  → 1600 bytes
 *   sk       = dk_M (3168) ‖ skX (32) ‖ pkX (32)                        → 3232 bytes (expanded; `seed` suffices)
 *   encaps   : (ss_M, ct_M) = ML-KEM.Encaps(ek_M; m);  ekX ← random;  ctX = X25519(ekX, 9);  ss_X = X25519(ekX, pkX)
 *   ct       = ct_M (1568) ‖ ctX (32)                                   → 1600 bytes
 *   ss       = SHA3-256(ss_M ‖ ss_X ‖ ctX ‖ pkX ‖ HYBRID_KEM_LABEL)     → 32 bytes
 *
 * As in X-Wing, ct_M and ek_M are not hashed: ML-KEM's ciphertext is bound by its own FO transform
 * (C2PRI), while the X25519 ciphertext and key are hashed because X25519 alone is not binding. The result
 * is IND-CCA secure if either ML-KEM-1024 or X25519 (strong DH in the ROM) holds.
 */
import { shake256 } from '@noble/hashes/sha3.js'
import type { RawKeyPair } from './backend/types'
import { assertBytes } from './bytes'
import { PqcError } from './errors'
import { randomBytes, sha3_256 } from './kdf'
import {
  adoptMlKemKeyPair,
  checkMlKemSecretKey,
  mlKemDecapsulate,
  mlKemEncapsulate,
  mlKemKeygen,
  mlKemKeygenEphemeral,
  ML_KEM_1024_CIPHERTEXT_BYTES,
  ML_KEM_1024_PUBLIC_KEY_BYTES,
  ML_KEM_1024_SECRET_KEY_BYTES,
} from './ml-kem'
import {
  type X25519PrivateKey,
  type X25519PublicKey,
  X25519_BYTES,
  x25519Agree,
  x25519Generate,
  x25519Private,
  x25519Public,
  x25519PublicOf,
} from './x25519'

/** Key generation seed length. */
export const HYBRID_SEED_BYTES = 32
/** Public key: ML-KEM-1024 ek ‖ X25519 public key. */
export const HYBRID_PUBLIC_KEY_BYTES = ML_KEM_1024_PUBLIC_KEY_BYTES + X25519_BYTES
/** Secret key: ML-KEM-1024 dk ‖ X25519 secret ‖ X25519 public key. */
export const HYBRID_SECRET_KEY_BYTES = ML_KEM_1024_SECRET_KEY_BYTES + 2 * X25519_BYTES
/** Ciphertext: ML-KEM-1024 ciphertext ‖ X25519 ephemeral public key. */
export const HYBRID_CIPHERTEXT_BYTES = ML_KEM_1024_CIPHERTEXT_BYTES + X25519_BYTES
/** Shared secret length. */
export const HYBRID_SHARED_SECRET_BYTES = 32
/** Encapsulation randomness: ML-KEM `m` (32) ‖ X25519 ephemeral secret (32). */
export const HYBRID_ENCAPS_RANDOM_BYTES = 64
/** Domain label hashed last into the combiner. */
export const HYBRID_KEM_LABEL = new TextEncoder().encode('x-pqc hybrid-kem v1 ML-KEM-1024+X25519')

/** A hybrid key pair. `seed` alone regenerates the rest. */
export interface HybridKeyPair {
  /** ML-KEM-1024 ek ‖ X25519 public key ({@link HYBRID_PUBLIC_KEY_BYTES} bytes); give it to senders. */
  publicKey: Uint8Array
  /** ML-KEM-1024 dk ‖ X25519 secret ‖ X25519 public key ({@link HYBRID_SECRET_KEY_BYTES} bytes); secret. */
  secretKey: Uint8Array
  /** The 32-byte seed that regenerates the pair with `hybridKeygen(seed)`; secret. */
  seed: Uint8Array
}

interface SplitSecret {
  dk: Uint8Array
  skX: X25519PrivateKey
  pkX: Uint8Array
}
/**
 * Views into a key, made once per key object (a WeakMap keyed by the caller's array): the ML-KEM part keeps
 * one identity, so the ML-KEM layer's per-key caches (input checks, OpenSSL key objects, pre-expanded
 * matrices) hit on every later use, and the X25519 part keeps its OpenSSL handle. Keys are treated as
 * immutable once used, as everywhere in this package.
 */
const splitCache = new WeakMap<Uint8Array, SplitSecret>()

interface SplitPublic {
  ekM: Uint8Array
  pkX: X25519PublicKey
}
const publicCache = new WeakMap<Uint8Array, SplitPublic>()

function split(secretKey: Uint8Array): SplitSecret {
  let s = splitCache.get(secretKey)
  if (s === undefined) {
    if (!(secretKey instanceof Uint8Array) || secretKey.length !== HYBRID_SECRET_KEY_BYTES) {
      throw new PqcError('X_PQC_BAD_KEY', `hybrid secret key must be ${HYBRID_SECRET_KEY_BYTES} bytes`)
    }
    const k = ML_KEM_1024_SECRET_KEY_BYTES
    s = {
      dk: secretKey.subarray(0, k),
      skX: x25519Private(secretKey.subarray(k, k + X25519_BYTES)),
      pkX: secretKey.subarray(k + X25519_BYTES),
    }
    checkMlKemSecretKey(s.dk)
    splitCache.set(secretKey, s)
  }
  return s
}

function splitPublic(publicKey: Uint8Array): SplitPublic {
  let p = publicCache.get(publicKey)
  if (p === undefined) {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== HYBRID_PUBLIC_KEY_BYTES) {
      throw new PqcError('X_PQC_BAD_KEY', `hybrid public key must be ${HYBRID_PUBLIC_KEY_BYTES} bytes`)
    }
    p = {
      ekM: publicKey.subarray(0, ML_KEM_1024_PUBLIC_KEY_BYTES),
      pkX: x25519Public(publicKey.subarray(ML_KEM_1024_PUBLIC_KEY_BYTES)),
    }
    publicCache.set(publicKey, p)
  }
  return p
}

function combine(ssM: Uint8Array, ssX: Uint8Array, ctX: Uint8Array, pkX: Uint8Array): Uint8Array {
  return sha3_256(ssM, ssX, ctX, pkX, HYBRID_KEM_LABEL)
}

/** Lay out a hybrid key pair and register the views of its new arrays, so their first use reuses what key generation made. */
function assemble(kem: RawKeyPair, x: X25519PrivateKey): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const publicKey = new Uint8Array(HYBRID_PUBLIC_KEY_BYTES)
  const secretKey = new Uint8Array(HYBRID_SECRET_KEY_BYTES)
  const k = ML_KEM_1024_SECRET_KEY_BYTES
  const pkX = x25519PublicOf(x)
  publicKey.set(kem.publicKey, 0)
  publicKey.set(pkX, ML_KEM_1024_PUBLIC_KEY_BYTES)
  secretKey.set(kem.secretKey, 0)
  secretKey.set(x.secret, k)
  secretKey.set(pkX, k + X25519_BYTES)
  const ekM = publicKey.subarray(0, ML_KEM_1024_PUBLIC_KEY_BYTES)
  const dk = secretKey.subarray(0, k)
  adoptMlKemKeyPair(kem, { publicKey: ekM, secretKey: dk })
  const skX: X25519PrivateKey = { secret: secretKey.subarray(k, k + X25519_BYTES), pub: pkX }
  if (x.node !== undefined) skX.node = x.node
  splitCache.set(secretKey, { dk, skX, pkX: secretKey.subarray(k + X25519_BYTES) })
  publicCache.set(publicKey, { ekM, pkX: x25519Public(publicKey.subarray(ML_KEM_1024_PUBLIC_KEY_BYTES)) })
  return { publicKey, secretKey }
}

/** Hybrid key pair from a 32-byte seed (random when omitted). */
export function hybridKeygen(seed?: Uint8Array): HybridKeyPair {
  if (seed !== undefined) assertBytes(seed, 'seed', HYBRID_SEED_BYTES)
  const s = seed === undefined ? randomBytes(HYBRID_SEED_BYTES) : seed.slice()
  const expanded = shake256(s, { dkLen: 96 })
  const kem = mlKemKeygen(expanded.subarray(0, 64))
  const skX = x25519Private(expanded.slice(64, 96))
  expanded.fill(0)
  const kp = assemble(kem, skX)
  skX.secret.fill(0)
  kem.secretKey.fill(0)
  return { ...kp, seed: s }
}

/**
 * @internal A random one-time key pair without a seed (the handshake's ephemeral key): on the native
 * backend both halves come from OpenSSL's key generation, which costs about half of a seeded import.
 * Same key format as {@link hybridKeygen}; nothing regenerates it.
 */
export function hybridKeygenEphemeral(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const kem = mlKemKeygenEphemeral()
  const x = x25519Generate()
  const kp = assemble(kem, x)
  x.secret.fill(0)
  kem.secretKey.fill(0)
  return kp
}

/**
 * Encapsulate a fresh 32-byte shared secret to `publicKey`. `random` (64 bytes) makes it deterministic
 * (known-answer tests only: never reuse randomness). Throws `X_PQC_BAD_KEY` for a malformed public key.
 */
export function hybridEncapsulate(
  publicKey: Uint8Array,
  random?: Uint8Array,
): {
  /** Send this to the key's owner ({@link HYBRID_CIPHERTEXT_BYTES} bytes). */
  cipherText: Uint8Array
  /** The 32-byte shared secret; the owner gets the same from `hybridDecapsulate`. */
  sharedSecret: Uint8Array
} {
  const { ekM, pkX } = splitPublic(publicKey)
  if (random !== undefined) assertBytes(random, 'random', HYBRID_ENCAPS_RANDOM_BYTES)
  const m = mlKemEncapsulate(ekM, random?.subarray(0, 32))
  const ekX = random === undefined ? x25519Generate() : x25519Private(random.slice(32, 64))
  const ctX = x25519PublicOf(ekX)
  let ssX: Uint8Array
  try {
    ssX = x25519Agree(ekX, pkX)
  } catch (cause) {
    throw new PqcError('X_PQC_BAD_KEY', 'hybrid public key has a low-order X25519 point', { cause })
  } finally {
    ekX.secret.fill(0)
  }
  const cipherText = new Uint8Array(HYBRID_CIPHERTEXT_BYTES)
  cipherText.set(m.cipherText, 0)
  cipherText.set(ctX, ML_KEM_1024_CIPHERTEXT_BYTES)
  const sharedSecret = combine(m.sharedSecret, ssX, ctX, pkX.publicKey)
  ssX.fill(0)
  m.sharedSecret.fill(0)
  return { cipherText, sharedSecret }
}

/**
 * Recover the shared secret. Throws `X_PQC_BAD_CIPHERTEXT` for a wrong length or a low-order X25519 point;
 * an altered ML-KEM part yields an unrelated secret (implicit rejection), so the caller's AEAD fails later.
 */
export function hybridDecapsulate(cipherText: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (!(cipherText instanceof Uint8Array) || cipherText.length !== HYBRID_CIPHERTEXT_BYTES) {
    throw new PqcError('X_PQC_BAD_CIPHERTEXT', `hybrid ciphertext must be ${HYBRID_CIPHERTEXT_BYTES} bytes`)
  }
  const { dk, skX, pkX } = split(secretKey)
  const ctX = cipherText.subarray(ML_KEM_1024_CIPHERTEXT_BYTES)
  const ssM = mlKemDecapsulate(cipherText.subarray(0, ML_KEM_1024_CIPHERTEXT_BYTES), dk)
  const ssX = x25519Agree(skX, x25519Public(ctX))
  const ss = combine(ssM, ssX, ctX, pkX)
  ssX.fill(0)
  ssM.fill(0)
  return ss
}
