/**
 * apps/node benchmarks (not tests): `cd bench && pnpm node` (builds apps/node first if needed).
 *
 * 1. REST throughput with autocannon against `/api/health` (cached report) and `/api/peers`: req/s and p99.
 * 2. Cold start to ready with an existing identity: spawn → `READY` line → `/api/health/ready` = 200.
 * 3. Memory of an idle node (RSS after 5 s idle, from /proc).
 * 4. Signal latency between two peers on the same node and on different nodes (federation over the P2P link).
 *
 * Everything runs on 127.0.0.1, bounded in count and time; every process started here is stopped by PID.
 * Prints a table, and as its last line one JSON object.
 *
 * `TLS=1`: the same with TLS on both ports (https, wss; a throw-away certificate made with `openssl`; X25519MLKEM768
 * on Node >= 24.7), to state what TLS costs. `NODE_BIN` runs the node under another Node (e.g. 24).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import WebSocket from 'ws'
import { Identity } from '@x/pqc'
import { createSignalingClient, type SignalingClient } from '@x/signaling/client'

const APP = join(dirname(fileURLToPath(import.meta.url)), '../../apps/node')
const SERVER = join(APP, 'dist/server.js')
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const TLS = process.env.TLS === '1'
const NODE_BIN = process.env.NODE_BIN ?? process.execPath
const HTTP = TLS ? 'https' : 'http'
const WS = TLS ? 'wss' : 'ws'

/** A self-signed certificate for 127.0.0.1 (the bench accepts it: NODE_TLS_REJECT_UNAUTHORIZED below). */
function makeCertificate(dir: string): string[] {
  spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
    ].concat([
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]),
    { stdio: 'ignore' },
  )
  return ['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]
}
let tlsArgs: string[] = []

interface Ready {
  nodeId: string
  rest: number
  ws: number
  dht: number
}
interface Running {
  proc: ChildProcess
  ready: Ready
  readyMs: number
}

const started: ChildProcess[] = []

function startNode(dataDir: string, extra: string[] = []): Promise<Running> {
  const t0 = performance.now()
  const proc = spawn(
    NODE_BIN,
    [
      SERVER,
      '--host',
      '127.0.0.1',
      '--rest-port',
      '0',
      '--ws-port',
      '0',
      '--dht-port',
      '0',
      '--data-dir',
      dataDir,
      '--log-level',
      'warn',
      ...tlsArgs,
      ...extra,
    ],
    { stdio: ['ignore', 'inherit', 'pipe'] },
  )
  started.push(proc)
  return new Promise((resolve, reject) => {
    let buf = ''
    // The READY line is on stderr (stdout carries the logs).
    proc.stderr.on('data', (d: Buffer) => {
      buf += d.toString()
      const m = /^READY (.*)$/m.exec(buf)
      if (m) {
        proc.stderr.removeAllListeners('data')
        proc.stderr.resume()
        resolve({ proc, ready: JSON.parse(m[1]!) as Ready, readyMs: performance.now() - t0 })
      }
    })
    proc.once('exit', (code) => reject(new Error(`node exited with ${code}`)))
  })
}

async function stopNode(n: Running): Promise<void> {
  if (n.proc.exitCode !== null) return
  const exited = new Promise((r) => n.proc.once('exit', r))
  n.proc.kill('SIGTERM')
  await exited
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function cannon(url: string) {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_S, pipelining: 1 })
  return {
    reqPerSec: Math.round(r.requests.average),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors,
  }
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : NaN
}

async function peer(url: string): Promise<{ id: string; client: SignalingClient }> {
  const identity = Identity.generate()
  const client = createSignalingClient(
    { publicKey: identity.publicKey, sign: (m) => identity.sign(m), WebSocket: WebSocket as never },
    { url, reconnect: false },
  )
  const id = await client.connect()
  return { id, client }
}

/** Ping-pong `count` candidate-sized (≈300 B) signals, paced at ≈ 80/s, between two peers; one-way latency = RTT / 2. */
async function signalLatency(urlA: string, urlB: string, count: number) {
  const a = await peer(urlA)
  const b = await peer(urlB)
  b.client.on('signal', (s) => b.client.signal('candidate', s.from, s.data as object))
  for (const x of [a, b]) x.client.on('error', (e) => console.error(`signal error: ${e.code} ${e.message}`))
  const candidate = {
    candidate: 'candidate:1 1 udp 2122260223 192.168.1.10 54321 typ host generation 0 ufrag x'.padEnd(
      300,
      'x',
    ),
  }
  const oneWay: number[] = []
  let pending: (() => void) | undefined
  a.client.on('signal', () => pending?.())
  const roundTrip = (timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      pending = () => {
        clearTimeout(timer)
        resolve(true)
      }
      a.client.signal('candidate', b.id, candidate)
    })
  // Warm-up: across nodes the first signal waits for b's DHT record (announced when b registered) and may dial
  // the P2P link; retry until a round trip succeeds, then 20 more untimed ones.
  let warm = false
  for (let i = 0; i < 30 && !warm; i++) warm = await roundTrip(1_000)
  if (!warm) throw new Error('no round trip between the peers')
  for (let i = 0; i < 20; i++) await roundTrip(5_000)
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    if (!(await roundTrip(10_000))) throw new Error('signal timed out')
    oneWay.push((performance.now() - t0) / 2)
    // Stay under the signaling server's per-connection rate limit (100 frames/s by default).
    await new Promise((r) => setTimeout(r, 12))
  }
  a.client.close()
  b.client.close()
  oneWay.sort((x, y) => x - y)
  return { p50Ms: +pct(oneWay, 50).toFixed(3), p99Ms: +pct(oneWay, 99).toFixed(3), samples: oneWay.length }
}

async function main(): Promise<void> {
  if (!existsSync(SERVER)) {
    const b = spawnSync('pnpm', ['--filter', '@x/node', 'build'], { cwd: APP, stdio: 'inherit' })
    if (b.status !== 0) throw new Error('build failed')
  }
  const dirs: string[] = []
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'x-node-bench-'))
    dirs.push(d)
    return d
  }
  if (TLS) {
    tlsArgs = makeCertificate(tmp())
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'
  }
  try {
    // 2. Cold start with an existing identity (first run creates it).
    const dir = tmp()
    await stopNode(await startNode(dir))
    const coldReady: number[] = []
    const coldHealthy: number[] = []
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now()
      const n = await startNode(dir)
      coldReady.push(n.readyMs)
      for (;;) {
        const res = await fetch(`${HTTP}://127.0.0.1:${n.ready.rest}/api/health/ready`).catch(() => undefined)
        if (res?.status === 200) break
        await new Promise((r) => setTimeout(r, 5))
      }
      coldHealthy.push(performance.now() - t0)
      await stopNode(n)
    }
    coldReady.sort((x, y) => x - y)
    coldHealthy.sort((x, y) => x - y)

    // 3 + 1. Idle memory, then REST throughput on the same node.
    const n = await startNode(dir)
    await new Promise((r) => setTimeout(r, 5_000))
    const idleRss = rssMiB(n.proc.pid!)
    const base = `${HTTP}://127.0.0.1:${n.ready.rest}`
    const health = await cannon(`${base}/api/health`)
    const peers = await cannon(`${base}/api/peers`)
    const rssAfterLoad = rssMiB(n.proc.pid!)
    await stopNode(n)

    // 4. Signal latency: same node vs across nodes (A → C through the federation).
    // Two nodes on one machine: a testnet, whose loopback links the dial policy refuses on a public network.
    const a = await startNode(tmp(), ['--bootstrap-interval-ms', '2000', '--allow-private-addresses', 'on'])
    const c = await startNode(tmp(), [
      '--allow-private-addresses',
      'on',
      '--bootstrap-interval-ms',
      '2000',
      '--seed-nodes',
      `127.0.0.1:${a.ready.dht}`,
    ])
    for (;;) {
      const body = (await (await fetch(`${HTTP}://127.0.0.1:${a.ready.rest}/api/peers`)).json()) as {
        list: { id: string; state: string }[]
      }
      if (body.list.some((l) => l.id === c.ready.nodeId && l.state === 'open')) break
      await new Promise((r) => setTimeout(r, 200))
    }
    const sameNode = await signalLatency(
      `${WS}://127.0.0.1:${a.ready.ws}/p2p-signaling`,
      `${WS}://127.0.0.1:${a.ready.ws}/p2p-signaling`,
      300,
    )
    const crossNode = await signalLatency(
      `${WS}://127.0.0.1:${a.ready.ws}/p2p-signaling`,
      `${WS}://127.0.0.1:${c.ready.ws}/p2p-signaling`,
      300,
    )
    await stopNode(a)
    await stopNode(c)

    const result = {
      node: spawnSync(NODE_BIN, ['--version'], { encoding: 'utf8' }).stdout.trim(),
      tls: TLS,
      cpus: (await import('node:os')).cpus().length,
      autocannon: { connections: CONNECTIONS, durationS: DURATION_S },
      restHealth: health,
      restPeers: peers,
      coldStartToReadyLineMs: { p50: +pct(coldReady, 50).toFixed(0), max: +coldReady.at(-1)!.toFixed(0) },
      coldStartToHealthyMs: { p50: +pct(coldHealthy, 50).toFixed(0), max: +coldHealthy.at(-1)!.toFixed(0) },
      idleRssMiB: idleRss,
      rssAfterLoadMiB: rssAfterLoad,
      signalLatencySameNode: sameNode,
      signalLatencyCrossNode: crossNode,
    }
    console.log(`\napps/node benchmarks (127.0.0.1, ${TLS ? 'TLS' : 'plain'}, node ${result.node})`)
    console.table({
      'GET /api/health': {
        'req/s': health.reqPerSec,
        'p50 ms': health.p50Ms,
        'p99 ms': health.p99Ms,
        non2xx: health.non2xx,
      },
      'GET /api/peers': {
        'req/s': peers.reqPerSec,
        'p50 ms': peers.p50Ms,
        'p99 ms': peers.p99Ms,
        non2xx: peers.non2xx,
      },
    })
    console.table({
      'cold start → READY line (ms)': {
        p50: result.coldStartToReadyLineMs.p50,
        max: result.coldStartToReadyLineMs.max,
      },
      'cold start → /api/health/ready 200 (ms)': {
        p50: result.coldStartToHealthyMs.p50,
        max: result.coldStartToHealthyMs.max,
      },
      'signal one-way, same node (ms)': { p50: sameNode.p50Ms, max: sameNode.p99Ms },
      'signal one-way, A → C across nodes (ms)': { p50: crossNode.p50Ms, max: crossNode.p99Ms },
    })
    console.log(
      `idle RSS ${idleRss} MiB; RSS after the REST load ${rssAfterLoad} MiB (signal "max" column is p99)`,
    )
    console.log(JSON.stringify(result))
  } finally {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
}

await main()
