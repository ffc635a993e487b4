/**
 * Token bucket per source (host, without the port, so changing ports does not buy a fresh bucket). The map
 * is bounded: past `maxEntries` the oldest entry is dropped, which at worst gives that source a full bucket
 * again — memory stays bounded under a flood from many sources.
 */
export class RateLimiter {
  readonly #ratePerMs: number
  readonly #burst: number
  readonly #maxEntries: number
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(ratePerSecond: number, burst: number, maxEntries: number) {
    if (!(ratePerSecond > 0)) throw new RangeError("'rateLimitPerSecond' must be > 0")
    if (!(burst >= 1)) throw new RangeError("'rateLimitBurst' must be >= 1")
    this.#ratePerMs = ratePerSecond / 1000
    this.#burst = burst
    this.#maxEntries = Math.max(1, maxEntries)
  }

  /** Takes one token for `source` at time `now`; false if the source is over its rate. */
  take(source: string, now: number): boolean {
    let b = this.#buckets.get(source)
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxEntries) {
        const oldest = this.#buckets.keys().next()
        if (oldest.done !== true) this.#buckets.delete(oldest.value)
      }
      b = { tokens: this.#burst, at: now }
      this.#buckets.set(source, b)
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) * this.#ratePerMs)
      b.at = now
    }
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  get size(): number {
    return this.#buckets.size
  }
}

/** The host part of an address (`1.2.3.4:5` → `1.2.3.4`, `[::1]:5` → `::1`); non-IP names unchanged. */
export function sourceHost(address: string): string {
  if (address.startsWith('[')) {
    const end = address.indexOf(']')
    return end > 0 ? address.slice(1, end) : address
  }
  const colon = address.lastIndexOf(':')
  return colon > 0 && address.indexOf(':') === colon ? address.slice(0, colon) : address
}
