/**
 * Backend selection. Before {@link initPqc} the pure-JS noble backend serves every call; `initPqc` loads the
 * optional backends, runs a known-answer self-test on each (a backend that fails to load or to pass is skipped
 * with a warning, never a crash), times a small micro-benchmark and makes the fastest one active, unless the
 * caller names one. After that every synchronous call of the package goes through the active backend.
 */
import { PqcError } from '../errors'
import { nobleBackend } from './noble'
import { createNodeBackend } from './node'
import { loadLiboqsBackend } from './liboqs'
import { selfTest } from './self-test'
import { SILENT_LOGGER } from './logger'
import type { BackendName, PqcBackend, PqcLogger } from './types'

/** Options of {@link initPqc}. */
export interface PqcInitOptions {
  /**
   * `'auto'` picks the fastest backend that loads and passes its self-test; a name forces that backend and
   * rejects with `X_PQC_BACKEND_UNAVAILABLE` when it cannot be used.
   * @default 'auto'
   */
  backend?: 'auto' | BackendName
  /** Pino-shaped logger. @default silent */
  logger?: PqcLogger
  /**
   * Timed rounds per backend in the start-up micro-benchmark (each round: one ML-KEM keygen, encapsulate,
   * decapsulate, and one ML-DSA sign and verify).
   * @default 3
   */
  benchmarkRounds?: number
}

/** What one backend did during {@link initPqc}. */
export interface BackendReport {
  /** Which backend. */
  name: BackendName
  /** Loaded and passed its self-test. */
  ok: boolean
  /** Why it was skipped. */
  reason?: string
  /** Median time of one benchmark round (ms), when measured. */
  roundMs?: number
}

/** Result of {@link initPqc}. */
export interface PqcInitResult {
  /** The backend now active. */
  backend: BackendName
  /** Every backend tried, in order, with why it was or was not used. */
  backends: BackendReport[]
}

let active: PqcBackend = nobleBackend
let initialized = false
let loaded: PqcBackend[] = [nobleBackend]
let lastReports: BackendReport[] = [{ name: 'noble', ok: true }]

/** The backend that serves synchronous calls now. */
export function activeBackend(): PqcBackend {
  return active
}

/** True once {@link initPqc} has resolved. */
export function isInitialized(): boolean {
  return initialized
}

/** Backends that loaded and passed their self-test in the last {@link initPqc} (noble before it). */
export function loadedBackends(): readonly PqcBackend[] {
  return loaded
}

/** Reports of the last {@link initPqc}. */
export function backendReports(): readonly BackendReport[] {
  return lastReports
}

async function tryLoad(name: BackendName, logger: PqcLogger): Promise<PqcBackend | string> {
  try {
    const b =
      name === 'noble' ? nobleBackend : name === 'node' ? createNodeBackend() : await loadLiboqsBackend()
    if (typeof b === 'string') {
      logger.warn({ backend: name, reason: b }, 'pqc backend unavailable, skipped')
      return b
    }
    selfTest(b)
    return b
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e)
    logger.warn({ backend: name, err: reason }, 'pqc backend skipped')
    return reason
  }
}

function benchmark(b: PqcBackend, rounds: number): number {
  const kemSeed = new Uint8Array(64).fill(1)
  const dsaSeed = new Uint8Array(32).fill(2)
  const msg = new Uint8Array(64)
  const ctx = new Uint8Array(0)
  const times: number[] = []
  for (let r = 0; r <= rounds; r++) {
    const t0 = performance.now()
    const kp = b.mlKemKeygen(kemSeed)
    const enc = b.mlKemEncapsulate(kp.publicKey)
    b.mlKemDecapsulate(enc.cipherText, kp.secretKey)
    const sk = b.mlDsaKeygen(dsaSeed)
    const sig = b.mlDsaSign(sk.secretKey, msg, ctx)
    b.mlDsaVerify(sk.publicKey, msg, sig, ctx)
    if (r > 0) times.push(performance.now() - t0) // round 0 warms up
  }
  times.sort((a, z) => a - z)
  return times[Math.floor(times.length / 2)] ?? Infinity
}

/**
 * Load, self-test and time the available backends, then make the chosen one active. Safe to call again
 * (e.g. to force another backend). Never rejects in `'auto'` mode: noble is always there.
 */
export async function initPqc(options: PqcInitOptions = {}): Promise<PqcInitResult> {
  const want = options.backend ?? 'auto'
  const logger = options.logger ?? SILENT_LOGGER
  const rounds = options.benchmarkRounds ?? 3
  if (want !== 'auto' && want !== 'noble' && want !== 'node' && want !== 'liboqs') {
    throw new TypeError(`"backend" must be 'auto', 'noble', 'node' or 'liboqs'`)
  }
  const names: BackendName[] = want === 'auto' ? ['noble', 'node', 'liboqs'] : [want]
  const reports: BackendReport[] = []
  const ok: PqcBackend[] = []
  for (const name of names) {
    const r = await tryLoad(name, logger)
    if (typeof r === 'string') reports.push({ name, ok: false, reason: r })
    else {
      ok.push(r)
      reports.push({ name, ok: true })
    }
  }
  if (ok.length === 0) {
    const reason = reports[0]?.reason ?? 'unknown'
    throw new PqcError('X_PQC_BACKEND_UNAVAILABLE', `backend '${want}' is unavailable: ${reason}`)
  }
  const best = chooseBackend(ok, (b) => {
    const ms = benchmark(b, rounds)
    const rep = reports.find((x) => x.name === b.name)
    if (rep !== undefined) rep.roundMs = ms
    return ms
  })
  active = best
  loaded = ok.includes(nobleBackend) ? ok : [nobleBackend, ...ok]
  lastReports = reports
  initialized = true
  logger.info({ backend: best.name, backends: reports }, 'pqc backend selected')
  return { backend: best.name, backends: reports }
}

/**
 * The backend `initPqc` makes active among those that passed the self-test: a backend that claims constant time
 * (OpenSSL) whenever one passed, however a short benchmark on a busy machine comes out; among the rest, the
 * fastest by `timeMs`.
 */
export function chooseBackend(passed: readonly PqcBackend[], timeMs: (b: PqcBackend) => number): PqcBackend {
  const constantTime = passed.filter((b) => b.constantTime)
  const tier = constantTime.length > 0 ? constantTime : passed
  let best = tier[0] as PqcBackend
  if (tier.length === 1) return best
  let bestMs = Infinity
  for (const b of tier) {
    const ms = timeMs(b)
    if (ms < bestMs) {
      bestMs = ms
      best = b
    }
  }
  return best
}

/** Test hook: return to the state before {@link initPqc}. */
export function _resetPqcForTesting(): void {
  active = nobleBackend
  initialized = false
  loaded = [nobleBackend]
  lastReports = [{ name: 'noble', ok: true }]
}

/** Test hook: make `b` the active backend without self-test or benchmark. */
export function _useBackendForTesting(b: PqcBackend): void {
  active = b
}
