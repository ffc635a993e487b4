import { describe, expect, it } from 'vitest'
import { ATTACKS, runAiEval } from '../scripts/ai-eval/live'

/**
 * One small run of the AI engine's evaluation harness against a real node process: normal peers, DHT nodes and
 * y-websocket clients on their own loopback addresses, then one round of every attack. The bars (≥ 95 % within
 * 2 s over many rounds, ≤ 1 % of normal peers throttled) are measured by `pnpm --filter @x/node ai:eval`, not
 * here; this run checks that every attack is caught at all and that no normal peer is.
 */
describe('AI engine evaluation harness (small run)', () => {
  it('flags every attack and no normal peer; with the engine off, flags nothing', async () => {
    // Past the engine's settling minute after a start (arrival rates are not scored while everyone reconnects).
    const report = await runAiEval({ normal: 16, rounds: 1, warmupMs: 62_000, seed: 7 })
    expect(report.ai).toMatchObject({ status: 'ok', model: 'robust-baselines' })
    for (const attack of ATTACKS) {
      const r = report.attacks[attack]
      expect(r.trials, attack).toBe(1)
      // Flagged at all (within 2 s or late): timing bars are the benchmark's business, not a test's.
      expect(r.detected + r.late, attack).toBe(1)
      expect(Object.keys(r.drivenBy).length, attack).toBe(1)
    }
    expect(report.normalFlagged).toBe(0)
    expect(report.falsePositiveRate).toBe(0)

    const off = await runAiEval({ normal: 4, rounds: 1, warmupMs: 1_000, seed: 7, nodeArgs: ['--ai', 'off'] })
    expect(off.ai).toMatchObject({ status: 'disabled' })
    for (const attack of ATTACKS) expect(off.attacks[attack].detected + off.attacks[attack].late).toBe(0)
  }, 240_000)
})
