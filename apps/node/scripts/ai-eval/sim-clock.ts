/**
 * A virtual clock for the evaluation: the `Clock` shape of `@x/signaling` and `@x/kademlia` (`now`,
 * `setTimeout`, `clearTimeout`), with timers in a binary heap (thousands of simulated clients keep thousands
 * of timers; the testing clock of `@x/signaling` scans them all on every advance). Timers run in time order,
 * then creation order.
 */

interface Timer {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

export class HeapClock {
  #now: number
  #seq = 0
  readonly #heap: Timer[] = []

  constructor(start: number) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const t: Timer = { at: this.#now + Math.max(0, ms || 0), seq: this.#seq++, fn, cancelled: false }
    this.#push(t)
    return t
  }

  clearTimeout(handle: unknown): void {
    if (handle !== null && typeof handle === 'object' && 'cancelled' in handle)
      (handle as Timer).cancelled = true
  }

  /** Runs every timer due up to `now + ms`, each at its own time, then sets the time to `now + ms`. */
  advance(ms: number): void {
    const end = this.#now + ms
    for (;;) {
      const top = this.#heap[0]
      if (top === undefined || top.at > end) break
      this.#pop()
      if (top.cancelled) continue
      this.#now = top.at
      top.fn()
    }
    this.#now = end
  }

  get pending(): number {
    return this.#heap.length
  }

  #less(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  #push(t: Timer): void {
    const h = this.#heap
    h.push(t)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#less(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }

  #pop(): void {
    const h = this.#heap
    const last = h.pop()!
    if (h.length === 0) return
    h[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && this.#less(h[l]!, h[m]!)) m = l
      if (r < h.length && this.#less(h[r]!, h[m]!)) m = r
      if (m === i) break
      ;[h[i], h[m]] = [h[m]!, h[i]!]
      i = m
    }
  }
}

/** Mulberry32: a small seeded PRNG, so that a seed gives the same traffic plan. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
