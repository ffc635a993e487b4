// Side-by-side: @x/crdt-sync vs @y/websocket-server 0.1.1 with y-leveldb persistence, same workloads,
// each server in its own child process (started with --expose-gc), clients = the real y-websocket provider.
// Run: cd bench && pnpm crdt        Prints a table, then one JSON line.
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

type Impl = 'ours' | 'reference'
const IMPLS: Impl[] = ['ours', 'reference']
const EDITS = 10_000
const COLD_RUNS = 5
const TYPING_ROUNDS = 3
const IDLE_DOCS = 1_000
// Documents opened, edited and evicted before the (c) baseline, so code that V8 compiles on first heavy use
// (a one-time cost, see memory.ts) is in the baseline rather than counted as residue. Same for both servers.
const WARMUP_DOCS = 100
const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url))

interface Server {
  port: number
  ask(cmd: 'mem' | 'openDocs' | 'close'): Promise<Record<string, number>>
}

const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of children) c.kill()
})

async function start(impl: Impl, dir: string): Promise<Server> {
  const child: ChildProcess = fork(SERVER, [impl, dir], {
    execArgv: ['--expose-gc', '--import', 'tsx', '--conditions=@x/source'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  let next = 0
  const waiting = new Map<number, (m: Record<string, number>) => void>()
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${impl} server exited with ${code}`)))
    child.on('message', (m: Record<string, number>) => {
      if (m.port !== undefined) resolve(m.port)
      else waiting.get(m.id!)?.(m)
    })
  })
  return {
    port,
    ask(cmd) {
      const id = ++next
      return new Promise((resolve) => {
        waiting.set(id, resolve)
        child.send({ id, cmd })
      })
    },
  }
}

function connect(port: number, name: string): WebsocketProvider {
  return new WebsocketProvider(`ws://127.0.0.1:${port}`, name, new Y.Doc(), {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true,
  })
}

function synced(p: WebsocketProvider): Promise<void> {
  if (p.synced) return Promise.resolve()
  return new Promise((resolve) => p.once('sync', (s: boolean) => s && resolve()))
}

function until(doc: Y.Doc, check: () => boolean): Promise<void> {
  if (check()) return Promise.resolve()
  return new Promise((resolve) => {
    const on = () => {
      if (!check()) return
      doc.off('update', on)
      resolve()
    }
    doc.on('update', on)
  })
}

const tick = () => new Promise((r) => setImmediate(r))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** One writer types `n` single-character edits (each its own transaction and message); an observer waits for all. */
async function type(port: number, name: string, n: number): Promise<number> {
  const writer = connect(port, name)
  const observer = connect(port, name)
  await Promise.all([synced(writer), synced(observer)])
  const target = observer.doc.getText('t').length + n
  const t0 = performance.now()
  const done = until(observer.doc, () => observer.doc.getText('t').length >= target)
  const text = writer.doc.getText('t')
  for (let i = 0; i < n; i++) {
    text.insert(text.length, String.fromCharCode(97 + (i % 26)))
    if (i % 10 === 9) await tick() // let the socket breathe, as a person typing fast would
  }
  await done
  const ms = performance.now() - t0
  writer.destroy()
  observer.destroy()
  return ms
}

/**
 * (a) Time from a fresh client's connect until it holds the whole document. The reference answers a cold
 * client with an empty document before y-leveldb has loaded (its 'sync' fires with 0 characters), then sends
 * the content as an update; both moments are recorded, and "complete" is the comparable figure.
 */
async function scenarioA(impl: Impl): Promise<{ firstMs: number; medianMs: number; emptySyncs: number }> {
  const dir = await mkdtemp(join(tmpdir(), `crdt-bench-a-${impl}-`))
  let s = await start(impl, dir)
  await type(s.port, 'big', EDITS)
  await s.ask('close')
  const times: number[] = []
  let emptySyncs = 0
  for (let i = 0; i < COLD_RUNS; i++) {
    s = await start(impl, dir) // a fresh process: the document is on disk only
    const t0 = performance.now()
    const p = connect(s.port, 'big')
    await synced(p)
    if (p.doc.getText('t').length < EDITS) emptySyncs++
    await until(p.doc, () => p.doc.getText('t').length >= EDITS)
    times.push(performance.now() - t0)
    p.destroy()
    await s.ask('close')
  }
  await rm(dir, { recursive: true, force: true })
  console.error(
    `(a) ${impl}: ${times.map((t) => t.toFixed(1)).join(', ')} ms; synced before complete ${emptySyncs}×`,
  )
  return { firstMs: times[0]!, medianMs: median(times.slice(1)), emptySyncs }
}

async function scenarioB(impl: Impl, round: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), `crdt-bench-b-${impl}-`))
  const s = await start(impl, dir)
  const ms = await type(s.port, `typing-${round}`, EDITS)
  console.error(`(b) ${impl}: ${ms.toFixed(0)} ms`)
  await s.ask('close')
  await rm(dir, { recursive: true, force: true })
  return ms
}

async function openIdle(port: number, names: string[]): Promise<WebsocketProvider[]> {
  const out: WebsocketProvider[] = []
  for (let i = 0; i < names.length; i += 100) {
    const batch = names.slice(i, i + 100).map((n) => connect(port, n))
    await Promise.all(batch.map(synced))
    for (const p of batch) p.doc.getText('t').insert(0, 'x'.repeat(100))
    out.push(...batch)
  }
  await sleep(500) // let the last edits reach the server
  return out
}

async function waitEvicted(s: Server): Promise<number> {
  const t0 = performance.now()
  while ((await s.ask('openDocs')).openDocs! > 0) {
    if (performance.now() - t0 > 60_000) throw new Error('documents never evicted')
    await sleep(100)
  }
  return performance.now() - t0
}

async function scenarioC(impl: Impl) {
  const dir = await mkdtemp(join(tmpdir(), `crdt-bench-c-${impl}-`))
  const s = await start(impl, dir)
  // Warm-up (JIT, module-level caches, socket buffers) over the same code paths, then the baseline.
  const warm = await openIdle(
    s.port,
    Array.from({ length: WARMUP_DOCS }, (_, i) => `warm-${i}`),
  )
  for (const p of warm) p.destroy()
  await waitEvicted(s)
  const base = await s.ask('mem')
  const providers = await openIdle(
    s.port,
    Array.from({ length: IDLE_DOCS }, (_, i) => `idle-${i}`),
  )
  const peak = await s.ask('mem')
  const open = (await s.ask('openDocs')).openDocs!
  for (const p of providers) p.destroy()
  const evictMs = await waitEvicted(s)
  const after = await s.ask('mem')
  await s.ask('close')
  await rm(dir, { recursive: true, force: true })
  console.error(`(c) ${impl}: heap ${base.heapUsed} → ${peak.heapUsed} → ${after.heapUsed}`)
  return { base, peak, after, open, evictMs, ratio: after.heapUsed! / base.heapUsed! }
}

const MB = (b: number) => (b / 1024 / 1024).toFixed(1)
const results: Record<string, unknown> = {}
const rows: string[][] = []

const a: Record<Impl, Awaited<ReturnType<typeof scenarioA>>> = {} as never
for (const impl of IMPLS) a[impl] = await scenarioA(impl)
const b: Record<Impl, number[]> = { ours: [], reference: [] }
for (let r = 0; r < TYPING_ROUNDS; r++) {
  for (const impl of r % 2 === 0 ? IMPLS : [...IMPLS].reverse()) b[impl].push(await scenarioB(impl, r))
}
const c: Record<Impl, Awaited<ReturnType<typeof scenarioC>>> = {} as never
for (const impl of IMPLS) c[impl] = await scenarioC(impl)

for (const impl of IMPLS) {
  const bm = median(b[impl])
  rows.push([
    impl,
    a[impl].firstMs.toFixed(1),
    a[impl].medianMs.toFixed(1),
    `${a[impl].emptySyncs}/${COLD_RUNS}`,
    bm.toFixed(0),
    ((EDITS / bm) * 1000).toFixed(0),
    `${MB(c[impl].base.heapUsed!)} → ${MB(c[impl].peak.heapUsed!)} → ${MB(c[impl].after.heapUsed!)}`,
    `${((c[impl].ratio - 1) * 100).toFixed(1)} %`,
    `${MB(c[impl].base.rss!)} → ${MB(c[impl].peak.rss!)} → ${MB(c[impl].after.rss!)}`,
  ])
  results[impl] = {
    aFirstSyncMs: +a[impl].firstMs.toFixed(1),
    aMedianSyncMs: +a[impl].medianMs.toFixed(1),
    aSyncedBeforeContent: a[impl].emptySyncs,
    bTypingMs: +bm.toFixed(1),
    bTypingRunsMs: b[impl].map((x) => +x.toFixed(1)),
    bEditsPerSecond: Math.round((EDITS / bm) * 1000),
    cHeapBaseBytes: c[impl].base.heapUsed,
    cHeapPeakBytes: c[impl].peak.heapUsed,
    cHeapAfterBytes: c[impl].after.heapUsed,
    cHeapAfterVsBase: +c[impl].ratio.toFixed(3),
    cRssBaseBytes: c[impl].base.rss,
    cRssPeakBytes: c[impl].peak.rss,
    cRssAfterBytes: c[impl].after.rss,
    cOpenDocsAtPeak: c[impl].open,
    cEvictionWaitMs: Math.round(c[impl].evictMs),
  }
}

const header = [
  'server',
  '(a) cold → all text, 1st ms',
  '(a) median of runs 2-5 ms',
  '(a) synced before content',
  '(b) 10k edits ms',
  '(b) edits/s',
  '(c) heap MB base → 1000 docs → evicted',
  '(c) heap after vs base',
  '(c) rss MB base → peak → after',
]
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
const line = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join(' | ')
console.log(
  `@x/crdt-sync vs @y/websocket-server 0.1.1 + y-leveldb 0.2.0 — ${EDITS} edits, ${IDLE_DOCS} idle docs`,
)
console.log(line(header))
console.log(widths.map((w) => '-'.repeat(w)).join('-|-'))
for (const r of rows) console.log(line(r))
console.log(
  `notes: servers run in separate processes with --expose-gc (gc forced before each memory reading); (c) baseline taken after ${WARMUP_DOCS} warm-up documents were opened, edited and evicted; ours evicts after 1 s idle here (default 30 s); the reference destroys a persisted doc when its last client leaves.`,
)
const ours = results.ours as Record<string, number>
const ref = results.reference as Record<string, number>
const bars = {
  aNoSlower: ours.aMedianSyncMs! <= ref.aMedianSyncMs! && ours.aFirstSyncMs! <= ref.aFirstSyncMs!,
  bNoSlower: ours.bTypingMs! <= ref.bTypingMs!,
  cWithin10Percent: ours.cHeapAfterVsBase! <= 1.1,
}
console.log(
  JSON.stringify({
    bench: 'crdt-compare',
    edits: EDITS,
    idleDocs: IDLE_DOCS,
    warmupDocs: WARMUP_DOCS,
    results,
    bars,
  }),
)
// Destroyed providers can leave sockets draining; the benchmark is done, so stop (and kill the servers) now.
process.exit(0)
