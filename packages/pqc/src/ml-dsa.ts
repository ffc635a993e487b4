/** ML-DSA-87 (FIPS 204, pure, with context) through the active backend. */
import { activeBackend } from './backend/registry'
import { nobleBackend } from './backend/noble'
import { assertBytes } from './bytes'
import type { RawKeyPair } from './backend/types'

/** Public key length. */
export const ML_DSA_87_PUBLIC_KEY_BYTES = 2592
/** Expanded secret key length. */
export const ML_DSA_87_SECRET_KEY_BYTES = 4896
/** Signature length. */
export const ML_DSA_87_SIGNATURE_BYTES = 4627
/** Key generation seed ξ. */
export const ML_DSA_87_SEED_BYTES = 32
/** Largest FIPS 204 context string. */
export const ML_DSA_MAX_CONTEXT_BYTES = 255

const EMPTY = new Uint8Array(0)

/** @internal The FIPS 204 context, checked as a programmer's argument (≤ 255 bytes); empty when omitted. */
export function checkContext(context: Uint8Array | undefined): Uint8Array {
  if (context === undefined) return EMPTY
  assertBytes(context, 'context')
  if (context.length > ML_DSA_MAX_CONTEXT_BYTES) {
    throw new RangeError(`"context" must be at most ${ML_DSA_MAX_CONTEXT_BYTES} bytes`)
  }
  return context
}

/** ML-DSA-87 key pair from a 32-byte seed ξ (random when omitted). */
export function mlDsaKeygen(seed?: Uint8Array): RawKeyPair {
  if (seed !== undefined) assertBytes(seed, 'seed', ML_DSA_87_SEED_BYTES)
  return activeBackend().mlDsaKeygen(seed ?? globalThis.crypto.getRandomValues(new Uint8Array(32)))
}

/** Options of {@link mlDsaSign}. */
export interface SignOptions {
  /**
   * `rnd` of FIPS 204 Algorithm 2: omitted = fresh randomness (hedged); 32 zero bytes = deterministic.
   * Supplying it routes the call to a backend that accepts it (noble).
   */
  rnd?: Uint8Array
}

/** Sign `message` under FIPS 204 context `context` (≤ 255 bytes). */
export function mlDsaSign(
  secretKey: Uint8Array,
  message: Uint8Array,
  context?: Uint8Array,
  options: SignOptions = {},
): Uint8Array {
  assertBytes(secretKey, 'secretKey', ML_DSA_87_SECRET_KEY_BYTES)
  assertBytes(message, 'message')
  const ctx = checkContext(context)
  if (options.rnd !== undefined) {
    assertBytes(options.rnd, 'rnd', 32)
    const b = activeBackend()
    return (b.derandomized ? b : nobleBackend).mlDsaSign(secretKey, message, ctx, options.rnd)
  }
  return activeBackend().mlDsaSign(secretKey, message, ctx)
}

/** Verify; false for a wrong or malformed signature or key (never throws for hostile bytes). */
export function mlDsaVerify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  context?: Uint8Array,
): boolean {
  assertBytes(message, 'message')
  const ctx = checkContext(context)
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ML_DSA_87_PUBLIC_KEY_BYTES) return false
  if (!(signature instanceof Uint8Array) || signature.length !== ML_DSA_87_SIGNATURE_BYTES) return false
  return activeBackend().mlDsaVerify(publicKey, message, signature, ctx)
}
