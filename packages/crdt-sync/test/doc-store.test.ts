import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { createDocStore, type CrdtDatabase, type DocStore } from '../src/index'
import { instrumented, tempLevel, type TempLevel } from './helpers'

let level: TempLevel | undefined
let store: DocStore | undefined

afterEach(async () => {
  await store?.close().catch(() => undefined)
  await level?.dispose()
  store = undefined
  level = undefined
})

function update(fn: (doc: Y.Doc) => void, doc = new Y.Doc()): Uint8Array {
  let out: Uint8Array = new Uint8Array()
  doc.once('update', (u: Uint8Array) => (out = u))
  fn(doc)
  return out
}

describe('DocStore', () => {
  it('persists updates and finds them again after reopening the database', async () => {
    level = await tempLevel()
    store = createDocStore({ db: level.db })
    const h = await store.open('notes')
    h.doc.getText('t').insert(0, 'hello ')
    await h.applyUpdate(update((d) => d.getText('t').insert(0, 'world')))
    await h.whenDurable()
    h.release()
    await store.close()
    level = await level.reopen()
    store = createDocStore({ db: level.db })
    const again = await store.open('notes')
    expect(again.doc.getText('t').toJSON()).toMatch(/hello |world/)
    expect(again.doc.getText('t').length).toBe(11)
    expect([...(await collect(store.listDocuments()))]).toEqual(['notes'])
  })

  it('announces an update only after the batch holding it completed, one batch per tick', async () => {
    level = await tempLevel()
    const db = instrumented(level.db)
    store = createDocStore({ db })
    const a = await store.open('a')
    const b = await store.open('b')
    const seen: string[] = []
    store.onUpdate((name) => seen.push(`${name}@${db.batches.length}`))
    a.doc.getText('t').insert(0, 'x')
    b.doc.getText('t').insert(0, 'y')
    a.doc.getText('t').insert(0, 'z')
    expect(seen).toEqual([]) // nothing relayed before the write
    let ran = false
    a.afterDurable(() => (ran = true))
    expect(ran).toBe(false)
    await store.flush()
    expect(db.batches).toHaveLength(1) // three changes, two documents, one batch
    expect(seen.sort()).toEqual(['a@1', 'a@1', 'b@1'])
    expect(ran).toBe(true)
  })

  it('compacts when updates outweigh the snapshot, and the content survives', async () => {
    level = await tempLevel()
    const db = instrumented(level.db)
    store = createDocStore({ db }, { compactionMinBytes: 200, compactionRatio: 1 })
    const h = await store.open('c')
    for (let i = 0; i < 300; i++) {
      h.doc.getText('t').insert(i, String(i % 10))
      await store.flush()
    }
    expect(store.getStats().lastCompaction?.name).toBe('c')
    expect(store.getStats().updatesTotal).toBe(300) // a counter: compaction does not take it back
    const keys: string[] = []
    for await (const [k] of level.db.iterator({ gt: 'd!', lt: 'd"' })) keys.push(k)
    expect(keys.filter((k) => k.includes('!u!')).length).toBeLessThan(300)
    expect(keys).toContain('d!c!s')
    const text = h.doc.getText('t').toJSON()
    h.release()
    await store.close()
    store = createDocStore({ db: level.db })
    const again = await store.open('c')
    expect(again.doc.getText('t').toJSON()).toBe(text)
    // Stored size stays within the ratio bound: snapshot + updates ≤ (1 + ratio) × snapshot + one batch.
    expect(store.getStats().bytesStored).toBeLessThan(3 * Y.encodeStateAsUpdate(again.doc).length + 200)
  })

  it('compacts under a steady stream of edits even when every flush finds a batch still in flight', async () => {
    level = await tempLevel()
    const real = level.db
    // Every batch takes two extra turns, so each per-tick flush overlaps the previous batch.
    const slow: CrdtDatabase = {
      get: (k) => real.get(k),
      iterator: (o) => real.iterator(o),
      close: () => real.close(),
      batch: async (ops) => {
        await new Promise((r) => setImmediate(r))
        await new Promise((r) => setImmediate(r))
        await real.batch(ops)
      },
    }
    store = createDocStore({ db: slow }, { compactionMinBytes: 200, compactionRatio: 1 })
    const h = await store.open('stream')
    for (let i = 0; i < 500; i++) {
      h.doc.getText('t').insert(i, String(i % 10))
      await new Promise((r) => setImmediate(r))
    }
    await store.flush()
    const keys: string[] = []
    for await (const [k] of real.iterator({ gt: 'd!', lt: 'd"' })) keys.push(k)
    expect(keys).toContain('d!stream!s')
    expect(keys.filter((k) => k.includes('!u!')).length).toBeLessThan(100)
    h.release()
  })

  it('compacts by update count too (many tiny updates load slowly), also when loading such a document', async () => {
    level = await tempLevel()
    const countUpdates = async (): Promise<number> => {
      let n = 0
      for await (const [k] of level!.db.iterator({ gt: 'd!', lt: 'd"' })) if (k.includes('!u!')) n++
      return n
    }
    const big = { compactionMinBytes: 1e9 } // the size rule never fires here
    store = createDocStore({ db: level.db }, { ...big, compactionMaxUpdates: 1_000 })
    let h = await store.open('keys')
    for (let i = 0; i < 300; i++) {
      h.doc.getText('t').insert(i, 'k')
      await store.flush()
    }
    h.release()
    expect(await countUpdates()).toBe(300)
    await store.close()
    store = createDocStore({ db: level.db }, { ...big, compactionMaxUpdates: 100 })
    h = await store.open('keys')
    await store.flush()
    expect(await countUpdates()).toBe(0) // compacted on load
    for (let i = 0; i < 250; i++) {
      h.doc.getText('t').insert(0, 'k')
      await store.flush()
    }
    expect(await countUpdates()).toBeLessThanOrEqual(100)
    expect(h.doc.getText('t').length).toBe(550)
    h.release()
  })

  it('counts bytesStored exactly across writes during the first scan, eviction and reload, without per-document state', async () => {
    level = await tempLevel()
    // Real sizes on disk: sum of the snapshot and update values of every document.
    const onDisk = async (): Promise<number> => {
      let n = 0
      for await (const [, v] of level!.db.iterator({ gt: 'd!', lt: 'd"' })) n += v.length
      return n
    }
    let now = 0
    const clock = { now: () => now }
    store = createDocStore({ db: level.db, clock }, { idleTimeoutMs: 1, compactionMinBytes: 64 })
    for (let i = 0; i < 20; i++)
      await store.applyUpdate(
        `d${i}`,
        update((d) => d.getText('t').insert(0, 'x'.repeat(i + 1))),
      )
    expect(store.getStats().bytesStored).toBe(await onDisk())
    await store.close()
    // A new store over the same data: documents are written while its metadata scan is still running.
    store = createDocStore({ db: level.db, clock }, { idleTimeoutMs: 1, compactionMinBytes: 64 })
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store!.applyUpdate(
          `d${(i * 7) % 25}`,
          update((d) => d.getText('t').insert(0, 'y'.repeat(40))),
        ),
      ),
    )
    await store.flush()
    expect(store.getStats().bytesStored).toBe(await onDisk())
    for (let round = 0; round < 3; round++) {
      now += 10
      expect(await store.evictIdle()).toBeGreaterThan(0)
      expect(store.getStats().openDocuments).toBe(0)
      for (let i = 0; i < 25; i += 3) {
        await store.applyUpdate(
          `d${i}`,
          update((d) => d.getText('t').insert(0, 'z'.repeat(30))),
        )
      }
      await store.compact('d3')
      expect(store.getStats().bytesStored).toBe(await onDisk())
    }
  })

  it('evicts idle documents after the idle timeout (injected clock), never held ones', async () => {
    level = await tempLevel()
    let now = 1_000_000
    store = createDocStore({ db: level.db, clock: { now: () => now } }, { idleTimeoutMs: 1000 })
    const held = await store.open('held')
    const idle = await store.open('idle')
    idle.doc.getText('t').insert(0, 'bye')
    idle.release()
    expect(await store.evictIdle()).toBe(0)
    now += 1000
    expect(await store.evictIdle()).toBe(1)
    expect(store.get('idle')).toBeUndefined()
    expect(store.get('held')).toBe(held.doc)
    const back = await store.open('idle')
    expect(back.doc.getText('t').toJSON()).toBe('bye')
  })

  it('caps open documents: evicts the least recently used idle one, else X_CRDT_TOO_MANY_DOCS', async () => {
    level = await tempLevel()
    store = createDocStore({ db: level.db }, { maxOpenDocuments: 2 })
    const a = await store.open('a')
    a.doc.getText('t').insert(0, 'a')
    a.release()
    const b = await store.open('b')
    const c = await store.open('c')
    expect(store.get('a')).toBeUndefined()
    await expect(store.open('d')).rejects.toMatchObject({ code: 'X_CRDT_TOO_MANY_DOCS' })
    b.release()
    c.release()
    const a2 = await store.open('a')
    expect(a2.doc.getText('t').toJSON()).toBe('a')
    expect(store.getStats().errors.X_CRDT_TOO_MANY_DOCS).toBe(1)
  })

  it('refuses updates that would exceed maxDocumentBytes and malformed updates, leaving the doc as it was', async () => {
    level = await tempLevel()
    store = createDocStore({ db: level.db }, { maxDocumentBytes: 1000 })
    const h = await store.open('small')
    await h.applyUpdate(update((d) => d.getText('t').insert(0, 'ok')))
    await expect(
      h.applyUpdate(update((d) => d.getText('t').insert(0, 'x'.repeat(2000)))),
    ).rejects.toMatchObject({
      code: 'X_CRDT_DOC_TOO_LARGE',
    })
    await expect(h.applyUpdate(new Uint8Array([1, 200, 7, 7, 7]))).rejects.toMatchObject({
      code: 'X_CRDT_BAD_MESSAGE',
    })
    expect(h.doc.getText('t').toJSON()).toBe('ok')
  })

  it('refuses an update over maxUpdateBytes, and new clients over maxDocumentClients, applying nothing', async () => {
    level = await tempLevel()
    store = createDocStore({ db: level.db }, { maxUpdateBytes: 1000, maxDocumentClients: 3 })
    const h = await store.open('capped')
    await expect(
      h.applyUpdate(update((d) => d.getText('t').insert(0, 'x'.repeat(1001)))),
    ).rejects.toMatchObject({
      code: 'X_CRDT_UPDATE_TOO_LARGE',
    })
    // Three clients fit; an update bringing two more does not, and none of it is applied.
    for (const id of [1, 2, 3])
      await h.applyUpdate(update((d) => ((d.clientID = id), d.getText('t').insert(0, 'a'))))
    const two = Y.mergeUpdates(
      [4, 5].map((id) => update((d) => ((d.clientID = id), d.getText('t').insert(0, 'b')))),
    )
    await expect(h.applyUpdate(two)).rejects.toMatchObject({ code: 'X_CRDT_DOC_TOO_LARGE' })
    // A known client may go on writing.
    const known = new Y.Doc()
    Y.applyUpdate(known, Y.encodeStateAsUpdate(h.doc))
    known.clientID = 2 // (after the update: Yjs gives a doc a new ID when an update carries its own)
    const sv = Y.encodeStateVector(known)
    known.getText('t').insert(0, 'c')
    await h.applyUpdate(Y.encodeStateAsUpdate(known, sv))
    expect(h.doc.getText('t').length).toBe(4)
    expect(h.doc.store.clients.size).toBe(3)
    expect(store.getStats().errors).toMatchObject({ X_CRDT_UPDATE_TOO_LARGE: 1, X_CRDT_DOC_TOO_LARGE: 1 })
  })

  it('refuses updates beyond the storage quota with X_CRDT_QUOTA_EXCEEDED, on a real LevelDB, across documents', async () => {
    level = await tempLevel()
    store = createDocStore(
      { db: level.db },
      { maxStoredBytes: 20_000, compactionMinBytes: 1e9, compactionMaxUpdates: 1e9 },
    )
    const chunk = (n: number) => update((d) => d.getText('t').insert(0, `${n}`.padEnd(1000, '.')))
    let accepted = 0
    let refused = 0
    for (let i = 0; i < 40; i++) {
      try {
        await store.applyUpdate(`doc-${i % 4}`, chunk(i))
        accepted++
      } catch (err) {
        expect(err).toMatchObject({ code: 'X_CRDT_QUOTA_EXCEEDED' })
        refused++
      }
    }
    const { bytesStored, maxStoredBytes, errors } = store.getStats()
    expect(accepted).toBeGreaterThan(10)
    expect(refused).toBe(40 - accepted)
    expect(errors.X_CRDT_QUOTA_EXCEEDED).toBe(refused)
    expect(bytesStored).toBeLessThanOrEqual(maxStoredBytes)
    expect(bytesStored).toBeGreaterThan(maxStoredBytes - 1100)
    // What is on disk agrees.
    let onDisk = 0
    for await (const [, v] of level.db.iterator({ gt: 'd!', lt: 'd"' })) onDisk += v.length
    expect(onDisk).toBe(bytesStored)
  })

  it('applies a large update in slices, one per turn of the event loop, after the updates before it', async () => {
    level = await tempLevel()
    store = createDocStore({ db: level.db })
    const source = new Y.Doc()
    let seed = 11
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647
    const t = source.getText('t')
    for (let i = 0; i < 3000; i++) t.insert(Math.floor(rand() * (t.length + 1)), 'z') // ~3 000 structs
    const big = Y.encodeStateAsUpdate(source)
    const h = await store.open('sliced')
    let turns = 0
    const ticker = setInterval(() => turns++, 0)
    const first = h.applyUpdate(big)
    // A small update sent right after waits for the large one (it is not applied out of order).
    const after = new Y.Doc()
    Y.applyUpdate(after, big)
    after.getText('t').insert(0, '>')
    const small = Y.encodeStateAsUpdate(after, Y.encodeStateVector(source))
    const second = h.applyUpdate(small)
    expect(h.doc.getText('t').length).toBe(0)
    await first
    expect(h.doc.getText('t').toJSON()).toBe(t.toJSON())
    await second
    clearInterval(ticker)
    expect(h.doc.getText('t').toJSON()).toBe(after.getText('t').toJSON())
    expect(h.doc.store.pendingStructs).toBeNull()
    expect(turns).toBeGreaterThanOrEqual(2) // at most 1 000 structs a turn: the loop ran in between
    await h.whenDurable()
    h.release()
    // A new store loads it (in slices too) and finds the same text.
    await store.close()
    store = createDocStore({ db: level.db })
    const again = await store.open('sliced')
    expect(again.doc.getText('t').toJSON()).toBe(after.getText('t').toJSON())
  })

  it('drops the rest of an update that takes more than maxApplyMs to apply, with X_CRDT_UPDATE_TOO_LARGE', async () => {
    level = await tempLevel()
    store = createDocStore({ db: level.db }, { maxApplyMs: 1 })
    const source = new Y.Doc()
    let seed = 5
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647
    const t = source.getText('t')
    for (let i = 0; i < 5000; i++) t.insert(Math.floor(rand() * (t.length + 1)), 'q')
    const h = await store.open('slow')
    await expect(h.applyUpdate(Y.encodeStateAsUpdate(source))).rejects.toMatchObject({
      code: 'X_CRDT_UPDATE_TOO_LARGE',
    })
    const applied = h.doc.getText('t').length
    expect(applied).toBeGreaterThan(0) // what it applied before the budget ran out stays, like any change
    expect(applied).toBeLessThan(5000)
    expect(store.getStats().errors.X_CRDT_UPDATE_TOO_LARGE).toBe(1)
    await h.whenDurable()
    h.release()
  })

  it('surfaces a failed write: health degraded, waiters rejected, document dropped, nothing announced', async () => {
    level = await tempLevel()
    const db = instrumented(level.db)
    store = createDocStore({ db })
    const h = await store.open('f')
    const announced: string[] = []
    const failed: string[] = []
    store.onUpdate((n) => announced.push(n))
    store.onDocumentFailed((n, e) => failed.push(`${n}:${e.code}`))
    db.failWrites = true
    h.doc.getText('t').insert(0, 'lost')
    await expect(h.whenDurable()).rejects.toMatchObject({ code: 'X_CRDT_DOC_FAILED' })
    expect(announced).toEqual([])
    expect(failed).toEqual(['f:X_CRDT_DOC_FAILED'])
    expect(store.health.status).toBe('degraded')
    expect(store.health.lastError?.code).toBe('X_CRDT_STORAGE')
    expect(store.get('f')).toBeUndefined()
    db.failWrites = false
    const again = await store.open('f')
    again.doc.getText('t').insert(0, 'kept')
    await again.whenDurable()
    expect(store.health.status).toBe('ok')
  })

  it('reads state vectors from the metadata index without loading the document', async () => {
    level = await tempLevel()
    store = createDocStore({ db: level.db })
    const h = await store.open('sv')
    h.doc.getText('t').insert(0, 'abc')
    const expected = Y.encodeStateVector(h.doc)
    await h.whenDurable()
    h.release()
    await store.close()
    store = createDocStore({ db: level.db })
    expect(await store.getStateVector('sv')).toEqual(expected)
    expect(store.get('sv')).toBeUndefined()
    expect(await store.getStateVector('nothing')).toEqual(new Uint8Array([0]))
  })

  it('lists and counts documents whose name starts with ~ (or any character sorting after it) like any other', async () => {
    level = await tempLevel()
    store = createDocStore({ db: level.db })
    const names = ['plain', '~tilde', '~', 'z~', '\u00e9t\u00e9', '\u{1F600}smile']
    for (const name of names)
      await store.applyUpdate(
        name,
        update((d) => d.getText('t').insert(0, name)),
      )
    expect((await collect(store.listDocuments())).sort()).toEqual([...names].sort())
    const total = store.getStats().bytesStored
    await store.close()
    // A fresh store totals the stored bytes from the metadata index: every document counts.
    store = createDocStore({ db: level.db })
    await store.open('plain').then((h) => h.release())
    for (let i = 0; i < 100 && store.getStats().bytesStored !== total; i++)
      await new Promise((r) => setImmediate(r))
    expect(store.getStats().bytesStored).toBe(total)
    for (const name of names) expect(await store.has(name)).toBe(true)
    expect(await store.has('absent')).toBe(false)
  })

  it('rejects bad names and use after close with typed errors; closes the db only when it owns it', async () => {
    level = await tempLevel()
    store = createDocStore({ db: level.db })
    await expect(store.open('')).rejects.toMatchObject({ code: 'X_CRDT_BAD_DOC_NAME' })
    await expect(store.open('a\u0000b')).rejects.toMatchObject({ code: 'X_CRDT_BAD_DOC_NAME' })
    const odd = await store.open('a!b/c d')
    odd.doc.getText('t').insert(0, '!')
    await store.close()
    await expect(store.open('x')).rejects.toMatchObject({ code: 'X_CRDT_CLOSED' })
    expect(level.level.status).toBe('open')
    const owned = createDocStore({ db: level.db }, { ownsDatabase: true })
    expect([...(await collect(owned.listDocuments()))]).toEqual(['a!b/c d'])
    await owned.close()
  })
})

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}
