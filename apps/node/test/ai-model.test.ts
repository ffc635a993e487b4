/**
 * The AI engine's anomaly model on its own: the prior before learning, baselines learned from a known
 * distribution (quantiles within one quarter-octave bin, scores in octaves), decay with a half-life, ceilings
 * no learning raises the threshold past, the pressure reference, weights, persistence, and argument checks.
 */
import { describe, expect, it } from 'vitest'
import { type FeatureSpec, PRESSURE_MARGIN_OCTAVES, RobustBaselineModel } from '../src/ai/model'

const BIN_OCTAVES = 0.25 // the histogram's resolution: quarter-octave bins of log2(1 + x)

const L = (x: number): number => Math.log2(1 + x)

const RATE: FeatureSpec = { name: 'rate', floor: 10, prior: [0.5, 20] }
const COUNT: FeatureSpec = { name: 'count', floor: 0, prior: [1, 3] }

function vec(...values: number[]): Float64Array {
  return Float64Array.from(values)
}

describe('RobustBaselineModel', () => {
  it('scores against the prior before learning: far above its p99 scores, below the floor never does', () => {
    const model = new RobustBaselineModel([RATE, COUNT])
    expect(model.samples).toBe(0)
    // The prior's 99th percentile is the upper edge of the bin holding 20.
    const p99 = model.baseline(0).p99
    expect(p99).toBeGreaterThanOrEqual(20)
    expect(L(p99) - L(20)).toBeLessThanOrEqual(BIN_OCTAVES)
    expect(Math.abs(L(model.baseline(0).median) - L(0.5))).toBeLessThanOrEqual(BIN_OCTAVES)

    const out = new Float64Array(2)
    const max = model.score(vec(1000, 0), out)
    expect(out[0]).toBeCloseTo(L(1000) - L(p99), 10)
    expect(out[0]).toBeGreaterThan(5)
    expect(out[1]).toBe(0)
    expect(max).toBe(out[0])

    // A floor far above the prior's p99 (≈ 0.68): up to and at the floor nothing scores, just above it does.
    const highFloor = new RobustBaselineModel([{ name: 'x', floor: 8, prior: [0, 0.5] }])
    const one = new Float64Array(1)
    expect(highFloor.score(vec(7.9), one)).toBe(0)
    expect(highFloor.score(vec(8), one)).toBe(0)
    expect(highFloor.score(vec(8.1), one)).toBeCloseTo(L(8.1) - L(highFloor.baseline(0).p99), 10)
    expect(one[0]).toBeGreaterThan(2)

    // Above the floor but within the baseline: 0.
    expect(model.score(vec(15, 2), out)).toBe(0)
    expect([...out]).toEqual([0, 0])
  })

  it('learns a known distribution: its p99 and median within one bin, scores in octaves above the p99', () => {
    const model = new RobustBaselineModel([RATE, COUNT])
    // L(x) uniform on [0, 8] (x from 0 to 255): true median L = 4, true p99 L ≈ 7.92.
    const n = 10_000
    for (let k = 0; k < n; k++) {
      const x = 2 ** ((8 * (k + 0.5)) / n) - 1
      model.learn(vec(x, x))
    }
    expect(model.samples).toBe(n)
    const trueP99 = 2 ** 7.92 - 1
    const trueMedian = 2 ** 4 - 1
    for (const i of [0, 1]) {
      const { median, p99 } = model.baseline(i)
      expect(Math.abs(L(p99) - L(trueP99))).toBeLessThanOrEqual(BIN_OCTAVES)
      expect(Math.abs(L(median) - L(trueMedian))).toBeLessThanOrEqual(BIN_OCTAVES)
    }
    // The prior (p99 ≈ 20) no longer decides: 100 is normal now.
    const out = new Float64Array(2)
    expect(model.score(vec(100, 100), out)).toBe(0)

    // 8× the true p99 in (1 + x) terms: 3 octaves above it.
    const x8 = 8 * (1 + trueP99) - 1
    const s = model.score(vec(x8, 0), out)
    expect(s).toBeGreaterThan(2.5)
    expect(s).toBeLessThan(3.5)
    expect(out[1]).toBe(0)
    // Against the reported baseline it is exact.
    const reported = model.baseline(0).p99
    expect(model.score(vec(8 * (1 + reported) - 1, 0), out)).toBeCloseTo(3, 10)
  })

  it('decays: one half-life halves the learned weight, so newer observations dominate', () => {
    const decayed = new RobustBaselineModel([COUNT], { halfLifeMs: 1000 })
    const kept = new RobustBaselineModel([COUNT], { halfLifeMs: 1000 })
    for (let k = 0; k < 4000; k++) {
      decayed.learn(vec(1000))
      kept.learn(vec(1000))
    }
    decayed.decay(1000)
    expect(decayed.samples).toBeCloseTo(2000, 9)
    decayed.decay(0) // no time, no change
    decayed.decay(-5)
    expect(decayed.samples).toBeCloseTo(2000, 9)

    for (let k = 0; k < 3000; k++) {
      decayed.learn(vec(10))
      kept.learn(vec(10))
    }
    expect(decayed.samples).toBeCloseTo(5000, 9)
    expect(kept.samples).toBe(7000)
    // 3000 new against 2000 old (the prior halved too): the newer level is the median now...
    expect(Math.abs(L(decayed.baseline(0).median) - L(10))).toBeLessThanOrEqual(BIN_OCTAVES)
    // ...whereas without the decay the 4000 old observations still hold it.
    expect(Math.abs(L(kept.baseline(0).median) - L(1000))).toBeLessThanOrEqual(BIN_OCTAVES)

    // Many half-lives later only the newest observations count: ten fresh ones at 50 are the baseline.
    decayed.decay(30_000)
    for (let k = 0; k < 10; k++) decayed.learn(vec(50))
    expect(Math.abs(L(decayed.baseline(0).p99) - L(50))).toBeLessThanOrEqual(BIN_OCTAVES)
    expect(Math.abs(L(decayed.baseline(0).median) - L(50))).toBeLessThanOrEqual(BIN_OCTAVES)
  })

  it('does not let a few observations (one key on a fresh node) move the p99 the prior sets', () => {
    const model = new RobustBaselineModel([RATE])
    const prior = model.baseline(0).p99
    const out = new Float64Array(1)
    // Just under an octave above the prior's p99: scores < 1, so the engine would learn it.
    const x = 2 ** (L(prior) + 0.9) - 1
    expect(model.score(vec(x), out)).toBeLessThan(1)
    for (let k = 0; k < 5; k++) model.learn(vec(x))
    expect(model.baseline(0).p99).toBe(prior)
    expect(model.score(vec(x), out)).toBeCloseTo(0.9, 9)
    // Once such values are a few percent of what was learned, they are the baseline.
    for (let k = 0; k < 50; k++) model.learn(vec(x))
    expect(Math.abs(L(model.baseline(0).p99) - L(x))).toBeLessThanOrEqual(BIN_OCTAVES)
    expect(model.score(vec(x), out)).toBe(0)
  })

  it('keeps a ceiling: however high the learned p99, a value at the ceiling scores the throttle score', () => {
    const capped: FeatureSpec = { name: 'capped', floor: 2, ceiling: 40, prior: [0.5, 4] }
    const model = new RobustBaselineModel([capped], { throttleAt: 2 })
    // Taught that 500 is normal (what a poisoned warm-up would do).
    for (let k = 0; k < 5_000; k++) model.learn(vec(500))
    model.decay(1)
    expect(model.baseline(0).p99).toBeCloseTo(2 ** (L(40) - 2) - 1, 9)
    const out = new Float64Array(1)
    expect(model.score(vec(40), out)).toBeCloseTo(2, 9)
    expect(model.score(vec(39), out)).toBeLessThan(2)
    expect(model.score(vec(160), out)).toBeGreaterThan(3.9)
    // Below the ceiling the learned baseline still decides when it is lower.
    const quiet = new RobustBaselineModel([capped], { throttleAt: 2 })
    for (let k = 0; k < 50_000; k++) quiet.learn(vec(1))
    quiet.decay(1)
    expect(quiet.score(vec(12), out)).toBeGreaterThan(2)
    expect(() => new RobustBaselineModel([{ name: 'bad', floor: 5, ceiling: 5, prior: [0, 1] }])).toThrow(
      /"ceiling" must be above "floor"/,
    )
  })

  it('scores against the median and a quarter of the floor under pressure', () => {
    const model = new RobustBaselineModel([{ name: 'dht', floor: 12, ceiling: 40, prior: [0.5, 6] }])
    for (let k = 0; k < 5_000; k++) model.learn(vec(k % 10 === 0 ? 6 : 0.5))
    model.decay(1)
    const out = new Float64Array(1)
    expect(model.score(vec(5), out)).toBe(0) // under the floor
    expect(model.score(vec(5), out, Uint8Array.of(1))).toBeCloseTo(
      L(5) - (L(model.baseline(0).median) - PRESSURE_MARGIN_OCTAVES),
      9,
    )
    expect(model.score(vec(5), out, Uint8Array.of(1))).toBeGreaterThan(2)
    expect(model.score(vec(2), out, Uint8Array.of(1))).toBe(0) // under a quarter of the floor
  })

  it('learns with weights, and ignores a weight that is not positive', () => {
    const model = new RobustBaselineModel([COUNT])
    model.learn(vec(5), 0.25)
    model.learn(vec(5), 0)
    model.learn(vec(5), -1)
    expect(model.samples).toBe(0.25)
  })

  it('saves and restores its state, and refuses a state that does not fit', () => {
    const a = new RobustBaselineModel([RATE, COUNT], { name: 'sessions' })
    for (let k = 0; k < 3_000; k++) a.learn(vec(k % 97, k % 5))
    a.decay(1)
    const state = JSON.parse(JSON.stringify(a.save())) as unknown
    const b = new RobustBaselineModel([RATE, COUNT], { name: 'sessions' })
    expect(b.load(state)).toBe(true)
    expect(b.samples).toBeCloseTo(a.samples, 6)
    for (const i of [0, 1]) expect(b.baseline(i)).toEqual(a.baseline(i))
    const other = new RobustBaselineModel([COUNT, RATE], { name: 'sessions' })
    expect(other.load(state)).toBe(false)
    expect(new RobustBaselineModel([RATE, COUNT], { name: 'addresses' }).load(state)).toBe(false)
    const broken = { ...(state as object), hist: [[1, 2, 3]] }
    expect(b.load(broken)).toBe(false)
    expect(b.load({ ...(state as object), samples: -1 })).toBe(false)
    expect(b.load(null)).toBe(false)
    expect(b.load('x')).toBe(false)
  })

  it('rejects an empty feature list', () => {
    expect(() => new RobustBaselineModel([])).toThrow(TypeError)
    expect(() => new RobustBaselineModel([])).toThrow(/"features"/)
    expect(() => new RobustBaselineModel(undefined as unknown as FeatureSpec[])).toThrow(TypeError)
  })
})
