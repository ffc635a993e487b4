import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import fc from 'fast-check'
import {
  type AggregateStatus,
  type CheckResult,
  type HealthStatus,
  type Logger,
  aggregateHealth,
  createHealthRegistry,
  healthToHttpStatus,
} from '../src/index'

const ok = (): CheckResult => ({ status: 'ok' })

describe('aggregateHealth', () => {
  type Row = [string, Array<[HealthStatus, boolean]>, AggregateStatus]
  const table: Row[] = [
    ['no components', [], 'ok'],
    [
      'all ok',
      [
        ['ok', true],
        ['ok', false],
      ],
      'ok',
    ],
    [
      'only disabled',
      [
        ['disabled', true],
        ['disabled', false],
      ],
      'ok',
    ],
    [
      'disabled next to ok',
      [
        ['ok', true],
        ['disabled', true],
      ],
      'ok',
    ],
    [
      'required degraded',
      [
        ['ok', true],
        ['degraded', true],
      ],
      'degraded',
    ],
    [
      'optional degraded',
      [
        ['ok', true],
        ['degraded', false],
      ],
      'degraded',
    ],
    [
      'optional down',
      [
        ['ok', true],
        ['down', false],
      ],
      'degraded',
    ],
    [
      'required down',
      [
        ['ok', true],
        ['down', true],
      ],
      'down',
    ],
    [
      'required down after optional down',
      [
        ['down', false],
        ['down', true],
      ],
      'down',
    ],
    [
      'required down before degraded',
      [
        ['down', true],
        ['degraded', false],
      ],
      'down',
    ],
    [
      'all optional down',
      [
        ['down', false],
        ['down', false],
      ],
      'degraded',
    ],
  ]
  it.each(table)('%s', (_label, rows, expected) => {
    expect(aggregateHealth(rows.map(([status, required]) => ({ status, required })))).toBe(expected)
  })

  it('matches the rules for any mix of components, and disabled ones never change the result', () => {
    const component = fc.record({
      status: fc.constantFrom<HealthStatus>('ok', 'degraded', 'down', 'disabled'),
      required: fc.boolean(),
    })
    fc.assert(
      fc.property(
        fc.array(component, { maxLength: 12 }),
        fc.array(fc.boolean(), { maxLength: 5 }),
        (cs, extra) => {
          const result = aggregateHealth(cs)
          const requiredDown = cs.some((c) => c.required && c.status === 'down')
          const anyTrouble = cs.some((c) => c.status === 'down' || c.status === 'degraded')
          expect(result).toBe(requiredDown ? 'down' : anyTrouble ? 'degraded' : 'ok')
          const withDisabled = [
            ...cs,
            ...extra.map((required) => ({ status: 'disabled' as const, required })),
          ]
          expect(aggregateHealth(withDisabled)).toBe(result)
        },
      ),
    )
  })
})

describe('healthToHttpStatus', () => {
  it.each([
    ['ok', 200],
    ['degraded', 200],
    ['down', 503],
    ['nonsense', 503],
  ] as const)('%s → %d', (status, http) => {
    expect(healthToHttpStatus(status as AggregateStatus)).toBe(http)
  })
})

describe('createHealthRegistry', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_700_000_000_000 })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('reports the seed /api/health shape with every component and the aggregate', async () => {
    const health = createHealthRegistry({}, { version: '1.2.3', startedAtMs: 1_700_000_000_000 - 5_000 })
    health.register('crypto', () => ({ status: 'ok', algorithm: 'ML-DSA-87' }))
    health.register('dht', () => Promise.resolve({ status: 'degraded' as const, peers: 0 }))
    health.register('ai', () => ({ status: 'disabled' }), { required: false })
    const report = await health.report()
    expect(report).toEqual({
      status: 'degraded',
      timestamp: 1_700_000_000_000,
      uptime: 5_000,
      version: '1.2.3',
      components: {
        crypto: { status: 'ok', algorithm: 'ML-DSA-87', required: true, durationMs: 0 },
        dht: { status: 'degraded', peers: 0, required: true, durationMs: 0 },
        ai: { status: 'disabled', required: false, durationMs: 0 },
      },
    })
    expect(Object.isFrozen(report)).toBe(true)
    expect(Object.isFrozen(report.components.crypto)).toBe(true)
    expect(JSON.parse(JSON.stringify(report))).toEqual(report)
  })

  it('reports a throwing check as down with its message and never rejects', async () => {
    const health = createHealthRegistry()
    health.register('sync-throw', () => {
      throw new Error('disk on fire')
    })
    health.register('async-reject', () => Promise.reject(new Error('socket closed')))
    health.register('throws-string', () => {
      throw 'plain string' // eslint-disable-line @typescript-eslint/only-throw-error
    })
    health.register('fine', ok)
    const report = await health.report()
    expect(report.status).toBe('down')
    expect(report.components['sync-throw']).toMatchObject({
      status: 'down',
      reason: 'error',
      error: 'disk on fire',
    })
    expect(report.components['async-reject']).toMatchObject({
      status: 'down',
      reason: 'error',
      error: 'socket closed',
    })
    expect(report.components['throws-string']).toMatchObject({ status: 'down', error: 'plain string' })
    expect(report.components.fine!.status).toBe('ok')
  })

  it('reports a malformed result as down with reason invalid-result', async () => {
    const health = createHealthRegistry()
    health.register('null', () => null as unknown as CheckResult)
    health.register('bad-status', () => ({ status: 'green' }) as unknown as CheckResult)
    const report = await health.report()
    expect(report.components.null).toMatchObject({ status: 'down', reason: 'invalid-result' })
    expect(report.components['bad-status']).toMatchObject({ status: 'down', reason: 'invalid-result' })
  })

  it('reports a hung check as down with reason timeout, without waiting for it, and aborts its signal', async () => {
    const health = createHealthRegistry({}, { checkTimeoutMs: 2_000 })
    let signal: AbortSignal | undefined
    health.register('hung', (s) => {
      signal = s
      return new Promise<CheckResult>(() => {})
    })
    health.register('slow-but-fine', () => new Promise<CheckResult>((r) => setTimeout(() => r(ok()), 500)))
    health.register('short', () => new Promise<CheckResult>(() => {}), { required: false, timeoutMs: 100 })
    let settled = false
    const pending = health.report().then((r) => {
      settled = true
      return r
    })
    await vi.advanceTimersByTimeAsync(1_999)
    expect(settled).toBe(false)
    expect(signal?.aborted).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    const report = await pending
    expect(report.status).toBe('down')
    expect(report.components.hung).toMatchObject({ status: 'down', reason: 'timeout', timeoutMs: 2_000 })
    expect(report.components.hung!.durationMs).toBe(2_000)
    expect(report.components.short).toMatchObject({ status: 'down', reason: 'timeout', timeoutMs: 100 })
    expect(report.components['slow-but-fine']).toMatchObject({ status: 'ok', durationMs: 500 })
    expect(signal?.aborted).toBe(true)
    expect((signal?.reason as DOMException).name).toBe('TimeoutError')
    expect(vi.getTimerCount()).toBe(0)
  })

  it('serves a burst of probes from one round (single flight) and caches for cacheTtlMs', async () => {
    const health = createHealthRegistry({}, { cacheTtlMs: 1_000 })
    const check = vi.fn(() => new Promise<CheckResult>((r) => setTimeout(() => r(ok()), 50)))
    health.register('db', check)
    const burst = Array.from({ length: 100 }, () => health.report())
    await vi.advanceTimersByTimeAsync(50)
    const reports = await Promise.all(burst)
    expect(check).toHaveBeenCalledTimes(1)
    expect(new Set(reports).size).toBe(1)

    await vi.advanceTimersByTimeAsync(999)
    await health.report()
    await health.readiness()
    expect(check).toHaveBeenCalledTimes(1)

    await vi.advanceTimersByTimeAsync(1)
    const next = health.report()
    await vi.advanceTimersByTimeAsync(50)
    expect((await next).timestamp).toBe(reports[0]!.timestamp + 1_050)
    expect(check).toHaveBeenCalledTimes(2)
  })

  it('fresh: true bypasses the cache; register and unregister invalidate it', async () => {
    const health = createHealthRegistry({}, { cacheTtlMs: 60_000 })
    const check = vi.fn(ok)
    health.register('a', check)
    await health.report()
    await health.report({ fresh: true })
    expect(check).toHaveBeenCalledTimes(2)
    health.register('b', ok)
    expect(Object.keys((await health.report()).components)).toEqual(['a', 'b'])
    expect(health.unregister('b')).toBe(true)
    expect(health.unregister('b')).toBe(false)
    expect(Object.keys((await health.report()).components)).toEqual(['a'])
    expect(health.names()).toEqual(['a'])
  })

  it('cacheTtlMs 0 runs the checks on every report', async () => {
    const health = createHealthRegistry({}, { cacheTtlMs: 0 })
    const check = vi.fn(ok)
    health.register('a', check)
    await health.report()
    await health.report()
    expect(check).toHaveBeenCalledTimes(2)
  })

  it('a details object mutated after the check returned does not change the cached report', async () => {
    const health = createHealthRegistry()
    const details = { status: 'ok' as HealthStatus, peers: 1 }
    health.register('p2p', () => details)
    const report = await health.report()
    details.peers = 99
    details.status = 'down'
    expect(report.components.p2p).toMatchObject({ status: 'ok', peers: 1 })
  })

  it('liveness is ok without running checks; readiness lists required components that are down', async () => {
    const health = createHealthRegistry({}, { version: '9.9.9', startedAtMs: 1_700_000_000_000 - 1 })
    const check = vi.fn(() => ({ status: 'down' as const }))
    health.register('storage', check)
    health.register('ai', () => ({ status: 'down' }), { required: false })
    expect(health.liveness()).toEqual({
      status: 'ok',
      timestamp: 1_700_000_000_000,
      uptime: 1,
      version: '9.9.9',
    })
    expect(check).not.toHaveBeenCalled()
    const readiness = await health.readiness()
    expect(readiness).toEqual({
      status: 'down',
      ready: false,
      timestamp: 1_700_000_000_000,
      failing: ['storage'],
    })
    expect(healthToHttpStatus(readiness.status)).toBe(503)
  })

  it('readiness is ready when only optional components are down', async () => {
    const health = createHealthRegistry()
    health.register('storage', ok)
    health.register('ai', () => ({ status: 'down' }), { required: false })
    expect(await health.readiness()).toMatchObject({ status: 'degraded', ready: true, failing: [] })
  })

  it('logs transitions once: warn on down, info on recovery', async () => {
    const calls: Array<[string, object, string | undefined]> = []
    const logger: Logger = {
      debug: (o, m) => calls.push(['debug', o, m]),
      info: (o, m) => calls.push(['info', o, m]),
      warn: (o, m) => calls.push(['warn', o, m]),
      error: (o, m) => calls.push(['error', o, m]),
      child: () => logger,
    }
    let status: HealthStatus = 'ok'
    const health = createHealthRegistry({ logger }, { cacheTtlMs: 0 })
    health.register('dht', () => ({ status }))
    await health.report()
    await health.report()
    status = 'down'
    await health.report()
    status = 'ok'
    await health.report()
    expect(calls.map(([level, obj]) => [level, (obj as { to: string }).to])).toEqual([
      ['info', 'ok'],
      ['warn', 'down'],
      ['info', 'ok'],
    ])
    // The check is named `check`: `component` is what an app's child logger binds (one key in each JSON line).
    expect(calls[1]![1]).toEqual({ check: 'dht', from: 'ok', to: 'down', reason: undefined })
  })

  it('rejects bad registrations: duplicate names by code, bad arguments by TypeError/RangeError', () => {
    const health = createHealthRegistry()
    health.register('dht', ok)
    expect(() => health.register('dht', ok)).toThrow(
      expect.objectContaining({ code: 'X_MON_DUPLICATE_NAME' }),
    )
    expect(() => health.register('', ok)).toThrow(TypeError)
    expect(() => health.register('has space', ok)).toThrow(/'name'/)
    expect(() => health.register('x', 'nope' as never)).toThrow(/'check'/)
    expect(() => health.register('x', ok, { timeoutMs: 0 })).toThrow(RangeError)
    expect(() => health.register('x', ok, { required: 'yes' as never })).toThrow(TypeError)
    expect(() => createHealthRegistry({}, { cacheTtlMs: -1 })).toThrow(/'cacheTtlMs'/)
    expect(() => createHealthRegistry({}, { checkTimeoutMs: Number.NaN })).toThrow(/'checkTimeoutMs'/)
    expect(() => createHealthRegistry({}, { version: 1 as never })).toThrow(/'version'/)
  })

  it('a clock that goes backwards does not pin a stale report', async () => {
    let now = 10_000
    const health = createHealthRegistry({ clock: { now: () => now } }, { cacheTtlMs: 1_000, startedAtMs: 0 })
    const check = vi.fn(ok)
    health.register('a', check)
    await health.report()
    now = 5_000
    await health.report()
    expect(check).toHaveBeenCalledTimes(2)
  })
})
