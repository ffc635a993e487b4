/**
 * Microbenchmark of the AI engine (not a test): `pnpm --filter @x/node bench`.
 *
 * 1. The hot path: what the signaling server calls per relayed message (`frame()` on the sender's session,
 *    `sent()` on the receiver's), in ns per message.
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
  const list = Array.from({ length: count }, (_, i) => {
    const s = engine.guard!.connect(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'native', () => {})
    if (s === false) throw new Error('refused')
    s.registered(`peer${i}`)
    return s
  })
  return { engine, list }
}

function hotPath(): number {
  const { list } = sessions(200)
  const frames = 2_000_000
  // Warm-up, then measure: sender i relays to its partner i ^ 1, as the load generator's pairs do.
  for (let n = 0; n < 200_000; n++) {
    const i = n % 200
    list[i]!.frame('candidate', 300, `peer${i ^ 1}`)
    list[i ^ 1]!.sent(310)
  }
  const t0 = process.hrtime.bigint()
  for (let n = 0; n < frames; n++) {
    const i = n % 200
    list[i]!.frame('candidate', 300, `peer${i ^ 1}`)
    list[i ^ 1]!.sent(310)
    if ((n & 0xffff) === 0) now += 1 // time moves, slowly
  }
  return Number(process.hrtime.bigint() - t0) / frames
}

function tickMs(count: number): number {
  const { engine, list } = sessions(count)
  for (let round = 0; round < 8; round++) {
    for (let i = 0; i < list.length; i++) list[i]!.frame('candidate', 300, `peer${i ^ 1}`)
    now += 250
    engine.tick()
  }
  const rounds = 20
  const t0 = process.hrtime.bigint()
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < list.length; i++) list[i]!.frame('candidate', 300, `peer${i ^ 1}`)
    now += 250
    engine.tick()
  }
  // Includes one frame per session per round (≈ 1 ms at 20,000 sessions), as live traffic would.
  return Number(process.hrtime.bigint() - t0) / 1e6 / rounds
}

const nsPerMessage = hotPath()
const tick1k = tickMs(1_000)
const tick20k = tickMs(20_000)
const result = {
  nsPerMessage: +nsPerMessage.toFixed(1),
  coreShareAt20kMsgPerS: +((nsPerMessage * 20_000) / 1e9).toFixed(4),
  tickMs1k: +tick1k.toFixed(2),
  tickMs20k: +tick20k.toFixed(2),
  coreShareTicks20k: +((tick20k * 4) / 1000).toFixed(4),
}
console.log('AI engine                                          ')
console.log(`hot path (frame + sent) per relayed message       ${result.nsPerMessage} ns`)
console.log(
  `  → share of a core at 20,000 messages/s          ${(result.coreShareAt20kMsgPerS * 100).toFixed(2)} %`,
)
console.log(`scoring round, 1,000 active sessions               ${result.tickMs1k} ms`)
console.log(`scoring round, 20,000 active sessions              ${result.tickMs20k} ms`)
console.log(
  `  → share of a core at 4 rounds/s (20,000)        ${(result.coreShareTicks20k * 100).toFixed(2)} %`,
)
console.log(JSON.stringify(result))
