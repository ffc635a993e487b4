// The longest event-loop block while the largest accepted update is received, applied, persisted and compacted,
// then while a client joins that document and while a new store loads it from disk. Real LevelDB in a temp
// dir, real sync server on 127.0.0.1, the client in a child process (so its own work is not measured).
//
// Run: pnpm --filter @x/crdt-sync bench:event-loop [sizeMiB]    (default: the store's
// maxUpdateBytes, 4 MiB; `0.05` makes a quick smoke run). Prints a table, then one JSON line.
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ClassicLevel } from 'classic-level'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { PerformanceObserver } from 'node:perf_hooks'
import { createDocStore, createSyncServer } from '../src/index'

const MiB = 1024 * 1024
const MAX_UPDATE_BYTES = 4 * MiB // the store's default maxUpdateBytes
const MAX_DOCUMENT_CLIENTS = 20_000 // the store's default maxDocumentClients

// ---- child: sends one update file to a document and waits for the server to be done with it ----------------

if (process.argv[2] === '--client') {
  const [, , , url, file] = process.argv
  const update = new Uint8Array(await readFile(file!))
  const ws = new WebSocket(url!)
  ws.on('message', () => {
    if (sent) return
    sent = true
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, 0) // sync
    encoding.writeVarUint(e, 2) // update
    encoding.writeVarUint8Array(e, update)
    ws.send(encoding.toUint8Array(e))
  })
  let sent = false
  ws.on('close', (code, reason) => {
    process.stdout.write(JSON.stringify({ code, reason: reason.toString() }) + '\n')
    process.exit(0)
  })
  process.stdin.on('data', () => ws.close()) // the parent says it is done
  await new Promise(() => undefined)
}

// ---- shapes, each as large as the store accepts -------------------------------------------------------------

function rand(seed: number): () => number {
  let s = seed
  return () => (s = (s * 16807) % 2147483647) / 2147483647
}

/** Single-character inserts at random positions (one struct each). */
function randomInserts(bytes: number): Uint8Array {
  const d = new Y.Doc()
  const t = d.getText('t')
  const r = rand(42)
  const n = Math.floor(bytes / 18) // ~17.7 bytes per struct
  for (let i = 0; i < n; i++) t.insert(Math.floor(r() * (t.length + 1)), 'a')
  return Y.encodeStateAsUpdate(d)
}

/** One character from each of as many clients as a document may have. */
function manyClients(bytes: number): Uint8Array {
  const parts: Uint8Array[] = []
  let size = 0
  for (let n = 0; n < MAX_DOCUMENT_CLIENTS - 1 && size < bytes; n++) {
    const d = new Y.Doc()
    d.clientID = 1_000_000 + n
    d.getText('t').insert(0, 'a')
    const u = Y.encodeStateAsUpdate(d)
    parts.push(u)
    size += u.length
  }
  return Y.mergeUpdates(parts)
}

/** A text with every other character deleted: many structs and as many delete ranges. */
function alternatingDeletes(bytes: number): Uint8Array {
  const d = new Y.Doc({ gc: false }) // deleted content kept: the largest form
  const t = d.getText('t')
  const n = Math.floor(bytes / 11.5) // ~11 bytes per kept-and-deleted pair of characters
  t.insert(0, 'x'.repeat(n))
  d.transact(() => {
    for (let i = n - 1; i >= 0; i -= 2) t.delete(i, 1)
  })
  const update = Y.encodeStateAsUpdate(d)
  return update.length <= bytes ? update : alternatingDeletes(Math.floor(bytes * 0.95))
}

/** One paste: a single string struct. */
function paste(bytes: number): Uint8Array {
  const d = new Y.Doc()
  d.getText('t').insert(0, 'p'.repeat(bytes - 64))
  return Y.encodeStateAsUpdate(d)
}

/**
 * Crafted: items that all follow the same character, each with a different right origin, so Yjs scans every
 * earlier one to place the next (quadratic). Written by hand (Yjs itself never produces it). Returns the base
 * document (sent first) and the attack.
 */
function siblings(bytes: number): [Uint8Array, Uint8Array] {
  const n = Math.floor(bytes / 9)
  const base = encoding.createEncoder()
  encoding.writeVarUint(base, 1) // one client
  encoding.writeVarUint(base, 1) // one struct
  encoding.writeVarUint(base, 1) // client 1
  encoding.writeVarUint(base, 0) // clock 0
  encoding.writeUint8(base, 4) // string, no origins: parent info follows
  encoding.writeVarUint(base, 1) // parent is a root type
  encoding.writeVarString(base, 't')
  encoding.writeVarString(base, 'x' + 'T'.repeat(n))
  encoding.writeVarUint(base, 0) // empty delete set
  const attack = encoding.createEncoder()
  encoding.writeVarUint(attack, 1)
  encoding.writeVarUint(attack, n)
  encoding.writeVarUint(attack, 2) // client 2
  encoding.writeVarUint(attack, 0)
  for (let i = 0; i < n; i++) {
    encoding.writeUint8(attack, 4 | 128 | 64) // string with origin and right origin
    encoding.writeVarUint(attack, 1)
    encoding.writeVarUint(attack, 0) // origin: the 'x'
    encoding.writeVarUint(attack, 1)
    encoding.writeVarUint(attack, 1 + i) // right origin: a different 'T' each time
    encoding.writeVarString(attack, 'a')
  }
  encoding.writeVarUint(attack, 0)
  return [encoding.toUint8Array(base), encoding.toUint8Array(attack)]
}

// ---- the probe: the longest gap between two turns of the event loop -----------------------------------------

class LoopProbe {
  #last = performance.now()
  #max = 0
  #running = true
  constructor() {
    const tick = (): void => {
      const now = performance.now()
      this.#max = Math.max(this.#max, now - this.#last)
      this.#last = now
      if (this.#running) setImmediate(tick)
    }
    setImmediate(tick)
  }
  /** The longest gap since the last call, in ms. */
  take(): number {
    const max = Math.max(this.#max, performance.now() - this.#last)
    this.#max = 0
    return max
  }
  stop(): void {
    this.#running = false
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 50_000_000; i++) {
    if (check()) return
    await new Promise((r) => setImmediate(r))
  }
  throw new Error(`timed out waiting for ${what}`)
}

interface Row {
  shape: string
  updateBytes: number
  structs: string
  applyMs: number
  blockApplyMs: number
  blockPersistMs: number
  blockJoinMs: number
  blockLoadMs: number
  close: string
}

async function measure(shape: string, update: Uint8Array, before?: Uint8Array): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'crdt-loop-'))
  const level = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' })
  const db = level.sublevel<string, Uint8Array>('crdt', { keyEncoding: 'utf8', valueEncoding: 'view' })
  let store = createDocStore({ db })
  const server = createSyncServer({ store })
  const { port } = await server.listen({ port: 0 })
  if (before) await store.applyUpdate('doc', before)
  const file = join(dir, 'update.bin')
  await writeFile(file, update)
  const target = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update))
  const applied = (): boolean => {
    const doc = store.get('doc')
    if (!doc) return false
    const sv = Y.decodeStateVector(Y.encodeStateVector(doc))
    for (const [client, clock] of target) if ((sv.get(client) ?? 0) < clock) return false
    return true
  }

  const probe = new LoopProbe()
  const child = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--client', `ws://127.0.0.1:${port}/doc`, file],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  let closed: { code: number; reason: string } | undefined
  child.stdout.on('data', (d: Buffer) => (closed = JSON.parse(d.toString()) as typeof closed))
  probe.take()
  const t0 = performance.now()
  await until(() => applied() || closed !== undefined, 'the update to be applied or refused')
  const applyMs = performance.now() - t0
  const blockApplyMs = probe.take()
  await store.flush() // persistence, and the compaction the update triggered (if it did)
  await store.compact('doc') // (and one now if it did not: what the next one would cost)
  const blockPersistMs = probe.take()
  child.stdin.write('done\n')
  await until(() => closed !== undefined, 'the client to close')

  // A client joins the document: the server answers its state vector with the whole document.
  probe.take()
  const joiner = new WebSocket(`ws://127.0.0.1:${port}/doc`)
  let answered = false
  joiner.on('message', (data: Buffer) => {
    if (data[0] === 0 && data[1] === 1) answered = true // sync step 2
  })
  await new Promise((r) => joiner.once('open', r))
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0)
  encoding.writeVarUint(e, 0)
  encoding.writeVarUint8Array(e, new Uint8Array([0]))
  joiner.send(encoding.toUint8Array(e))
  await until(() => answered, 'the answer to the joining client')
  const blockJoinMs = probe.take()
  joiner.close()
  await server.close()
  await store.close()

  // A new store loads it from disk.
  store = createDocStore({ db })
  probe.take()
  const h = await store.open('doc')
  const blockLoadMs = probe.take()
  const structs = [...h.doc.store.clients.values()].reduce((n, s) => n + s.length, 0)
  h.release()
  await store.close()
  probe.stop()
  await level.close()
  await rm(dir, { recursive: true, force: true })
  return {
    shape,
    updateBytes: update.length,
    structs: String(structs),
    applyMs: Math.round(applyMs),
    blockApplyMs: +blockApplyMs.toFixed(1),
    blockPersistMs: +blockPersistMs.toFixed(1),
    blockJoinMs: +blockJoinMs.toFixed(1),
    blockLoadMs: +blockLoadMs.toFixed(1),
    close: closed && closed.code !== 1005 && closed.code !== 1000 ? `${closed.code} ${closed.reason}` : '',
  }
}

// Garbage-collection pauses over 20 ms, reported beside the blocks (they are blocks too).
const gcPauses: number[] = []
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (entry.duration > 20) gcPauses.push(+entry.duration.toFixed(1))
}).observe({ entryTypes: ['gc'] })
if (process.env.DEBUG_GAPS) {
  const o = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) console.error('gc', entry.duration.toFixed(1))
  })
  o.observe({ entryTypes: ['gc'] })
}

const sizeMiB = Number(process.argv[2] ?? MAX_UPDATE_BYTES / MiB)
const bytes = Math.min(MAX_UPDATE_BYTES - 1024, Math.floor(sizeMiB * MiB))
const rows: Row[] = []
const [base, attack] = siblings(bytes)
for (const [shape, make] of [
  ['paste', () => paste(bytes)],
  ['alternating deletes', () => alternatingDeletes(bytes)],
  ['many clients', () => manyClients(bytes)],
  ['random inserts', () => randomInserts(bytes)],
] as const) {
  rows.push(await measure(shape, make()))
}
rows.push(await measure('crafted siblings', attack, base))

console.log(
  `event-loop blocks (ms), largest accepted update ≤ ${(bytes / MiB).toFixed(2)} MiB, Node ${process.version}`,
)
console.log(
  'shape'.padEnd(20),
  'bytes'.padStart(9),
  'structs'.padStart(8),
  'apply ms'.padStart(9),
  'apply'.padStart(7),
  'persist'.padStart(8),
  'join'.padStart(7),
  'load'.padStart(7),
  '  client closed',
)
for (const r of rows) {
  console.log(
    r.shape.padEnd(20),
    String(r.updateBytes).padStart(9),
    r.structs.padStart(8),
    String(r.applyMs).padStart(9),
    String(r.blockApplyMs).padStart(7),
    String(r.blockPersistMs).padStart(8),
    String(r.blockJoinMs).padStart(7),
    String(r.blockLoadMs).padStart(7),
    ' ',
    r.close,
  )
}
const worst = Math.max(
  ...rows.flatMap((r) => [r.blockApplyMs, r.blockPersistMs, r.blockJoinMs, r.blockLoadMs]),
)
console.log(`GC pauses over 20 ms: ${gcPauses.length === 0 ? 'none' : gcPauses.join(', ')}`)
console.log(
  JSON.stringify({
    bench: 'crdt-event-loop',
    maxUpdateBytes: bytes,
    worstBlockMs: worst,
    gcPausesOver20Ms: gcPauses,
    rows,
  }),
)
