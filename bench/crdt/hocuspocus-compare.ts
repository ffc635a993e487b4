// Side-by-side: @x/crdt-sync's Hocuspocus endpoint vs @hocuspocus/server 3.4.4 (wire-compatible with the v4
// provider), both persisting to LevelDB, each in its own child process (--expose-gc), clients = the real
// @hocuspocus/provider 4.8. Rows: (a) cold sync of a 10,000-edit document from disk, (b) 10,000 edits streamed
// from one provider to another, (c) 500 documents × 3 providers: time, server CPU, server memory.
// Run: cd bench && pnpm crdt:hocuspocus        Sizes: BENCH_EDITS, BENCH_DOCS, BENCH_CLIENTS, BENCH_COLD_RUNS.
// Prints a table, then one JSON line.
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'

type Impl = 'ours' | 'hocuspocus'
const IMPLS: Impl[] = ['ours', 'hocuspocus']
const EDITS = Number(process.env.BENCH_EDITS ?? 10_000)
const DOCS = Number(process.env.BENCH_DOCS ?? 500)
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 3)
const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 5)
const SERVER = fileURLToPath(new URL('./hocuspocus-server.ts', import.meta.url))

interface Server {
  port: number
  ask(cmd: 'mem' | 'cpu' | 'openDocs' | 'close'): Promise<Record<string, number>>
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

/** A provider on its own socket (a browser tab editing one document). */
function provider(port: number, name: string): HocuspocusProvider {
  const socket = new HocuspocusProviderWebsocket({
    url: `ws://127.0.0.1:${port}/hocuspocus`,
    WebSocketPolyfill: WebSocket,
  })
  const p = new HocuspocusProvider({ websocketProvider: socket, name, document: new Y.Doc() })
  p.attach()
  sockets.set(p, socket)
  return p
}

const sockets = new WeakMap<HocuspocusProvider, HocuspocusProviderWebsocket>()
function end(p: HocuspocusProvider): void {
  p.destroy()
  sockets.get(p)?.destroy()
}

function synced(p: HocuspocusProvider): Promise<void> {
  if (p.isSynced) return Promise.resolve()
  return new Promise((resolve) => p.on('synced', () => resolve()))
}

/** Every local change acknowledged by the server. */
function saved(p: HocuspocusProvider): Promise<void> {
  if (!p.hasUnsyncedChanges) return Promise.resolve()
  return new Promise((resolve) => {
    const on = ({ number }: { number: number }) => {
      if (number !== 0) return
      p.off('unsyncedChanges', on)
      resolve()
    }
    p.on('unsyncedChanges', on)
  })
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
const MB = (b: number) => (b / 1024 / 1024).toFixed(1)

/** One provider types `n` single-character edits (one transaction and message each); another waits for all. */
async function stream(s: Server, name: string, n: number): Promise<{ ms: number; cpuMs: number }> {
  const writer = provider(s.port, name)
  const observer = provider(s.port, name)
  await Promise.all([synced(writer), synced(observer)])
  const target = observer.document.getText('t').length + n
  await s.ask('cpu')
  const t0 = performance.now()
  const done = until(observer.document, () => observer.document.getText('t').length >= target)
  const text = writer.document.getText('t')
  for (let i = 0; i < n; i++) {
    text.insert(text.length, String.fromCharCode(97 + (i % 26)))
    if (i % 10 === 9) await tick()
  }
  await done
  const ms = performance.now() - t0
  await saved(writer)
  const { cpuMs } = await s.ask('cpu')
  end(writer)
  end(observer)
  return { ms, cpuMs: cpuMs! }
}

/** (a) A fresh server process, the document on disk only: connect until the provider holds all of it. */
async function scenarioA(impl: Impl) {
  const dir = await mkdtemp(join(tmpdir(), `hp-bench-a-${impl}-`))
  let s = await start(impl, dir)
  await stream(s, 'big', EDITS)
  await sleep(100) // the last provider left: Hocuspocus stores the document as it unloads
  await s.ask('close')
  const times: number[] = []
  let early = 0
  for (let i = 0; i < COLD_RUNS; i++) {
    s = await start(impl, dir)
    const t0 = performance.now()
    const p = provider(s.port, 'big')
    await synced(p)
    if (p.document.getText('t').length < EDITS) early++
    await until(p.document, () => p.document.getText('t').length >= EDITS)
    times.push(performance.now() - t0)
    end(p)
    await s.ask('close')
  }
  await rm(dir, { recursive: true, force: true })
  console.error(
    `(a) ${impl}: ${times.map((t) => t.toFixed(1)).join(', ')} ms; synced before complete ${early}×`,
  )
  return { firstMs: times[0]!, medianMs: median(times.length > 1 ? times.slice(1) : times), early }
}

async function scenarioB(impl: Impl) {
  const dir = await mkdtemp(join(tmpdir(), `hp-bench-b-${impl}-`))
  const s = await start(impl, dir)
  const r = await stream(s, 'typing', EDITS)
  await s.ask('close')
  await rm(dir, { recursive: true, force: true })
  console.error(`(b) ${impl}: ${r.ms.toFixed(0)} ms, server CPU ${r.cpuMs.toFixed(0)} ms`)
  return r
}

/** (c) DOCS documents with CLIENTS providers each (one socket per provider), every provider writes once. */
async function scenarioC(impl: Impl) {
  const dir = await mkdtemp(join(tmpdir(), `hp-bench-c-${impl}-`))
  const s = await start(impl, dir)
  const base = await s.ask('mem')
  await s.ask('cpu')
  const t0 = performance.now()
  const all: HocuspocusProvider[][] = []
  for (let i = 0; i < DOCS; i += 50) {
    const batch: HocuspocusProvider[][] = []
    for (let d = i; d < Math.min(DOCS, i + 50); d++) {
      batch.push(Array.from({ length: CLIENTS }, () => provider(s.port, `doc-${d}`)))
    }
    await Promise.all(batch.flat().map(synced))
    for (const clients of batch)
      clients.forEach((p, k) => p.document.getText('t').insert(0, `${k}`.repeat(100)))
    all.push(...batch)
  }
  await Promise.all(
    all.flatMap((clients) =>
      clients.map((p) => until(p.document, () => p.document.getText('t').length >= 100 * CLIENTS)),
    ),
  )
  await Promise.all(all.flat().map(saved))
  const ms = performance.now() - t0
  const { cpuMs } = await s.ask('cpu')
  const peak = await s.ask('mem')
  const open = (await s.ask('openDocs')).openDocs!
  for (const p of all.flat()) end(p)
  await s.ask('close')
  await rm(dir, { recursive: true, force: true })
  console.error(
    `(c) ${impl}: ${ms.toFixed(0)} ms, CPU ${cpuMs!.toFixed(0)} ms, heap ${MB(base.heapUsed!)} → ${MB(peak.heapUsed!)} MB`,
  )
  return { ms, cpuMs: cpuMs!, base, peak, open }
}

const a = {} as Record<Impl, Awaited<ReturnType<typeof scenarioA>>>
const b = {} as Record<Impl, Awaited<ReturnType<typeof scenarioB>>>
const c = {} as Record<Impl, Awaited<ReturnType<typeof scenarioC>>>
for (const impl of IMPLS) a[impl] = await scenarioA(impl)
for (const impl of IMPLS) b[impl] = await scenarioB(impl)
for (const impl of IMPLS) c[impl] = await scenarioC(impl)

const head = [
  'server',
  `(a) cold sync ms (first / median)`,
  'synced early',
  `(b) ${EDITS} edits ms`,
  '(b) CPU ms',
  `(c) ${DOCS}×${CLIENTS} ms`,
  '(c) CPU ms',
  '(c) heap MB (base → peak)',
  '(c) RSS MB',
]
const rows = IMPLS.map((impl) => [
  impl === 'ours' ? '@x/crdt-sync' : '@hocuspocus/server 3.4.4',
  `${a[impl].firstMs.toFixed(1)} / ${a[impl].medianMs.toFixed(1)}`,
  `${a[impl].early}/${COLD_RUNS}`,
  b[impl].ms.toFixed(0),
  b[impl].cpuMs.toFixed(0),
  c[impl].ms.toFixed(0),
  c[impl].cpuMs.toFixed(0),
  `${MB(c[impl].base.heapUsed!)} → ${MB(c[impl].peak.heapUsed!)}`,
  MB(c[impl].peak.rss!),
])
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
const line = (r: string[]) => `| ${r.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`
console.log(line(head))
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
for (const r of rows) console.log(line(r))
console.log(JSON.stringify({ bench: 'crdt-hocuspocus', edits: EDITS, docs: DOCS, clients: CLIENTS, a, b, c }))
process.exit(0)
