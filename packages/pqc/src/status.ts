/** `getStatus()`: what a server reports at `/api/crypto/status`. */
import { activeBackend, isInitialized } from './backend/registry'
import type { BackendName } from './backend/types'

/** Shape served at `/api/crypto/status`. */
export interface PqcStatus {
  /** {@link initPqc} has completed (backends loaded, self-tested and chosen). */
  initialized: boolean
  /** Always `"ML-KEM-1024+ML-DSA-87"`. */
  algorithm: 'ML-KEM-1024+ML-DSA-87'
  /** Long-term key pairs alive in this process (identities; ephemeral session keys are not counted). */
  keyPairs: number
  /** ML-KEM-1024 public key size in bytes (1568). */
  kyberKeySize: 1568
  /** ML-DSA-87 public key size in bytes (2592). */
  dilithiumKeySize: 2592
  /** Backend doing the secret-key work now. */
  backend: BackendName
  /**
   * True only when a native backend that claims constant time does all the secret-key work: today OpenSSL (`node`).
   * `liboqs` reports false because its JS API hands seeded key generation and context signatures to noble.
   */
  production: boolean
}

let liveKeyPairs = 0
const registry =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry<undefined>(() => {
        liveKeyPairs--
      })
    : undefined

/** Count `owner` as one long-term key pair until it is garbage-collected. */
export function trackKeyPair(owner: object): void {
  liveKeyPairs++
  registry?.register(owner, undefined)
}

/** The status object served at `/api/crypto/status`. */
export function getStatus(): PqcStatus {
  const b = activeBackend()
  return {
    initialized: isInitialized(),
    algorithm: 'ML-KEM-1024+ML-DSA-87',
    keyPairs: liveKeyPairs,
    kyberKeySize: 1568,
    dilithiumKeySize: 2592,
    backend: b.name,
    production: b.constantTime && b.name !== 'noble',
  }
}
