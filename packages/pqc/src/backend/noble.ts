/**
 * Pure-JS backend: `@noble/post-quantum` (audited, no native code). Always available, also in browsers.
 * It does not claim constant time (JS engines give no such guarantee), hence `production: false`.
 */
import { ml_kem1024 } from '@noble/post-quantum/ml-kem.js'
import { ml_dsa87 } from '@noble/post-quantum/ml-dsa.js'
import type { PqcBackend } from './types'

export const nobleBackend: PqcBackend = {
  name: 'noble',
  description: '@noble/post-quantum (pure JS)',
  constantTime: false,
  derandomized: true,
  mlKemKeygen: (seed64) => ml_kem1024.keygen(seed64),
  mlKemEncapsulate: (publicKey, m) => ml_kem1024.encapsulate(publicKey, m),
  mlKemDecapsulate: (cipherText, secretKey) => ml_kem1024.decapsulate(cipherText, secretKey),
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
}
