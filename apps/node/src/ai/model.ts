/**
 * The AI engine's anomaly model: robust per-feature baselines with exponential decay, learned on this node.
 *
 * For every feature the model keeps a histogram of L(x) = log2(1 + x) in quarter-octave bins whose weights
 * decay with a half-life, so the baseline follows the node's traffic as it changes through the day. A
 * feature's score is how many octaves an observation sits above the baseline's 99th percentile, counted only
 * once the value is above the feature's floor (a level too small to hurt anyone, whatever the baseline):
 *
 *   score_f(x) = x > floor_f ? max(0, L(x) − L(q99_f)) : 0
 *
 * An observation's score is the largest feature score, and the features above zero explain it. Rates,
 * counts and ratios of network traffic are heavy-tailed and positive, hence the log scale; quantiles rather
 * than mean and variance keep one flood from dragging the baseline up (robust statistics), and only
 * observations that already look normal are learned (see the engine), so an attacker cannot teach the model.
 *
 * Before it has learned `minSamples` observations the model leans on a weak prior per feature (a median and
 * a 99th percentile chosen as "certainly normal" levels); the prior decays like everything else.
 */

/** One feature of a model. */
export interface FeatureSpec {
  readonly name: string
  /** Values at or below this never count as anomalous. */
  readonly floor: number
  /** Prior median and 99th percentile, used until the baseline has been learned. */
  readonly prior: readonly [median: number, p99: number]
}

/** What another model must offer to replace this one (the engine only uses this). */
export interface AnomalyModel {
  readonly name: string
  readonly features: readonly FeatureSpec[]
  /**
   * Learns one observation believed normal. `x` has one value ≥ 0 per feature. Scores see it after the next
   * `decay()` (once per scoring round): one round scores everyone against the same baseline.
   */
  learn(x: Float64Array): void
  /** Writes per-feature scores into `out` and returns the largest. */
  score(x: Float64Array, out: Float64Array): number
  /** Ages the baseline by `elapsedMs` and takes in what was learned since the last call. */
  decay(elapsedMs: number): void
  /** The current baseline of feature `i` (median and 99th percentile, in the feature's unit). */
  baseline(i: number): { median: number; p99: number }
  /** Observations learned, decayed. */
  readonly samples: number
}

const BINS_PER_OCTAVE = 4
const OCTAVES = 28 // up to 2^28 − 1 per feature: bytes/s on a saturated 2 Gbit/s link
const BINS = BINS_PER_OCTAVE * OCTAVES
/**
 * Weight of the prior in observations. Its top 1 % must outweigh a few observations: at 50 it was half of
 * one, so a single learned observation (allowed up to an octave above the p99) became the new p99 and one key
 * could raise its own baseline an octave per tick on a fresh node. At 500 that takes ≥ 6 observations per
 * step, and the prior stops leading once about MIN_TRAINING_SAMPLES (engine) observations have been learned.
 */
const PRIOR_WEIGHT = 500
/** Baseline half-life. */
export const BASELINE_HALF_LIFE_MS = 30 * 60_000

function level(x: number): number {
  return Math.log2(1 + (x > 0 ? x : 0))
}

function binOf(l: number): number {
  const b = Math.floor(l * BINS_PER_OCTAVE)
  return b < 0 ? 0 : b >= BINS ? BINS - 1 : b
}

/** Upper edge of a bin, back in the feature's unit. */
function valueOf(bin: number): number {
  return 2 ** ((bin + 1) / BINS_PER_OCTAVE) - 1
}

export interface RobustBaselineOptions {
  /** @default BASELINE_HALF_LIFE_MS */
  halfLifeMs?: number
}

/** See the file header. */
export class RobustBaselineModel implements AnomalyModel {
  readonly name = 'robust-baselines'
  readonly features: readonly FeatureSpec[]
  readonly #hist: Float64Array[]
  readonly #totals: Float64Array
  /** Cached L(q99) and median bin per feature; recomputed lazily after learning or decay. */
  readonly #p99Level: Float64Array
  readonly #medianBin: Int32Array
  /** The cached quantiles are out of date for scoring (a decay happened), or for reports (something was learned). */
  #dirty = true
  #learned = false
  #samples = 0
  readonly #halfLifeMs: number

  constructor(features: readonly FeatureSpec[], options: RobustBaselineOptions = {}) {
    if (!Array.isArray(features) || features.length === 0) {
      throw new TypeError('"features" must be a non-empty array')
    }
    this.features = features
    this.#halfLifeMs = options.halfLifeMs ?? BASELINE_HALF_LIFE_MS
    this.#hist = features.map(() => new Float64Array(BINS))
    this.#totals = new Float64Array(features.length)
    this.#p99Level = new Float64Array(features.length)
    this.#medianBin = new Int32Array(features.length)
    features.forEach((f: FeatureSpec, i) => {
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

  learn(x: Float64Array): void {
    for (let i = 0; i < this.features.length; i++) {
      this.#hist[i]![binOf(level(x[i]!))]! += 1
      this.#totals[i]! += 1
    }
    this.#samples += 1
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

  score(x: Float64Array, out: Float64Array): number {
    if (this.#dirty) this.#refresh()
    let max = 0
    for (let i = 0; i < this.features.length; i++) {
      const v = x[i]!
      let s = 0
      if (v > this.features[i]!.floor) {
        s = level(v) - this.#p99Level[i]!
        if (s < 0) s = 0
      }
      out[i] = s
      if (s > max) max = s
    }
    return max
  }

  baseline(i: number): { median: number; p99: number } {
    if (this.#dirty || this.#learned) this.#refresh()
    return { median: valueOf(this.#medianBin[i]!), p99: 2 ** this.#p99Level[i]! - 1 }
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
      this.#medianBin[i] = median < 0 ? p99 : median
      // The bin's upper edge: an observation inside the 99th-percentile bin scores 0.
      this.#p99Level[i] = (p99 + 1) / BINS_PER_OCTAVE
    }
    this.#dirty = false
    this.#learned = false
  }
}
