import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createStatsRegistry } from '../src/index'

describe('createStatsRegistry', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('gathers every provider into one object keyed by name', async () => {
    const stats = createStatsRegistry()
    stats.register('signaling', () => ({ peers: 3 }))
    stats.register('dht', () => Promise.resolve({ totalNodes: 10, bucketsUsed: 5 }))
    stats.register('count', () => 7)
    expect(await stats.collect()).toEqual({
      signaling: { peers: 3 },
      dht: { totalNodes: 10, bucketsUsed: 5 },
      count: 7,
    })
  })

  it('reports a throwing, rejecting or hung provider as { error } without rejecting', async () => {
    const stats = createStatsRegistry({}, { timeoutMs: 100 })
    stats.register('throws', () => {
      throw new Error('boom')
    })
    stats.register('rejects', () => Promise.reject(new Error('nope')))
    stats.register('hangs', () => new Promise(() => {}))
    stats.register('fine', () => ({ n: 1 }))
    const pending = stats.collect()
    await vi.advanceTimersByTimeAsync(100)
    expect(await pending).toEqual({
      throws: { error: 'boom' },
      rejects: { error: 'nope' },
      hangs: { error: 'timeout' },
      fine: { n: 1 },
    })
    expect(vi.getTimerCount()).toBe(0)
  })

  it('caches for cacheTtlMs with single flight', async () => {
    const stats = createStatsRegistry({}, { cacheTtlMs: 500 })
    const provider = vi.fn((): { n: number } => ({ n: provider.mock.calls.length }))
    stats.register('p', provider)
    const [a, b] = await Promise.all([stats.collect(), stats.collect()])
    expect(a).toBe(b)
    expect(provider).toHaveBeenCalledTimes(1)
    vi.advanceTimersByTime(499)
    expect(await stats.collect()).toBe(a)
    vi.advanceTimersByTime(1)
    expect(await stats.collect()).toEqual({ p: { n: 2 } })
    expect(await stats.collect({ fresh: true })).toEqual({ p: { n: 3 } })
    expect(provider).toHaveBeenCalledTimes(3)
  })

  it('register and unregister invalidate the cache; duplicates throw X_MON_DUPLICATE_NAME', async () => {
    const stats = createStatsRegistry({}, { cacheTtlMs: 60_000 })
    stats.register('a', () => 1)
    expect(await stats.collect()).toEqual({ a: 1 })
    stats.register('b', () => 2)
    expect(await stats.collect()).toEqual({ a: 1, b: 2 })
    expect(stats.unregister('a')).toBe(true)
    expect(await stats.collect()).toEqual({ b: 2 })
    expect(stats.names()).toEqual(['b'])
    expect(() => stats.register('b', () => 3)).toThrow(
      expect.objectContaining({ code: 'X_MON_DUPLICATE_NAME' }),
    )
    expect(() => stats.register('c', null as never)).toThrow(/'getStats'/)
    expect(() => createStatsRegistry({}, { timeoutMs: 0 })).toThrow(RangeError)
  })
})
