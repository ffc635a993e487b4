/**
 * A virtual clock: timers go into an event queue (binary heap ordered by time, then insertion), and time
 * jumps from event to event. Promise continuations run between events with distinct timestamps, so async
 * code behaves as it would on a real event loop, deterministically.
 */
import type { Clock } from './types'

interface TimerEvent {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

const noop = (): void => {}
const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export class VirtualClock implements Clock {
  #now: number
  #seq = 0
  #heap: TimerEvent[] = []
  #live = 0
  /** Events executed so far. */
  events = 0

  constructor(start = 0) {
    this.#now = start
  }

  /** Virtual milliseconds: the start value plus all time advanced so far. */
  now(): number {
    return this.#now
  }

  /** Schedules `fn` at now + `ms` virtual milliseconds; it runs only when the clock is advanced or run. */
  setTimeout(fn: () => void, ms: number): unknown {
    const ev: TimerEvent = { at: this.#now + Math.max(0, ms || 0), seq: this.#seq++, fn, cancelled: false }
    this.#push(ev)
    this.#live++
    return ev
  }

  /** Cancels a pending timer; ignores a handle that already ran or is not this clock's. */
  clearTimeout(handle: unknown): void {
    const ev = handle as TimerEvent | undefined
    if (ev !== undefined && ev !== null && typeof ev === 'object' && 'cancelled' in ev && !ev.cancelled) {
      ev.cancelled = true
      ev.fn = noop // the event stays queued until its time; let what the callback holds go now
      this.#live--
    }
  }

  /** Timers scheduled and not yet run or cancelled. */
  get pending(): number {
    return this.#live
  }

  /**
   * Runs events in order until `until()` is true, the queue is empty, or the next event is after `endAt`.
   * Resolves with whether `until()` became true.
   */
  async run(options: { until?: () => boolean; endAt?: number; onEvent?: () => void } = {}): Promise<boolean> {
    const { until, endAt = Infinity, onEvent } = options
    await drain()
    for (;;) {
      if (until?.() === true) return true
      const next = this.#peekLive()
      if (next === undefined || next.at > endAt) break
      this.#pop()
      this.#live--
      next.cancelled = true // a late clearTimeout() of a fired timer is a no-op
      if (next.at > this.#now) this.#now = next.at
      this.events++
      next.fn()
      onEvent?.()
      const after = this.#peekLive()
      if (after === undefined || after.at !== this.#now) await drain()
    }
    if (endAt !== Infinity && endAt > this.#now) this.#now = endAt
    await drain()
    return until?.() === true
  }

  /** Advances virtual time by `ms`, running every event due. */
  async advance(ms: number): Promise<void> {
    await this.run({ endAt: this.#now + ms })
  }

  /** Runs the clock until `promise` settles (or the queue runs dry); returns its outcome. */
  async runUntilSettled<T>(promise: Promise<T>, endAt = Infinity): Promise<T> {
    let settled = false
    const tracked = promise.finally(() => {
      settled = true
    })
    tracked.catch(() => undefined)
    await this.run({ until: () => settled, endAt })
    if (!settled) throw new Error('virtual clock ran dry before the promise settled')
    return tracked
  }

  #peekLive(): TimerEvent | undefined {
    while (this.#heap.length > 0 && this.#heap[0]!.cancelled) this.#pop()
    return this.#heap[0]
  }

  #less(a: TimerEvent, b: TimerEvent): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  #push(ev: TimerEvent): void {
    const h = this.#heap
    h.push(ev)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#less(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }

  #pop(): TimerEvent | undefined {
    const h = this.#heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
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
    return top
  }
}

/** Seeded PRNG (sfc32); `next()` in [0, 1). Same seed, same sequence. */
export class SeededRandom {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor(seed: number) {
    this.#a = 0x9e3779b9
    this.#b = 0x243f6a88
    this.#c = 0xb7e15162
    this.#d = seed >>> 0
    for (let i = 0; i < 15; i++) this.#u32()
  }

  #u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0
    this.#d = (this.#d + 1) | 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) | 0
    this.#c = (this.#c << 21) | (this.#c >>> 11)
    this.#c = (this.#c + t) | 0
    return t >>> 0
  }

  /** The next number in [0, 1). */
  next(): number {
    return this.#u32() / 4294967296
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** `length` bytes from the sequence. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length)
    for (let i = 0; i < length; i += 4) {
      const v = this.#u32()
      out[i] = v & 0xff
      if (i + 1 < length) out[i + 1] = (v >>> 8) & 0xff
      if (i + 2 < length) out[i + 2] = (v >>> 16) & 0xff
      if (i + 3 < length) out[i + 3] = v >>> 24
    }
    return out
  }
}
