/**
 * The AI engine's anomaly model: robust per-feature baselines with exponential decay, learned on this node,
 * inside bounds it cannot learn past.
 *
 * For every feature the model keeps a histogram of L(x) = log2(1 + x) in quarter-octave bins whose weights
 * decay with a half-life, so the baseline follows the node's traffic as it changes through the day. A
 * feature's score is how many octaves an observation sits above a reference level, counted only once the value
 * is above the feature's floor (a level too small to hurt anyone, whatever the baseline):
 *
 *   score_f(x) = x > floor_f ? max(0, L(x) − ref_f) : 0
 *   ref_f      = min(L(q99_f), L(ceiling_f) − throttleAt)
 *
 * The reference is the learned 99th percentile, but never more than `throttleAt` octaves below the feature's
 * ceiling: whatever the model learned (or was taught by an attacker), a value at the ceiling scores at least
 * `throttleAt`. Under node-wide pressure on a feature (an attack spread over many sources), the reference drops
 * half an octave below the learned median and the floor to a quarter, so that sources well above the typical one
 * stand out (the engine applies pressure only to sources that appeared as it began).
 *
 * Rates, counts and ratios of network traffic are heavy-tailed and positive, hence the log scale; quantiles
 * rather than mean and variance keep one flood from dragging the baseline up. What is learned is chosen by the
 * engine (keys in good standing, weights capped per source: see `engine.ts`), since only observations above the
 * 99th percentile can move it up, and a few sources must not be able to.
 *
 * Before it has learned enough the model leans on a weak prior per feature (a median and a 99th percentile chosen
 * as "certainly normal" levels); the prior decays like everything else.
 */

/** One feature of a model. */
export interface FeatureSpec {
  readonly name: string
  /** Values at or below this never count as anomalous. */
  readonly floor: number
  /** A value at or above this scores at least the throttle score, whatever was learned. @default Infinity */
  readonly ceiling?: number
  /** Prior median and 99th percentile, used until the baseline has been learned. */
  readonly prior: readonly [median: number, p99: number]
}

/** Serialised state of a {@link RobustBaselineModel} (for persistence across restarts). */
export interface ModelState {
  name: string
  features: string[]
  bins: number
  hist: number[][]
  totals: number[]
  samples: number
}

/** What another model must offer to replace this one (the engine only uses this). */
export interface AnomalyModel {
  readonly name: string
  readonly features: readonly FeatureSpec[]
  /**
   * Learns one observation believed normal, with `weight` (default 1). `x` has one value ≥ 0 per feature.
   * Scores see it after the next `decay()` (once per scoring round): one round scores everyone against the
   * same baseline.
   */
  learn(x: Float64Array, weight?: number): void
  /**
   * Writes per-feature scores into `out` and returns the largest. `pressure[i] !== 0` scores feature `i`
   * against the median (and a quarter of its floor) instead of the 99th percentile.
   */
  score(x: Float64Array, out: Float64Array, pressure?: Uint8Array): number
  /** Ages the baseline by `elapsedMs` and takes in what was learned since the last call. */
  decay(elapsedMs: number): void
  /** The current baseline of feature `i` (median and effective 99th percentile, in the feature's unit). */
  baseline(i: number): { median: number; p99: number }
  /** Observations learned, decayed. */
  readonly samples: number
  /** The state to persist. */
  save(): ModelState
  /** Restores a saved state; returns false (and changes nothing) if it does not fit this model. */
  load(state: unknown): boolean
}

const BINS_PER_OCTAVE = 4
const OCTAVES = 28 // up to 2^28 − 1 per feature: bytes/s on a saturated 2 Gbit/s link
const BINS = BINS_PER_OCTAVE * OCTAVES
/**
 * Weight of the prior in observations. Its top 1 % must outweigh a few observations: at 50 a single learned
 * observation could become the new p99. With per-source caps in the engine, a few sources cannot outweigh it.
 */
const PRIOR_WEIGHT = 500
/** Baseline half-life: long enough that a slow attacker must keep at it for hours to move anything. */
export const BASELINE_HALF_LIFE_MS = 2 * 60 * 60_000
/** Under pressure, the floor is divided by this, and the reference is the median less this many octaves. */
export const PRESSURE_FLOOR_DIVISOR = 4
export const PRESSURE_MARGIN_OCTAVES = 0.5

function level(x: number): number {
  return Math.log2(1 + (x > 0 ? x : 0))
}

function binOf(l: number): number {
  const b = Math.floor(l * BINS_PER_OCTAVE)
  return b < 0 ? 0 : b >= BINS ? BINS - 1 : b
}

export interface RobustBaselineOptions {
  /** @default BASELINE_HALF_LIFE_MS */
  halfLifeMs?: number
  /** The score a value at a feature's ceiling gets at least (the policy's throttle score). @default 2 */
  throttleAt?: number
  /** Name (persisted states are matched by it). @default 'robust-baselines' */
  name?: string
}

/** See the file header. */
export class RobustBaselineModel implements AnomalyModel {
  readonly name: string
  readonly features: readonly FeatureSpec[]
  readonly #hist: Float64Array[]
  readonly #totals: Float64Array
  /** Cached reference levels per feature; recomputed lazily after learning or decay. */
  readonly #p99Level: Float64Array
  readonly #medianLevel: Float64Array
  /** L(ceiling) − throttleAt: the highest the reference may be. */
  readonly #maxRef: Float64Array
  readonly #floors: Float64Array
  #dirty = true
  #learned = false
  #samples = 0
  readonly #halfLifeMs: number

  constructor(features: readonly FeatureSpec[], options: RobustBaselineOptions = {}) {
    if (!Array.isArray(features) || features.length === 0) {
      throw new TypeError('"features" must be a non-empty array')
    }
    this.name = options.name ?? 'robust-baselines'
    this.features = features
    this.#halfLifeMs = options.halfLifeMs ?? BASELINE_HALF_LIFE_MS
    const throttleAt = options.throttleAt ?? 2
    this.#hist = features.map(() => new Float64Array(BINS))
    this.#totals = new Float64Array(features.length)
    this.#p99Level = new Float64Array(features.length)
    this.#medianLevel = new Float64Array(features.length)
    this.#maxRef = new Float64Array(features.length)
    this.#floors = new Float64Array(features.length)
    features.forEach((f: FeatureSpec, i) => {
      const ceiling = f.ceiling ?? Infinity
      if (!(ceiling > f.floor)) throw new RangeError(`feature "${f.name}": "ceiling" must be above "floor"`)
      this.#maxRef[i] = level(ceiling) - throttleAt
      this.#floors[i] = f.floor
      const [median, p99] = f.prior
      // Half the weight at the median, 49 % spread up to the 99th percentile, 1 % at it.
      const h = this.#hist[i]!
      const lo = binOf(level(median))
      const hi = Math.max(lo, binOf(level(p99)))
      h[lo]! += PRIOR_WEIGHT * 0.5
      for (let b = lo; b <= hi; b++) h[b]! += (PRIOR_WEIGHT * 0.49) / (hi - lo + 1)
      h[hi]! += PRIOR_WEIGHT * 0.01
      this.#totals[i] = PRIOR_WEIGHT
    })
  }

  get samples(): number {
    return this.#samples
  }

  learn(x: Float64Array, weight = 1): void {
    if (!(weight > 0)) return
    for (let i = 0; i < this.features.length; i++) {
      const v = x[i]!
      // Most features of most observations are 0: no logarithm for those.
      this.#hist[i]![v > 0 ? binOf(level(v)) : 0]! += weight
      this.#totals[i]! += weight
    }
    this.#samples += weight
    this.#learned = true
  }

  decay(elapsedMs: number): void {
    if (this.#learned) this.#dirty = true
    if (!(elapsedMs > 0)) return
    const f = 0.5 ** (elapsedMs / this.#halfLifeMs)
    for (let i = 0; i < this.#hist.length; i++) {
      const h = this.#hist[i]!
      for (let b = 0; b < BINS; b++) h[b]! *= f
      this.#totals[i]! *= f
    }
    this.#samples *= f
    this.#dirty = true
  }

  score(x: Float64Array, out: Float64Array, pressure?: Uint8Array): number {
    if (this.#dirty) this.#refresh()
    let max = 0
    for (let i = 0; i < this.features.length; i++) {
      const v = x[i]!
      let s = 0
      const pressed = pressure !== undefined && pressure[i] !== 0
      if (v > (pressed ? this.#floors[i]! / PRESSURE_FLOOR_DIVISOR : this.#floors[i]!)) {
        const ref = pressed ? this.#medianLevel[i]! - PRESSURE_MARGIN_OCTAVES : this.#p99Level[i]!
        const maxRef = this.#maxRef[i]!
        s = level(v) - (ref < maxRef ? ref : maxRef)
        if (s < 0) s = 0
      }
      out[i] = s
      if (s > max) max = s
    }
    return max
  }

  baseline(i: number): { median: number; p99: number } {
    if (this.#dirty || this.#learned) this.#refresh()
    const ref = Math.min(this.#p99Level[i]!, this.#maxRef[i]!)
    return { median: 2 ** this.#medianLevel[i]! - 1, p99: 2 ** ref - 1 }
  }

  save(): ModelState {
    return {
      name: this.name,
      features: this.features.map((f) => f.name),
      bins: BINS,
      hist: this.#hist.map((h) => Array.from(h, (v) => Math.round(v * 1e4) / 1e4)),
      totals: Array.from(this.#totals),
      samples: this.#samples,
    }
  }

  load(state: unknown): boolean {
    const s = state as Partial<ModelState> | null
    if (
      typeof s !== 'object' ||
      s === null ||
      s.name !== this.name ||
      s.bins !== BINS ||
      !Array.isArray(s.features) ||
      s.features.length !== this.features.length ||
      s.features.some((name, i) => name !== this.features[i]!.name) ||
      !Array.isArray(s.hist) ||
      !Array.isArray(s.totals) ||
      typeof s.samples !== 'number' ||
      !(s.samples >= 0)
    ) {
      return false
    }
    const fits = s.hist.every(
      (h) =>
        Array.isArray(h) && h.length === BINS && h.every((v) => typeof v === 'number' && v >= 0 && v < 1e12),
    )
    if (!fits || s.totals.length !== this.features.length) return false
    for (let i = 0; i < this.features.length; i++) {
      const h = s.hist[i]!
      let total = 0
      for (let b = 0; b < BINS; b++) {
        this.#hist[i]![b] = h[b]!
        total += h[b]!
      }
      this.#totals[i] = total
    }
    this.#samples = s.samples
    this.#dirty = true
    return true
  }

  #refresh(): void {
    for (let i = 0; i < this.#hist.length; i++) {
      const h = this.#hist[i]!
      const total = this.#totals[i]!
      let acc = 0
      let median = -1
      let p99 = BINS - 1
      for (let b = 0; b < BINS; b++) {
        acc += h[b]!
        if (median < 0 && acc >= total * 0.5) median = b
        if (acc >= total * 0.99) {
          p99 = b
          break
        }
      }
      // The bins' upper edges: an observation inside the 99th-percentile bin scores 0.
      this.#medianLevel[i] = ((median < 0 ? p99 : median) + 1) / BINS_PER_OCTAVE
      this.#p99Level[i] = (p99 + 1) / BINS_PER_OCTAVE
    }
    this.#dirty = false
    this.#learned = false
  }
}
