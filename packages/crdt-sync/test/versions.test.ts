import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import {
  createDocStore,
  createSyncServer,
  createVersionHistory,
  replicate,
  type DocStore,
} from '../src/index'
import { createManualClock, createMemoryLinkPair } from '../src/testing'
import { tempLevel, type TempLevel } from './helpers'
import { connect, synced, until } from './ws-client'
import { hpDoc, hpSocket, hpSynced, paragraphs, writeParagraph } from './hp-client'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.reverse()) await c()
  cleanups.length = 0
})

async function level(): Promise<TempLevel> {
  const l = await tempLevel()
  cleanups.push(() => l.dispose())
  return l
}

async function edit(store: DocStore, name: string, fn: (doc: Y.Doc) => void): Promise<void> {
  const h = await store.open(name)
  try {
    fn(h.doc)
    await h.whenDurable()
  } finally {
    h.release()
  }
}

let counter = 0
const hex = () => (++counter).toString(16).padStart(8, '0')

describe('version history', () => {
  it('keeps named and periodic versions with bounded retention, reads them as an update and as JSON, across a restart', async () => {
    let l = await level()
    const clock = createManualClock(1_000_000)
    let store = createDocStore({ db: l.db })
    let history = createVersionHistory(
      { store, clock, randomHex: hex },
      { periodicIntervalMs: 60_000, maxPeriodicVersions: 2, maxNamedVersions: 2 },
    )
    await expect(history.create('missing')).rejects.toMatchObject({ code: 'X_CRDT_DOC_NOT_FOUND' })
    await edit(store, 'doc', (d) => {
      d.getText('title').insert(0, 'Plan')
      d.getMap('meta').set('owner', 'ann')
      d.getArray('tags').push(['a', 'b'])
      writeParagraph(d, 'first')
    })
    const v1 = await history.create('doc', { name: 'draft' })
    expect(v1).toMatchObject({ kind: 'named', name: 'draft', createdAt: 1_000_000 })
    await edit(store, 'doc', (d) => d.getText('title').insert(4, ' B'))
    // Periodic: only a document changed since its newest version, and only once that one is old enough.
    clock.advance(30_000)
    expect(await history.tick()).toBe(0)
    for (let i = 0; i < 3; i++) {
      clock.advance(60_000)
      await edit(store, 'doc', (d) => d.getArray('tags').push([`p${i}`]))
      expect(await history.tick()).toBe(1)
    }
    clock.advance(60_000)
    expect(await history.tick()).toBe(0) // nothing changed since
    await history.create('doc', { name: 'second' })
    await history.create('doc', { name: 'third' })
    const list = await history.list('doc')
    // Newest first; two of each kind kept.
    expect(list.map((v) => v.name ?? v.kind)).toEqual(['third', 'second', 'periodic', 'periodic'])
    const { json, update, info } = await history.read('doc', list[3]!.id) // the older periodic one kept
    expect(info.kind).toBe('periodic')
    expect(json).toEqual({
      title: 'Plan B',
      meta: { owner: 'ann' },
      tags: ['a', 'b', 'p0', 'p1'],
      default: '<paragraph>first</paragraph>',
    })
    const check = new Y.Doc()
    Y.applyUpdate(check, update)
    expect(check.getArray('tags').toJSON()).toEqual(['a', 'b', 'p0', 'p1'])
    await expect(history.read('doc', v1.id)).rejects.toMatchObject({ code: 'X_CRDT_VERSION_NOT_FOUND' })
    // Stored in LevelDB: still there after a restart.
    history.close()
    await store.close()
    l = await l.reopen()
    cleanups.push(() => l.dispose())
    store = createDocStore({ db: l.db })
    history = createVersionHistory({ store, clock }, { periodicIntervalMs: 0 })
    expect((await history.list('doc')).map((v) => v.id)).toEqual(list.map((v) => v.id))
    history.close()
    await store.close()
  })

  it('keeps the versions of a document within a byte budget, so their companion stays loadable', async () => {
    let l = await level()
    const clock = createManualClock(1_000_000)
    // Small limits standing in for the defaults (32 MiB documents, 8 MiB of versions): the same ratio.
    const storeInit = { maxDocumentBytes: 256 * 1024 }
    let store = createDocStore({ db: l.db }, storeInit)
    let history = createVersionHistory(
      { store, clock, randomHex: hex },
      { periodicIntervalMs: 0, maxVersionBytes: 64 * 1024 },
    )
    // ~20 KiB that do not compress: each version is a full copy of it.
    const chunk = (i: number) =>
      Array.from({ length: 2_000 }, (_, j) => ((i * 7_919 + j * 104_729) % 1e9).toString(36)).join('')
    await edit(store, 'doc', (d) => d.getText('t').insert(0, chunk(0)))
    for (let i = 1; i <= 30; i++) {
      await edit(store, 'doc', (d) => d.getText('t').insert(0, 'x'))
      clock.advance(1_000)
      await history.create('doc', { name: `v${i}` })
    }
    const listed = await history.list('doc')
    expect(listed.length).toBeGreaterThan(0)
    expect(listed.reduce((n, v) => n + v.bytes, 0)).toBeLessThanOrEqual(64 * 1024)
    expect(listed[0]!.name).toBe('v30') // the newest are kept
    // A document larger than the whole budget gets no version (typed), and the ones kept stay.
    await edit(store, 'big', (d) => d.getText('t').insert(0, [1, 2, 3, 4, 5, 6, 7].map(chunk).join('')))
    await expect(history.create('big')).rejects.toMatchObject({ code: 'X_CRDT_DOC_TOO_LARGE' })
    // After a restart (the companion loaded from disk, within the store's limit): still there.
    history.close()
    await store.close()
    l = await l.reopen()
    cleanups.push(() => l.dispose())
    store = createDocStore({ db: l.db }, storeInit)
    history = createVersionHistory({ store, clock }, { periodicIntervalMs: 0 })
    expect((await history.list('doc')).map((v) => v.id)).toEqual(listed.map((v) => v.id))
    history.close()
    await store.close()
  })

  it('reads a companion another node wrote garbage into: ill-formed entries are skipped, never thrown on', async () => {
    const l = await level()
    const clock = createManualClock(1_000_000)
    const store = createDocStore({ db: l.db })
    const history = createVersionHistory({ store, clock, randomHex: hex }, { periodicIntervalMs: 0 })
    cleanups.push(async () => {
      history.close()
      await store.close()
    })
    await edit(store, 'doc', (d) => d.getText('t').insert(0, 'hello'))
    const good = await history.create('doc', { name: 'good' })
    // What a node trusted to write the companion could replicate into it.
    await edit(store, '.versions/doc', (d) => {
      const meta = d.getMap<unknown>('meta')
      const updates = d.getMap<unknown>('updates')
      meta.set('null', null)
      meta.set('odd', { id: 'odd', kind: 'named', createdAt: 'soon', bytes: -1 })
      updates.set('odd', 'not bytes')
      meta.set('bad', { id: 'bad', kind: 'named', createdAt: 2_000_000, bytes: 3 })
      updates.set('bad', new Uint8Array([1, 2, 3]))
    })
    expect((await history.list('doc')).map((v) => v.id)).toEqual(['bad', good.id])
    await expect(history.read('doc', 'odd')).rejects.toMatchObject({ code: 'X_CRDT_VERSION_NOT_FOUND' })
    await expect(history.read('doc', 'bad')).rejects.toMatchObject({ code: 'X_CRDT_VERSION_NOT_FOUND' })
    await expect(history.restore('doc', 'bad')).rejects.toMatchObject({ code: 'X_CRDT_VERSION_NOT_FOUND' })
    clock.advance(1_000)
    const next = await history.create('doc', { name: 'next' })
    expect((await history.list('doc')).map((v) => v.id)).toContain(next.id)
    expect((await history.read('doc', good.id)).json).toEqual({ t: 'hello' })
  })

  it('restores a version as a new change that a y-websocket and a Hocuspocus client both converge to', async () => {
    const store = createDocStore({ db: (await level()).db })
    const server = createSyncServer({ store }, { keepaliveIntervalMs: 200 })
    const { port } = await server.listen({ port: 0, hocuspocusPath: '/hocuspocus' })
    cleanups.push(async () => {
      await server.close()
      await store.close()
    })
    const history = createVersionHistory({ store }, { periodicIntervalMs: 0 })
    cleanups.push(() => history.close())
    const sock = hpSocket(port)
    cleanups.push(() => sock.destroy())
    const hp = hpDoc(sock, 'page')
    cleanups.push(() => hp.destroy())
    const yw = connect(port, 'page')
    cleanups.push(() => yw.destroy())
    await Promise.all([hpSynced(hp), synced(yw)])
    writeParagraph(hp.document, 'kept')
    yw.doc.getMap('settings').set('theme', 'dark')
    await until(yw.doc, () => paragraphs(yw.doc).length === 1)
    await until(hp.document, () => hp.document.getMap('settings').get('theme') === 'dark')
    await store.flush()
    const v = await history.create('page', { name: 'good' })
    writeParagraph(yw.doc, 'regretted')
    hp.document.getMap('settings').set('theme', 'neon')
    hp.document.getMap('settings').set('extra', 1)
    await until(hp.document, () => paragraphs(hp.document).length === 2)
    await until(yw.doc, () => yw.doc.getMap('settings').get('extra') === 1)
    const { before } = await history.restore('page', v.id)
    const restored = (d: Y.Doc) =>
      paragraphs(d).join('|') === 'kept' &&
      JSON.stringify(d.getMap('settings').toJSON()) === JSON.stringify({ theme: 'dark' })
    await Promise.all([
      until(yw.doc, () => restored(yw.doc)),
      until(hp.document, () => restored(hp.document)),
    ])
    expect(Y.encodeStateVector(yw.doc)).toEqual(Y.encodeStateVector(hp.document))
    // The state before the restore was kept, so the restore can itself be undone.
    expect((await history.read('page', before.id)).json).toMatchObject({
      default: '<paragraph>kept</paragraph><paragraph>regretted</paragraph>',
    })
    // A client may not open the versions themselves.
    const peek = connect(port, '.versions/page')
    cleanups.push(() => peek.destroy())
    const code = await new Promise<number>((resolve) =>
      peek.on('connection-close', (e: CloseEvent | null) => resolve(e?.code ?? 0)),
    )
    expect(code).toBe(4400)
  })

  it('replicates versions with the document', async () => {
    const l = await level()
    const stores = ['a', 'b'].map((n) =>
      createDocStore({
        db: l.level.sublevel<string, Uint8Array>(n, { keyEncoding: 'utf8', valueEncoding: 'view' }),
      }),
    )
    const [a, b] = stores as [DocStore, DocStore]
    const pair = createMemoryLinkPair()
    const reps = [
      replicate({ store: a, link: pair.a }, { resyncIntervalMs: 0 }),
      replicate({ store: b, link: pair.b }, { resyncIntervalMs: 0 }),
    ]
    const ha = createVersionHistory({ store: a }, { periodicIntervalMs: 0 })
    const hb = createVersionHistory({ store: b }, { periodicIntervalMs: 0 })
    await edit(a, 'doc', (d) => d.getText('t').insert(0, 'v1'))
    const v = await ha.create('doc', { name: 'one' })
    // b holds the versions once it holds the document (as with any document: by interest).
    const held = await b.open('doc')
    for (let i = 0; i < 200 && (await hb.list('doc')).length === 0; i++) {
      await pair.idle()
      await new Promise((r) => setImmediate(r))
    }
    expect((await hb.list('doc')).map((x) => x.id)).toEqual([v.id])
    expect((await hb.read('doc', v.id)).json).toEqual({ t: 'v1' })
    held.release()
    ha.close()
    hb.close()
    for (const r of reps) r.close()
    await Promise.all(stores.map((s) => s.close()))
  })
})
