import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import type { WebsocketProvider } from 'y-websocket'
import { createDocStore, createSyncServer, type CrdtDatabase } from '../src/index'
import { createManualClock } from '../src/testing'
import { tempLevel, type TempLevel } from './helpers'
import { connect, synced, until } from './ws-client'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.reverse()) await c()
  cleanups.length = 0
})

async function serve(
  level: TempLevel,
  components: Partial<Parameters<typeof createSyncServer>[0]> = {},
  db?: CrdtDatabase,
) {
  const store = createDocStore({ db: db ?? level.db })
  const server = createSyncServer({ store, ...components }, { keepaliveIntervalMs: 200 })
  const { port } = await server.listen({ port: 0 })
  const stop = async () => {
    await server.close()
    await store.close()
  }
  return { store, server, port, stop }
}

function track(p: WebsocketProvider): WebsocketProvider {
  cleanups.push(() => p.destroy())
  return p
}

describe('sync server with the real y-websocket client', () => {
  it('syncs two clients through the server and finds the text again after a restart', async () => {
    let level = await tempLevel()
    cleanups.push(() => level.dispose())
    let s = await serve(level)
    const a = track(connect(s.port, 'doc/1'))
    const b = track(connect(s.port, 'doc/1'))
    await Promise.all([synced(a), synced(b)])
    a.doc.getText('t').insert(0, 'hello from a')
    await until(b.doc, () => b.doc.getText('t').toJSON() === 'hello from a')
    b.doc.getText('t').insert(0, '> ')
    await until(a.doc, () => a.doc.getText('t').toJSON() === '> hello from a')
    expect(s.server.getStats().clients).toBe(2)
    a.destroy()
    b.destroy()
    await s.stop()
    level = await level.reopen()
    s = await serve(level)
    const c = track(connect(s.port, 'doc/1'))
    await synced(c)
    expect(c.doc.getText('t').toJSON()).toBe('> hello from a')
    await s.stop()
  })

  it('answers nothing before the document is loaded', async () => {
    const level = await tempLevel()
    cleanups.push(() => level.dispose())
    const pre = createDocStore({ db: level.db })
    await pre.applyUpdate('slow', Y.encodeStateAsUpdate(docWith('persisted text')))
    await pre.close()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let loadStarted!: () => void
    const started = new Promise<void>((r) => (loadStarted = r))
    const slowDb: CrdtDatabase = {
      get: (k) => level.db.get(k),
      batch: (ops) => level.db.batch(ops),
      close: () => level.db.close(),
      iterator: (o) =>
        o.gt?.startsWith('d!')
          ? (async function* () {
              loadStarted()
              await gate
              yield* level.db.iterator(o)
            })()
          : level.db.iterator(o),
    }
    const s = await serve(level, {}, slowDb)
    cleanups.push(s.stop)
    const p = track(connect(s.port, 'slow'))
    await started
    let syncedEarly = p.synced
    p.on('sync', () => (syncedEarly ||= p.doc.getText('t').toJSON() !== 'persisted text'))
    release()
    await synced(p)
    expect(syncedEarly).toBe(false)
    expect(p.doc.getText('t').toJSON()).toBe('persisted text')
  })

  it('refuses updates from read-only clients and closes denied ones with 4403 and a reason', async () => {
    const level = await tempLevel()
    cleanups.push(() => level.dispose())
    const s = await serve(level, {
      authorize: (_doc, req) => {
        const role = new URL(req.url ?? '/', 'http://x').searchParams.get('role')
        return role === 'writer' ? 'read-write' : role === 'reader' ? 'read-only' : 'deny'
      },
    })
    cleanups.push(s.stop)
    const writer = track(connect(s.port, 'acl', new Y.Doc(), { role: 'writer' }))
    const reader = track(connect(s.port, 'acl', new Y.Doc(), { role: 'reader' }))
    await Promise.all([synced(writer), synced(reader)])
    // The server answers a refused update with a y-websocket auth "permission denied" message, once (the stock
    // provider reports it with console.warn and stays connected for reading).
    const reasons: string[] = []
    let gotReason!: () => void
    const toldReadOnly = new Promise<void>((resolve) => (gotReason = resolve))
    reader.ws!.addEventListener('message', (event: MessageEvent) => {
      const d = decoding.createDecoder(new Uint8Array(event.data as ArrayBuffer))
      if (decoding.readVarUint(d) !== 2 || decoding.readVarUint(d) !== 0) return
      reasons.push(decoding.readVarString(d))
      gotReason()
    })
    reader.doc.getText('t').insert(0, 'vandalism')
    reader.doc.getText('t').insert(0, 'more ')
    writer.doc.getText('t').insert(0, 'legit')
    await until(reader.doc, () => reader.doc.getText('t').toJSON().includes('legit'))
    // The reader's edit reached neither the writer nor the disk.
    await s.store.flush()
    expect(writer.doc.getText('t').toJSON()).toBe('legit')
    await toldReadOnly
    const refused = s.server.getStats().refusedUpdates
    expect(refused).toBeGreaterThan(1)
    expect(s.server.getStats().errors.X_CRDT_READ_ONLY).toBe(refused)
    expect(reasons).toEqual(['read-only: your updates are not accepted']) // told once, not per update
    expect(reader.wsconnected).toBe(true)
    const denied = track(connect(s.port, 'acl', new Y.Doc(), { role: 'stranger' }))
    const closed = await new Promise<{ code: number; reason: string }>((resolve) =>
      denied.on('closed', (e: { code: number; reason: string }) => resolve(e)),
    )
    expect(closed).toEqual({ code: 4403, reason: 'access denied' })
    expect(s.server.getStats().deniedClients).toBe(1)
  })

  it('closes clients over maxClients with 1013 and counts X_CRDT_TOO_MANY_CLIENTS', async () => {
    const level = await tempLevel()
    cleanups.push(() => level.dispose())
    const store = createDocStore({ db: level.db })
    const server = createSyncServer({ store }, { maxClients: 1 })
    const { port } = await server.listen({ port: 0 })
    cleanups.push(async () => {
      await server.close()
      await store.close()
    })
    const first = track(connect(port, 'capped'))
    await synced(first)
    const second = new WebSocket(`ws://127.0.0.1:${port}/capped`)
    cleanups.push(() => second.terminate())
    const closed = await new Promise<{ code: number; reason: string }>((resolve) =>
      second.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    )
    expect(closed).toEqual({ code: 1013, reason: 'too many clients' })
    expect(server.getStats().errors.X_CRDT_TOO_MANY_CLIENTS).toBe(1)
    expect(first.wsconnected).toBe(true)
  })

  it('keeps an idle client alive with real messages and closes with 1001 on shutdown', async () => {
    const level = await tempLevel()
    cleanups.push(() => level.dispose())
    const s = await serve(level)
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/quiet`)
    cleanups.push(() => ws.terminate())
    const types: number[] = []
    let keepalive!: () => void
    const gotKeepalive = new Promise<void>((r) => (keepalive = r))
    ws.on('message', (data: Buffer) => {
      const d = decoding.createDecoder(new Uint8Array(data))
      const type = decoding.readVarUint(d)
      types.push(type)
      if (type === 1 && types.length > 1) keepalive()
    })
    await new Promise((r) => ws.once('open', r))
    await gotKeepalive // an empty awareness update arrives although the client never spoke
    expect(types[0]).toBe(0) // sync step 1 first
    const code = new Promise<number>((r) => ws.once('close', (c: number) => r(c)))
    await s.stop()
    expect(await code).toBe(1001)
  })

  it('closes a client that sends an oversize update with 4413, keeping the document', async () => {
    const level = await tempLevel()
    cleanups.push(() => level.dispose())
    const store = createDocStore({ db: level.db }, { maxDocumentBytes: 2000 })
    const server = createSyncServer({ store })
    const { port } = await server.listen({ port: 0 })
    cleanups.push(async () => {
      await server.close()
      await store.close()
    })
    const p = track(connect(port, 'big'))
    await synced(p)
    p.doc.getText('t').insert(0, 'x'.repeat(5000))
    const closed = await new Promise<{ code: number }>((r) => p.on('closed', (e: { code: number }) => r(e)))
    expect(closed.code).toBe(4413)
    expect(server.getStats().errors.X_CRDT_DOC_TOO_LARGE).toBe(1)
    const other = track(connect(port, 'big'))
    await synced(other)
    expect(other.doc.getText('t').toJSON()).toBe('')
  })
})

describe('limits on what one client may write', () => {
  async function limited(
    storeInit: Parameters<typeof createDocStore>[1],
    serverInit: Parameters<typeof createSyncServer>[1] = {},
    clock = createManualClock(),
  ) {
    const level = await tempLevel()
    cleanups.push(() => level.dispose())
    const store = createDocStore({ db: level.db }, storeInit)
    const server = createSyncServer({ store, clock }, serverInit)
    const { port } = await server.listen({ port: 0 })
    cleanups.push(async () => {
      await server.close()
      await store.close()
    })
    return { level, store, server, port, clock }
  }

  function closedWith(p: WebsocketProvider): Promise<{ code: number; reason: string }> {
    return new Promise((resolve) =>
      p.on('connection-close', (e: CloseEvent | null) => {
        if (e) resolve({ code: e.code, reason: e.reason })
      }),
    )
  }

  /** A sync update message carrying `update`. */
  function updateMessage(update: Uint8Array): Uint8Array {
    return frame((e) => {
      encoding.writeVarUint(e, 0)
      encoding.writeVarUint(e, 2)
      encoding.writeVarUint8Array(e, update)
    })
  }

  async function rawClient(port: number, doc: string): Promise<WebSocket> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/${doc}`)
    cleanups.push(() => ws.terminate())
    await new Promise((r) => ws.once('open', r))
    return ws
  }

  it('closes a client whose update exceeds maxUpdateBytes with 4413 "update too large", counted', async () => {
    const s = await limited({ maxUpdateBytes: 1000 })
    const p = track(connect(s.port, 'big-update'))
    await synced(p)
    const closed = closedWith(p)
    p.doc.getText('t').insert(0, 'x'.repeat(5000))
    expect(await closed).toEqual({ code: 4413, reason: 'update too large' })
    expect(s.server.getStats().errors.X_CRDT_UPDATE_TOO_LARGE).toBe(1)
    p.destroy()
    const other = track(connect(s.port, 'big-update'))
    await synced(other)
    expect(other.doc.getText('t').toJSON()).toBe('')
  })

  it('cuts off a message over maxMessageBytes with 1009, counted with the updates too large', async () => {
    const s = await limited({}, { maxMessageBytes: 2048 })
    const ws = await rawClient(s.port, 'huge-message')
    const code = new Promise<number>((r) => ws.once('close', (c: number) => r(c)))
    ws.send(new Uint8Array(4096))
    expect(await code).toBe(1009)
    expect(s.server.getStats().errors.X_CRDT_UPDATE_TOO_LARGE).toBe(1)
  })

  it('closes writers beyond the storage quota with 4507 "storage quota exceeded", counted; the data on disk stays within it', async () => {
    const s = await limited({ maxStoredBytes: 8_000 })
    const writer = track(connect(s.port, 'quota'))
    await synced(writer)
    const closed = closedWith(writer)
    for (let i = 0; i < 20; i++) writer.doc.getText('t').insert(0, `${i}`.padEnd(1000, '#'))
    expect(await closed).toEqual({ code: 4507, reason: 'storage quota exceeded' })
    writer.destroy()
    await s.store.flush()
    const stats = s.server.getStats()
    expect(stats.errors.X_CRDT_QUOTA_EXCEEDED).toBeGreaterThanOrEqual(1)
    expect(stats.bytesStored).toBeLessThanOrEqual(8_000)
    let onDisk = 0
    for await (const [, v] of s.level.db.iterator({ gt: 'd!', lt: 'd"' })) onDisk += v.length
    expect(onDisk).toBe(stats.bytesStored)
  })

  it('holds back a client over its write rate (paused, nothing dropped) until its allowance recovers', async () => {
    // 1 000 bytes/s with a burst of 2 000 bytes, on a clock that moves only when the test says so.
    const s = await limited({}, { writeBytesPerSecond: 1000, writeBurstBytes: 2000 })
    const fast = await rawClient(s.port, 'rate')
    const source = new Y.Doc()
    const updates: Uint8Array[] = []
    source.on('update', (u: Uint8Array) => updates.push(u))
    for (let i = 0; i < 5; i++) source.getText('t').insert(0, `${i}`.padEnd(880, '.'))
    const text = () => s.store.get('rate')?.getText('t').length ?? 0
    // Barrier: another client's update is applied after everything the fast client sent before it was read.
    const other = await rawClient(s.port, 'rate')
    let otherClock = 0
    const barrier = async () => {
      const d = new Y.Doc()
      d.clientID = 777
      const t = d.getText('b')
      const before = Y.encodeStateVector(d)
      t.insert(0, 'x'.repeat(++otherClock))
      other.send(updateMessage(Y.encodeStateAsUpdate(d, before)))
      const target = otherClock
      for (let i = 0; i < 100_000; i++) {
        if ((s.store.get('rate')?.getText('b').length ?? 0) >= target) return
        await new Promise((r) => setImmediate(r))
      }
      throw new Error('barrier not reached')
    }
    for (const u of updates.slice(0, 3)) fast.send(updateMessage(u))
    await barrier()
    // 3 × ~890 bytes: the third went beyond the burst, so the socket is paused after it.
    expect(text()).toBe(3 * 880)
    expect(s.server.getStats()).toMatchObject({ throttled: 1, errors: { X_CRDT_RATE_LIMITED: 1 } })
    for (const u of updates.slice(3)) fast.send(updateMessage(u))
    await barrier()
    expect(text()).toBe(3 * 880) // not read while paused
    s.clock.advance(500) // not yet: the debt is ~700 bytes
    await barrier()
    expect(text()).toBe(3 * 880)
    s.clock.advance(500) // paid: reading resumes, and the next two put it in debt again
    for (let i = 0; i < 100_000 && text() < 5 * 880; i++) await new Promise((r) => setImmediate(r))
    expect(text()).toBe(5 * 880)
    expect(s.server.getStats().throttled).toBe(2)
    expect(fast.readyState).toBe(WebSocket.OPEN)
  })
})

function docWith(text: string): Y.Doc {
  const d = new Y.Doc()
  d.getText('t').insert(0, text)
  return d
}

export function frame(write: (e: encoding.Encoder) => void): Uint8Array {
  const e = encoding.createEncoder()
  write(e)
  return encoding.toUint8Array(e)
}
