/**
 * Deterministic simulator: N nodes of this library in one process on the memory transport, driven by a
 * virtual clock and one seeded PRNG, so the same options give the same result.
 *
 * How the network is formed: node 0 starts alone; every other node joins through a real `bootstrap()`
 * (PING a random node that already joined, look up its own ID, refresh the buckets farther than its
 * nearest neighbour), `joinConcurrency` joins at a time. No table is filled from outside knowledge.
 *
 * Hostile nodes join honestly (so they sit in honest tables in proportion), then answer every FIND_NODE /
 * FIND_VALUE with fake contacts. In `fake` mode (the default): the colluding hostile nodes closest to the
 * target and fabricated IDs next to the target pointing at hostile addresses. In `collude` mode: only the
 * k colluding hostile nodes closest to the target (real nodes that answer to their IDs, so an ID check
 * cannot expose them; only disjoint paths help). They never return honest contacts or values. They answer
 * with their own node ID (the S/Kademlia model, where IDs are bound to keys).
 */
import { decodeMessage, encodeMessage, MessageType, type Message } from './codec'
import { compareDistance, ID_LENGTH_BYTES, idEquals } from './id'
import { createKademlia, type KademliaNode } from './kademlia'
import { createMemoryNetwork, type MemoryNetwork, type MemoryTransport } from './memory-transport'
import type { Contact } from './routing-table'
import type { Transport } from './types'
import { SeededRandom, VirtualClock } from './virtual-clock'

/** Options of {@link runSimulation}; every field has a default. */
export interface SimulationOptions {
  /** @default 1000 */
  nodes?: number
  /** Lookups measured. @default 1000 */
  lookups?: number
  /** Fraction of nodes replaced at the start of every churn round. @default 0 */
  churn?: number
  /** Virtual length of a round. @default 600000 */
  roundMs?: number
  /** Rounds (lookups are spread over them; churn happens at the start of each). @default 1, or 3 with churn */
  rounds?: number
  /** Fraction of hostile nodes. @default 0 */
  hostile?: number
  /** What hostile nodes answer: fabricated IDs near the target plus colluders, or colluders only. @default 'fake' */
  hostileMode?: 'fake' | 'collude'
  /** Disjoint lookup paths of the measured lookups. @default 1 */
  disjoint?: number
  /**
   * Disjoint paths of the nodes' own lookups (joins, refreshes). Forming 10,000 nodes with d = 4 costs
   * about four times as many datagrams; with 1, runs that differ only in `disjoint` measure their lookups
   * on the same network. @default `disjoint`
   */
  joinDisjoint?: number
  /** @default 1 */
  seed?: number
  /** @default 20 */
  k?: number
  /** @default 3 */
  alpha?: number
  /** One-way latency in virtual ms. @default 50 */
  latencyMs?: number
  /** Extra uniform one-way latency in virtual ms. @default 20 */
  jitterMs?: number
  /** Datagram loss probability. @default 0 */
  loss?: number
  /** Nodes joining at once while the network forms. @default 64 */
  joinConcurrency?: number
  /** Lookups in flight at once. @default 64 */
  lookupConcurrency?: number
  /** Node refresh interval (virtual ms). @default 600000 */
  refreshIntervalMs?: number
  /** Far-bucket refresh lookups per join and per refresh tick (`maxBucketRefreshesPerTick`). @default 16 */
  joinRefresh?: number
  /** Progress callback (phase names). */
  onProgress?: (message: string) => void
}

/** Summary of a set of measurements (0 for each when there were none). */
export interface Distribution {
  /** Arithmetic mean, to two decimals. */
  mean: number
  /** Median. */
  p50: number
  /** 99th percentile. */
  p99: number
}

/** What {@link runSimulation} measured; the options it ran with are repeated so a result stands on its own. */
export interface SimulationResult {
  /** Nodes in the network. */
  nodes: number
  /** Of those, hostile. */
  hostileNodes: number
  /** How hostile nodes answered. */
  hostileMode: 'fake' | 'collude'
  /** Lookups measured. */
  lookups: number
  /** Lookups whose result held the target node. */
  succeeded: number
  /** `succeeded / lookups`. */
  successRate: number
  /** Disjoint paths of the measured lookups. */
  disjoint: number
  /** Disjoint paths of the nodes' own lookups. */
  joinDisjoint: number
  /** Fraction of nodes replaced per round. */
  churn: number
  /** PRNG seed: the same options and seed give the same result. */
  seed: number
  /** Bucket size. */
  k: number
  /** Lookup parallelism. */
  alpha: number
  /** Depth at which successful lookups found their target. */
  hops: Distribution
  /** RPCs per measured lookup (0 for one that threw). */
  rpcs: Distribution
  /** Virtual milliseconds per measured lookup that returned. */
  latencyMs: Distribution
  /** Datagrams sent while the network formed. */
  joinRpcs: number
  /** Events the virtual clock ran. */
  events: number
  /** Virtual time the whole run covered, in milliseconds. */
  virtualMs: number
  /** Real time the run took, in milliseconds. */
  wallMs: number
  /** Highest resident set size sampled during the run, in MiB. */
  peakRssMiB: number
  /** Mean routing-table size of the nodes alive at the end. */
  avgTableSize: number
}

function distribution(values: number[]): Distribution {
  if (values.length === 0) return { mean: 0, p50: 0, p99: 0 }
  const s = [...values].sort((a, b) => a - b)
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))]!
  const mean = s.reduce((a, b) => a + b, 0) / s.length
  return { mean: Math.round(mean * 100) / 100, p50: q(0.5), p99: q(0.99) }
}

interface SimNode {
  index: number
  node: KademliaNode
  address: string
  hostile: boolean
  alive: boolean
  joined: boolean
}

/** Seed addresses a joining node is given, as a real node's configuration lists a few. */
const JOIN_SEEDS = 3

function simAddress(i: number): string {
  // Each node in its own /24, so the per-subnet limits (on) never bind in the simulation.
  return `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.1:4000`
}

/** Runs one simulation. */
export async function runSimulation(options: SimulationOptions = {}): Promise<SimulationResult> {
  const started = performance.now()
  const n = options.nodes ?? 1000
  const lookupsWanted = options.lookups ?? 1000
  const churn = options.churn ?? 0
  const rounds = options.rounds ?? (churn > 0 ? 3 : 1)
  const roundMs = options.roundMs ?? 600_000
  const hostileFraction = options.hostile ?? 0
  const hostileMode = options.hostileMode ?? 'fake'
  if (hostileMode !== 'fake' && hostileMode !== 'collude') {
    throw new RangeError("'hostileMode' must be 'fake' or 'collude'")
  }
  const disjoint = options.disjoint ?? 1
  const joinDisjoint = options.joinDisjoint ?? disjoint
  const seed = options.seed ?? 1
  const k = options.k ?? 20
  const alpha = options.alpha ?? 3
  const joinConcurrency = options.joinConcurrency ?? 64
  const lookupConcurrency = options.lookupConcurrency ?? 64
  const progress = options.onProgress ?? (() => {})
  if (!Number.isInteger(n) || n < 2) throw new RangeError("'nodes' must be an integer >= 2")

  const rng = new SeededRandom(seed)
  const clock = new VirtualClock()
  const network: MemoryNetwork = createMemoryNetwork({
    clock,
    latencyMs: options.latencyMs ?? 50,
    jitterMs: options.jitterMs ?? 20,
    loss: options.loss ?? 0,
    random: () => rng.next(),
  })
  let peakRss = process.memoryUsage().rss
  const sampleMemory = (): void => {
    if (clock.events % 20_000 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss)
  }

  const all: SimNode[] = []
  const hostileIds: Uint8Array[] = []
  const hostileAddresses: string[] = []
  let nextIndex = 0

  const makeNode = (hostile: boolean): SimNode => {
    const index = nextIndex++
    const address = simAddress(index)
    const inner = network.createTransport(address)
    const id = rng.bytes(ID_LENGTH_BYTES)
    const sim: SimNode = {
      index,
      node: undefined as unknown as KademliaNode,
      address,
      hostile,
      alive: true,
      joined: false,
    }
    const transport = hostile ? hostileTransport(inner, id, () => sim.joined) : inner
    sim.node = createKademlia(
      { transport, clock, random: (len) => rng.bytes(len), hash: cheapHash },
      {
        id,
        k,
        alpha,
        disjointPaths: joinDisjoint,
        refreshIntervalMs: options.refreshIntervalMs ?? 600_000,
        bucketStaleMs: 3_600_000,
        maxBucketRefreshesPerTick: options.joinRefresh ?? 16,
        maxRttEntries: 32,
        maxRateLimitEntries: 64,
        rateLimitPerSecond: 1000,
        rateLimitBurst: 1000,
      },
    )
    if (hostile) {
      hostileIds.push(id)
      hostileAddresses.push(address)
    }
    all.push(sim)
    return sim
  }

  // Colluding hostile nodes share a sorted list of their IDs to answer "closest" with each other.
  let hostileSorted: Array<{ id: Uint8Array; address: string }> = []
  const hostileClosest = (target: Uint8Array, count: number): Contact[] => {
    if (hostileSorted.length === 0) return []
    let lo = 0
    let hi = hostileSorted.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (compareBytes(hostileSorted[mid]!.id, target) < 0) lo = mid + 1
      else hi = mid
    }
    const window = hostileSorted.slice(Math.max(0, lo - 2 * count), lo + 2 * count)
    window.sort((a, b) => compareDistance(a.id, b.id, target))
    return window.slice(0, count)
  }

  function hostileTransport(inner: MemoryTransport, selfId: Uint8Array, active: () => boolean): Transport {
    return {
      send: (bytes, address) => inner.send(bytes, address),
      close: () => inner.close(),
      onMessage: (handler) =>
        inner.onMessage((bytes, from) => {
          if (!active()) return handler(bytes, from)
          const msg = decodeMessage(bytes)
          if (
            msg === undefined ||
            (msg.type !== MessageType.FIND_NODE && msg.type !== MessageType.FIND_VALUE)
          ) {
            return handler(bytes, from)
          }
          const target = msg.type === MessageType.FIND_NODE ? msg.target : msg.key
          const colluders = hostileMode === 'fake' ? Math.ceil(k / 2) : k + 1
          const contacts: Contact[] = hostileClosest(target, colluders)
            .filter((c) => !idEquals(c.id, selfId))
            .slice(0, k)
          while (hostileMode === 'fake' && contacts.length < k) {
            const fake = target.slice()
            const noise = rng.bytes(8)
            for (let i = 0; i < 8; i++) fake[12 + i] = noise[i]!
            contacts.push({ id: fake, address: hostileAddresses[rng.int(hostileAddresses.length)]! })
          }
          const reply: Message = {
            type: MessageType.NODES,
            requestId: msg.requestId,
            senderId: selfId,
            token: new Uint8Array(8),
            contacts,
          }
          inner.send(encodeMessage(reply), from)
        }),
    }
  }

  const nHostile = Math.round(n * hostileFraction)
  const hostileSet = new Set<number>()
  while (hostileSet.size < nHostile) hostileSet.add(1 + rng.int(n - 1))
  for (let i = 0; i < n; i++) makeNode(hostileSet.has(i))

  // ---- formation ----
  progress(`forming network of ${n} nodes (${nHostile} hostile)`)
  for (const s of all) await s.node.start()
  all[0]!.joined = true
  const join = async (s: SimNode, pool: SimNode[]): Promise<void> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      // A seed list of up to JOIN_SEEDS nodes that already joined (any of them may be hostile).
      const seeds = new Set<string>()
      for (let i = 0; i < JOIN_SEEDS * 2 && seeds.size < Math.min(JOIN_SEEDS, pool.length); i++) {
        seeds.add(pool[rng.int(pool.length)]!.address)
      }
      try {
        await s.node.bootstrap([...seeds])
        return
      } catch {
        // try other seeds
      }
    }
  }
  const joinAll = async (
    joiners: SimNode[],
    initialPool: SimNode[],
    concurrency = joinConcurrency,
  ): Promise<void> => {
    const pool = [...initialPool]
    let next = 0
    let running = 0
    let done = 0
    const launch = (): void => {
      while (running < concurrency && next < joiners.length) {
        const s = joiners[next++]!
        running++
        void join(s, pool).finally(() => {
          s.joined = true
          pool.push(s)
          running--
          done++
          if (done % 1000 === 0) progress(`joined ${done}/${joiners.length}`)
          launch()
        })
      }
    }
    launch()
    await clock.run({ until: () => done === joiners.length, onEvent: sampleMemory })
  }
  await joinAll(all.slice(1), [all[0]!])
  hostileSorted = all
    .filter((s) => s.hostile)
    .map((s) => ({ id: s.node.id, address: s.address }))
    .sort((a, b) => compareBytes(a.id, b.id))
  const joinRpcs = network.stats.sent

  // ---- lookups ----
  const hops: number[] = []
  const rpcs: number[] = []
  const latencies: number[] = []
  let succeeded = 0
  let total = 0
  const perRound = Math.ceil(lookupsWanted / rounds)
  for (let round = 0; round < rounds; round++) {
    if (churn > 0) {
      const honestAlive = all.filter((s) => s.alive && !s.hostile)
      const leave = Math.round(honestAlive.length * churn)
      progress(`round ${round + 1}: replacing ${leave} nodes`)
      for (let i = 0; i < leave; i++) {
        const j = i + rng.int(honestAlive.length - i)
        ;[honestAlive[i], honestAlive[j]] = [honestAlive[j]!, honestAlive[i]!]
        const s = honestAlive[i]!
        s.alive = false
        await s.node.stop()
      }
      const newcomers: SimNode[] = []
      for (let i = 0; i < leave; i++) newcomers.push(makeNode(false))
      for (const s of newcomers) await s.node.start()
      // The replacements arrive together, as the leavers left together: all of them join at once (joining
      // `joinConcurrency` at a time would stretch the round's start over minutes of virtual time).
      await joinAll(
        newcomers,
        all.filter((s) => s.alive && s.joined),
        newcomers.length,
      )
    }
    const roundStart = clock.now()
    const roundEnd = roundStart + roundMs
    const count = Math.min(perRound, lookupsWanted - total)
    progress(`round ${round + 1}: ${count} lookups`)
    let inflight = 0
    let finished = 0
    const queue: Array<() => void> = []
    const pump = (): void => {
      while (inflight < lookupConcurrency && queue.length > 0) queue.shift()!()
    }
    for (let i = 0; i < count; i++) {
      // Spread start times over the round: churned-out contacts are met at every age.
      const at = Math.floor((rng.next() * roundMs) / 2)
      clock.setTimeout(() => {
        queue.push(() => {
          const honest = all.filter((s) => s.alive && !s.hostile && s.joined)
          const from = honest[rng.int(honest.length)]!
          let to = honest[rng.int(honest.length)]!
          while (to === from) to = honest[rng.int(honest.length)]!
          inflight++
          const t0 = clock.now()
          from.node
            .lookup(to.node.id, { disjointPaths: disjoint })
            .then((r) => {
              if (r.closest.some((c) => idEquals(c.contact.id, to.node.id))) {
                succeeded++
                hops.push(r.closest.find((c) => idEquals(c.contact.id, to.node.id))!.depth)
              }
              rpcs.push(r.rpcs)
              latencies.push(clock.now() - t0)
            })
            .catch(() => rpcs.push(0))
            .finally(() => {
              inflight--
              finished++
              pump()
            })
        })
        pump()
      }, at)
    }
    total += count
    await clock.run({ until: () => finished === count, onEvent: sampleMemory })
    await clock.run({ endAt: roundEnd, onEvent: sampleMemory })
  }
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
  let tableTotal = 0
  let alive = 0
  for (const s of all) {
    if (!s.alive) continue
    alive++
    tableTotal += s.node.table.size
  }
  for (const s of all) if (s.alive) await s.node.stop()
  const result: SimulationResult = {
    nodes: n,
    hostileNodes: nHostile,
    hostileMode,
    lookups: total,
    succeeded,
    successRate: total === 0 ? 0 : succeeded / total,
    disjoint,
    joinDisjoint,
    churn,
    seed,
    k,
    alpha,
    hops: distribution(hops),
    rpcs: distribution(rpcs),
    latencyMs: distribution(latencies),
    joinRpcs,
    events: clock.events,
    virtualMs: clock.now(),
    wallMs: Math.round(performance.now() - started),
    peakRssMiB: Math.round(peakRss / 1048576),
    avgTableSize: Math.round(tableTotal / Math.max(1, alive)),
  }
  return result
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return 0
}

/**
 * Token hash for simulated nodes: FNV-1a based, 8 bytes. Not cryptographic; the simulation has no
 * attacker forging tokens and SHA-256 for every FIND would dominate its run time.
 */
function cheapHash(data: Uint8Array): Uint8Array {
  let h1 = 0x811c9dc5
  let h2 = 0x01000193
  for (let i = 0; i < data.length; i++) {
    h1 = Math.imul(h1 ^ data[i]!, 0x01000193)
    h2 = Math.imul(h2 ^ data[i]!, 0x811c9dc5) ^ (h1 >>> 7)
  }
  const out = new Uint8Array(8)
  new DataView(out.buffer).setUint32(0, h1 >>> 0)
  new DataView(out.buffer).setUint32(4, h2 >>> 0)
  return out
}
