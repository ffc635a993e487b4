/**
 * Runtime detection without static `node:` imports, so that the same module graph bundles for browsers.
 * `process.getBuiltinModule` exists on Node >= 20.16 (this package needs >= 20.19).
 */
import type * as NodeCrypto from 'node:crypto'
import type * as NodeWorkerThreads from 'node:worker_threads'
import type * as NodeModule from 'node:module'
import type * as NodeUrl from 'node:url'
import type * as NodeOs from 'node:os'

interface ProcessLike {
  getBuiltinModule?: (id: string) => unknown
  versions?: { node?: string }
}

function nodeProcess(): ProcessLike | undefined {
  const p = (globalThis as { process?: ProcessLike }).process
  return typeof p?.getBuiltinModule === 'function' && typeof p.versions?.node === 'string' ? p : undefined
}

let cryptoCache: typeof NodeCrypto | null | undefined

/** `node:crypto`, or undefined outside Node (browsers, workers without Node). */
export function nodeCrypto(): typeof NodeCrypto | undefined {
  if (cryptoCache === undefined) {
    cryptoCache = (nodeProcess()?.getBuiltinModule?.('node:crypto') as typeof NodeCrypto | undefined) ?? null
  }
  return cryptoCache ?? undefined
}

/** `node:worker_threads`, or undefined outside Node. */
export function nodeWorkerThreads(): typeof NodeWorkerThreads | undefined {
  return nodeProcess()?.getBuiltinModule?.('node:worker_threads') as typeof NodeWorkerThreads | undefined
}

/** `node:module`, or undefined outside Node. */
export function nodeModule(): typeof NodeModule | undefined {
  return nodeProcess()?.getBuiltinModule?.('node:module') as typeof NodeModule | undefined
}

/** `node:url`, or undefined outside Node. */
export function nodeUrl(): typeof NodeUrl | undefined {
  return nodeProcess()?.getBuiltinModule?.('node:url') as typeof NodeUrl | undefined
}

/**
 * How many threads can run at once: `os.availableParallelism()` on Node (it honours CPU affinity and cgroup
 * limits), `navigator.hardwareConcurrency` elsewhere, undefined when neither says. Node 20 has no `navigator`.
 */
export function availableParallelism(): number | undefined {
  const os = nodeProcess()?.getBuiltinModule?.('node:os') as typeof NodeOs | undefined
  const n = os?.availableParallelism?.() ?? globalThis.navigator?.hardwareConcurrency
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : undefined
}

/** The Node version string (`"20.20.2"`), or undefined. */
export function nodeVersion(): string | undefined {
  return nodeProcess()?.versions?.node
}

/** Test hook: forget the cached `node:crypto` lookup, or force the browser path with `null`. */
export function _setNodeCryptoForTesting(value: typeof NodeCrypto | null | undefined): void {
  cryptoCache = value
}
