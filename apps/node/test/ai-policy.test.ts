/**
 * The AI engine's policy on its own: the per-key state machine normal → throttled → blocked, driven with
 * explicit times (no timers): sustain and calm timers, blocks doubling per remembered offence and their
 * expiry into probation, offences fading, history and the entry bound.
 */
import { describe, expect, it, vi } from 'vitest'
import { PolicyBook, type Reason, type Transition } from '../src/ai/policy'

const REASONS: Reason[] = [{ feature: 'signals/s', value: 400, p99: 20, score: 4.3 }]
const why = (): Reason[] => REASONS

/** `{from, to}` of a transition, or undefined. */
function move(t: Transition | undefined): { from: string; to: string } | undefined {
  return t === undefined ? undefined : { from: t.from, to: t.to }
}

describe('PolicyBook', () => {
  it('throttles at throttleScore, then blocks when the score stays at or above it for sustainMs', () => {
    const book = new PolicyBook() // throttle 2, block 4, sustain 1 s, block 30 s
    expect(move(book.update('k', 1.99, 0, why))).toBeUndefined()
    expect(book.get('k')).toBeUndefined() // a key below the throttle score is not even remembered
    expect(book.level('k')).toBe('normal')

    expect(move(book.update('k', 2, 0, why))).toEqual({ from: 'normal', to: 'throttled' })
    expect(book.level('k')).toBe('throttled')
    expect(book.get('k')!.reasons).toEqual(REASONS)
    expect(move(book.update('k', 3.9, 500, why))).toBeUndefined()
    expect(move(book.update('k', 2.5, 999, why))).toBeUndefined()
    const t = book.update('k', 2.5, 1000, why)
    expect(move(t)).toEqual({ from: 'throttled', to: 'blocked' })
    expect(t!.entry).toMatchObject({ level: 'blocked', since: 1000, until: 31_000, offenses: 1, peak: 3.9 })
    expect(book.count('blocked')).toBe(1)
    expect(book.count('throttled')).toBe(0)
    // Actions taken, for x_ai_actions_total: one throttle, one block, nothing released yet.
    expect(book.actions()).toEqual({ normal: 0, throttled: 1, blocked: 1 })
    book.expire(31_000) // the block ends into probation: a second throttle
    expect(book.actions()).toEqual({ normal: 0, throttled: 2, blocked: 1 })
  })

  it('restarts the sustain timer when the score dips below throttleScore', () => {
    const book = new PolicyBook()
    book.update('k', 3, 0, why)
    book.update('k', 1.5, 500, why) // below throttle, above calm: stays throttled, timer reset
    expect(book.level('k')).toBe('throttled')
    expect(move(book.update('k', 3, 600, why))).toBeUndefined()
    expect(move(book.update('k', 3, 1500, why))).toBeUndefined() // 900 ms above since the dip
    expect(move(book.update('k', 3, 1600, why))).toEqual({ from: 'throttled', to: 'blocked' })
  })

  it('blocks at once at blockScore, from normal and from throttled', () => {
    const book = new PolicyBook()
    expect(move(book.update('a', 4, 0, why))).toEqual({ from: 'normal', to: 'blocked' })
    book.update('b', 2, 0, why)
    expect(move(book.update('b', 7, 1, why))).toEqual({ from: 'throttled', to: 'blocked' })
    expect(book.get('b')!.until).toBe(30_001)
  })

  it('ends a block into probation (throttled) with expire(now), and a blocked key ignores scores until then', () => {
    const book = new PolicyBook()
    book.update('k', 5, 0, why)
    expect(move(book.update('k', 9, 20_000, why))).toBeUndefined()
    expect(book.level('k')).toBe('blocked')
    expect(book.get('k')!.peak).toBe(9)
    expect(book.expire(29_999)).toEqual([])
    const out = book.expire(30_000)
    expect(out.map(move)).toEqual([{ from: 'blocked', to: 'throttled' }])
    expect(out[0]!.entry).toMatchObject({ key: 'k', level: 'throttled', since: 30_000, calmSince: 30_000 })
    // Probation: still quiet calmMs later, released (no score needed).
    expect(book.expire(39_999)).toEqual([])
    expect(book.expire(40_000).map(move)).toEqual([{ from: 'throttled', to: 'normal' }])
  })

  it('keeps a key that went silent when blocked (its connection closed) on probation for calmMs', () => {
    const book = new PolicyBook()
    book.update('k', 5, 0, why) // last score: the one that blocked it
    expect(book.expire(30_000).map(move)).toEqual([{ from: 'blocked', to: 'throttled' }])
    expect(book.expire(30_250)).toEqual([])
    expect(book.level('k')).toBe('throttled')
    expect(book.expire(39_999)).toEqual([])
    expect(book.expire(40_000).map(move)).toEqual([{ from: 'throttled', to: 'normal' }])
  })

  it('ends a due block in update too, and a key that is still abusive on probation is blocked again', () => {
    const book = new PolicyBook()
    book.update('k', 5, 0, why)
    expect(move(book.update('k', 3, 30_000, why))).toEqual({ from: 'blocked', to: 'throttled' })
    expect(move(book.update('k', 3, 30_999, why))).toBeUndefined()
    expect(move(book.update('k', 3, 31_000, why))).toEqual({ from: 'throttled', to: 'blocked' })
  })

  it('releases a throttled key after calmMs below calmScore, through update', () => {
    const book = new PolicyBook() // calm 1, calmMs 10 s
    book.update('k', 2, 0, why)
    expect(move(book.update('k', 0.5, 100, why))).toBeUndefined()
    expect(move(book.update('k', 1.5, 5000, why))).toBeUndefined() // not calm: the calm timer restarts
    expect(move(book.update('k', 0.5, 6000, why))).toBeUndefined()
    expect(move(book.update('k', 0.5, 15_999, why))).toBeUndefined()
    expect(move(book.update('k', 0.5, 16_000, why))).toEqual({ from: 'throttled', to: 'normal' })
    expect(book.get('k')).toMatchObject({ level: 'normal', since: 16_000, firstFlagged: 0 })
  })

  it('releases a throttled key that is no longer scored after calmMs, through expire', () => {
    const book = new PolicyBook()
    book.update('k', 3, 0, why)
    book.update('k', 3, 500, why) // last score at 500
    expect(book.expire(10_499)).toEqual([])
    expect(book.level('k')).toBe('throttled')
    expect(book.expire(10_500).map(move)).toEqual([{ from: 'throttled', to: 'normal' }])
  })

  it('doubles the block for a remembered offence and caps it at maxBlockMs', () => {
    const book = new PolicyBook({ blockMs: 30_000, maxBlockMs: 100_000 })
    book.update('k', 5, 0, why)
    expect(book.get('k')!.until).toBe(30_000)
    // Straight back at it: offences 1·2^(−30 s/10 min) + 1 ≈ 1.97 → 2 → twice as long.
    book.expire(30_000)
    book.update('k', 5, 30_000, why)
    expect(book.get('k')!.until - 30_000).toBe(60_000)
    // ≈ 2.83 → 3 → four times as long, but capped.
    book.expire(90_000)
    book.update('k', 5, 90_000, why)
    expect(book.get('k')!.offenses).toBeCloseTo(1 + (1 + 0.5 ** 0.05) * 0.5 ** 0.1, 9)
    expect(book.get('k')!.until - 90_000).toBe(100_000)
  })

  it('halves remembered offences every offenseHalfLifeMs', () => {
    const book = new PolicyBook({ blockMs: 1000, offenseHalfLifeMs: 10_000 })
    book.update('k', 5, 0, why)
    expect(book.get('k')!.offenses).toBe(1)
    // Two half-lives later: 1/4 of the first offence is left, + 1 → rounds to 1: the base duration again.
    book.update('k', 5, 20_000, why)
    expect(book.get('k')!.offenses).toBeCloseTo(1.25, 9)
    expect(book.get('k')!.until).toBe(21_000)
    // One half-life after that: 1.25/2 + 1 = 1.625 → 2: doubled.
    book.update('k', 5, 30_000, why)
    expect(book.get('k')!.offenses).toBeCloseTo(1.625, 9)
    expect(book.get('k')!.until).toBe(32_000)
  })

  it('forgets keys historyMs after they went back to normal', () => {
    const book = new PolicyBook({ historyMs: 60_000 })
    book.update('k', 2, 0, why)
    expect(book.expire(10_000).map(move)).toEqual([{ from: 'throttled', to: 'normal' }])
    expect(book.expire(69_999)).toEqual([])
    expect(book.get('k')).toMatchObject({ level: 'normal', peak: 2 })
    expect([...book.entries()]).toHaveLength(1)
    expect(book.expire(70_000)).toEqual([])
    expect(book.get('k')).toBeUndefined()
    expect([...book.entries()]).toHaveLength(0)
  })

  it('remembers at most maxEntries keys, forgetting the oldest calm one first', () => {
    const book = new PolicyBook({ maxEntries: 2 })
    book.update('old-flag', 3, 0, why)
    book.update('calm', 3, 1, why)
    book.update('calm', 0, 2, why)
    book.update('calm', 0, 10_002, why) // back to normal
    expect(book.level('calm')).toBe('normal')
    book.update('new', 3, 10_003, why)
    expect([...book.entries()].map((e) => e.key).sort()).toEqual(['new', 'old-flag'])
    // Every key flagged: the oldest one goes rather than the map growing.
    book.update('newer', 3, 10_004, why)
    expect([...book.entries()].map((e) => e.key).sort()).toEqual(['new', 'newer'])
    for (let i = 0; i < 100; i++) book.update(`k${i}`, 3, 20_000 + i, why)
    expect([...book.entries()]).toHaveLength(2)
  })

  it('asks for reasons only when the level rises', () => {
    const book = new PolicyBook()
    const reasons = vi.fn(why)
    book.update('k', 1, 0, reasons) // not flagged
    expect(reasons).not.toHaveBeenCalled()
    book.update('k', 2, 0, reasons) // normal → throttled
    expect(reasons).toHaveBeenCalledTimes(1)
    book.update('k', 3, 500, reasons) // still throttled
    book.update('k', 1.5, 600, reasons)
    expect(reasons).toHaveBeenCalledTimes(1)
    book.update('k', 4.5, 700, reasons) // throttled → blocked
    expect(reasons).toHaveBeenCalledTimes(2)
    book.update('k', 9, 800, reasons) // blocked: scores ignored
    book.update('k', 3, 30_700, reasons) // blocked → throttled (probation): a fall
    book.update('k', 0, 30_800, reasons)
    book.update('k', 0, 40_800, reasons) // → normal
    expect(book.level('k')).toBe('normal')
    expect(reasons).toHaveBeenCalledTimes(2)
    book.update('k', 2, 50_000, reasons) // normal → throttled again
    expect(reasons).toHaveBeenCalledTimes(3)
  })

  it("hands a connection's flag to the peer it registers as, unless the peer has its own", () => {
    const book = new PolicyBook()
    book.update('conn:1', 2.5, 0, why)
    book.rekey('conn:1', 'peer:a')
    expect(book.get('conn:1')).toBeUndefined()
    expect(book.level('peer:a')).toBe('throttled')
    expect(book.get('peer:a')?.key).toBe('peer:a')
    // Still abusive as the peer: the sustain timer carried over, so it is blocked 1 s after it began.
    expect(move(book.update('peer:a', 2.5, 1_000, why))).toEqual({ from: 'throttled', to: 'blocked' })
    book.update('conn:2', 2.5, 0, why)
    book.rekey('conn:2', 'peer:a') // peer:a has its own entry: kept, conn:2 untouched
    expect(book.level('peer:a')).toBe('blocked')
    expect(book.level('conn:2')).toBe('throttled')
    book.rekey('conn:9', 'peer:b') // nothing known: nothing happens
    expect(book.get('peer:b')).toBeUndefined()
  })

  it('rejects inconsistent thresholds', () => {
    expect(() => new PolicyBook({ calmScore: 3 })).toThrow(RangeError) // calm 3 > throttle 2
    expect(() => new PolicyBook({ throttleScore: 5 })).toThrow(RangeError) // throttle 5 > block 4
    expect(() => new PolicyBook({ blockScore: 1.5 })).toThrow(/"blockScore"/)
    expect(() => new PolicyBook({ calmScore: 2, throttleScore: 2, blockScore: 2 })).not.toThrow()
  })
})
