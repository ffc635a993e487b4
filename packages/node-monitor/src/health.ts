import {
  type Clock,
  type Logger,
  SILENT_LOGGER,
  SYSTEM_CLOCK,
  assertName,
  assertNumberInRange,
  errorMessage,
} from './components'
import { MonitorError } from './errors'
import { SingleFlightCache, settleWithin } from './run'

/**
 * The status of one component.
 *
 * - `ok`: working as intended.
 * - `degraded`: working, with reduced capacity or quality (e.g. no DHT peers yet, a slow disk).
 * - `down`: not working. Makes the aggregate `down` when the component is required, `degraded` otherwise.
 * - `disabled`: deliberately switched off by configuration (e.g. the AI slot before it exists). Reported as is,
 *   never counted against the aggregate: an operator's choice is not a fault.
 */
export type HealthStatus = 'ok' | 'degraded' | 'down' | 'disabled'

/** The status of the whole service. `disabled` components do not contribute, so it is never `disabled`. */
export type AggregateStatus = 'ok' | 'degraded' | 'down'

/** What a check returns: a status plus any JSON-serialisable details, reported next to it. */
export interface CheckResult {
  /** The component's status; anything else makes the report say `down` with `reason: 'invalid-result'`. */
  status: HealthStatus
  [detail: string]: unknown
}

/**
 * A health check. It receives a signal that is aborted when the check's timeout expires, so a cooperative
 * check can cancel its I/O. It may return synchronously. Throwing or rejecting reports the component `down`.
 */
export type HealthCheck = (signal: AbortSignal) => CheckResult | Promise<CheckResult>

/** How one check counts and how long it may take; the third argument of {@link HealthRegistry.register}. */
export interface CheckOptions {
  /**
   * Whether the service is down when this component is down. An optional component that is down only makes
   * the service `degraded`.
   * @default true
   */
  required?: boolean
  /**
   * Time the check may take before it is reported `down` with `reason: 'timeout'`, in milliseconds.
   * @default the registry's `checkTimeoutMs`
   */
  timeoutMs?: number
}

/**
 * One component in a {@link HealthReport}: the check's details, then the keys this package owns (they
 * override details of the same name): `status`, `required`, `durationMs`. A check that failed carries
 * `reason` (`'timeout'`, `'error'` or `'invalid-result'`) and, for `'error'`, the error's message in `error`.
 */
export interface ComponentHealth {
  /** The check's status, or `down` when it timed out, threw or returned something invalid. */
  readonly status: HealthStatus
  /** Whether this component being `down` makes the service `down` (see {@link CheckOptions.required}). */
  readonly required: boolean
  /** How long the check took, in milliseconds (by the injected clock). */
  readonly durationMs: number
  readonly [detail: string]: unknown
}

/** Shaped like the seed's `/api/health` body. Frozen: it may be shared by every caller within the TTL. */
export interface HealthReport {
  /** The aggregate of every component by {@link aggregateHealth}'s rules. */
  readonly status: AggregateStatus
  /** When the checks finished, in milliseconds since the epoch; up to `cacheTtlMs` old. */
  readonly timestamp: number
  /** Milliseconds since `startedAtMs` at `timestamp`. */
  readonly uptime: number
  /** The service version from {@link HealthRegistryInit.version}. */
  readonly version: string
  /** Every registered component by name, in registration order. */
  readonly components: Readonly<Record<string, ComponentHealth>>
}

/** The process can answer: no component is consulted. */
export interface LivenessReport {
  /** Always `ok`: a process that can build this report is alive. */
  readonly status: 'ok'
  /** When the report was made, in milliseconds since the epoch. */
  readonly timestamp: number
  /** Milliseconds since `startedAtMs`. */
  readonly uptime: number
  /** The service version from {@link HealthRegistryInit.version}. */
  readonly version: string
}

/** The components are up: ready unless a required component is down. */
export interface ReadinessReport {
  /** The aggregate status of the report it is derived from. */
  readonly status: AggregateStatus
  /** False only when a required component is down: a degraded service still takes traffic. */
  readonly ready: boolean
  /** When the underlying checks finished, in milliseconds since the epoch. */
  readonly timestamp: number
  /** Names of required components that are down (empty when ready). */
  readonly failing: readonly string[]
}

/** Options of {@link createHealthRegistry}: plain data, every field optional. */
export interface HealthRegistryInit {
  /**
   * How long a completed round of checks is served from cache, in milliseconds. `0` disables caching
   * (concurrent callers still share one in-flight round).
   * @default 1000
   */
  cacheTtlMs?: number
  /**
   * Default time a check may take, in milliseconds.
   * @default 2000
   */
  checkTimeoutMs?: number
  /**
   * Service version reported in every report.
   * @default '0.0.0'
   */
  version?: string
  /**
   * Start of the service, in milliseconds since the epoch, for `uptime`.
   * @default the process start time (`clock.now() - process.uptime() * 1000` at creation)
   */
  startedAtMs?: number
}

/** What {@link createHealthRegistry} takes from the outside world; each has a default. */
export interface HealthRegistryComponents {
  /** @default `Date.now` */
  clock?: Clock
  /** Receives status transitions (`info` on recovery, `warn` when a component goes down). @default silent */
  logger?: Logger
}

/**
 * Named health checks, run on demand and aggregated into one report; made by {@link createHealthRegistry}.
 */
export interface HealthRegistry {
  /**
   * Adds a named check. Throws `MonitorError` `X_MON_DUPLICATE_NAME` when `name` is taken, `TypeError` or
   * `RangeError` for a bad argument. The next report runs it (the cache is invalidated).
   */
  register(name: string, check: HealthCheck, options?: CheckOptions): void
  /** Removes a check; returns whether it existed. */
  unregister(name: string): boolean
  /** Registered names, in registration order. */
  names(): string[]
  /**
   * Runs every check concurrently (or serves the cached round), each bounded by its timeout. Never rejects:
   * failures are reported as `down` components. `fresh: true` skips the cache but still joins a round in flight.
   */
  report(options?: { fresh?: boolean }): Promise<HealthReport>
  /** Liveness: synchronous, consults no component. */
  liveness(): LivenessReport
  /** Readiness: derived from {@link HealthRegistry.report}, shares its cache. */
  readiness(options?: { fresh?: boolean }): Promise<ReadinessReport>
}

/** Default TTL of a completed round of checks. */
export const HEALTH_CACHE_TTL_MS = 1_000
/** Default time a check may take. */
export const HEALTH_CHECK_TIMEOUT_MS = 2_000
/** Largest delay `setTimeout` honours (2^31 - 1 ms); larger values fire at once. */
const MAX_TIMER_MS = 2_147_483_647

/**
 * The aggregation rules, in order:
 * 1. a required component `down` → `down`;
 * 2. otherwise an optional component `down`, or any component `degraded` → `degraded`;
 * 3. otherwise → `ok` (also with no components, or only `disabled` ones).
 */
export function aggregateHealth(
  components: Iterable<{ readonly status: HealthStatus; readonly required: boolean }>,
): AggregateStatus {
  let result: AggregateStatus = 'ok'
  for (const { status, required } of components) {
    if (status === 'down') {
      if (required) return 'down'
      result = 'degraded'
    } else if (status === 'degraded') {
      result = 'degraded'
    }
  }
  return result
}

/**
 * Maps an aggregate status to an HTTP status: 200 for `ok` and `degraded` (the service answers), 503 for
 * `down`. Anything else (an unexpected value at run time) maps to 503: failing closed is the safe side.
 */
export function healthToHttpStatus(status: AggregateStatus): 200 | 503 {
  return status === 'ok' || status === 'degraded' ? 200 : 503
}

const STATUSES: ReadonlySet<unknown> = new Set<HealthStatus>(['ok', 'degraded', 'down', 'disabled'])

interface Entry {
  readonly name: string
  readonly check: HealthCheck
  readonly required: boolean
  readonly timeoutMs: number
}

/**
 * Creates a health registry. Nothing runs until {@link HealthRegistry.report} is called; there is no timer
 * to stop.
 */
export function createHealthRegistry(
  components: HealthRegistryComponents = {},
  init: HealthRegistryInit = {},
): HealthRegistry {
  return new DefaultHealthRegistry(components, init)
}

class DefaultHealthRegistry implements HealthRegistry {
  readonly #clock: Clock
  readonly #log: Logger
  readonly #checkTimeoutMs: number
  readonly #version: string
  readonly #startedAtMs: number
  readonly #entries = new Map<string, Entry>()
  readonly #lastStatus = new Map<string, HealthStatus>()
  readonly #cache: SingleFlightCache<HealthReport>

  constructor(components: HealthRegistryComponents, init: HealthRegistryInit) {
    this.#clock = components.clock ?? SYSTEM_CLOCK
    this.#log = components.logger ?? SILENT_LOGGER
    const cacheTtlMs = assertNumberInRange(
      'cacheTtlMs',
      init.cacheTtlMs ?? HEALTH_CACHE_TTL_MS,
      0,
      MAX_TIMER_MS,
    )
    this.#checkTimeoutMs = assertNumberInRange(
      'checkTimeoutMs',
      init.checkTimeoutMs ?? HEALTH_CHECK_TIMEOUT_MS,
      1,
      MAX_TIMER_MS,
    )
    const version = init.version ?? '0.0.0'
    if (typeof version !== 'string') throw new TypeError(`'version' must be a string`)
    this.#version = version
    this.#startedAtMs =
      init.startedAtMs === undefined
        ? Math.round(this.#clock.now() - process.uptime() * 1000)
        : assertNumberInRange('startedAtMs', init.startedAtMs, 0, Number.MAX_SAFE_INTEGER)
    this.#cache = new SingleFlightCache(this.#clock, cacheTtlMs, () => this.#round())
  }

  register(name: string, check: HealthCheck, options: CheckOptions = {}): void {
    assertName(name)
    if (typeof check !== 'function') throw new TypeError(`'check' must be a function`)
    const required = options.required ?? true
    if (typeof required !== 'boolean') throw new TypeError(`'options.required' must be a boolean`)
    const timeoutMs = assertNumberInRange(
      'options.timeoutMs',
      options.timeoutMs ?? this.#checkTimeoutMs,
      1,
      MAX_TIMER_MS,
    )
    if (this.#entries.has(name)) {
      throw new MonitorError('X_MON_DUPLICATE_NAME', `a health check named '${name}' is already registered`)
    }
    this.#entries.set(name, { name, check, required, timeoutMs })
    this.#cache.invalidate()
  }

  unregister(name: string): boolean {
    const existed = this.#entries.delete(name)
    if (existed) {
      this.#lastStatus.delete(name)
      this.#cache.invalidate()
    }
    return existed
  }

  names(): string[] {
    return [...this.#entries.keys()]
  }

  report(options: { fresh?: boolean } = {}): Promise<HealthReport> {
    return this.#cache.get(options.fresh === true)
  }

  liveness(): LivenessReport {
    const now = this.#clock.now()
    return { status: 'ok', timestamp: now, uptime: now - this.#startedAtMs, version: this.#version }
  }

  async readiness(options: { fresh?: boolean } = {}): Promise<ReadinessReport> {
    const report = await this.report(options)
    const failing: string[] = []
    for (const [name, component] of Object.entries(report.components)) {
      if (component.required && component.status === 'down') failing.push(name)
    }
    return { status: report.status, ready: report.status !== 'down', timestamp: report.timestamp, failing }
  }

  async #round(): Promise<HealthReport> {
    const entries = [...this.#entries.values()]
    const results = await Promise.all(entries.map((entry) => this.#run(entry)))
    const components: Record<string, ComponentHealth> = {}
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!
      const result = results[i]!
      components[entry.name] = result
      this.#noteTransition(entry.name, result)
    }
    const timestamp = this.#clock.now()
    return Object.freeze({
      status: aggregateHealth(results),
      timestamp,
      uptime: timestamp - this.#startedAtMs,
      version: this.#version,
      components: Object.freeze(components),
    })
  }

  async #run(entry: Entry): Promise<ComponentHealth> {
    const started = this.#clock.now()
    const settled = await settleWithin(entry.check, entry.timeoutMs)
    const durationMs = Math.max(0, this.#clock.now() - started)
    const base = { required: entry.required, durationMs }
    switch (settled.kind) {
      case 'timeout':
        return Object.freeze({ status: 'down', reason: 'timeout', timeoutMs: entry.timeoutMs, ...base })
      case 'error':
        return Object.freeze({ status: 'down', reason: 'error', error: errorMessage(settled.error), ...base })
      case 'value':
        return normalise(settled.value, base)
    }
  }

  #noteTransition(name: string, result: ComponentHealth): void {
    const previous = this.#lastStatus.get(name)
    if (previous === result.status) return
    this.#lastStatus.set(name, result.status)
    // `check`, not `component`: an app's logger child often binds `component` already (one key, one meaning).
    const fields = { check: name, from: previous ?? null, to: result.status, reason: result.reason }
    if (result.status === 'down') this.#log.warn(fields, 'component health changed')
    else this.#log.info(fields, 'component health changed')
  }
}

function normalise(value: unknown, base: { required: boolean; durationMs: number }): ComponentHealth {
  if (typeof value !== 'object' || value === null || !STATUSES.has((value as CheckResult).status)) {
    return Object.freeze({ status: 'down', reason: 'invalid-result', ...base })
  }
  try {
    // Copy so that later mutation of the check's own object cannot change a cached report.
    return Object.freeze({ ...(value as CheckResult), ...base })
  } catch (err) {
    // A throwing getter on the result.
    return Object.freeze({ status: 'down', reason: 'error', error: errorMessage(err), ...base })
  }
}
