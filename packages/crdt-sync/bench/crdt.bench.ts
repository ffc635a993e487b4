// Store micro-benchmark on a real LevelDB in a temp dir: persisted updates/s, cold load, compaction.
// Run: pnpm --filter @x/crdt-sync bench     Prints a table, then one JSON line.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import * as Y from 'yjs'
import { createDocStore } from '../src/index'

const UPDATES = 10_000
const DOCS = 1_000

const dir = await mkdtemp(join(tmpdir(), 'crdt-sync-bench-'))
const level = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' })
const db = level.sublevel<string, Uint8Array>('crdt', { keyEncoding: 'utf8', valueEncoding: 'view' })

// Pre-encode UPDATES single-character edits from one remote client.
const source = new Y.Doc()
const updates: Uint8Array[] = []
source.on('update', (u: Uint8Array) => updates.push(u))
for (let i = 0; i < UPDATES; i++) source.getText('t').insert(i, String.fromCharCode(97 + (i % 26)))

let store = createDocStore({ db })
const h = await store.open('bench')
let t0 = performance.now()
for (let i = 0; i < UPDATES; i++) {
  void h.applyUpdate(updates[i]!) // one keystroke each: applied before the call returns
  if (i % 100 === 99) await new Promise((r) => setImmediate(r)) // arrivals spread over ticks
}
await h.whenDurable()
const applyMs = performance.now() - t0
h.release()
const stats = store.getStats()
await store.close()

store = createDocStore({ db })
t0 = performance.now()
const cold = await store.open('bench')
const loadMs = performance.now() - t0
if (cold.doc.getText('t').length !== UPDATES) throw new Error('lost updates')
t0 = performance.now()
await store.compact('bench')
const compactMs = performance.now() - t0
cold.release()

t0 = performance.now()
for (let i = 0; i < DOCS; i++) {
  const d = await store.open(`doc-${i}`)
  d.doc.getText('t').insert(0, 'hello')
  d.release()
}
await store.flush()
const manyMs = performance.now() - t0
await store.close()
await level.close()
await rm(dir, { recursive: true, force: true })

const rows = [
  [
    `apply + persist ${UPDATES} single-char updates`,
    `${applyMs.toFixed(0)} ms`,
    `${((UPDATES / applyMs) * 1000).toFixed(0)} updates/s`,
  ],
  [`cold load of that document`, `${loadMs.toFixed(1)} ms`, `${stats.bytesStored} bytes stored`],
  [`compact it`, `${compactMs.toFixed(1)} ms`, ''],
  [
    `open + edit + persist ${DOCS} documents`,
    `${manyMs.toFixed(0)} ms`,
    `${((DOCS / manyMs) * 1000).toFixed(0)} docs/s`,
  ],
]
for (const r of rows) console.log(`${r[0]!.padEnd(46)} ${r[1]!.padStart(10)}  ${r[2]}`)
console.log(
  JSON.stringify({
    bench: 'crdt-sync',
    updates: UPDATES,
    applyPersistMs: +applyMs.toFixed(1),
    updatesPerSecond: Math.round((UPDATES / applyMs) * 1000),
    coldLoadMs: +loadMs.toFixed(1),
    compactMs: +compactMs.toFixed(1),
    openEditPersist1000DocsMs: +manyMs.toFixed(1),
  }),
)
