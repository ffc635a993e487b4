/**
 * Off-main-thread ML-DSA-87 signing, verification and key generation, and ML-DSA-44 subkey signing and
 * verification, in a `worker_threads` pool, so a server's event loop stays responsive (pure-JS ML-DSA-87
 * signing takes 10–25 ms, verification about 4 ms on our 2-core machine). The workers use Node's native
 * ML-DSA when it is available (Node >= 24.7), noble otherwise.
 *
 * The worker body is plain JS evaluated from a string, so it needs no file of this package on disk; noble it
 * loads by the file URL the main thread resolves. When that cannot be resolved (the app was bundled into one
 * file) the workers run native ML-DSA if Node has it, which needs no module; failing both, and outside Node
 * (browsers), the pool runs the same operations inline, one per macrotask, with the same API.
 */
import { PqcError } from './errors'
import { Identity, identitySeed } from './identity'
import {
  checkContext,
  mlDsaKeygen,
  mlDsaSign,
  mlDsaVerify,
  ML_DSA_87_PUBLIC_KEY_BYTES,
  ML_DSA_87_SIGNATURE_BYTES,
} from './ml-dsa'
import {
  mlDsa44Sign,
  mlDsa44Keygen,
  mlDsa44Verify,
  ML_DSA_44_PUBLIC_KEY_BYTES,
  ML_DSA_44_SIGNATURE_BYTES,
} from './ml-dsa-44'
import { type SigningSubkey, subkeySeed } from './subkey'
import { assertBytes } from './bytes'
import { randomBytes } from './kdf'
import { availableParallelism, nodeCrypto, nodeModule, nodeUrl, nodeWorkerThreads } from './runtime'
import { activeBackend } from './backend/registry'
import { SILENT_LOGGER } from './backend/logger'
import type { PqcLogger } from './backend/types'
import type * as NodeWorkerThreads from 'node:worker_threads'

/** Options of {@link createPqcWorkerPool}. */
export interface PqcWorkerPoolInit {
  /**
   * Number of worker threads.
   * @default `os.availableParallelism() - 1` (`navigator.hardwareConcurrency - 1` outside Node), from 1 to 4
   */
  size?: number
  /**
   * `'native'` uses node:crypto ML-DSA in the workers (fails over to noble when absent), `'noble'` forces pure JS,
   * `'auto'` follows the main thread's active backend, and takes native when noble cannot be located for the
   * workers (a bundled app).
   * @default 'auto'
   */
  backend?: 'auto' | 'native' | 'noble'
  /**
   * Most jobs queued (not yet answered) before a call rejects with `X_PQC_WORKER_FAILED`, bounding memory.
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
  /** Told when the pool has to run inline (`warn`). @default silent */
  logger?: PqcLogger
}

/** Counters of a pool. */
export interface PqcWorkerPoolStats {
  /** Worker threads running (0 inline). */
  workers: number
  /** Jobs sent to workers and not yet answered. */
  pending: number
  /** Jobs that returned a result. */
  completed: number
  /** Jobs that rejected with `X_PQC_WORKER_FAILED` (a worker error or crash). */
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
  /**
   * Verify an ML-DSA-87 signature in a worker, as {@link verify}: false (never a rejection) for a wrong or
   * malformed key or signature.
   */
  verify(
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
    context?: Uint8Array,
  ): Promise<boolean>
  /** Hedged ML-DSA-44 signature by a signing subkey (see `deriveSigningSubkey`), as `subkey.sign`. */
  signWithSubkey(subkey: SigningSubkey, message: Uint8Array, context?: Uint8Array): Promise<Uint8Array>
  /** Verify a subkey (ML-DSA-44) signature in a worker, as `verifySubkeySignature`. */
  verifySubkeySignature(
    subkeyPublicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
    context?: Uint8Array,
  ): Promise<boolean>
  /** The pool's counters and mode now. */
  stats(): PqcWorkerPoolStats
  /** Terminates the workers; pending jobs reject with `X_PQC_CLOSED`. */
  close(): Promise<void>
}

const DEFAULT_MAX_PENDING = 10_000
const MAX_POOL_SIZE = 4
const DEFAULT_WORKER_NICE = 10
const MAX_NICE = 19

/**
 * Plain-JS worker body (evaluated as CommonJS in the worker, so it needs no file of this package). Keeps an
 * LRU of expanded keys per (algorithm, seed) and of imported public keys. Verification answers false for any
 * key or signature the implementation rejects, never an error.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const crypto = require('node:crypto')
const CACHE_MAX = 64
const secretKeys = new Map()
const publicKeys = new Map()
if (workerData.nice > 0) {
  // Linux: setpriority(PRIO_PROCESS, 0) renices the calling thread only (nice is per thread under NPTL).
  // Never raises priority: a process that already runs nicer keeps its own value.
  try { const os = require('node:os'); if (workerData.nice > os.getPriority()) os.setPriority(workerData.nice) } catch {}
}
const dsa = {}
const ready = workerData.native
  ? Promise.resolve()
  : import(workerData.nobleUrl).then((m) => { dsa['ml-dsa-87'] = m.ml_dsa87; dsa['ml-dsa-44'] = m.ml_dsa44 })
function cached(map, k, make) {
  let v = map.get(k)
  if (v === undefined) {
    v = make()
    if (map.size >= CACHE_MAX) map.delete(map.keys().next().value)
  } else {
    map.delete(k)
  }
  map.set(k, v)
  return v
}
function secretKey(alg, seed) {
  return cached(secretKeys, alg + Buffer.from(seed).toString('hex'), () => {
    if (!workerData.native) return dsa[alg].keygen(seed)
    const priv = crypto.createPrivateKey({ key: Buffer.from(seed), format: 'raw-seed', asymmetricKeyType: alg })
    const pub = crypto.createPublicKey(priv).export({ format: 'raw-public' })
    return { priv, publicKey: new Uint8Array(pub) }
  })
}
function sign(alg, m) {
  const k = secretKey(alg, m.seed)
  return workerData.native
    ? new Uint8Array(crypto.sign(null, m.message, { key: k.priv, context: m.context }))
    : dsa[alg].sign(m.message, k.secretKey, { context: m.context })
}
function verify(alg, m) {
  try {
    if (!workerData.native) return dsa[alg].verify(m.signature, m.message, m.publicKey, { context: m.context })
    const key = cached(publicKeys, alg + Buffer.from(m.publicKey).toString('hex'), () =>
      crypto.createPublicKey({ key: Buffer.from(m.publicKey), format: 'raw-public', asymmetricKeyType: alg }))
    return crypto.verify(null, m.message, { key, context: m.context }, m.signature)
  } catch {
    return false
  }
}
parentPort.on('message', async (m) => {
  try {
    await ready
    let result
    if (m.op === 'keygen') result = secretKey('ml-dsa-87', m.seed).publicKey
    else if (m.op === 'sign') result = sign('ml-dsa-87', m)
    else if (m.op === 'sign44') result = sign('ml-dsa-44', m)
    else if (m.op === 'verify') result = verify('ml-dsa-87', m)
    else if (m.op === 'verify44') result = verify('ml-dsa-44', m)
    else throw new Error('unknown op ' + m.op)
    parentPort.postMessage({ id: m.id, ok: true, result }, result instanceof Uint8Array && m.op !== 'keygen' ? [result.buffer] : [])
  } catch (e) {
    parentPort.postMessage({ id: m.id, ok: false, error: String(e && e.message || e) })
  }
})
`

type WorkerRequest =
  | { op: 'keygen'; seed: Uint8Array }
  | { op: 'sign' | 'sign44'; seed: Uint8Array; message: Uint8Array; context: Uint8Array }
  | {
      op: 'verify' | 'verify44'
      publicKey: Uint8Array
      message: Uint8Array
      signature: Uint8Array
      context: Uint8Array
    }

interface Job {
  resolve: (v: Uint8Array | boolean) => void
  reject: (e: unknown) => void
  worker: number
}

/** File URL of noble's ML-DSA module for the workers, or undefined when it cannot be found (a bundled app). */
function resolveNobleUrl(): string | undefined {
  const mod = nodeModule()
  const url = nodeUrl()
  if (mod === undefined || url === undefined) return undefined
  try {
    const here = typeof __filename === 'string' ? __filename : import.meta.url
    return url.pathToFileURL(mod.createRequire(here).resolve('@noble/post-quantum/ml-dsa.js')).href
  } catch {
    return undefined
  }
}

function hasNodeMlDsa(): boolean {
  const c = nodeCrypto()
  if (c === undefined) return false
  try {
    c.generateKeyPairSync('ml-dsa-87' as 'x25519')
    c.generateKeyPairSync('ml-dsa-44' as 'x25519')
    return true
  } catch {
    return false
  }
}

function isLinux(): boolean {
  return (globalThis as { process?: { platform?: string } }).process?.platform === 'linux'
}

/** One thread is left to the caller's event loop. */
function defaultPoolSize(): number {
  return Math.max(1, Math.min(MAX_POOL_SIZE, (availableParallelism() ?? 2) - 1))
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
  const wantBackend = init.backend ?? 'auto'
  const wt = nodeWorkerThreads()
  const nobleUrl = wt === undefined ? undefined : resolveNobleUrl()
  // Native when asked for, when the main thread runs native, or when noble cannot reach the workers; the probe
  // (two key generations) runs only then.
  const native =
    wt !== undefined &&
    wantBackend !== 'noble' &&
    (wantBackend === 'native' || activeBackend().name === 'node' || nobleUrl === undefined) &&
    hasNodeMlDsa()
  const mode: 'worker_threads' | 'inline' =
    wt !== undefined && (native || nobleUrl !== undefined) ? 'worker_threads' : 'inline'
  if (wt !== undefined && mode === 'inline') {
    logger.warn(
      { backend: wantBackend },
      'pqc worker pool runs inline: @noble/post-quantum cannot be located for worker threads (bundled app?) and node:crypto has no ML-DSA',
    )
  }
  const nice = mode === 'worker_threads' && isLinux() ? niceWanted : 0
  const size = Math.max(1, Math.min(MAX_POOL_SIZE, init.size ?? defaultPoolSize()))
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
    w.on('message', (m: { id: number; ok: boolean; result?: Uint8Array | boolean; error?: string }) => {
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

  function dispatch(msg: WorkerRequest & { op: 'keygen' | 'sign' | 'sign44' }): Promise<Uint8Array>
  function dispatch(msg: WorkerRequest & { op: 'verify' | 'verify44' }): Promise<boolean>
  function dispatch(msg: WorkerRequest): Promise<Uint8Array | boolean> {
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
    return new Promise<Uint8Array | boolean>((resolve, reject) => {
      jobs.set(id, { resolve, reject, worker: index })
      w.ref()
      w.postMessage({ id, ...msg })
    })
  }

  /** The same operations on the calling thread, one per macrotask, through the active backend. */
  async function inline(msg: WorkerRequest): Promise<Uint8Array | boolean> {
    await new Promise((r) => setTimeout(r, 0))
    let result: Uint8Array | boolean
    switch (msg.op) {
      case 'keygen':
        result = mlDsaKeygen(msg.seed).publicKey
        break
      case 'sign':
        result = mlDsaSign(mlDsaKeygen(msg.seed).secretKey, msg.message, msg.context)
        break
      case 'sign44':
        result = mlDsa44Sign(mlDsa44Keygen(msg.seed).secretKey, msg.message, msg.context)
        break
      case 'verify':
        result = mlDsaVerify(msg.publicKey, msg.message, msg.signature, msg.context)
        break
      case 'verify44':
        result = mlDsa44Verify(msg.publicKey, msg.message, msg.signature, msg.context)
        break
    }
    completed++
    return result
  }

  /** Argument checks shared by both verifications; false when the key or signature cannot be valid. */
  function wellFormed(
    publicKey: unknown,
    message: unknown,
    signature: unknown,
    context: Uint8Array | undefined,
    publicKeyBytes: number,
    signatureBytes: number,
  ): boolean {
    assertBytes(message, 'message')
    checkContext(context)
    return (
      publicKey instanceof Uint8Array &&
      publicKey.length === publicKeyBytes &&
      signature instanceof Uint8Array &&
      signature.length === signatureBytes
    )
  }

  return {
    async sign(identity, message, context) {
      const seed = identity instanceof Identity ? identitySeed(identity) : identity
      assertBytes(seed, 'identity', 32)
      assertBytes(message, 'message')
      return dispatch({ op: 'sign', seed, message, context: checkContext(context) })
    },
    async signWithSubkey(subkey, message, context) {
      const seed = subkeySeed(subkey)
      assertBytes(message, 'message')
      return dispatch({ op: 'sign44', seed, message, context: checkContext(context) })
    },
    async generateIdentity(seed32) {
      if (seed32 !== undefined) assertBytes(seed32, 'seed32', 32)
      const seed = seed32?.slice() ?? randomBytes(32)
      const publicKey = await dispatch({ op: 'keygen', seed })
      return Identity._fromSeedAndPublicKey(seed, publicKey)
    },
    async verify(publicKey, message, signature, context) {
      if (
        !wellFormed(
          publicKey,
          message,
          signature,
          context,
          ML_DSA_87_PUBLIC_KEY_BYTES,
          ML_DSA_87_SIGNATURE_BYTES,
        )
      ) {
        return false
      }
      return dispatch({ op: 'verify', publicKey, message, signature, context: checkContext(context) })
    },
    async verifySubkeySignature(publicKey, message, signature, context) {
      if (
        !wellFormed(
          publicKey,
          message,
          signature,
          context,
          ML_DSA_44_PUBLIC_KEY_BYTES,
          ML_DSA_44_SIGNATURE_BYTES,
        )
      ) {
        return false
      }
      return dispatch({ op: 'verify44', publicKey, message, signature, context: checkContext(context) })
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
