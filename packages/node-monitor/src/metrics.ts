import {
  Counter as PromCounter,
  Gauge as PromGauge,
  Histogram as PromHistogram,
  Registry,
  collectDefaultMetrics,
} from 'prom-client'
import { MonitorError } from './errors'

/** Label values by label name. Every name must have been declared when the metric was created. */
export type MetricLabels = Readonly<Record<string, string | number>>

/** A monotonically increasing count. */
export interface Counter {
  /** Adds `value` (default 1, must be ≥ 0) to the series selected by `labels`. */
  inc(labels?: MetricLabels, value?: number): void
}

/** A value that goes up and down. */
export interface Gauge {
  /** Sets the series selected by `labels` to `value`. */
  set(value: number, labels?: MetricLabels): void
  /** Adds `value` (default 1). */
  inc(labels?: MetricLabels, value?: number): void
  /** Subtracts `value` (default 1). */
  dec(labels?: MetricLabels, value?: number): void
}

/**
 * What a scraped metric reports each time it is read: one value (no labels), or one value per label set.
 * Counters report their cumulative total.
 */
export type ScrapedValues = number | Iterable<readonly [MetricLabels, number]>

/** A distribution of observed values (durations in seconds, sizes in bytes). */
export interface Histogram {
  /** Records one observation in the series selected by `labels`. */
  observe(value: number, labels?: MetricLabels): void
}

/**
 * The structural metrics interface. Any package can accept `metrics?: Metrics` as a component and declare
 * this interface itself (copy these few lines) instead of depending on `@x/node-monitor`: structural typing
 * makes the two compatible. A plain object literal satisfies it, so a no-op or a test recorder is trivial:
 *
 * ```ts
 * const metrics: Metrics = {
 *   counter: () => ({ inc() {} }),
 *   gauge: () => ({ set() {}, inc() {}, dec() {} }),
 *   histogram: () => ({ observe() {} }),
 * }
 * ```
 *
 * Asking twice for the same name and type returns the same series, so a factory may call these freely.
 * Values are in base units (seconds, bytes) as Prometheus recommends.
 */
export interface Metrics {
  /** The counter `name`, created on first use with `help` and the label names every `inc` must use. */
  counter(name: string, help: string, labelNames?: readonly string[]): Counter
  /** The gauge `name`, created on first use with `help` and the label names every call must use. */
  gauge(name: string, help: string, labelNames?: readonly string[]): Gauge
  /** `buckets` are upper bounds, ascending. @default prom-client's defaults (5 ms … 10 s) */
  histogram(
    name: string,
    help: string,
    labelNames?: readonly string[],
    buckets?: readonly number[],
  ): Histogram
  /**
   * A counter or gauge whose values are read from `read` when the metrics are scraped (for figures a component
   * keeps anyway, such as its `getStats()`: nothing on the hot path). When `read` throws, the series keep the
   * values of the last scrape (never a false counter reset). Registering a name twice is a conflict.
   */
  scraped(
    kind: 'counter' | 'gauge',
    name: string,
    help: string,
    labelNames: readonly string[],
    read: () => ScrapedValues,
  ): void
}

/**
 * What this package needs of a prom-client `Registry`. prom-client is a peer dependency: the registry usually
 * comes from the app's own copy, which may be another 15.x than the one this package resolves, so it is
 * checked by this shape and never by `instanceof` (which fails across copies).
 */
export interface PrometheusRegistry {
  /** The `Content-Type` of {@link PrometheusRegistry.metrics}' output. */
  readonly contentType: string
  /** Every registered metric in the Prometheus text format. */
  metrics(): Promise<string>
  /** The metric registered under `name`, or `undefined`. */
  getSingleMetric(name: string): unknown
  /** Adds a metric (prom-client calls this for each entry of a metric's `registers`). */
  registerMetric(metric: unknown): void
}

/** {@link Metrics} backed by a prom-client registry, with Prometheus text output. */
export interface PrometheusMetrics<R extends PrometheusRegistry = Registry> extends Metrics {
  /** The registry the metrics are registered in: the one passed to {@link createPrometheusMetrics}, or its own. */
  readonly registry: R
  /** The `Content-Type` header for {@link PrometheusMetrics.metricsText}. */
  readonly contentType: string
  /** Every metric of the registry in the Prometheus text exposition format (0.0.4). */
  metricsText(): Promise<string>
}

/** Options of {@link createPrometheusMetrics}. */
export interface PrometheusMetricsInit {
  /**
   * Also collect prom-client's default process and Node.js metrics (`process_*`, `nodejs_*`). Off by
   * default: prom-client enables its own event-loop-delay histogram for them and offers no way to disable it,
   * and `createSystemMonitor` already reports the same figures with a `stop()`.
   * @default false
   */
  defaultMetrics?: boolean
}

/** A {@link Metrics} whose every method does nothing. */
export function createNoopMetrics(): Metrics {
  const noop = (): void => {}
  return {
    counter: () => ({ inc: noop }),
    gauge: () => ({ set: noop, inc: noop, dec: noop }),
    histogram: () => ({ observe: noop }),
    scraped: noop,
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

type Kind = 'counter' | 'gauge' | 'histogram' | 'scraped'

interface Made {
  readonly kind: Kind
  readonly labelKey: string
  readonly metric: Counter | Gauge | Histogram | undefined
}

function isPrometheusRegistry(value: unknown): value is PrometheusRegistry {
  if (typeof value !== 'object' || value === null) return false
  const r = value as Record<string, unknown>
  return (
    typeof r.contentType === 'string' &&
    typeof r.metrics === 'function' &&
    typeof r.getSingleMetric === 'function' &&
    typeof r.registerMetric === 'function'
  )
}

/**
 * Creates {@link PrometheusMetrics} over `registry` (a new one by default: never the prom-client global
 * registry, so two nodes in one process do not collide). `registry` may come from any prom-client 15.x copy,
 * such as the app's own.
 *
 * @throws TypeError when `registry` does not have the shape of a prom-client registry.
 */
export function createPrometheusMetrics<R extends PrometheusRegistry = Registry>(
  registry: R = new Registry() as unknown as R,
  init: PrometheusMetricsInit = {},
): PrometheusMetrics<R> {
  if (!isPrometheusRegistry(registry)) throw new TypeError(`'registry' must be a prom-client Registry`)
  // prom-client's classes only call these methods of the registries they are given, so a registry of another
  // copy works; the cast is for the types, which name this copy's class.
  const registers = [registry as unknown as Registry]
  if (init.defaultMetrics === true) collectDefaultMetrics({ register: registers[0] })
  const made = new Map<string, Made>()

  function lookup(kind: Kind, name: string, help: string, labelNames: readonly string[]): Made | undefined {
    if (typeof name !== 'string' || !METRIC_NAME.test(name)) {
      throw new TypeError(`'name' must be a Prometheus metric name, got ${JSON.stringify(name)}`)
    }
    if (typeof help !== 'string' || help.length === 0)
      throw new TypeError(`'help' must be a non-empty string`)
    if (!Array.isArray(labelNames) || !labelNames.every((l) => typeof l === 'string' && LABEL_NAME.test(l))) {
      throw new TypeError(`'labelNames' must be an array of Prometheus label names`)
    }
    const existing = made.get(name)
    if (existing === undefined) {
      if (registry.getSingleMetric(name) !== undefined) {
        throw new MonitorError('X_MON_METRIC_CONFLICT', `metric '${name}' already exists in the registry`)
      }
      return undefined
    }
    if (existing.kind !== kind || existing.labelKey !== labelKey(labelNames)) {
      throw new MonitorError(
        'X_MON_METRIC_CONFLICT',
        `metric '${name}' already exists as a ${existing.kind} with labels [${existing.labelKey}]`,
      )
    }
    return existing
  }

  function remember<M extends Counter | Gauge | Histogram | undefined>(
    kind: Kind,
    name: string,
    labelNames: readonly string[],
    metric: M,
  ): M {
    made.set(name, { kind, labelKey: labelKey(labelNames), metric })
    return metric
  }

  return {
    registry,
    contentType: registry.contentType,
    metricsText: () => registry.metrics(),
    counter(name, help, labelNames = []) {
      const existing = lookup('counter', name, help, labelNames)
      if (existing !== undefined) return existing.metric as Counter
      const c = new PromCounter({ name, help, labelNames: [...labelNames], registers })
      return remember('counter', name, labelNames, {
        inc: (labels, value = 1) => (labels === undefined ? c.inc(value) : c.inc(labels, value)),
      })
    },
    gauge(name, help, labelNames = []) {
      const existing = lookup('gauge', name, help, labelNames)
      if (existing !== undefined) return existing.metric as Gauge
      const g = new PromGauge({ name, help, labelNames: [...labelNames], registers })
      return remember('gauge', name, labelNames, {
        set: (value, labels) => (labels === undefined ? g.set(value) : g.set(labels, value)),
        inc: (labels, value = 1) => (labels === undefined ? g.inc(value) : g.inc(labels, value)),
        dec: (labels, value = 1) => (labels === undefined ? g.dec(value) : g.dec(labels, value)),
      })
    },
    histogram(name, help, labelNames = [], buckets) {
      const existing = lookup('histogram', name, help, labelNames)
      if (existing !== undefined) return existing.metric as Histogram
      const h = new PromHistogram({
        name,
        help,
        labelNames: [...labelNames],
        registers,
        ...(buckets === undefined ? {} : { buckets: [...buckets] }),
      })
      return remember('histogram', name, labelNames, {
        observe: (value, labels) => (labels === undefined ? h.observe(value) : h.observe(labels, value)),
      })
    },
    scraped(kind, name, help, labelNames, read) {
      if (kind !== 'counter' && kind !== 'gauge') throw new TypeError(`'kind' must be 'counter' or 'gauge'`)
      if (typeof read !== 'function') throw new TypeError(`'read' must be a function`)
      if (lookup('scraped', name, help, labelNames) !== undefined) {
        throw new MonitorError('X_MON_METRIC_CONFLICT', `scraped metric '${name}' is already registered`)
      }
      /** `undefined` when `read` threw: the series keep their last values (a counter must not fall to 0). */
      const values = (): [MetricLabels, number][] | undefined => {
        let v: ScrapedValues
        try {
          v = read()
        } catch {
          return undefined
        }
        if (typeof v === 'number') return Number.isFinite(v) ? [[{}, v]] : []
        const out: [MetricLabels, number][] = []
        for (const [labels, value] of v) if (Number.isFinite(value)) out.push([labels, value])
        return out
      }
      if (kind === 'gauge') {
        new PromGauge({
          name,
          help,
          labelNames: [...labelNames],
          registers,
          collect() {
            const now = values()
            if (now === undefined) return
            this.reset()
            for (const [labels, value] of now) this.set(labels as Record<string, string | number>, value)
          },
        })
      } else {
        // prom-client counters only go up: each scrape starts the series afresh at the component's total.
        new PromCounter({
          name,
          help,
          labelNames: [...labelNames],
          registers,
          collect() {
            const now = values()
            if (now === undefined) return
            this.reset()
            for (const [labels, value] of now) {
              if (value > 0) this.inc(labels as Record<string, string | number>, value)
            }
          },
        })
      }
      remember('scraped', name, labelNames, undefined)
    },
  }
}

function labelKey(labelNames: readonly string[]): string {
  return [...labelNames].sort().join(',')
}
