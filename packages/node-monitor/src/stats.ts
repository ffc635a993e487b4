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

/** A component's `getStats()`: any JSON-serialisable value, returned synchronously or as a promise. */
export type StatsProvider = () => unknown

/** What a provider that threw, rejected or hung is reported as, in place of its stats. */
export interface StatsError {
  /** The failure: `'timeout'`, or the message of what the provider threw or rejected with. */
  readonly error: string
}

/** One entry per provider name: its stats, or a {@link StatsError}. Frozen at the top level. */
export type StatsSnapshot = Readonly<Record<string, unknown>>

/** Options of {@link createStatsRegistry}: plain data, every field optional. */
export interface StatsRegistryInit {
  /**
   * How long a collected snapshot is served from cache, in milliseconds. `0` disables caching (concurrent
   * callers still share one in-flight collection).
   * @default 1000
   */
  cacheTtlMs?: number
  /**
   * Time a provider may take before it is reported as `{ error: 'timeout' }`, in milliseconds.
   * @default 1000
   */
  timeoutMs?: number
}

/** What {@link createStatsRegistry} takes from the outside world; each has a default. */
export interface StatsRegistryComponents {
  /** @default `Date.now` */
  clock?: Clock
  /** Receives `warn` when a provider fails. @default silent */
  logger?: Logger
}

/** Named stats providers, collected on demand into one snapshot; made by {@link createStatsRegistry}. */
export interface StatsRegistry {
  /**
   * Adds a provider. Throws `MonitorError` `X_MON_DUPLICATE_NAME` when `name` is taken, `TypeError` for a bad
   * argument.
   */
  register(name: string, getStats: StatsProvider): void
  /** Removes a provider; returns whether it existed. */
  unregister(name: string): boolean
  /** Registered names, in registration order. */
  names(): string[]
  /**
   * Calls every provider concurrently (or serves the cached snapshot) and returns one object keyed by name.
   * Never rejects: a provider that throws, rejects or times out appears as `{ error: message }`.
   */
  collect(options?: { fresh?: boolean }): Promise<StatsSnapshot>
}

/** Default TTL of a collected snapshot. */
export const STATS_CACHE_TTL_MS = 1_000
/** Default time a provider may take. */
export const STATS_TIMEOUT_MS = 1_000
const MAX_TIMER_MS = 2_147_483_647

/** Creates a stats registry. Nothing runs until {@link StatsRegistry.collect} is called. */
export function createStatsRegistry(
  components: StatsRegistryComponents = {},
  init: StatsRegistryInit = {},
): StatsRegistry {
  return new DefaultStatsRegistry(components, init)
}

class DefaultStatsRegistry implements StatsRegistry {
  readonly #log: Logger
  readonly #timeoutMs: number
  readonly #providers = new Map<string, StatsProvider>()
  readonly #cache: SingleFlightCache<StatsSnapshot>

  constructor(components: StatsRegistryComponents, init: StatsRegistryInit) {
    this.#log = components.logger ?? SILENT_LOGGER
    const cacheTtlMs = assertNumberInRange(
      'cacheTtlMs',
      init.cacheTtlMs ?? STATS_CACHE_TTL_MS,
      0,
      MAX_TIMER_MS,
    )
    this.#timeoutMs = assertNumberInRange('timeoutMs', init.timeoutMs ?? STATS_TIMEOUT_MS, 1, MAX_TIMER_MS)
    this.#cache = new SingleFlightCache(components.clock ?? SYSTEM_CLOCK, cacheTtlMs, () => this.#collect())
  }

  register(name: string, getStats: StatsProvider): void {
    assertName(name)
    if (typeof getStats !== 'function') throw new TypeError(`'getStats' must be a function`)
    if (this.#providers.has(name)) {
      throw new MonitorError('X_MON_DUPLICATE_NAME', `a stats provider named '${name}' is already registered`)
    }
    this.#providers.set(name, getStats)
    this.#cache.invalidate()
  }

  unregister(name: string): boolean {
    const existed = this.#providers.delete(name)
    if (existed) this.#cache.invalidate()
    return existed
  }

  names(): string[] {
    return [...this.#providers.keys()]
  }

  collect(options: { fresh?: boolean } = {}): Promise<StatsSnapshot> {
    return this.#cache.get(options.fresh === true)
  }

  async #collect(): Promise<StatsSnapshot> {
    const providers = [...this.#providers]
    const settled = await Promise.all(providers.map(([, get]) => settleWithin(get, this.#timeoutMs)))
    const snapshot: Record<string, unknown> = {}
    for (let i = 0; i < providers.length; i++) {
      const name = providers[i]![0]
      const result = settled[i]!
      if (result.kind === 'value') {
        snapshot[name] = result.value
        continue
      }
      const error = result.kind === 'timeout' ? 'timeout' : errorMessage(result.error)
      snapshot[name] = Object.freeze({ error } satisfies StatsError)
      this.#log.warn({ provider: name, error }, 'stats provider failed')
    }
    return Object.freeze(snapshot)
  }
}
