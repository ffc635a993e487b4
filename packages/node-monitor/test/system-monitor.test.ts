import { afterEach, describe, expect, it, vi } from 'vitest'
import { createPrometheusMetrics, createSystemMonitor } from '../src/index'

describe('createSystemMonitor', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('takes a sample with every figure in range', () => {
    const monitor = createSystemMonitor({ clock: { now: () => 42 } })
    const s = monitor.snapshot()
    expect(s.timestamp).toBe(42)
    expect(s.cpu.percent).toBeGreaterThanOrEqual(0)
    expect(s.cpu.percent).toBeCloseTo(s.cpu.userPercent + s.cpu.systemPercent, 1)
    expect(s.memory.rss).toBeGreaterThan(0)
    expect(s.memory.heapUsed).toBeGreaterThan(0)
    expect(s.memory.heapTotal).toBeGreaterThanOrEqual(s.memory.heapUsed)
    expect(s.memory.external).toBeGreaterThanOrEqual(0)
    expect(s.eventLoop.utilization).toBeGreaterThanOrEqual(0)
    expect(s.eventLoop.utilization).toBeLessThanOrEqual(1)
    expect(s.activeHandles).toBe(process.getActiveResourcesInfo().length)
    expect(s.uptimeMs).toBeGreaterThan(0)
    expect(s.loadAverage).toHaveLength(3)
    expect(monitor.running).toBe(false)
  })

  it('survives a process out of file descriptors: memoryUsage() throwing EMFILE neither throws from its timer nor from snapshot()', () => {
    vi.useFakeTimers()
    let now = 0
    let failing = false
    const warnings: string[] = []
    const logger = {
      debug() {},
      info() {},
      warn: (_obj: object, msg?: string) => void warnings.push(msg ?? ''),
      error() {},
      child() {
        return logger
      },
    }
    const monitor = createSystemMonitor(
      {
        clock: { now: () => now },
        logger,
        memoryUsage: () => {
          if (failing)
            throw Object.assign(new Error('EMFILE: too many open files, uv_resident_set_memory'), {
              code: 'EMFILE',
            })
          return process.memoryUsage()
        },
      },
      { intervalMs: 1_000 },
    )
    monitor.start()
    now = 1_000
    vi.advanceTimersByTime(1_000)
    const rss = monitor.snapshot().memory.rss
    expect(rss).toBeGreaterThan(0)
    failing = true
    for (let i = 0; i < 5; i++) {
      now += 1_000
      expect(() => vi.advanceTimersByTime(1_000)).not.toThrow()
    }
    const s = monitor.snapshot()
    expect(s.timestamp).toBe(6_000)
    expect(s.memory.rss).toBe(rss) // the last known RSS
    expect(s.memory.heapUsed).toBeGreaterThan(0) // from V8, no file needed
    expect(warnings).toEqual(['system sample incomplete (out of file descriptors?)']) // once a minute, not per sample
    monitor.stop()
  })

  it('samples on its interval and stop() clears its timer (fake timers)', () => {
    vi.useFakeTimers()
    let now = 0
    const monitor = createSystemMonitor({ clock: { now: () => now } }, { intervalMs: 1_000 })
    expect(vi.getTimerCount()).toBe(0)
    monitor.start()
    monitor.start()
    expect(vi.getTimerCount()).toBe(1)
    now = 1_000
    vi.advanceTimersByTime(1_000)
    expect(monitor.snapshot().timestamp).toBe(1_000)
    now = 1_500
    expect(monitor.snapshot().timestamp).toBe(1_000)
    now = 2_000
    vi.advanceTimersByTime(1_000)
    expect(monitor.getStats().timestamp).toBe(2_000)
    monitor.stop()
    monitor.stop()
    expect(vi.getTimerCount()).toBe(0)
    expect(monitor.running).toBe(false)
  })

  it('stop() clears every timer it created (real timers)', async () => {
    // The interval is unref'd, so process.getActiveResourcesInfo() does not list it; track it by spying instead.
    const created = new Set<unknown>()
    const cleared = new Set<unknown>()
    const realSetInterval = globalThis.setInterval
    const realClearInterval = globalThis.clearInterval
    const spySet = vi.spyOn(globalThis, 'setInterval').mockImplementation(((
      ...args: Parameters<typeof setInterval>
    ) => {
      const t = realSetInterval(...args)
      created.add(t)
      return t
    }) as typeof setInterval)
    const spyClear = vi.spyOn(globalThis, 'clearInterval').mockImplementation((t) => {
      cleared.add(t)
      realClearInterval(t)
    })
    const resourcesBefore = process.getActiveResourcesInfo().length
    try {
      const monitor = createSystemMonitor({}, { intervalMs: 20, eventLoopResolutionMs: 5 })
      monitor.start()
      await new Promise((r) => setTimeout(r, 70))
      expect(monitor.snapshot().windowMs).toBeGreaterThan(0)
      monitor.stop()
    } finally {
      spySet.mockRestore()
      spyClear.mockRestore()
    }
    expect(created.size).toBe(1)
    expect([...created].every((t) => cleared.has(t))).toBe(true)
    expect(process.getActiveResourcesInfo().length).toBeLessThanOrEqual(resourcesBefore)
  })

  it('sees a blocked event loop in the delay figures', async () => {
    const monitor = createSystemMonitor({}, { intervalMs: 60_000, eventLoopResolutionMs: 5 })
    monitor.start()
    await new Promise((r) => setTimeout(r, 30))
    // Block the loop for at least 100 ms of CPU time (so at least 100 ms of wall time, however loaded the
    // machine is).
    const cpuStart = process.cpuUsage()
    for (;;) {
      const used = process.cpuUsage(cpuStart)
      if (used.user + used.system >= 100_000) break
    }
    await new Promise((r) => setTimeout(r, 30))
    const s = monitor.snapshot()
    monitor.stop()
    // A stall of ≥ 100 ms must show as a max delay far above the 5 ms resolution; bounds are loose on purpose.
    expect(s.eventLoop.delayMaxMs).toBeGreaterThan(50)
    expect(s.eventLoop.utilization).toBeGreaterThan(0.2)
    expect(s.cpu.percent).toBeGreaterThan(0)
  })

  it('publishes the figures as system_* gauges', async () => {
    const metrics = createPrometheusMetrics()
    const monitor = createSystemMonitor({ metrics }, { intervalMs: 60_000, metricsPrefix: 'node_' })
    monitor.start()
    monitor.snapshot()
    monitor.stop()
    const text = await metrics.metricsText()
    for (const name of [
      'node_system_cpu_usage_percent',
      'node_system_memory_bytes{kind="rss"}',
      'node_system_memory_bytes{kind="heap_used"}',
      'node_system_event_loop_delay_seconds{stat="p99"}',
      'node_system_event_loop_utilization_ratio',
      'node_system_active_handles',
      'node_system_uptime_seconds',
      'node_system_load_average{window="1m"}',
    ]) {
      expect(text).toContain(`\n${name} `)
    }
    // Starting again reuses the same gauges instead of failing on a duplicate name.
    monitor.start()
    monitor.stop()
  })

  it('validates its options', () => {
    expect(() => createSystemMonitor({}, { intervalMs: 0 })).toThrow(/'intervalMs'/)
    expect(() => createSystemMonitor({}, { eventLoopResolutionMs: 0 })).toThrow(/'eventLoopResolutionMs'/)
    expect(() => createSystemMonitor({}, { metricsPrefix: 'bad-' })).toThrow(/'metricsPrefix'/)
  })
})
