/**
 * Known-answer self-test run on every backend before it may serve calls: keys from fixed seeds must equal
 * noble's bytes (noble itself is checked against the NIST ACVP vectors in the test suite), encapsulations and
 * signatures must cross over both ways, and tampered input must be rejected.
 */
import { equalBytes } from '../bytes'
import { nobleBackend } from './noble'
import type { PqcBackend } from './types'

function fail(b: PqcBackend, what: string): never {
  throw new Error(`self-test of backend '${b.name}' failed: ${what}`)
}

/** Throws an Error naming the failed check. */
export function selfTest(b: PqcBackend): void {
  const ref = nobleBackend
  const kemSeed = new Uint8Array(64).map((_, i) => i)
  const dsaSeed = new Uint8Array(32).map((_, i) => 255 - i)
  const msg = new TextEncoder().encode('x-pqc self-test')
  const ctx = new TextEncoder().encode('ctx')

  const kp = b.mlKemKeygen(kemSeed)
  const rkp = b === ref ? kp : ref.mlKemKeygen(kemSeed)
  if (!equalBytes(kp.publicKey, rkp.publicKey) || !equalBytes(kp.secretKey, rkp.secretKey))
    fail(b, 'ML-KEM keygen')
  const enc = b.mlKemEncapsulate(kp.publicKey)
  if (!equalBytes(ref.mlKemDecapsulate(enc.cipherText, rkp.secretKey), enc.sharedSecret))
    fail(b, 'ML-KEM encaps')
  const renc = ref.mlKemEncapsulate(rkp.publicKey)
  if (!equalBytes(b.mlKemDecapsulate(renc.cipherText, kp.secretKey), renc.sharedSecret))
    fail(b, 'ML-KEM decaps')
  const bad = renc.cipherText.slice()
  bad[0] = (bad[0] as number) ^ 1
  const rej = b.mlKemDecapsulate(bad, kp.secretKey)
  if (equalBytes(rej, renc.sharedSecret) || !equalBytes(rej, ref.mlKemDecapsulate(bad, rkp.secretKey))) {
    fail(b, 'ML-KEM implicit rejection')
  }

  const dk = b.mlDsaKeygen(dsaSeed)
  const rdk = b === ref ? dk : ref.mlDsaKeygen(dsaSeed)
  if (!equalBytes(dk.publicKey, rdk.publicKey) || !equalBytes(dk.secretKey, rdk.secretKey))
    fail(b, 'ML-DSA keygen')
  const sig = b.mlDsaSign(dk.secretKey, msg, ctx)
  if (!ref.mlDsaVerify(rdk.publicKey, msg, sig, ctx)) fail(b, 'ML-DSA sign')
  const rsig = b === ref ? sig : ref.mlDsaSign(rdk.secretKey, msg, ctx)
  if (!b.mlDsaVerify(dk.publicKey, msg, rsig, ctx)) fail(b, 'ML-DSA verify')
  if (b.mlDsaVerify(dk.publicKey, msg, rsig, new Uint8Array(0))) fail(b, 'ML-DSA context separation')
  const badSig = rsig.slice()
  badSig[10] = (badSig[10] as number) ^ 1
  if (b.mlDsaVerify(dk.publicKey, msg, badSig, ctx)) fail(b, 'ML-DSA forged signature accepted')
}
