/**
 * Pure-JS backend: `@noble/post-quantum` (audited, no native code). Always available, also in browsers.
 * It does not claim constant time (JS engines give no such guarantee), hence `production: false`.
 *
 * A key used a second time (a peer's certified static key, our own static key) is "prepared" with noble's
 * `ml_kem1024.prepare`: the public matrix Â, t̂ and H(ek) are expanded once and kept (about 25 KiB of public
 * data per key, in a WeakMap that dies with the key array), so later encapsulations and decapsulations skip
 * the K² = 16 SHAKE128 matrix expansions, the modulus check and the 1568-byte H(ek). One-shot keys (the
 * ephemeral keys of a handshake) take the plain path: preparing them would cost the same expansion once more.
 * Both paths compute the same FIPS 203 function (checked by the tests on every input of the vector files).
 */
import { type KEMPrepared, ml_kem1024 } from '@noble/post-quantum/ml-kem.js'
import { ml_dsa44, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js'
import type { PqcBackend } from './types'

type Prepared = KEMPrepared

const T_BYTES = 1536 // dk = dkPKE (1536) ‖ ek (1568) ‖ H(ek) (32) ‖ z (32)
const EK_BYTES = 1568
const seen = new WeakSet<Uint8Array>()
const prepared = new WeakMap<Uint8Array, Prepared>()

/** The prepared form of `key` from its second use on; undefined on the first. */
function preparedFor(key: Uint8Array, ek: () => Uint8Array): Prepared | undefined {
  let p = prepared.get(key)
  if (p === undefined) {
    if (!seen.has(key)) {
      seen.add(key)
      return undefined
    }
    p = ml_kem1024.prepare(ek())
    prepared.set(key, p)
  }
  return p
}

/**
 * The pure-JS backend (noble-post-quantum): always available, the reference the others are tested against.
 */
export const nobleBackend: PqcBackend = {
  name: 'noble',
  description: '@noble/post-quantum (pure JS)',
  constantTime: false,
  derandomized: true,
  adoptKey: (original, copy) => {
    const p = prepared.get(original)
    if (p !== undefined) prepared.set(copy, p)
    else if (seen.has(original)) seen.add(copy)
  },
  mlKemKeygen: (seed64) => ml_kem1024.keygen(seed64),
  mlKemEncapsulate: (publicKey, m) => {
    const p = preparedFor(publicKey, () => publicKey)
    return p === undefined ? ml_kem1024.encapsulate(publicKey, m) : p.encapsulate(m)
  },
  mlKemDecapsulate: (cipherText, secretKey) => {
    const p = preparedFor(secretKey, () => secretKey.subarray(T_BYTES, T_BYTES + EK_BYTES))
    return p === undefined
      ? ml_kem1024.decapsulate(cipherText, secretKey)
      : p.decapsulate(cipherText, secretKey)
  },
  mlDsaKeygen: (seed32) => ml_dsa87.keygen(seed32),
  mlDsaSign: (secretKey, message, context, rnd) =>
    ml_dsa87.sign(message, secretKey, rnd === undefined ? { context } : { context, extraEntropy: rnd }),
  mlDsaVerify: (publicKey, message, signature, context) => {
    try {
      return ml_dsa87.verify(signature, message, publicKey, { context })
    } catch {
      return false
    }
  },
  mlDsa44Keygen: (seed32) => ml_dsa44.keygen(seed32),
  mlDsa44Sign: (secretKey, message, context, rnd) =>
    ml_dsa44.sign(message, secretKey, rnd === undefined ? { context } : { context, extraEntropy: rnd }),
  mlDsa44Verify: (publicKey, message, signature, context) => {
    try {
      return ml_dsa44.verify(signature, message, publicKey, { context })
    } catch {
      return false
    }
  },
}
