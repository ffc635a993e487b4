/* eslint-disable @typescript-eslint/no-explicit-any -- bittorrent-dht ships no types */
/**
 * 100 @x/kademlia UDP nodes vs 100 bittorrent-dht nodes on 127.0.0.1, the same lookups on each: every
 * lookup searches for the node ID of another node of the same network; success = that node is among the
 * nodes that answered. Prints a table and, last, one JSON line. Bounded: 100 nodes, 200 lookups each side.
 *
 * Both networks are formed first; then the lookups are interleaved (pair 1 on every side, pair 2 on every
 * side, …, the side order rotating), so both see the same machine load — on a shared box a load burst
 * would otherwise land on whichever side happened to run then. Each side's CPU time is the sum of
 * `process.cpuUsage()` deltas around its own lookups (everything in the process is serial, so the
 * responders' work is inside those windows too).
 *
 * `KAD_ALPHA=8 pnpm kademlia` adds a third side: @x/kademlia with α = 8 (the library default is 3; this
 * is reported beside the default, never instead of it).
 */
import DHT from 'bittorrent-dht'
import { createKademlia, createUdpTransport, idEquals, type KademliaNode } from '@x/kademlia'

const NODES = 100
const LOOKUPS = 200
const HOST = '127.0.0.1'
const EXTRA_ALPHA = Number(process.env.KAD_ALPHA ?? 0)

interface Side {
  name: string
  success: number
  latencies: number[]
  rpcs: number[]
  cpuMicros: number
  heapMiB: number
  formMs: number
  lookup: (a: number, b: number) => Promise<{ found: boolean; rpcs: number }>
  stop: () => Promise<void>
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0
}
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
const pairs = Array.from(
  { length: LOOKUPS },
  (_, i) => [(i * 37) % NODES, (i * 61 + 17) % NODES] as const,
).filter(([a, b]) => a !== b)

async function formOurs(alpha: number): Promise<Side> {
  const heap0 = process.memoryUsage().heapUsed
  const t0 = performance.now()
  const nodes: Array<{ node: KademliaNode; address: string }> = []
  for (let i = 0; i < NODES; i++) {
    const transport = await createUdpTransport({ host: HOST, port: 0 })
    const node = createKademlia({ transport }, { requestTimeoutMs: 500, alpha })
    await node.start()
    nodes.push({ node, address: transport.address })
  }
  for (let i = 1; i < NODES; i++)
    await nodes[i]!.node.bootstrap([nodes[Math.floor(Math.random() * i)]!.address])
  return {
    name: alpha === 3 ? '@x/kademlia (α = 3, default)' : `@x/kademlia (α = ${alpha})`,
    success: 0,
    latencies: [],
    rpcs: [],
    cpuMicros: 0,
    heapMiB: (process.memoryUsage().heapUsed - heap0) / 1048576,
    formMs: performance.now() - t0,
    async lookup(a, b) {
      const target = nodes[b]!.node.id
      const r = await nodes[a]!.node.lookup(target)
      return { found: r.closest.some((c) => idEquals(c.contact.id, target)), rpcs: r.rpcs }
    },
    async stop() {
      for (const n of nodes) await n.node.stop()
    },
  }
}

async function formTheirs(): Promise<Side> {
  const heap0 = process.memoryUsage().heapUsed
  const t0 = performance.now()
  const dhts: any[] = []
  const listen = (dht: any): Promise<number> =>
    new Promise((resolve) => dht.listen(0, HOST, () => resolve(dht.address().port)))
  const first = new DHT({ bootstrap: false, host: HOST })
  const ports = [await listen(first)]
  dhts.push(first)
  for (let i = 1; i < NODES; i++) {
    const seed = `${HOST}:${ports[Math.floor(Math.random() * i)]}`
    const dht = new DHT({ bootstrap: [seed], host: HOST })
    const ready = new Promise<void>((resolve) => dht.once('ready', () => resolve()))
    ports.push(await listen(dht))
    await ready
    dhts.push(dht)
  }
  return {
    name: 'bittorrent-dht 11.0.12',
    success: 0,
    latencies: [],
    rpcs: [],
    cpuMicros: 0,
    heapMiB: (process.memoryUsage().heapUsed - heap0) / 1048576,
    formMs: performance.now() - t0,
    async lookup(a, b) {
      const dht = dhts[a]
      const target: Buffer = dhts[b].nodeId
      let found = false
      let replies = 0
      await new Promise<void>((resolve) => {
        dht._rpc.closest(
          target,
          { q: 'find_node', a: { id: dht.nodeId, target } },
          (res: any) => {
            replies++
            if (Buffer.isBuffer(res?.r?.id) && res.r.id.equals(target)) found = true
          },
          () => resolve(),
        )
      })
      return { found, rpcs: replies }
    },
    async stop() {
      await Promise.all(dhts.map((d) => new Promise<void>((resolve) => d.destroy(() => resolve()))))
    },
  }
}

const sides: Side[] = [await formOurs(3), await formTheirs()]
if (EXTRA_ALPHA > 0 && EXTRA_ALPHA !== 3) sides.push(await formOurs(EXTRA_ALPHA))

for (const [i, [a, b]] of pairs.entries()) {
  for (let j = 0; j < sides.length; j++) {
    const side = sides[(i + j) % sides.length]!
    const cpu0 = process.cpuUsage()
    const start = performance.now()
    const r = await side.lookup(a, b)
    side.latencies.push(performance.now() - start)
    const cpu = process.cpuUsage(cpu0)
    side.cpuMicros += cpu.user + cpu.system
    side.rpcs.push(r.rpcs)
    if (r.found) side.success++
  }
}
for (const side of sides) await side.stop()

const rows = sides.map((s) => ({
  name: s.name,
  success: `${((s.success / pairs.length) * 100).toFixed(1)}%`,
  p50Ms: Number(pct(s.latencies, 0.5).toFixed(2)),
  p99Ms: Number(pct(s.latencies, 0.99).toFixed(2)),
  rpcsPerLookup: Number(mean(s.rpcs).toFixed(1)),
  cpuSeconds: Number((s.cpuMicros / 1e6).toFixed(2)),
  heapMiB: Number(s.heapMiB.toFixed(1)),
  formMs: Math.round(s.formMs),
}))
console.table(rows)
console.log(JSON.stringify({ nodes: NODES, lookups: pairs.length, results: rows }))
