import { type Clock } from './components'

type Settled<T> =
  | { readonly kind: 'value'; readonly value: T }
  | { readonly kind: 'error'; readonly error: unknown }
  | { readonly kind: 'timeout' }

/**
 * Runs `fn` and settles within `timeoutMs`, never rejecting: a synchronous throw, a rejection and a hang all
 * become data. On timeout the signal handed to `fn` is aborted so a cooperative check can release resources;
 * a check that ignores it keeps running in the background but no longer holds up the caller.
 */
export async function settleWithin<T>(
  fn: (signal: AbortSignal) => T | Promise<T>,
  timeoutMs: number,
): Promise<Settled<T>> {
  const controller = new AbortController()
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'timeout' }), timeoutMs)
  })
  const work = (async (): Promise<Settled<T>> => {
    try {
      return { kind: 'value', value: await fn(controller.signal) }
    } catch (error) {
      return { kind: 'error', error }
    }
  })()
  try {
    const result = await Promise.race([work, timeout])
    if (result.kind === 'timeout') controller.abort(new DOMException('timed out', 'TimeoutError'))
    return result
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A value recomputed at most once per `ttlMs`, with single flight: callers that arrive while a computation
 * runs share it, so a burst of requests costs one round. `invalidate()` drops the cached value and makes any
 * round already in flight uncacheable and unjoinable (callers that already awaited it still get its result).
 */
export class SingleFlightCache<T> {
  readonly #clock: Clock
  readonly #ttlMs: number
  readonly #compute: () => Promise<T>
  #value: T | undefined
  #computedAt = 0
  #generation = 0
  #inflight: Promise<T> | undefined

  constructor(clock: Clock, ttlMs: number, compute: () => Promise<T>) {
    this.#clock = clock
    this.#ttlMs = ttlMs
    this.#compute = compute
  }

  /** The cached value if younger than the TTL, else the in-flight or a new round. */
  get(fresh = false): Promise<T> {
    if (!fresh) {
      const value = this.peek()
      if (value !== undefined) return Promise.resolve(value)
    }
    return this.#inflight ?? this.#start()
  }

  /** The cached value if still fresh, without starting a round. */
  peek(): T | undefined {
    if (this.#value === undefined) return undefined
    const age = this.#clock.now() - this.#computedAt
    // A clock that went backwards must not pin a stale value forever.
    return age >= 0 && age < this.#ttlMs ? this.#value : undefined
  }

  invalidate(): void {
    this.#value = undefined
    this.#inflight = undefined
    this.#generation++
  }

  #start(): Promise<T> {
    const generation = this.#generation
    const round = this.#compute().then((value) => {
      if (generation === this.#generation) {
        this.#value = value
        this.#computedAt = this.#clock.now()
      }
      return value
    })
    const inflight = round.finally(() => {
      if (this.#inflight === inflight) this.#inflight = undefined
    })
    this.#inflight = inflight
    return inflight
  }
}
