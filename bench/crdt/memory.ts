// Leak hunt for scenario (c) of compare.ts: our server in its own process (--expose-gc), several rounds of
// 1 000 documents opened by real y-websocket clients then left idle and evicted, heap after gc per round, and
// optional heap snapshots (HEAP_SNAPSHOTS=<dir>) after the warm-up and after each round.
// Run: cd bench && pnpm exec tsx --conditions=@x/source crdt/memory.ts [ours|reference] [rounds]
// A leak grows the heap every round; a one-time cost (JIT code, lazily created module state) does not.
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const impl = process.argv[2] ?? 'ours'
const ROUNDS = Number(process.argv[3] ?? 3)
const DOCS = 1_000
const SNAP_DIR = process.env.HEAP_SNAPSHOTS
const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url))

const dir = await mkdtemp(join(tmpdir(), `crdt-mem-${impl}-`))
const child: ChildProcess = fork(SERVER, [impl, dir], {
  execArgv: ['--expose-gc', '--import', 'tsx', '--conditions=@x/source'],
  stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
})
process.on('exit', () => child.kill())
let next = 0
const waiting = new Map<number, (m: Record<string, number>) => void>()
const port = await new Promise<number>((resolve) => {
  child.on('message', (m: Record<string, number>) => {
    if (m.port !== undefined) resolve(m.port)
    else waiting.get(m.id!)?.(m)
  })
})
const ask = (cmd: string, extra: object = {}) =>
  new Promise<Record<string, number>>((resolve) => {
    const id = ++next
    waiting.set(id, resolve)
    child.send({ id, cmd, ...extra })
  })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function connect(name: string): WebsocketProvider {
  return new WebsocketProvider(`ws://127.0.0.1:${port}`, name, new Y.Doc(), {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true,
  })
}
const synced = (p: WebsocketProvider) =>
  p.synced ? Promise.resolve() : new Promise<void>((r) => p.once('sync', (s: boolean) => s && r()))

async function round(names: string[]): Promise<void> {
  const all: WebsocketProvider[] = []
  for (let i = 0; i < names.length; i += 100) {
    const batch = names.slice(i, i + 100).map(connect)
    await Promise.all(batch.map(synced))
    for (const p of batch) p.doc.getText('t').insert(0, 'x'.repeat(100))
    all.push(...batch)
  }
  await sleep(500)
  for (const p of all) p.destroy()
  const t0 = performance.now()
  while ((await ask('openDocs')).openDocs! > 0) {
    if (performance.now() - t0 > 60_000) throw new Error('never evicted')
    await sleep(100)
  }
}

const MB = (b: number) => (b / 1024 / 1024).toFixed(2)
const readings: { label: string; heapUsed: number }[] = []
async function reading(label: string): Promise<void> {
  await sleep(1_500) // let closed sockets and timers run out
  const m = await ask('mem')
  readings.push({ label, heapUsed: m.heapUsed! })
  console.log(`${label.padEnd(24)} heap ${MB(m.heapUsed!)} MB  rss ${MB(m.rss!)} MB`)
  if (SNAP_DIR)
    await ask('snapshot', { path: join(SNAP_DIR, `${impl}-${readings.length}-${label}.heapsnapshot`) })
}

await reading('fresh')
await round(['warm-0', 'warm-1', 'warm-2'])
await reading('after 3-doc warm-up')
for (let r = 0; r < ROUNDS; r++) {
  await round(Array.from({ length: DOCS }, (_, i) => `r${r}-doc-${i}`))
  await reading(`after round ${r + 1} (${DOCS} docs)`)
}
await ask('close')
await rm(dir, { recursive: true, force: true })
console.log(JSON.stringify({ bench: 'crdt-memory', impl, docs: DOCS, readings }))
process.exit(0)
