/**
 * ML-DSA-44 (FIPS 204, NIST security category 2, pure, with context) through the active backend. This package
 * uses it for signing subkeys ({@link deriveSigningSubkey}): its 2420-byte signature fits where a 4627-byte
 * ML-DSA-87 one does not (a 4096-byte DHT value); identities stay ML-DSA-87.
 */
import { activeBackend } from './backend/registry'
import { nobleBackend } from './backend/noble'
import { assertBytes } from './bytes'
import { checkContext, type SignOptions } from './ml-dsa'
import type { RawKeyPair } from './backend/types'

/** Public key length (FIPS 204 Table 2). */
export const ML_DSA_44_PUBLIC_KEY_BYTES = 1312
/** Expanded secret key length. */
export const ML_DSA_44_SECRET_KEY_BYTES = 2560
/** Signature length. */
export const ML_DSA_44_SIGNATURE_BYTES = 2420
/** Key generation seed ξ. */
export const ML_DSA_44_SEED_BYTES = 32

/** ML-DSA-44 key pair from a 32-byte seed ξ (random when omitted). */
export function mlDsa44Keygen(seed?: Uint8Array): RawKeyPair {
  if (seed !== undefined) assertBytes(seed, 'seed', ML_DSA_44_SEED_BYTES)
  return activeBackend().mlDsa44Keygen(seed ?? globalThis.crypto.getRandomValues(new Uint8Array(32)))
}

/** ML-DSA-44 signature of `message` under FIPS 204 context `context` (≤ 255 bytes); hedged unless `rnd`. */
export function mlDsa44Sign(
  secretKey: Uint8Array,
  message: Uint8Array,
  context?: Uint8Array,
  options: SignOptions = {},
): Uint8Array {
  assertBytes(secretKey, 'secretKey', ML_DSA_44_SECRET_KEY_BYTES)
  assertBytes(message, 'message')
  const ctx = checkContext(context)
  if (options.rnd !== undefined) {
    assertBytes(options.rnd, 'rnd', 32)
    const b = activeBackend()
    return (b.derandomized ? b : nobleBackend).mlDsa44Sign(secretKey, message, ctx, options.rnd)
  }
  return activeBackend().mlDsa44Sign(secretKey, message, ctx)
}

/** Verify an ML-DSA-44 signature; false for a wrong or malformed signature or key (never throws for hostile bytes). */
export function mlDsa44Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  context?: Uint8Array,
): boolean {
  assertBytes(message, 'message')
  const ctx = checkContext(context)
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ML_DSA_44_PUBLIC_KEY_BYTES) return false
  if (!(signature instanceof Uint8Array) || signature.length !== ML_DSA_44_SIGNATURE_BYTES) return false
  return activeBackend().mlDsa44Verify(publicKey, message, signature, ctx)
}
