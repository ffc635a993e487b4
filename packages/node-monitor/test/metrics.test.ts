import { describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
// A second, separate copy of prom-client (npm alias of 15.0.0), as an app that depends on another 15.x has.
import { Registry as OtherRegistry, Counter as OtherCounter } from 'prom-client-other'
import { type Metrics, createNoopMetrics, createPrometheusMetrics } from '../src/index'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}
interface Family {
  help?: string
  type?: string
  samples: Sample[]
}

/** A small parser for the Prometheus text format 0.0.4: enough to read back what prom-client writes. */
function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const family = (name: string): Family => {
    let f = families.get(name)
    if (f === undefined) families.set(name, (f = { samples: [] }))
    return f
  }
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (meta !== null) {
      const f = family(meta[2]!)
      if (meta[1] === 'HELP') f.help = meta[3]!
      else f.type = meta[3]!
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line)
    if (m === null) throw new Error(`unparseable line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[k!] = v!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
    }
    const name = m[1]!
    const base = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '')
    const raw = m[3]!
    // Go's ParseFloat (the Prometheus server) accepts NaN in any case; prom-client writes `Nan`.
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw)
    if (Number.isNaN(value) && raw.toLowerCase() !== 'nan') throw new Error(`bad value: ${line}`)
    family(base).samples.push({ name, labels, value })
  }
  return families
}

describe('createPrometheusMetrics', () => {
  it('writes counters, gauges and histograms that parse back to the recorded values', async () => {
    const metrics = createPrometheusMetrics()
    const frames = metrics.counter('x_frames_total', 'Frames handled', ['kind'])
    frames.inc({ kind: 'offer' })
    frames.inc({ kind: 'offer' }, 2)
    frames.inc({ kind: 'say "hi"\\' })
    const plain = metrics.counter('x_plain_total', 'No labels')
    plain.inc()
    plain.inc(undefined, 4)
    const peers = metrics.gauge('x_peers', 'Connected peers', ['transport'])
    peers.set(10, { transport: 'ws' })
    peers.inc({ transport: 'ws' })
    peers.dec({ transport: 'ws' }, 3)
    const lone = metrics.gauge('x_lone', 'No labels')
    lone.set(-2.5)
    const latency = metrics.histogram('x_latency_seconds', 'Latency', ['op'], [0.01, 0.1, 1])
    latency.observe(0.005, { op: 'get' })
    latency.observe(0.5, { op: 'get' })
    latency.observe(2, { op: 'get' })

    const text = await metrics.metricsText()
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
    const parsed = parsePrometheus(text)

    const f = parsed.get('x_frames_total')!
    expect(f.type).toBe('counter')
    expect(f.help).toBe('Frames handled')
    expect(f.samples).toEqual([
      { name: 'x_frames_total', labels: { kind: 'offer' }, value: 3 },
      { name: 'x_frames_total', labels: { kind: 'say "hi"\\' }, value: 1 },
    ])
    expect(parsed.get('x_plain_total')!.samples).toEqual([{ name: 'x_plain_total', labels: {}, value: 5 }])
    expect(parsed.get('x_peers')).toMatchObject({
      type: 'gauge',
      samples: [{ labels: { transport: 'ws' }, value: 8 }],
    })
    expect(parsed.get('x_lone')!.samples[0]!.value).toBe(-2.5)

    const h = parsed.get('x_latency_seconds')!
    expect(h.type).toBe('histogram')
    const bucket = (le: string) =>
      h.samples.find((s) => s.name === 'x_latency_seconds_bucket' && s.labels.le === le)?.value
    expect([bucket('0.01'), bucket('0.1'), bucket('1'), bucket('+Inf')]).toEqual([1, 1, 2, 3])
    expect(h.samples.find((s) => s.name === 'x_latency_seconds_count')!.value).toBe(3)
    expect(h.samples.find((s) => s.name === 'x_latency_seconds_sum')!.value).toBeCloseTo(2.505)
  })

  it('returns the same series for the same name and type, and refuses a conflicting redefinition', () => {
    const metrics = createPrometheusMetrics()
    const a = metrics.counter('x_total', 'help', ['a', 'b'])
    expect(metrics.counter('x_total', 'help', ['b', 'a'])).toBe(a)
    expect(() => metrics.gauge('x_total', 'help', ['a', 'b'])).toThrow(
      expect.objectContaining({ code: 'X_MON_METRIC_CONFLICT' }),
    )
    expect(() => metrics.counter('x_total', 'help', ['a'])).toThrow(
      expect.objectContaining({ code: 'X_MON_METRIC_CONFLICT' }),
    )
  })

  it('refuses a name already registered on the registry by someone else', () => {
    const registry = new Registry()
    const first = createPrometheusMetrics(registry)
    first.gauge('x_shared', 'help')
    const second = createPrometheusMetrics(registry)
    expect(() => second.gauge('x_shared', 'help')).toThrow(
      expect.objectContaining({ code: 'X_MON_METRIC_CONFLICT' }),
    )
  })

  it('validates names, help and label names', () => {
    const metrics = createPrometheusMetrics()
    expect(() => metrics.counter('bad-name', 'help')).toThrow(/'name'/)
    expect(() => metrics.counter('ok_name', '')).toThrow(/'help'/)
    expect(() => metrics.counter('ok_name', 'help', ['bad-label'])).toThrow(/'labelNames'/)
    expect(() => createPrometheusMetrics({} as Registry)).toThrow(/'registry'/)
  })

  it("accepts a registry from another copy of prom-client 15.x (the app's), checked by shape", async () => {
    // Two copies for real: different classes, so an `instanceof Registry` check refused this registry.
    expect(OtherRegistry).not.toBe(Registry)
    const registry = new OtherRegistry()
    expect(registry instanceof Registry).toBe(false)
    // The app's own metric in the same registry is exported beside ours.
    new OtherCounter({ name: 'app_requests_total', help: 'App requests', registers: [registry] }).inc(2)

    const metrics = createPrometheusMetrics(registry, { defaultMetrics: true })
    expect(metrics.registry).toBe(registry)
    expect(metrics.contentType).toBe(registry.contentType)
    metrics.counter('x_frames_total', 'Frames handled', ['kind']).inc({ kind: 'offer' }, 3)
    metrics.gauge('x_peers', 'Connected peers').set(4)
    metrics.histogram('x_latency_seconds', 'Latency', [], [0.1, 1]).observe(0.5)

    const parsed = parsePrometheus(await metrics.metricsText())
    expect(parsed.get('app_requests_total')!.samples[0]!.value).toBe(2)
    expect(parsed.get('x_frames_total')!.samples).toEqual([
      { name: 'x_frames_total', labels: { kind: 'offer' }, value: 3 },
    ])
    expect(parsed.get('x_peers')!.samples[0]!.value).toBe(4)
    expect(parsed.get('x_latency_seconds')!.samples.find((s) => s.name.endsWith('_count'))!.value).toBe(1)
    expect(parsed.has('process_cpu_user_seconds_total')).toBe(true)
    // What the app's registry serves is the same set of metrics (values of process_* move between reads).
    expect([...parsePrometheus(await registry.metrics()).keys()]).toEqual([...parsed.keys()])
    // A name the app took in its registry is still a conflict.
    expect(() => metrics.counter('app_requests_total', 'again')).toThrow(
      expect.objectContaining({ code: 'X_MON_METRIC_CONFLICT' }),
    )
  })

  it('refuses a registry that does not have the shape of a prom-client registry', () => {
    for (const bad of [{}, null, 'registry', { metrics: () => '', contentType: 'text/plain' }]) {
      expect(() => createPrometheusMetrics(bad as unknown as Registry)).toThrow(TypeError)
      expect(() => createPrometheusMetrics(bad as unknown as Registry)).toThrow(/'registry'/)
    }
  })

  it('optionally adds prom-client default metrics to its own registry only', async () => {
    const metrics = createPrometheusMetrics(undefined, { defaultMetrics: true })
    const parsed = parsePrometheus(await metrics.metricsText())
    expect(parsed.has('process_cpu_user_seconds_total')).toBe(true)
    expect(parsed.has('nodejs_heap_size_used_bytes')).toBe(true)
    const other = parsePrometheus(await createPrometheusMetrics().metricsText())
    expect(other.size).toBe(0)
  })

  it('is satisfied structurally by a plain object literal, and the no-op does nothing', () => {
    const seen: string[] = []
    const literal: Metrics = {
      counter: (name) => ({ inc: () => seen.push(name) }),
      gauge: () => ({ set() {}, inc() {}, dec() {} }),
      histogram: () => ({ observe() {} }),
      scraped() {},
    }
    literal.counter('a_total', 'help').inc()
    expect(seen).toEqual(['a_total'])
    const noop = createNoopMetrics()
    noop.counter('a', 'b').inc({ x: 1 }, 2)
    noop.gauge('a', 'b').set(1)
    noop.histogram('a', 'b').observe(1)
    noop.scraped('gauge', 'a', 'b', [], () => 1)
  })

  it('reads scraped counters and gauges when the text is asked for, with labels; a read that throws keeps the last values', async () => {
    const metrics = createPrometheusMetrics()
    let relayed = 5
    let connections = 3
    metrics.scraped('counter', 'x_relayed_total', 'Signals relayed', [], () => relayed)
    metrics.scraped('gauge', 'x_connections', 'Open connections', [], () => connections)
    metrics.scraped('counter', 'x_rejected_total', 'Frames rejected by reason', ['reason'], () => [
      [{ reason: 'invalid' }, 2],
      [{ reason: 'rate_limited' }, 7],
    ])
    let broken = false
    metrics.scraped('counter', 'x_flaky_total', 'Throws once', [], () => {
      if (broken) throw new Error('stats unavailable')
      return 4
    })
    const value = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
      families.get(name)?.samples.find((x) => JSON.stringify(x.labels) === JSON.stringify(labels))?.value
    let parsed = parsePrometheus(await metrics.metricsText())
    expect(value(parsed, 'x_relayed_total')).toBe(5)
    expect(value(parsed, 'x_connections')).toBe(3)
    expect(value(parsed, 'x_rejected_total', { reason: 'rate_limited' })).toBe(7)
    expect(value(parsed, 'x_rejected_total', { reason: 'invalid' })).toBe(2)
    expect(value(parsed, 'x_flaky_total')).toBe(4)
    expect(parsed.get('x_relayed_total')?.type).toBe('counter')
    expect(parsed.get('x_connections')?.type).toBe('gauge')
    relayed = 9
    connections = 1
    broken = true
    parsed = parsePrometheus(await metrics.metricsText())
    expect(value(parsed, 'x_flaky_total')).toBe(4) // kept, not reset to 0
    expect(value(parsed, 'x_relayed_total')).toBe(9)
    expect(value(parsed, 'x_connections')).toBe(1)
    expect(() => metrics.scraped('gauge', 'x_connections', 'again', [], () => 1)).toThrow(
      expect.objectContaining({ code: 'X_MON_METRIC_CONFLICT' }),
    )
  })
})
