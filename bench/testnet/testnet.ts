/**
 * A real-process network on 127.0.0.1 (benchmark, not a test): `cd bench && pnpm testnet`.
 *
 * 1. Starts `--nodes` (20) built servers (`apps/node/dist/server.js`, built first if missing or `--build`), each with
 *    its own ports and data directory, bootstrapped off the first two, and waits for a full mesh of links.
 * 2. Puts `--peers` (200) native signaling peers on random nodes (ML-DSA-87 identities made here).
 * 3. Each peer signals `--signals` (5) random peers on other nodes: `delivery` is the fraction delivered,
 *    `p50Ms`/`p99Ms` the send → receive latency of those cross-node signals.
 * 4. Opens `--docs` (5) documents on every node and writes to them; SIGKILLs `--kill` (5) nodes (never the two
 *    seeds), edits the documents on the survivors, restarts the killed nodes on their old ports and data, and
 *    `converged` is the fraction of restarted nodes whose copies of every edited document equal the survivors'
 *    within 10 s of their restart.
 * 5. Prints a table (RSS per node from /proc) and, as its last line, one JSON object.
 *
 * Run it on a quiet machine: every node is a process, and 200 ML-DSA-87 identities are made here. Prove the script
 * at a tiny size with `pnpm testnet --nodes 4 --peers 20 --kill 1`. Every process started here is stopped by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { Identity } from '@x/pqc'
import { createSignalingClient, type SignalingClient } from '@x/signaling/client'

process.setMaxListeners(0) // y-websocket adds an exit listener per provider
const APP = join(dirname(fileURLToPath(import.meta.url)), '../../apps/node')
const SERVER = join(APP, 'dist/server.js')

const argv = process.argv.slice(2)
function flag(name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`)
  const v = i >= 0 ? Number(argv[i + 1]) : fallback
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} must be a non-negative integer`)
  return v
}
const NODES = flag('nodes', 20)
const PEERS = flag('peers', 200)
const SIGNALS = flag('signals', 5)
const KILL = flag('kill', 5)
const DOCS = flag('docs', 5)
const CONVERGE_MS = flag('converge-ms', 10_000)
const KEEP = argv.includes('--keep')
if (NODES < 3) throw new Error('--nodes must be at least 3')
if (KILL > NODES - 2) throw new Error('--kill must leave the two seed nodes alive')

interface Ready {
  nodeId: string
  rest: number
  ws: number
  dht: number
}
interface Node {
  index: number
  dataDir: string
  proc: ChildProcess
  ready: Ready
  alive: boolean
}

const root = mkdtempSync(join(tmpdir(), 'x-testnet-'))
const procs = new Set<ChildProcess>()

function log(line: string): void {
  process.stderr.write(`[testnet] ${line}\n`)
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : NaN
  } catch {
    return NaN
  }
}

async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs: number,
  everyMs = 200,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) return undefined
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

function spawnNode(index: number, dataDir: string, ports: Ready | undefined, seeds: string[]): Promise<Node> {
  const args = [
    SERVER,
    '--host',
    '127.0.0.1',
    '--rest-port',
    String(ports?.rest ?? 0),
    '--ws-port',
    String(ports?.ws ?? 0),
    '--dht-port',
    String(ports?.dht ?? 0),
    '--data-dir',
    dataDir,
    '--log-level',
    'warn',
    '--bootstrap-interval-ms',
    '5000',
    '--allow-private-addresses',
    'on',
    // A testnet is a closed network: its nodes replicate documents with each other (the default is no one).
    '--crdt-nodes',
    '*',
    ...(seeds.length > 0 ? ['--seed-nodes', seeds.join(',')] : []),
  ]
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  procs.add(proc)
  proc.once('exit', () => procs.delete(proc))
  // Logs on stdout; the banner and the READY line on stderr. Both go to the node's log file.
  const logFile = createWriteStream(join(dataDir, 'node.log'), { flags: 'a' })
  proc.stdout.pipe(logFile)
  return new Promise((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`node ${index} not ready in 60 s`)), 60_000)
    proc.stderr.on('data', (d: Buffer) => {
      buf += d.toString()
      logFile.write(d)
      const m = /^READY (.*)$/m.exec(buf)
      if (m) {
        clearTimeout(timer)
        buf = ''
        resolve({ index, dataDir, proc, ready: JSON.parse(m[1]!) as Ready, alive: true })
      }
    })
    proc.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`node ${index} exited (${code ?? signal}) before ready; see ${dataDir}/node.log`))
    })
  })
}

async function json<T>(url: string): Promise<T | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) })
    return res.ok || res.status === 503 ? ((await res.json()) as T) : undefined
  } catch {
    return undefined
  }
}

async function openLinks(n: Node): Promise<number> {
  const peers = await json<{ list: { kind: string; state: string; id: string }[] }>(
    `http://127.0.0.1:${n.ready.rest}/api/peers?limit=0`,
  )
  const open = peers?.list.filter((l) => l.kind === 'p2p-link' && l.state === 'open') ?? []
  return new Set(open.map((l) => l.id)).size
}

// ------------------------------------------------------------------ peers and signals

interface Peer {
  id: string
  node: number
  client: SignalingClient
}

async function makePeer(node: Node): Promise<Peer> {
  const identity = Identity.generate()
  const client = createSignalingClient(
    { publicKey: identity.publicKey, sign: (m) => identity.sign(m), WebSocket: WebSocket as never },
    { url: `ws://127.0.0.1:${node.ready.ws}/p2p-signaling`, reconnect: false },
  )
  const id = await client.connect()
  return { id, node: node.index, client }
}

// ------------------------------------------------------------------ documents

interface DocClient {
  doc: Y.Doc
  provider: WebsocketProvider
  text(): string
}

function openDoc(node: Node, name: string): DocClient {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(`ws://127.0.0.1:${node.ready.ws}/crdt`, name, doc, {
    WebSocketPolyfill: WebSocket as never,
    disableBc: true,
  })
  return { doc, provider, text: () => doc.getText('t').toJSON() }
}

async function synced(c: DocClient, timeoutMs: number): Promise<boolean> {
  return (await waitFor(() => c.provider.synced, timeoutMs, 50)) === true
}

// ------------------------------------------------------------------ run

async function main(): Promise<void> {
  if (!existsSync(SERVER) || argv.includes('--build')) {
    log('building apps/node (pnpm --filter @x/node build)…')
    const r = spawnSync('pnpm', ['--filter', '@x/node', 'build'], { stdio: 'inherit' })
    if (r.status !== 0) throw new Error('build failed')
  }
  const t0 = Date.now()
  // 1. Nodes: two seeds first, then the rest in batches of 4.
  const nodes: Node[] = []
  const dirs = Array.from({ length: NODES }, (_, i) => join(root, `node-${i}`))
  for (const d of dirs) spawnSync('mkdir', ['-p', d])
  nodes.push(await spawnNode(0, dirs[0]!, undefined, []))
  const seeds = [`127.0.0.1:${nodes[0]!.ready.dht}`]
  nodes.push(await spawnNode(1, dirs[1]!, undefined, seeds))
  seeds.push(`127.0.0.1:${nodes[1]!.ready.dht}`)
  for (let i = 2; i < NODES; i += 4) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(4, NODES - i) }, (_, k) =>
        spawnNode(i + k, dirs[i + k]!, undefined, seeds),
      ),
    )
    nodes.push(...batch)
  }
  const startedMs = Date.now() - t0
  log(`${NODES} nodes ready in ${startedMs} ms; waiting for a full mesh of links…`)
  const meshStart = Date.now()
  const mesh = await waitFor(
    async () => (await Promise.all(nodes.map(openLinks))).every((n) => n >= NODES - 1),
    120_000,
    500,
  )
  const meshMs = Date.now() - meshStart
  const linksAfterMesh = await Promise.all(nodes.map(openLinks))
  log(mesh ? `full mesh in ${meshMs} ms` : `no full mesh after ${meshMs} ms: ${linksAfterMesh.join(' ')}`)

  // 2. Peers on random nodes.
  let seed = 0x9e3779b9
  const rand = (n: number): number => {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0
    return seed % n
  }
  const peers: Peer[] = []
  for (let i = 0; i < PEERS; i += 20) {
    peers.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(20, PEERS - i) }, () => makePeer(nodes[rand(NODES)]!)),
      )),
    )
  }
  log(`${peers.length} peers registered; letting their DHT records spread (3 s)…`)
  await new Promise((r) => setTimeout(r, 3_000))

  // 3. Signals across nodes.
  const sentAt = new Map<string, number>()
  const latency: number[] = []
  const errors = new Map<string, number>()
  for (const p of peers) {
    p.client.on('signal', (s) => {
      const tag = (s.data as { tag?: string }).tag
      const at = tag === undefined ? undefined : sentAt.get(tag)
      if (at !== undefined && tag !== undefined) {
        latency.push(performance.now() - at)
        sentAt.delete(tag)
      }
    })
    p.client.on('error', (e) => errors.set(e.code, (errors.get(e.code) ?? 0) + 1))
    p.client.on('expire', () => errors.set('EXPIRED', (errors.get('EXPIRED') ?? 0) + 1))
  }
  let sent = 0
  for (const p of peers) {
    const others = peers.filter((q) => q.node !== p.node)
    for (let k = 0; k < SIGNALS && others.length > 0; k++) {
      const to = others[rand(others.length)]!
      const tag = `${sent++}`
      sentAt.set(tag, performance.now())
      p.client.signal('offer', to.id, { tag, sdp: 'v=0'.padEnd(300, 'x') })
    }
    await new Promise((r) => setTimeout(r, 2))
  }
  await waitFor(() => sentAt.size === 0, 15_000, 100)
  latency.sort((a, b) => a - b)
  const delivered = latency.length
  log(`signals: ${delivered}/${sent} delivered`)

  // 4. Documents, kills, edits, restarts.
  const docNames = Array.from({ length: DOCS }, (_, i) => `bench-doc-${i}-${t0}`)
  const clients = new Map<number, DocClient[]>()
  for (const n of nodes) {
    const list = docNames.map((name) => openDoc(n, name))
    clients.set(n.index, list)
  }
  for (const list of clients.values()) for (const c of list) await synced(c, 10_000)
  for (const n of nodes) {
    for (const c of clients.get(n.index)!)
      c.doc.getText('t').insert(c.doc.getText('t').length, `[${n.index}]`)
  }
  const everywhere = (list: DocClient[][]): boolean =>
    docNames.every((_, d) => list.every((l) => l[d]!.text() === list[0]![d]!.text()))
  const preConverged = await waitFor(() => everywhere([...clients.values()]), 20_000, 100)
  log(
    preConverged
      ? 'documents converged on every node before the kill'
      : 'documents NOT converged before the kill',
  )

  const killable = nodes.slice(2)
  const victims: Node[] = []
  while (victims.length < KILL) {
    const v = killable[rand(killable.length)]!
    if (!victims.includes(v)) victims.push(v)
  }
  for (const v of victims) {
    for (const c of clients.get(v.index)!) c.provider.destroy()
    clients.delete(v.index)
    v.proc.kill('SIGKILL')
    v.alive = false
  }
  await Promise.all(
    victims.map((v) => new Promise((r) => (v.proc.exitCode !== null ? r(null) : v.proc.once('exit', r)))),
  )
  log(`SIGKILLed nodes ${victims.map((v) => v.index).join(', ')}`)
  const survivors = nodes.filter((n) => n.alive)
  for (const n of survivors.slice(0, 3)) {
    for (const c of clients.get(n.index)!)
      c.doc.getText('t').insert(c.doc.getText('t').length, `<after-kill ${n.index}>`)
  }
  const postConverged = await waitFor(() => everywhere([...clients.values()]), 20_000, 100)
  const expected = docNames.map((_, d) => clients.get(survivors[0]!.index)![d]!.text())
  log(postConverged ? 'survivors agree on the edited documents' : 'survivors do NOT agree')

  const restartMs: number[] = []
  const convergeMs: number[] = []
  let converged = 0
  await Promise.all(
    victims.map(async (v) => {
      const t = Date.now()
      const restarted = await spawnNode(v.index, v.dataDir, v.ready, seeds)
      nodes[v.index] = restarted
      restartMs.push(Date.now() - t)
      const readyAt = Date.now()
      const list = docNames.map((name) => openDoc(restarted, name))
      clients.set(v.index, list)
      const ok = await waitFor(() => list.every((c, d) => c.text() === expected[d]), CONVERGE_MS, 50)
      if (ok) {
        converged++
        convergeMs.push(Date.now() - readyAt)
      }
    }),
  )
  convergeMs.sort((a, b) => a - b)

  // 5. Report.
  const rss = nodes.map((n) => rssMiB(n.proc.pid))
  const links = await Promise.all(nodes.map(openLinks))
  const rows = nodes.map((n, i) => ({
    node: i,
    id: n.ready.nodeId.slice(0, 8),
    ws: n.ready.ws,
    links: links[i],
    rssMiB: rss[i],
    restarted: victims.some((v) => v.index === i),
  }))
  console.table(rows)
  const result = {
    nodes: NODES,
    peers: peers.length,
    signals: sent,
    delivered,
    delivery: sent === 0 ? 1 : Math.round((delivered / sent) * 10_000) / 10_000,
    p50Ms: Math.round(pct(latency, 50) * 10) / 10,
    p99Ms: Math.round(pct(latency, 99) * 10) / 10,
    signalErrors: Object.fromEntries(errors),
    meshMs: mesh ? meshMs : null,
    killed: KILL,
    converged: KILL === 0 ? 1 : Math.round((converged / KILL) * 1000) / 1000,
    convergeMsMax: convergeMs.at(-1) ?? null,
    restartMsMax: Math.max(0, ...restartMs),
    rssMiB: rss,
    rssMiBMax: Math.max(...rss.filter((r) => Number.isFinite(r))),
    startedMs,
  }
  for (const list of clients.values()) for (const c of list) c.provider.destroy()
  for (const p of peers) p.client.close()
  await stopAll()
  console.log(JSON.stringify(result))
}

async function stopAll(): Promise<void> {
  await Promise.all(
    [...procs].map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve()
          const t = setTimeout(() => {
            p.kill('SIGKILL')
            resolve()
          }, 10_000)
          p.once('exit', () => {
            clearTimeout(t)
            resolve()
          })
          p.kill('SIGTERM')
        }),
    ),
  )
  if (!KEEP) rmSync(root, { recursive: true, force: true })
  else log(`data and logs kept in ${root}`)
}

process.on('SIGINT', () => void stopAll().then(() => process.exit(130)))
main().then(
  () => process.exit(0),
  async (err: unknown) => {
    console.error(err)
    await stopAll()
    process.exit(1)
  },
)
