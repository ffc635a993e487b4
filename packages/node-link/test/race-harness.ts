/** The seeded race of race.test.ts, in a module of its own so a seed can be replayed from a script too. */
import { createLinkManager, type LinkManager, type SecureFn } from '../src/index'
import {
  allowAnyAddress,
  createMemoryNetwork,
  createSeededRandom,
  createTestSecure,
  createVirtualClock,
} from '../src/testing'
import { nodeIdOf } from './helpers'

export const DEFAULT_NODES = 4
export const DEFAULT_FRAMES = 300
const CHANNEL = 2
const MAX_STEPS = 200_000

export const counters = { drains: 0 }
const drain = (): Promise<void> => (counters.drains++, new Promise((resolve) => setImmediate(resolve)))

interface Stream {
  from: number
  to: number
  next: number
  waiting: boolean
  /** Index in `ready` (-1: waiting or done). */
  slot: number
}

export interface Outcome {
  steps: number
  handshakes: number
  retired: number
  held: number
}

/** One interleaving. Throws (with what went wrong) when a frame is lost, duplicated or reordered. */
export async function runSeed(
  seed: number,
  options: { nodes?: number; frames?: number; trace?: boolean } = {},
): Promise<Outcome> {
  const NODES = options.nodes ?? DEFAULT_NODES
  const FRAMES = options.frames ?? DEFAULT_FRAMES
  const random = createSeededRandom(seed)
  const net = createMemoryNetwork({ random })
  const clock = createVirtualClock()
  // Handshakes and dials settle through promises: while any is in flight, every step lets all pending
  // microtasks run first, as the event loop would between two socket events.
  const async = { inflight: 0, settled: false }
  const ids = Array.from({ length: NODES }, (_, i) => nodeIdOf(0x100 + i))
  const addresses = ids.map((_, i) => `ws://10.0.0.${i + 1}:7000`)
  const nodes: LinkManager[] = ids.map((id, i) => {
    const inner = createTestSecure(id)
    const secure: SecureFn = (pipe, options) => {
      async.inflight++
      return inner(pipe, options).finally(() => {
        async.inflight--
        async.settled = true
      })
    }
    return createLinkManager(
      {
        transport: net.transport(addresses[i]!),
        secure,
        clock,
        random: createSeededRandom(seed * 31 + i),
        dialPolicy: allowAnyAddress,
      },
      { nodeId: id, address: addresses[i]! },
    )
  })
  await Promise.all(nodes.map((n) => n.start()))

  // received[to][from] = sequence numbers in arrival order
  const received = nodes.map(() => new Map<string, number[]>())
  nodes.forEach((n, i) =>
    n.onChannel(CHANNEL, (from, payload) => {
      let seqs = received[i]!.get(from)
      if (!seqs) received[i]!.set(from, (seqs = []))
      seqs.push((payload[0]! << 8) | payload[1]!)
    }),
  )
  const streams: Stream[] = []
  for (let i = 0; i < NODES; i++) {
    for (let j = 0; j < NODES; j++)
      if (i !== j) streams.push({ from: i, to: j, next: 0, waiting: false, slot: -1 })
  }
  // Streams that may send now (not waiting for a dial, not done), kept without per-step allocation.
  const ready: Stream[] = []
  const makeReady = (s: Stream): void => {
    if (s.slot >= 0 || s.waiting || s.next >= FRAMES) return
    s.slot = ready.length
    ready.push(s)
  }
  const unready = (s: Stream): void => {
    if (s.slot < 0) return
    const last = ready.pop()!
    if (last !== s) {
      ready[s.slot] = last
      last.slot = s.slot
    }
    s.slot = -1
  }
  for (const s of streams) makeReady(s)
  let waiting = 0
  let failure: unknown

  const act = (s: Stream): void => {
    const node = nodes[s.from]!
    // A burst of 1–4 frames, as a sender writes several frames in one tick.
    for (let burst = 1 + Math.floor(random() * 4); burst > 0 && s.next < FRAMES; burst--) {
      if (!node.send(ids[s.to]!, CHANNEL, Uint8Array.of(s.next >> 8, s.next & 255))) break
      if (++s.next >= FRAMES) {
        unready(s)
        return
      }
      if (burst === 1) return
    }
    const payload = Uint8Array.of(s.next >> 8, s.next & 255)
    // No active link yet (or it is being replaced): dial, which both sides of a pair do at once.
    s.waiting = true
    unready(s)
    waiting++
    node.sendOrDial(ids[s.to]!, CHANNEL, payload, { address: addresses[s.to]! }).then(
      () => {
        s.next++
        s.waiting = false
        waiting--
        makeReady(s)
      },
      (err: unknown) => {
        failure ??= err
        s.waiting = false
        waiting--
      },
    )
  }

  let steps = 0
  for (;;) {
    if (failure !== undefined) throw new Error(`sendOrDial failed: ${(failure as Error).message}`)
    if (++steps > MAX_STEPS) throw new Error('no progress after MAX_STEPS steps')
    if (async.inflight > 0 || async.settled || waiting > 0) {
      await drain()
      async.settled = false
    }
    const pending = net.pending()
    if (ready.length === 0 && pending === 0) {
      if (waiting > 0 || async.inflight > 0) {
        // Everything in flight waits on a timer (none expected here, but a stall must not hang the test).
        await drain()
        if (net.pending() === 0) {
          const state = nodes.map(
            (n, i) =>
              `${i}: ${JSON.stringify(n.list().map((l) => [l.nodeId.slice(-1), l.direction, l.state]))} ${JSON.stringify(n.getStats())}`,
          )
          const stuck = streams.filter((s) => s.waiting).map((s) => `${s.from}->${s.to}@${s.next}`)
          throw new Error(
            `stalled: waiting with nothing to deliver; streams ${stuck.join(' ')}\n${state.join('\n')}`,
          )
        }
        continue
      }
      if (streams.every((s) => s.next === FRAMES)) break
      continue
    }
    // Half the draws deliver a message, half let a random stream send its next frame.
    if (pending > 0 && (ready.length === 0 || random() < 0.5)) net.step()
    else act(ready[Math.floor(random() * ready.length)]!)
  }
  // Let retired links finish their grace period and every close be delivered.
  for (let k = 0; k < 1_000 && (net.pending() > 0 || clock.pendingTimers() > NODES); k++) {
    if (!net.step()) {
      clock.advance(6_000)
      await drain()
    }
  }

  const expected = Array.from({ length: FRAMES }, (_, k) => k)
  for (const s of streams) {
    const got = received[s.to]!.get(ids[s.from]!) ?? []
    if (got.length !== FRAMES || got.some((v, k) => v !== expected[k])) {
      const firstBad = got.findIndex((v, k) => v !== k)
      throw new Error(
        `node ${s.from} → node ${s.to}: got ${got.length} frames, first out of place at index ${firstBad} (${String(got[firstBad])})`,
      )
    }
  }
  for (const [i, n] of nodes.entries()) {
    const list = n.list()
    if (
      list.length !== NODES - 1 ||
      list.some((l) => l.state !== 'open') ||
      n.connectedNodes().length !== NODES - 1
    ) {
      throw new Error(
        `node ${i} ends with links ${JSON.stringify(list.map((l) => [l.nodeId.slice(-3), l.state]))}`,
      )
    }
  }
  const stats = nodes.map((n) => n.getStats())
  let closed = false
  const closing = Promise.all(nodes.map((n) => n.close())).then(() => (closed = true))
  for (let k = 0; !closed && k < 10_000; k++) {
    if (!net.step()) {
      await drain()
      if (!closed && net.pending() === 0) clock.advance(2_000)
    }
  }
  await closing
  return {
    steps,
    handshakes: stats.reduce((a, s) => a + s.handshakes, 0),
    retired: stats.reduce((a, s) => a + s.linksRetired, 0),
    held: stats.reduce((a, s) => a + s.framesHeld, 0),
  }
}
