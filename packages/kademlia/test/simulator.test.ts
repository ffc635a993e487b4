import { describe, expect, it } from 'vitest'
import { runSimulation } from '../src/testing'

describe('simulator', () => {
  it(
    '120 nodes: every lookup succeeds, and the same seed gives the same result',
    { timeout: 120_000 },
    async () => {
      const opts = { nodes: 120, lookups: 60, seed: 42, joinRefresh: 2 }
      const a = await runSimulation(opts)
      expect(a.successRate).toBe(1)
      expect(a.hops.mean).toBeGreaterThan(0)
      expect(a.rpcs.p99).toBeLessThan(60)
      const b = await runSimulation(opts)
      const strip = ({ wallMs: _w, peakRssMiB: _p, ...rest }: typeof a) => rest
      expect(strip(b)).toEqual(strip(a))
      const c = await runSimulation({ ...opts, seed: 43 })
      expect(strip(c)).not.toEqual(strip(a))
    },
  )

  it(
    '120 nodes with churn, loss and hostile nodes on disjoint paths still mostly succeed',
    { timeout: 120_000 },
    async () => {
      const r = await runSimulation({
        nodes: 120,
        lookups: 60,
        seed: 5,
        churn: 0.2,
        rounds: 2,
        hostile: 0.1,
        disjoint: 3,
        loss: 0.01,
        joinRefresh: 2,
      })
      expect(r.hostileNodes).toBe(12)
      // Small networks with 20% churn and 10% liars: a floor, not the 10,000-node bar (see README, Speed).
      expect(r.successRate).toBeGreaterThanOrEqual(0.75)
    },
  )
})
