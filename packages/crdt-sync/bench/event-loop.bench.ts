// The longest event-loop block while the largest accepted update is received, applied, persisted and compacted,
// then while a client joins that document and while a new store loads it from disk. Real LevelDB in a temp
// dir, real sync server on 127.0.0.1. Three processes: this one makes the updates, a server process per shape
// runs the store, the sync server and the probe, and a client process sends the update (so neither making nor
// sending it is measured, and the server's heap holds only what the server holds).
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

/** Single-character inserts at random positions (one struct each), as many as fit in `bytes`. */
function randomInserts(bytes: number, n = Math.floor(bytes / 19)): Uint8Array {
  const d = new Y.Doc()
  const t = d.getText('t')
  const r = rand(42)
  for (let i = 0; i < n; i++) t.insert(Math.floor(r() * (t.length + 1)), 'a')
  const update = Y.encodeStateAsUpdate(d)
  // ~18.5 bytes a struct, a little more as clocks grow: one more try, scaled down, if it came out too large.
  return update.length <= bytes
    ? update
    : randomInserts(bytes, Math.floor((n * bytes * 0.98) / update.length))
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

/**
 * A text of single characters with every other one deleted (as Yjs encodes it with `gc: false`): many structs
 * and half as many delete ranges. Written by hand: deleting every other character of a long Y.Text is itself
 * quadratic in Yjs.
 */
function alternatingDeletes(bytes: number): Uint8Array {
  const n = Math.floor(bytes / 10)
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1) // one client
  encoding.writeVarUint(e, n)
  encoding.writeVarUint(e, 7) // client 7
  encoding.writeVarUint(e, 0)
  encoding.writeUint8(e, 4) // the first: string, parent is the root type 't'
  encoding.writeVarUint(e, 1)
  encoding.writeVarString(e, 't')
  encoding.writeVarString(e, 'x')
  for (let i = 1; i < n; i++) {
    encoding.writeUint8(e, 4 | 128) // string after the previous character
    encoding.writeVarUint(e, 7)
    encoding.writeVarUint(e, i - 1)
    encoding.writeVarString(e, 'x')
  }
  encoding.writeVarUint(e, 1) // delete set: client 7, every odd clock
  encoding.writeVarUint(e, 7)
  encoding.writeVarUint(e, Math.floor(n / 2))
  for (let i = 1; i < n; i += 2) {
    encoding.writeVarUint(e, i)
    encoding.writeVarUint(e, 1)
  }
  return encoding.toUint8Array(e)
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
  #maxAt = 0
  #running = true
  /** GC pauses (start, duration), to tell how much of the longest gap was garbage collection. */
  readonly #gc: [number, number][] = []
  readonly #observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) this.#gc.push([e.startTime, e.duration])
  })
  constructor() {
    this.#observer.observe({ entryTypes: ['gc'] })
    const tick = (): void => {
      const now = performance.now()
      if (now - this.#last > this.#max) {
        this.#max = now - this.#last
        this.#maxAt = this.#last
      }
      this.#last = now
      if (this.#running) setImmediate(tick)
    }
    setImmediate(tick)
  }
  /** The longest gap since the last call, and the GC time inside it, in ms. */
  take(): [gap: number, gc: number] {
    const now = performance.now()
    if (now - this.#last > this.#max) {
      this.#max = now - this.#last
      this.#maxAt = this.#last
    }
    const [at, max] = [this.#maxAt, this.#max]
    const gc = this.#gc
      .filter(([start, d]) => start + d > at && start < at + max)
      .reduce((sum, [start, d]) => sum + Math.min(start + d, at + max) - Math.max(start, at), 0)
    this.#max = 0
    return [+max.toFixed(1), +gc.toFixed(1)]
  }
  stop(): void {
    this.#running = false
    this.#observer.disconnect()
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 50_000_000; i++) {
    if (check()) return
    await new Promise((r) => setImmediate(r))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** Longest block of each phase, and how much of it was garbage collection: [ms, ms]. */
interface Row {
  shape: string
  updateBytes: number
  structs: number
  applyMs: number
  apply: [number, number]
  persist: [number, number]
  join: [number, number]
  load: [number, number]
  close: string
}

/**
 * A running node is warm: before measuring, the same paths (reading, applying in slices, persisting, compacting,
 * answering a client, loading) run once on a small document, so V8 has compiled them.
 */
async function warmUp(store: ReturnType<typeof createDocStore>, port: number): Promise<void> {
  const d = new Y.Doc()
  const t = d.getText('t')
  const r = rand(7)
  for (let i = 0; i < 3_000; i++) t.insert(Math.floor(r() * (t.length + 1)), 'w')
  t.delete(10, 500)
  await store.applyUpdate('warm-up', Y.encodeStateAsUpdate(d))
  await store.applyUpdate('warm-up', alternatingDeletes(40_000))
  await store.flush()
  await store.compact('warm-up')
  const ws = new WebSocket(`ws://127.0.0.1:${port}/warm-up`)
  await new Promise((resolve) => ws.once('message', resolve))
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0)
  encoding.writeVarUint(e, 0)
  encoding.writeVarUint8Array(e, new Uint8Array([0]))
  ws.send(encoding.toUint8Array(e))
  await new Promise<void>((resolve) =>
    ws.on('message', (data: Buffer) => {
      if (data[0] === 0 && data[1] === 1) resolve()
    }),
  )
  ws.close()
  await store.evictIdle()
}

/** Runs in the server process: one shape, one fresh store and server. */
async function measure(shape: string, file: string, baseFile?: string): Promise<Row> {
  const update = new Uint8Array(await readFile(file))
  const before = baseFile === undefined ? undefined : new Uint8Array(await readFile(baseFile))
  const dir = await mkdtemp(join(tmpdir(), 'crdt-loop-'))
  const level = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' })
  const db = level.sublevel<string, Uint8Array>('crdt', { keyEncoding: 'utf8', valueEncoding: 'view' })
  let store = createDocStore({ db })
  const server = createSyncServer({ store })
  const { port } = await server.listen({ port: 0 })
  if (before) await store.applyUpdate('doc', before)
  await warmUp(store, port)
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
  child.stdin.on('error', () => undefined) // the client exits by itself once the server closed it
  let closed: { code: number; reason: string } | undefined
  child.stdout.on('data', (d: Buffer) => (closed = JSON.parse(d.toString()) as typeof closed))
  probe.take()
  const t0 = performance.now()
  await until(() => applied() || closed !== undefined, 'the update to be applied or refused')
  const applyMs = performance.now() - t0
  const apply = probe.take()
  await store.flush() // persistence, and the compaction the update triggered (if it did)
  await store.compact('doc') // (and one now if it did not: what the next one would cost)
  const persist = probe.take()
  if (closed === undefined) child.stdin.write('done\n')
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
  const joinBlock = probe.take()
  joiner.close()
  await server.close()
  await store.close()

  // A new store loads it from disk.
  store = createDocStore({ db })
  probe.take()
  const h = await store.open('doc')
  const load = probe.take()
  const structs = [...h.doc.store.clients.values()].reduce((n, s) => n + s.length, 0)
  h.release()
  await store.close()
  probe.stop()
  await level.close()
  await rm(dir, { recursive: true, force: true })
  return {
    shape,
    updateBytes: update.length,
    structs,
    applyMs: Math.round(applyMs),
    apply,
    persist,
    join: joinBlock,
    load,
    close: closed && closed.code !== 1005 && closed.code !== 1000 ? `${closed.code} ${closed.reason}` : '',
  }
}

// ---- server process: measure one shape and print its row ------------------------------------------------------

if (process.argv[2] === '--server') {
  const [, , , shape, file, baseFile] = process.argv
  const row = await measure(shape!, file!, baseFile === '-' ? undefined : baseFile)
  process.stdout.write(JSON.stringify(row) + '\n')
  process.exit(0)
}

// ---- driver: make the updates, run a server process per shape, print the table ------------------------------

function runServer(shape: string, file: string, baseFile = '-'): Promise<Row> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), '--server', shape, file, baseFile],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1)!) as Row)
      } catch (err) {
        reject(new Error(`server for ${shape} exited ${code}: ${out}`, { cause: err }))
      }
    })
  })
}

const sizeMiB = Number(process.argv[2] ?? MAX_UPDATE_BYTES / MiB)
const bytes = Math.min(MAX_UPDATE_BYTES - 1024, Math.floor(sizeMiB * MiB))
const work = await mkdtemp(join(tmpdir(), 'crdt-loop-updates-'))
const rows: Row[] = []
const [base, attack] = siblings(bytes)
await writeFile(join(work, 'siblings-base.bin'), base)
await writeFile(join(work, 'siblings.bin'), attack)
for (const [shape, make] of [
  ['paste', () => paste(bytes)],
  ['alternating deletes', () => alternatingDeletes(bytes)],
  ['many clients', () => manyClients(bytes)],
  ['random inserts', () => randomInserts(bytes)],
] as const) {
  const file = join(work, `${shape.replace(/ /g, '-')}.bin`)
  await writeFile(file, make())
  rows.push(await runServer(shape, file))
}
rows.push(await runServer('crafted siblings', join(work, 'siblings.bin'), join(work, 'siblings-base.bin')))
await rm(work, { recursive: true, force: true })

const cell = ([ms, gc]: [number, number]): string => (gc >= 1 ? `${ms} (gc ${Math.round(gc)})` : String(ms))
console.log(
  `Longest event-loop block per phase in ms (of which GC), largest accepted update ≤ ${(bytes / MiB).toFixed(2)} MiB, ` +
    `Node ${process.version}`,
)
console.log(
  'shape'.padEnd(20),
  'bytes'.padStart(9),
  'structs'.padStart(8),
  'apply ms'.padStart(9),
  'apply'.padStart(14),
  'persist'.padStart(14),
  'join'.padStart(14),
  'load'.padStart(14),
  '  client closed',
)
for (const r of rows) {
  console.log(
    r.shape.padEnd(20),
    String(r.updateBytes).padStart(9),
    String(r.structs).padStart(8),
    String(r.applyMs).padStart(9),
    cell(r.apply).padStart(14),
    cell(r.persist).padStart(14),
    cell(r.join).padStart(14),
    cell(r.load).padStart(14),
    ' ',
    r.close,
  )
}
const worst = Math.max(...rows.flatMap((r) => [r.apply[0], r.persist[0], r.join[0], r.load[0]]))
const worstWithoutGc = Math.max(
  ...rows.flatMap((r) => [r.apply, r.persist, r.join, r.load].map(([ms, gc]) => ms - gc)),
)
console.log(
  JSON.stringify({
    bench: 'crdt-event-loop',
    maxUpdateBytes: bytes,
    worstBlockMs: worst,
    worstBlockLessGcMs: +worstWithoutGc.toFixed(1),
    rows,
  }),
)
