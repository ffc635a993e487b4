/**
 * Off-main-thread ML-DSA-87 signing and key generation in a `worker_threads` pool, so a server's event loop
 * stays responsive (pure-JS ML-DSA-87 signing takes 10–25 ms). The workers use Node's native ML-DSA when it
 * is available (Node >= 24.7), noble otherwise. Outside Node (browsers) the pool runs the same operations
 * inline, one per macrotask, with the same API.
 */
import { PqcError } from './errors'
import { Identity, identitySeed } from './identity'
import { mlDsaVerify } from './ml-dsa'
import { assertBytes } from './bytes'
import { randomBytes } from './kdf'
import { nodeCrypto, nodeModule, nodeUrl, nodeWorkerThreads } from './runtime'
import { activeBackend } from './backend/registry'
import { SILENT_LOGGER } from './backend/logger'
import type { PqcLogger } from './backend/types'
import type * as NodeWorkerThreads from 'node:worker_threads'

/** Options of {@link createPqcWorkerPool}. */
export interface PqcWorkerPoolInit {
  /**
   * Number of worker threads.
   * @default max(1, availableParallelism - 1), at most 4
   */
  size?: number
  /**
   * `'native'` uses node:crypto ML-DSA in the workers (fails over to noble when absent), `'noble'` forces pure JS,
   * `'auto'` follows the main thread's active backend.
   * @default 'auto'
   */
  backend?: 'auto' | 'native' | 'noble'
  /**
   * Most jobs queued (not yet answered) before {@link PqcWorkerPool.sign} rejects, bounding memory.
   * @default 10_000
   */
  maxPending?: number
  /**
   * Nice value (0–19) each worker thread gives itself on Linux, so that on a busy machine the kernel runs the
   * caller's event loop before a signing thread (signing is throughput work; the event loop is latency work).
   * Linux keeps a nice value per thread, so only the workers are affected. Other platforms apply it to the
   * whole process, so it is ignored there. `0` keeps the workers at the main thread's priority.
   * @default 10
   */
  workerNice?: number
}

/** Injected services. */
export interface PqcWorkerPoolComponents {
  logger?: PqcLogger
}

/** Counters of a pool. */
export interface PqcWorkerPoolStats {
  workers: number
  pending: number
  completed: number
  failed: number
  /** Where the work runs: `'worker_threads'` or `'inline'` (no worker support). */
  mode: 'worker_threads' | 'inline'
  /** ML-DSA implementation in the workers. */
  backend: 'native' | 'noble'
  /** Nice value the workers run at (0 when not lowered, e.g. outside Linux). */
  workerNice: number
}

/** The async API. */
export interface PqcWorkerPool {
  /** Hedged ML-DSA-87 signature by `identity` (or its 32-byte seed) under FIPS 204 `context`. */
  sign(identity: Identity | Uint8Array, message: Uint8Array, context?: Uint8Array): Promise<Uint8Array>
  /** A new identity (random or from `seed32`), with the key generation done in a worker. */
  generateIdentity(seed32?: Uint8Array): Promise<Identity>
  /** Verify (on the calling thread: verification is fast). */
  verify(
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
    context?: Uint8Array,
  ): Promise<boolean>
  stats(): PqcWorkerPoolStats
  /** Terminates the workers; pending jobs reject with `X_PQC_CLOSED`. */
  close(): Promise<void>
}

const DEFAULT_MAX_PENDING = 10_000
const MAX_POOL_SIZE = 4
const MAX_CONTEXT_BYTES = 255
const DEFAULT_WORKER_NICE = 10
const MAX_NICE = 19

/** Plain-JS worker body (evaluated as CommonJS in the worker). Keeps an LRU of expanded keys per seed. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const crypto = require('node:crypto')
const CACHE_MAX = 64
const cache = new Map()
if (workerData.nice > 0) {
  // Linux: setpriority(PRIO_PROCESS, 0) renices the calling thread only (nice is per thread under NPTL).
  // Never raises priority: a process that already runs nicer keeps its own value.
  try { const os = require('node:os'); if (workerData.nice > os.getPriority()) os.setPriority(workerData.nice) } catch {}
}
let dsa
const ready = import(workerData.nobleUrl).then((m) => { dsa = m.ml_dsa87 })
function key(seed) {
  const k = Buffer.from(seed).toString('hex')
  let v = cache.get(k)
  if (v === undefined) {
    if (workerData.native) {
      const priv = crypto.createPrivateKey({ key: Buffer.from(seed), format: 'raw-seed', asymmetricKeyType: 'ml-dsa-87' })
      const pub = crypto.createPublicKey(priv).export({ format: 'raw-public' })
      v = { priv, publicKey: new Uint8Array(pub) }
    } else {
      v = dsa.keygen(seed)
    }
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value)
    cache.set(k, v)
  }
  return v
}
parentPort.on('message', async (m) => {
  try {
    await ready
    if (m.op === 'keygen') {
      parentPort.postMessage({ id: m.id, ok: true, result: key(m.seed).publicKey })
    } else {
      const k = key(m.seed)
      const sig = workerData.native
        ? new Uint8Array(crypto.sign(null, m.message, { key: k.priv, context: m.context }))
        : dsa.sign(m.message, k.secretKey, { context: m.context })
      parentPort.postMessage({ id: m.id, ok: true, result: sig }, [sig.buffer])
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, ok: false, error: String(e && e.message || e) })
  }
})
`

interface Job {
  resolve: (v: Uint8Array) => void
  reject: (e: unknown) => void
  worker: number
}

function resolveNobleUrl(): string | undefined {
  const mod = nodeModule()
  const url = nodeUrl()
  if (mod === undefined || url === undefined) return undefined
  const here = typeof __filename === 'string' ? __filename : import.meta.url
  return url.pathToFileURL(mod.createRequire(here).resolve('@noble/post-quantum/ml-dsa.js')).href
}

function hasNodeMlDsa(): boolean {
  const c = nodeCrypto()
  if (c === undefined) return false
  try {
    c.generateKeyPairSync('ml-dsa-87' as 'x25519')
    return true
  } catch {
    return false
  }
}

function isLinux(): boolean {
  return (globalThis as { process?: { platform?: string } }).process?.platform === 'linux'
}

/** Start a pool. Nothing runs until the first call; `close()` stops every worker. */
export function createPqcWorkerPool(
  components: PqcWorkerPoolComponents = {},
  init: PqcWorkerPoolInit = {},
): PqcWorkerPool {
  const logger = components.logger ?? SILENT_LOGGER
  const maxPending = init.maxPending ?? DEFAULT_MAX_PENDING
  const niceWanted = init.workerNice ?? DEFAULT_WORKER_NICE
  if (!Number.isInteger(niceWanted) || niceWanted < 0 || niceWanted > MAX_NICE) {
    throw new RangeError(`"workerNice" must be an integer from 0 to ${MAX_NICE}`)
  }
  const wt = nodeWorkerThreads()
  const nobleUrl = wt === undefined ? undefined : resolveNobleUrl()
  const mode: 'worker_threads' | 'inline' =
    wt !== undefined && nobleUrl !== undefined ? 'worker_threads' : 'inline'
  const wantNative = init.backend ?? 'auto'
  const native =
    mode === 'worker_threads' &&
    wantNative !== 'noble' &&
    (wantNative === 'native' ? hasNodeMlDsa() : activeBackend().name === 'node')
  const nice = mode === 'worker_threads' && isLinux() ? niceWanted : 0
  const size = Math.max(
    1,
    Math.min(MAX_POOL_SIZE, init.size ?? Math.max(1, (globalThis.navigator?.hardwareConcurrency ?? 2) - 1)),
  )
  const workers: NodeWorkerThreads.Worker[] = []
  const busy: number[] = []
  const jobs = new Map<number, Job>()
  let nextId = 1
  let completed = 0
  let failed = 0
  let closed = false

  function failWorker(index: number, err: unknown): void {
    for (const [id, job] of jobs) {
      if (job.worker !== index) continue
      jobs.delete(id)
      failed++
      job.reject(new PqcError('X_PQC_WORKER_FAILED', 'pqc worker failed', { cause: err }))
    }
    busy[index] = 0
    workers.splice(index, 1, spawn(index))
  }

  function spawn(index: number): NodeWorkerThreads.Worker {
    if (wt === undefined) throw new Error('unreachable')
    const w = new wt.Worker(WORKER_SOURCE, { eval: true, workerData: { nobleUrl, native, nice } })
    w.unref()
    w.on('message', (m: { id: number; ok: boolean; result?: Uint8Array; error?: string }) => {
      const job = jobs.get(m.id)
      if (job === undefined) return
      jobs.delete(m.id)
      busy[index] = Math.max(0, (busy[index] ?? 1) - 1)
      if (m.ok && m.result !== undefined) {
        completed++
        job.resolve(m.result)
      } else {
        failed++
        job.reject(new PqcError('X_PQC_WORKER_FAILED', `pqc worker: ${m.error ?? 'no result'}`))
      }
      if (jobs.size === 0) for (const x of workers) x.unref()
    })
    w.on('error', (err) => {
      logger.error({ err: String(err) }, 'pqc worker crashed')
      if (!closed) failWorker(index, err)
    })
    return w
  }

  function dispatch(msg: {
    op: 'keygen' | 'sign'
    seed: Uint8Array
    message?: Uint8Array
    context?: Uint8Array
  }) {
    if (closed) return Promise.reject(new PqcError('X_PQC_CLOSED', 'worker pool is closed'))
    if (jobs.size >= maxPending) {
      return Promise.reject(new PqcError('X_PQC_WORKER_FAILED', `worker pool queue full (${maxPending})`))
    }
    if (mode === 'inline') return inline(msg)
    if (workers.length === 0) {
      for (let i = 0; i < size; i++) {
        workers.push(spawn(i))
        busy.push(0)
      }
    }
    let index = 0
    for (let i = 1; i < workers.length; i++) if ((busy[i] ?? 0) < (busy[index] ?? 0)) index = i
    const w = workers[index] as NodeWorkerThreads.Worker
    busy[index] = (busy[index] ?? 0) + 1
    const id = nextId++
    return new Promise<Uint8Array>((resolve, reject) => {
      jobs.set(id, { resolve, reject, worker: index })
      w.ref()
      w.postMessage({ id, ...msg })
    })
  }

  async function inline(msg: {
    op: 'keygen' | 'sign'
    seed: Uint8Array
    message?: Uint8Array
    context?: Uint8Array
  }) {
    await new Promise((r) => setTimeout(r, 0))
    const id = Identity.generate(msg.seed)
    completed++
    return msg.op === 'keygen' ? id.publicKey : id.sign(msg.message ?? new Uint8Array(0), msg.context)
  }

  function checkContext(context: Uint8Array | undefined): void {
    if (context === undefined) return
    assertBytes(context, 'context')
    if (context.length > MAX_CONTEXT_BYTES)
      throw new RangeError(`"context" must be at most ${MAX_CONTEXT_BYTES} bytes`)
  }

  return {
    async sign(identity, message, context) {
      const seed = identity instanceof Identity ? identitySeed(identity) : identity
      assertBytes(seed, 'identity', 32)
      assertBytes(message, 'message')
      checkContext(context)
      return dispatch({ op: 'sign', seed, message, context: context ?? new Uint8Array(0) })
    },
    async generateIdentity(seed32) {
      if (seed32 !== undefined) assertBytes(seed32, 'seed32', 32)
      const seed = seed32?.slice() ?? randomBytes(32)
      const publicKey = await dispatch({ op: 'keygen', seed })
      return Identity._fromSeedAndPublicKey(seed, publicKey)
    },
    verify(publicKey, message, signature, context) {
      return Promise.resolve(mlDsaVerify(publicKey, message, signature, context))
    },
    stats() {
      return {
        workers: workers.length,
        pending: jobs.size,
        completed,
        failed,
        mode,
        backend: native ? 'native' : 'noble',
        workerNice: nice,
      }
    },
    async close() {
      if (closed) return
      closed = true
      for (const [id, job] of jobs) {
        jobs.delete(id)
        job.reject(new PqcError('X_PQC_CLOSED', 'worker pool closed'))
      }
      await Promise.all(workers.map((w) => w.terminate()))
      workers.length = 0
    },
  }
}
