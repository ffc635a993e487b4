/**
 * The AI engine's policy: what a score does to a peer or an address. A state machine per key:
 *
 *   normal ──score ≥ throttle──► throttled ──score ≥ throttle for sustainMs, or ≥ block──► blocked
 *     ▲                             │  ▲                                                    │
 *     └──score < calm for calmMs────┘  └─────────────── block expires (probation) ───────────┘
 *
 * A score at or above `blockScore` blocks at once. Blocks last `blockMs`, doubled for every earlier offence
 * still remembered (offences halve every `offenseHalfLifeMs`), up to `maxBlockMs`. Keys that went back to
 * normal are remembered for `historyMs` so that the flagged list can show what happened.
 */

export type PolicyLevel = 'normal' | 'throttled' | 'blocked'

/** One feature that drove a score. */
export interface Reason {
  feature: string
  value: number
  /** The baseline's 99th percentile when the score was taken. */
  p99: number
  /** Octaves above it. */
  score: number
}

export interface PolicyEntry {
  readonly key: string
  level: PolicyLevel
  /** Last score seen. */
  score: number
  /** Highest score since the key was first flagged. */
  peak: number
  /** When the current level began. */
  since: number
  /** End of the block (blocked only). */
  until: number
  /** First time the key was flagged. */
  firstFlagged: number
  offenses: number
  offensesAt: number
  /** What drove the last throttle or block. */
  reasons: Reason[]
  aboveSince: number | undefined
  calmSince: number | undefined
  /** Last score time. */
  updatedAt: number
}

export interface PolicyOptions {
  /** @default 2 (octaves above the 99th percentile: over 4× the normal peak) */
  throttleScore?: number
  /** @default 4 */
  blockScore?: number
  /** Throttled and still at or above `throttleScore` this long: blocked. @default 1_000 */
  sustainMs?: number
  /** @default 1 */
  calmScore?: number
  /** Throttled and below `calmScore` this long: normal again. @default 10_000 */
  calmMs?: number
  /** @default 30_000 */
  blockMs?: number
  /** @default 600_000 */
  maxBlockMs?: number
  /** @default 600_000 */
  offenseHalfLifeMs?: number
  /** @default 600_000 */
  historyMs?: number
  /** Keys remembered at most (oldest calm ones are forgotten first). @default 10_000 */
  maxEntries?: number
}

/** A change of level, for logging. */
export interface Transition {
  entry: PolicyEntry
  from: PolicyLevel
  to: PolicyLevel
}

export class PolicyBook {
  readonly #o: Required<PolicyOptions>
  readonly #entries = new Map<string, PolicyEntry>()
  /** Actions taken since the start: keys moved to each level (`normal`: released). */
  readonly #actions: Record<PolicyLevel, number> = { normal: 0, throttled: 0, blocked: 0 }

  constructor(options: PolicyOptions = {}) {
    this.#o = {
      throttleScore: options.throttleScore ?? 2,
      blockScore: options.blockScore ?? 4,
      sustainMs: options.sustainMs ?? 1_000,
      calmScore: options.calmScore ?? 1,
      calmMs: options.calmMs ?? 10_000,
      blockMs: options.blockMs ?? 30_000,
      maxBlockMs: options.maxBlockMs ?? 600_000,
      offenseHalfLifeMs: options.offenseHalfLifeMs ?? 600_000,
      historyMs: options.historyMs ?? 600_000,
      maxEntries: options.maxEntries ?? 10_000,
    }
    if (!(this.#o.calmScore <= this.#o.throttleScore && this.#o.throttleScore <= this.#o.blockScore)) {
      throw new RangeError('"calmScore" <= "throttleScore" <= "blockScore" must hold')
    }
  }

  /** The score at which a key is throttled. */
  get throttleScore(): number {
    return this.#o.throttleScore
  }

  /** The level of `key` now (cheap: the hot path asks it). */
  level(key: string): PolicyLevel {
    return this.#entries.get(key)?.level ?? 'normal'
  }

  get(key: string): PolicyEntry | undefined {
    return this.#entries.get(key)
  }

  /**
   * Applies a score taken at `now`. `reasons` (computed lazily, only when the level rises) explain it.
   * Returns the transition, if the level changed.
   */
  update(key: string, score: number, now: number, reasons: () => Reason[]): Transition | undefined {
    const o = this.#o
    let e = this.#entries.get(key)
    if (e === undefined) {
      if (score < o.throttleScore) return undefined
      if (this.#entries.size >= o.maxEntries) this.#evictOne()
      e = {
        key,
        level: 'normal',
        score,
        peak: score,
        since: now,
        until: 0,
        firstFlagged: now,
        offenses: 0,
        offensesAt: now,
        reasons: [],
        aboveSince: undefined,
        calmSince: undefined,
        updatedAt: now,
      }
      this.#entries.set(key, e)
    }
    e.score = score
    e.updatedAt = now
    if (score > e.peak) e.peak = score
    const from = e.level
    if (from === 'blocked') {
      if (now < e.until) return undefined
      this.#set(e, 'throttled', now) // probation
      e.calmSince = now
    }
    if (score >= o.blockScore) {
      this.#block(e, now, reasons())
    } else if (score >= o.throttleScore) {
      e.calmSince = undefined
      if (e.level === 'normal') {
        this.#set(e, 'throttled', now)
        e.aboveSince = now
        e.reasons = reasons()
      } else {
        e.aboveSince ??= now
        if (now - e.aboveSince >= o.sustainMs) this.#block(e, now, reasons())
      }
    } else {
      e.aboveSince = undefined
      if (e.level === 'throttled') {
        if (score < o.calmScore) {
          e.calmSince ??= now
          if (now - e.calmSince >= o.calmMs) this.#set(e, 'normal', now)
        } else e.calmSince = undefined
      }
    }
    return e.level === from ? undefined : { entry: e, from, to: e.level }
  }

  /** Hands what is known of `from` to `to` (a connection that registered as a peer) unless `to` has its own. */
  rekey(from: string, to: string): void {
    const e = this.#entries.get(from)
    if (e === undefined || this.#entries.has(to)) return
    this.#entries.delete(from)
    this.#entries.set(to, { ...e, key: to })
  }

  /** Ends due blocks (into probation) and forgets calm keys past their history time. */
  expire(now: number): Transition[] {
    const out: Transition[] = []
    for (const e of this.#entries.values()) {
      if (e.level === 'blocked' && now >= e.until) {
        this.#set(e, 'throttled', now)
        e.calmSince = now
        e.aboveSince = undefined
        out.push({ entry: e, from: 'blocked', to: 'throttled' })
      } else if (
        e.level === 'throttled' &&
        ((e.calmSince !== undefined && now - e.calmSince >= this.#o.calmMs) ||
          now - Math.max(e.updatedAt, e.since) >= this.#o.calmMs)
      ) {
        // A throttled key that went silent (no longer scored, e.g. disconnected) is released here. Silent
        // since its last score or since it became throttled: a peer closed when blocked was last scored
        // before its block, and its probation must still last calmMs.
        this.#set(e, 'normal', now)
        out.push({ entry: e, from: 'throttled', to: 'normal' })
      } else if (e.level === 'normal' && now - e.since >= this.#o.historyMs) {
        this.#entries.delete(e.key)
      }
    }
    return out
  }

  entries(): IterableIterator<PolicyEntry> {
    return this.#entries.values()
  }

  /** Keys moved to each level since the start (`blocked` counts every block, also of a key blocked before). */
  actions(): Readonly<Record<PolicyLevel, number>> {
    return { ...this.#actions }
  }

  count(level: PolicyLevel): number {
    let n = 0
    for (const e of this.#entries.values()) if (e.level === level) n++
    return n
  }

  #block(e: PolicyEntry, now: number, reasons: Reason[]): void {
    const o = this.#o
    e.offenses = e.offenses * 0.5 ** ((now - e.offensesAt) / o.offenseHalfLifeMs) + 1
    e.offensesAt = now
    const ms = Math.min(o.maxBlockMs, o.blockMs * 2 ** Math.max(0, Math.round(e.offenses) - 1))
    this.#set(e, 'blocked', now)
    e.until = now + ms
    e.aboveSince = undefined
    e.calmSince = undefined
    e.reasons = reasons
  }

  #set(e: PolicyEntry, level: PolicyLevel, now: number): void {
    if (e.level !== level) this.#actions[level]++
    e.level = level
    e.since = now
  }

  #evictOne(): void {
    let oldest: PolicyEntry | undefined
    for (const e of this.#entries.values()) {
      if (e.level !== 'normal') continue
      if (oldest === undefined || e.since < oldest.since) oldest = e
    }
    // Every key flagged right now: forget the oldest flag rather than grow without bound.
    oldest ??= this.#entries.values().next().value
    if (oldest !== undefined) this.#entries.delete(oldest.key)
  }
}
