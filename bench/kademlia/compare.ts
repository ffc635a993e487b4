/* eslint-disable @typescript-eslint/no-explicit-any -- bittorrent-dht ships no types */
/**
 * 100 @x/kademlia UDP nodes vs 100 bittorrent-dht nodes on 127.0.0.1, the same lookups on each: every
 * lookup searches for the node ID of another node of the same network; success = that node is among the
 * nodes that answered. Prints a table and, last, one JSON line. Bounded: 100 nodes, 200 lookups each side.
 */
import { randomBytes } from 'node:crypto'
import DHT from 'bittorrent-dht'
import { createKademlia, createUdpTransport, idEquals, type KademliaNode } from '@x/kademlia'

const NODES = 100
const LOOKUPS = 200
const HOST = '127.0.0.1'

interface Side {
  name: string
  success: number
  latencies: number[]
  rpcs: number[]
  cpuSeconds: number
  heapMiB: number
  formMs: number
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

async function runOurs(): Promise<Side> {
  const heap0 = process.memoryUsage().heapUsed
  const t0 = performance.now()
  const nodes: Array<{ node: KademliaNode; address: string }> = []
  for (let i = 0; i < NODES; i++) {
    const transport = await createUdpTransport({ host: HOST, port: 0 })
    const node = createKademlia({ transport }, { requestTimeoutMs: 500 })
    await node.start()
    nodes.push({ node, address: transport.address })
  }
  for (let i = 1; i < NODES; i++)
    await nodes[i]!.node.bootstrap([nodes[Math.floor(Math.random() * i)]!.address])
  const formMs = performance.now() - t0
  const heapMiB = (process.memoryUsage().heapUsed - heap0) / 1048576
  const cpu0 = process.cpuUsage()
  const side: Side = {
    name: '@x/kademlia',
    success: 0,
    latencies: [],
    rpcs: [],
    cpuSeconds: 0,
    heapMiB,
    formMs,
  }
  for (const [a, b] of pairs) {
    const target = nodes[b]!.node.id
    const start = performance.now()
    const r = await nodes[a]!.node.lookup(target)
    side.latencies.push(performance.now() - start)
    side.rpcs.push(r.rpcs)
    if (r.closest.some((c) => idEquals(c.contact.id, target))) side.success++
  }
  const cpu = process.cpuUsage(cpu0)
  side.cpuSeconds = (cpu.user + cpu.system) / 1e6
  for (const n of nodes) await n.node.stop()
  return side
}

async function runTheirs(): Promise<Side> {
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
  const formMs = performance.now() - t0
  const heapMiB = (process.memoryUsage().heapUsed - heap0) / 1048576
  const cpu0 = process.cpuUsage()
  const side: Side = {
    name: 'bittorrent-dht 11.0.12',
    success: 0,
    latencies: [],
    rpcs: [],
    cpuSeconds: 0,
    heapMiB,
    formMs,
  }
  for (const [a, b] of pairs) {
    const dht = dhts[a]
    const target: Buffer = dhts[b].nodeId
    let found = false
    let replies = 0
    const start = performance.now()
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
    side.latencies.push(performance.now() - start)
    side.rpcs.push(replies)
    if (found) side.success++
  }
  const cpu = process.cpuUsage(cpu0)
  side.cpuSeconds = (cpu.user + cpu.system) / 1e6
  await Promise.all(dhts.map((d) => new Promise<void>((resolve) => d.destroy(() => resolve()))))
  return side
}

void randomBytes
const ours = await runOurs()
const theirs = await runTheirs()
const rows = [ours, theirs].map((s) => ({
  name: s.name,
  success: `${((s.success / pairs.length) * 100).toFixed(1)}%`,
  p50Ms: Number(pct(s.latencies, 0.5).toFixed(2)),
  p99Ms: Number(pct(s.latencies, 0.99).toFixed(2)),
  rpcsPerLookup: Number(mean(s.rpcs).toFixed(1)),
  cpuSeconds: Number(s.cpuSeconds.toFixed(2)),
  heapMiB: Number(s.heapMiB.toFixed(1)),
  formMs: Math.round(s.formMs),
}))
console.table(rows)
console.log(JSON.stringify({ nodes: NODES, lookups: pairs.length, results: rows }))
