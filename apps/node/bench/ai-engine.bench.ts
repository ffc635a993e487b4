/**
 * Microbenchmark of the AI engine (not a test): `pnpm --filter @x/node bench`.
 *
 * 1. The hot path: what the signaling server calls per relayed message (`frame()` on the sender's session,
 *    `sent(bytes, from)` on the receiver's), in ns per message, for pairs that keep talking to each other (the
 *    load generator's shape), and for a mesh where every message goes to another peer than the last (the slow
 *    path: the pair is looked up).
 * 2. A scoring round (`tick()`) with 1,000 and 20,000 open sessions (one address each), in ms, and what it costs
 *    per second at 4 rounds a second.
 *
 * Prints a table, and as its last line one JSON object.
 */
import { createAiEngine } from '../src/ai/engine'

const silent = { debug() {}, info() {}, warn() {} }
let now = 1_000_000
const clock = { now: () => now }

function sessions(count: number) {
  const engine = createAiEngine({ logger: silent, clock }, { allowList: [] })
  const ids = Array.from({ length: count }, (_, i) => `peer${i}`)
  const list = Array.from({ length: count }, (_, i) => {
    const s = engine.guard!.connect(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'native', () => {})
    if (s === false || typeof s === 'string') throw new Error('refused')
    s.registered(ids[i])
    return s
  })
  return { engine, list, ids }
}

/** ns per relayed message; `partner(n, i)` picks the receiver of the n-th message from sender i. */
function hotPath(partner: (n: number, i: number) => number): number {
  const { list, ids } = sessions(200)
  const frames = 2_000_000
  const run = (count: number) => {
    for (let n = 0; n < count; n++) {
      const i = n % 200
      const j = partner(n, i)
      list[i]!.frame('candidate', 300, ids[j])
      list[j]!.sent(310, ids[i])
      if ((n & 0xffff) === 0) now += 1 // time moves, slowly (scoring rounds are measured apart)
    }
  }
  run(200_000) // warm-up
  const t0 = process.hrtime.bigint()
  run(frames)
  return Number(process.hrtime.bigint() - t0) / frames
}

function tickMs(count: number): number {
  const { engine, list, ids } = sessions(count)
  const round = () => {
    for (let i = 0; i < list.length; i++) {
      list[i]!.frame('candidate', 300, ids[i ^ 1])
      list[i ^ 1]!.sent(310, ids[i])
    }
    now += 250
    engine.tick()
  }
  for (let r = 0; r < 8; r++) round()
  const rounds = 20
  const t0 = process.hrtime.bigint()
  for (let r = 0; r < rounds; r++) round()
  // Includes one frame per session per round (≈ 1 ms at 20,000 sessions), as live traffic would.
  return Number(process.hrtime.bigint() - t0) / 1e6 / rounds
}

const nsPerMessage = hotPath((_, i) => i ^ 1)
// A mesh of 8: each message to the next member of the sender's group than the last one.
const nsMesh = hotPath((n, i) => (i & ~7) | ((i + 1 + (Math.floor(n / 200) % 7)) & 7))
const tick1k = tickMs(1_000)
const tick20k = tickMs(20_000)
const result = {
  nsPerMessage: +nsPerMessage.toFixed(1),
  nsPerMessageMesh: +nsMesh.toFixed(1),
  coreShareAt20kMsgPerS: +((nsPerMessage * 20_000) / 1e9).toFixed(4),
  tickMs1k: +tick1k.toFixed(2),
  tickMs20k: +tick20k.toFixed(2),
  coreShareTicks20k: +((tick20k * 4) / 1000).toFixed(4),
}
console.log('AI engine                                          ')
console.log(`hot path (frame + sent) per relayed message       ${result.nsPerMessage} ns`)
console.log(`  … in a mesh (another peer every message)        ${result.nsPerMessageMesh} ns`)
console.log(
  `  → share of a core at 20,000 messages/s          ${(result.coreShareAt20kMsgPerS * 100).toFixed(2)} %`,
)
console.log(`scoring round, 1,000 active sessions               ${result.tickMs1k} ms`)
console.log(`scoring round, 20,000 active sessions              ${result.tickMs20k} ms`)
console.log(
  `  → share of a core at 4 rounds/s (20,000)        ${(result.coreShareTicks20k * 100).toFixed(2)} %`,
)
console.log(JSON.stringify(result))
