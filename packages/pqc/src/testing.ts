/**
 * Test helpers for `@x/pqc` users: deterministic identities and direct access to every loaded backend.
 */
import { Identity } from './identity'
import { nobleBackend } from './backend/noble'
import { createNodeBackend } from './backend/node'
import { loadLiboqsBackend } from './backend/liboqs'
import type { PqcBackend } from './backend/types'

export { _resetPqcForTesting, _useBackendForTesting } from './backend/registry'
export { selfTest } from './backend/self-test'
export { _setNodeCryptoForTesting } from './runtime'
export { nobleBackend }

/** A deterministic identity: seed = 32 copies of `n`. */
export function testIdentity(n: number): Identity {
  return Identity.generate(new Uint8Array(32).fill(n & 0xff))
}

/** Every backend that loads here (noble always), without self-test or benchmark. */
export async function availableBackends(): Promise<PqcBackend[]> {
  const out: PqcBackend[] = [nobleBackend]
  const node = createNodeBackend()
  if (typeof node !== 'string') out.push(node)
  const oqs = await loadLiboqsBackend()
  if (typeof oqs !== 'string') out.push(oqs)
  return out
}
export { createMemoryPipes, type MemoryPipe } from './session/memory-pipe'
