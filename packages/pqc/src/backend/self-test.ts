/**
 * Known-answer self-test run on every backend before it may serve calls: keys from fixed seeds must equal
 * noble's bytes (noble itself is checked against the NIST ACVP vectors in the test suite), encapsulations and
 * signatures must cross over both ways, and tampered input must be rejected. ML-DSA-44 also meets one NIST
 * answer here, since it is newer in this package than the others.
 */
import { equalBytes, fromHex, toHex } from '../bytes'
import { sha256 } from '../kdf'
import { nobleBackend } from './noble'
import type { PqcBackend } from './types'

/**
 * NIST ACVP ML-DSA-keyGen-FIPS204 (usnistgov/ACVP-Server 203f667c), ML-DSA-44 tcId 1: seed ξ and SHA-256 of the
 * expected public key (the full key is in test/vectors).
 */
const ACVP_ML_DSA_44_SEED = '4be7a01a99a5e5bcfe3c06785d8e4ec664082227d86704e9e44862623a05c8b3'
const ACVP_ML_DSA_44_PK_SHA256 = 'a140495fe1cbeb25d30ecf194ee2823dde1b76bbcbdea8cac50c6365f6803060'

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

  const sk44 = b.mlDsa44Keygen(dsaSeed)
  const rsk44 = b === ref ? sk44 : ref.mlDsa44Keygen(dsaSeed)
  if (!equalBytes(sk44.publicKey, rsk44.publicKey) || !equalBytes(sk44.secretKey, rsk44.secretKey))
    fail(b, 'ML-DSA-44 keygen')
  if (toHex(sha256(b.mlDsa44Keygen(fromHex(ACVP_ML_DSA_44_SEED)).publicKey)) !== ACVP_ML_DSA_44_PK_SHA256) {
    fail(b, 'ML-DSA-44 known answer')
  }
  const sig44 = b.mlDsa44Sign(sk44.secretKey, msg, ctx)
  if (!ref.mlDsa44Verify(rsk44.publicKey, msg, sig44, ctx)) fail(b, 'ML-DSA-44 sign')
  const rsig44 = b === ref ? sig44 : ref.mlDsa44Sign(rsk44.secretKey, msg, ctx)
  if (!b.mlDsa44Verify(sk44.publicKey, msg, rsig44, ctx)) fail(b, 'ML-DSA-44 verify')
  if (b.mlDsa44Verify(sk44.publicKey, msg, rsig44, new Uint8Array(0))) fail(b, 'ML-DSA-44 context separation')
  const badSig44 = rsig44.slice()
  badSig44[10] = (badSig44[10] as number) ^ 1
  if (b.mlDsa44Verify(sk44.publicKey, msg, badSig44, ctx)) fail(b, 'ML-DSA-44 forged signature accepted')
}
