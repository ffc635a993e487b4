/**
 * Links dialed from both sides at once, under a seeded scheduler: every delivery on every pipe and every send of
 * every stream happens in an order drawn from a PRNG, so each seed is one reproducible interleaving (the yjs
 * test connector is the model). A failing seed is printed; replay it with
 * `LINK_RACE_SEED=<seed> pnpm exec vitest run --project @x/node-link test/race.test.ts`.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_NODES as NODES, runSeed, type Outcome } from './race-harness'

const SEEDS = Number(process.env.LINK_RACE_SEEDS ?? 1_000)
const ONLY = process.env.LINK_RACE_SEED === undefined ? undefined : Number(process.env.LINK_RACE_SEED)

describe('links dialed from both sides at once (seeded scheduler)', () => {
  it(`agree on one link per pair and lose, duplicate or reorder no frame, over ${ONLY === undefined ? SEEDS : 1} seeds`, async () => {
    const seeds = ONLY === undefined ? Array.from({ length: SEEDS }, (_, i) => i + 1) : [ONLY]
    let raced = 0
    let held = 0
    for (const seed of seeds) {
      let outcome: Outcome
      try {
        outcome = await runSeed(seed)
      } catch (err) {
        throw new Error(
          `seed ${seed} failed: ${(err as Error).message}\nreplay: LINK_RACE_SEED=${seed} pnpm exec vitest run --project @x/node-link test/race.test.ts`,
          { cause: err },
        )
      }
      // Both dials of a pair authenticated, so a link beyond one per pair existed and was retired.
      if (outcome.handshakes > NODES * (NODES - 1)) raced++
      if (outcome.held > 0) held++
    }
    // The schedules do produce the races the arbitration exists for (the test would be empty otherwise).
    if (ONLY === undefined) {
      expect(raced).toBeGreaterThan(seeds.length / 2)
      expect(held).toBeGreaterThan(0)
    }
  }, 120_000)
})
