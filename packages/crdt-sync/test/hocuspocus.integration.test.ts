import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import type { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { createDocStore, createSyncServer, type Grant, type SyncServerComponents } from '../src/index'
import { createManualClock } from '../src/testing'
import { tempLevel, type TempLevel } from './helpers'
import { connect, synced, until } from './ws-client'
import { hpDoc, hpSaved, hpSocket, hpSynced, nextEvent, paragraphs, writeParagraph } from './hp-client'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.reverse()) await c()
  cleanups.length = 0
})

async function serve(
  level: TempLevel,
  components: Partial<SyncServerComponents> = {},
  init: Parameters<typeof createSyncServer>[1] = {},
) {
  const store = createDocStore({ db: level.db })
  const server = createSyncServer({ store, ...components }, { keepaliveIntervalMs: 200, ...init })
  const { port } = await server.listen({ port: 0, hocuspocusPath: '/hocuspocus' })
  const stop = async () => {
    await server.close()
    await store.close()
  }
  return { store, server, port, stop }
}

async function level(): Promise<TempLevel> {
  const l = await tempLevel()
  cleanups.push(() => l.dispose())
  return l
}

function socket(port: number): HocuspocusProviderWebsocket {
  const s = hpSocket(port)
  cleanups.push(() => s.destroy())
  return s
}

function track(p: HocuspocusProvider): HocuspocusProvider {
  cleanups.push(() => p.destroy())
  return p
}

describe('Hocuspocus endpoint with the real @hocuspocus/provider', () => {
  it('multiplexes two documents over one socket, edited as Tiptap edits a Y.XmlFragment, and keeps them across a restart', async () => {
    let l = await level()
    let s = await serve(l)
    const one = socket(s.port)
    const a1 = track(hpDoc(one, 'notes/a'))
    const b1 = track(hpDoc(one, 'notes/b'))
    const two = socket(s.port)
    const a2 = track(hpDoc(two, 'notes/a'))
    const b2 = track(hpDoc(two, 'notes/b'))
    await Promise.all([a1, b1, a2, b2].map(hpSynced))
    expect(s.server.getStats()).toMatchObject({ clients: 2, sessions: 4, rooms: 2 })
    writeParagraph(a1.document, 'first paragraph of a')
    writeParagraph(b2.document, 'first paragraph of b')
    await until(a2.document, () => paragraphs(a2.document).length === 1)
    await until(b1.document, () => paragraphs(b1.document).length === 1)
    writeParagraph(a2.document, 'answer in a', 0)
    await until(a1.document, () => paragraphs(a1.document).length === 2)
    expect(paragraphs(a1.document)).toEqual(['answer in a', 'first paragraph of a'])
    expect(paragraphs(b1.document)).toEqual(['first paragraph of b'])
    // Each change was acknowledged by the server once on disk.
    await Promise.all([a1, a2, b2].map(hpSaved))
    for (const p of [a1, b1, a2, b2]) p.destroy()
    await s.stop()
    l = await l.reopen()
    cleanups.push(() => l.dispose())
    s = await serve(l)
    const three = socket(s.port)
    const a3 = track(hpDoc(three, 'notes/a'))
    await hpSynced(a3)
    expect(paragraphs(a3.document)).toEqual(['answer in a', 'first paragraph of a'])
    await s.stop()
  })

  it('puts a y-websocket client and a Hocuspocus client on one document: edits and presence both ways', async () => {
    const s = await serve(await level())
    cleanups.push(s.stop)
    const hp = track(hpDoc(socket(s.port), 'shared'))
    const yw = connect(s.port, 'shared')
    cleanups.push(() => yw.destroy())
    await Promise.all([hpSynced(hp), synced(yw)])
    writeParagraph(hp.document, 'from Hocuspocus')
    await until(yw.doc, () => paragraphs(yw.doc).length === 1)
    writeParagraph(yw.doc, 'from y-websocket')
    await until(hp.document, () => paragraphs(hp.document).length === 2)
    expect(paragraphs(hp.document)).toEqual(paragraphs(yw.doc))
    expect(Y.encodeStateVector(hp.document)).toEqual(Y.encodeStateVector(yw.doc))
    // Presence crosses protocols too: one awareness per document.
    hp.setAwarenessField('user', { name: 'hp' })
    yw.awareness.setLocalStateField('user', { name: 'yw' })
    const names = (states: Map<number, Record<string, unknown>>) =>
      [...states.values()].map((st) => (st.user as { name?: string } | undefined)?.name).filter(Boolean)
    await new Promise<void>((resolve) => {
      const check = () => {
        if (names(yw.awareness.getStates()).includes('hp') && names(hp.awareness!.getStates()).includes('yw'))
          resolve()
      }
      yw.awareness.on('change', check)
      hp.awareness!.on('change', check)
      check()
    })
  })

  it('authenticates with the scope authorize gives; denies with the reason; read-only edits are refused, never applied', async () => {
    const authorize = (_doc: string, _req: unknown, token: string | undefined): Grant => {
      if (token === 'writer') return { access: 'read-write' }
      if (token === 'reader') return { access: 'read-only' }
      return { access: 'deny', code: 'X_CRDT_BAD_TOKEN', reason: 'invalid token' }
    }
    const s = await serve(await level(), { authorize })
    cleanups.push(s.stop)
    const sock = socket(s.port)
    const writer = track(hpDoc(sock, 'acl', { token: 'writer' }))
    const reader = track(hpDoc(sock, 'acl-2', { token: 'reader' }))
    expect(await nextEvent<{ scope: string }>(writer, 'authenticated')).toEqual({ scope: 'read-write' })
    expect(
      reader.authorizedScope ?? (await nextEvent<{ scope: string }>(reader, 'authenticated')).scope,
    ).toBe('readonly')
    await Promise.all([hpSynced(writer), hpSynced(reader)])
    // A second provider of 'acl-2' with write access, on another socket, to see what the reader can do.
    const editor = track(hpDoc(socket(s.port), 'acl-2', { token: 'writer' }))
    await hpSynced(editor)
    writeParagraph(editor.document, 'editor text')
    await until(reader.document, () => paragraphs(reader.document).length === 1) // the reader reads
    writeParagraph(reader.document, 'vandalism')
    // The server answered with "refused", the change stays unsynced on the reader, and nobody else has it.
    await waitUntil(() => s.server.getStats().refusedUpdates >= 1)
    await s.store.flush()
    expect(reader.hasUnsyncedChanges).toBe(true)
    expect(paragraphs(editor.document)).toEqual(['editor text'])
    expect(paragraphs(s.store.get('acl-2')!)).toEqual(['editor text'])
    expect(s.server.getStats().errors.X_CRDT_READ_ONLY).toBeGreaterThanOrEqual(1)
    // No token (the provider sends ''): denied with the reason; nothing opened.
    const stranger = track(hpDoc(sock, 'acl-3'))
    expect(await nextEvent<{ reason: string }>(stranger, 'authenticationFailed')).toEqual({
      reason: 'invalid token',
    })
    expect(s.store.get('acl-3')).toBeUndefined()
    expect(s.server.getStats().errors.X_CRDT_BAD_TOKEN).toBe(1)
    expect(writer.isSynced && writer.isAuthenticated).toBe(true) // the socket's other documents go on
  })

  it('revokes mid-session: a downgrade is announced and enforced, a revocation closes the session only', async () => {
    const s = await serve(await level(), {
      authorize: (_doc, _req, token) => ({ access: 'read-write', subject: token }),
    })
    cleanups.push(s.stop)
    const sock = socket(s.port)
    const alice = track(hpDoc(sock, 'board', { token: 'alice' }))
    const aliceOther = track(hpDoc(sock, 'other', { token: 'alice' }))
    const bob = track(hpDoc(socket(s.port), 'board', { token: 'bob' }))
    await Promise.all([alice, aliceOther, bob].map(hpSynced))
    const downgraded = nextEvent<{ scope: string }>(bob, 'authenticated')
    expect(s.server.restrict((x) => (x.grant.subject === 'bob' ? 'read-only' : undefined))).toBe(1)
    expect(await downgraded).toEqual({ scope: 'readonly' })
    writeParagraph(bob.document, 'after the downgrade')
    await waitUntil(() => s.server.getStats().refusedUpdates >= 1)
    expect(paragraphs(alice.document)).toEqual([])
    // Revoking alice's access to 'board' closes that session, not her other document on the same socket.
    const failed = nextEvent<{ reason: string }>(alice, 'authenticationFailed')
    const closed = nextEvent<{ event: { reason: string } }>(alice, 'close')
    expect(
      s.server.restrict(
        (x) => (x.grant.subject === 'alice' && x.docName === 'board' ? 'deny' : undefined),
        'access revoked by the operator',
      ),
    ).toBe(1)
    expect(await failed).toEqual({ reason: 'access revoked by the operator' })
    expect((await closed).event.reason).toBe('access revoked by the operator')
    writeParagraph(alice.document, 'after the revocation')
    writeParagraph(aliceOther.document, 'still allowed')
    await until(s.store.get('other')!, () => paragraphs(s.store.get('other')!).length === 1)
    await s.store.flush()
    expect(paragraphs(s.store.get('board')!)).toEqual([])
    expect(s.server.getStats()).toMatchObject({ restrictedSessions: 2, sessions: 2 })
    expect(s.server.getStats().droppedMessages).toBeGreaterThanOrEqual(1) // alice's late edit, dropped
  })

  it('asks for a fresh token before the grant expires, keeps the session on one, closes at expiry or on a refused one', async () => {
    const clock = createManualClock(1_000_000)
    const s = await serve(
      await level(),
      {
        clock,
        authorize: (_doc, _req, token) =>
          token === 'stale'
            ? { access: 'deny', code: 'X_CRDT_TOKEN_EXPIRED', reason: 'token expired' }
            : { access: 'read-write', expiresAt: clock.now() + 60_000, tokenId: token },
      },
      { tokenRefreshMs: 10_000 },
    )
    cleanups.push(s.stop)
    const sock = socket(s.port)
    let freshIssued = 0
    let staleIssued = 0
    // Two valid tokens, then a stale one; and a provider whose token function has nothing fresh to give.
    const fresh = track(
      hpDoc(sock, 'timed', { token: () => (++freshIssued <= 2 ? `t${freshIssued}` : 'stale') }),
    )
    const stale = track(hpDoc(sock, 'timed-2', { token: () => (++staleIssued === 1 ? 'first' : 'stale') }))
    const yw = connect(s.port, 'timed-3', new Y.Doc(), { token: 'yw' })
    cleanups.push(() => yw.destroy())
    await Promise.all([hpSynced(fresh), hpSynced(stale), synced(yw)])
    const staleFailed = nextEvent<{ reason: string }>(stale, 'authenticationFailed')
    clock.advance(50_001) // 10 s before the grants expire: both providers are asked for their token again
    expect(await staleFailed).toEqual({ reason: 'token expired' })
    await waitUntil(() => freshIssued === 2)
    await waitUntil(() => s.server.getStats().sessions === 2)
    // The first grants' expiry: the y-websocket client (no way to refresh in band) is closed with 4401.
    const ywClosed = new Promise<{ code: number; reason: string }>((resolve) =>
      yw.on('closed', (e: { code: number; reason: string }) => resolve(e)),
    )
    clock.advance(10_000)
    expect(await ywClosed).toEqual({ code: 4401, reason: 'token expired' })
    // The refreshed Hocuspocus session stays, and writes.
    writeParagraph(fresh.document, 'written after the first token expired')
    await hpSaved(fresh)
    expect(s.server.getStats()).toMatchObject({ sessions: 1, expiredSessions: 1 })
    // Asked again 10 s before the second grant ends, the provider's token is refused: the session is closed.
    const closed = nextEvent<{ event: { reason: string } }>(fresh, 'close')
    clock.advance(40_000)
    expect((await closed).event.reason).toBe('token expired')
    expect(s.server.getStats().errors.X_CRDT_TOKEN_EXPIRED).toBe(3)
  })

  it('asks once for a fresh token when the grant it has ends within tokenRefreshMs, not again for the same expiry', async () => {
    const clock = createManualClock(1_000_000)
    const expiresAt = clock.now() + 5_000 // sooner than tokenRefreshMs: asked at once
    let decided = 0
    const s = await serve(
      await level(),
      {
        clock,
        authorize: () => {
          decided++
          return { access: 'read-write', expiresAt }
        },
      },
      { tokenRefreshMs: 10_000 },
    )
    cleanups.push(s.stop)
    let issued = 0
    // The provider's token function has nothing fresher to give: the same token, the same expiry.
    const p = track(hpDoc(socket(s.port), 'short', { token: () => `t${++issued}` }))
    await hpSynced(p)
    // Round trips through the server: enough for a request/answer loop to show.
    for (let i = 0; i < 5; i++) {
      writeParagraph(p.document, `p${i}`)
      await hpSaved(p)
    }
    expect(issued).toBeLessThanOrEqual(2) // the first token, and one answer to the one request
    expect(decided).toBeLessThanOrEqual(2)
    // The session still ends at the expiry.
    const closed = nextEvent<{ event: { reason: string } }>(p, 'close')
    clock.advance(5_000)
    expect((await closed).event.reason).toBe('token expired')
  })

  it('gives each client address a share of the sessions, so one address cannot open every document the store holds', async () => {
    const s = await serve(await level(), {}, { maxSessionsPerAddress: 3 })
    cleanups.push(s.stop)
    const sockA = socket(s.port)
    const sockB = socket(s.port)
    const docs = [hpDoc(sockA, 'share-1'), hpDoc(sockA, 'share-2'), hpDoc(sockB, 'share-3')].map(track)
    await Promise.all(docs.map(hpSynced))
    // A fourth, on either socket, is refused with a reason; its document is not opened.
    const fourth = track(hpDoc(sockB, 'share-4'))
    expect(await nextEvent<{ reason: string }>(fourth, 'authenticationFailed')).toEqual({
      reason: 'too many sessions from one address',
    })
    expect(s.store.get('share-4')).toBeUndefined()
    // So is a y-websocket client from the same address (1013: it may retry later).
    const yw = new WebSocket(`ws://127.0.0.1:${s.port}/share-5`)
    cleanups.push(() => yw.terminate())
    const [code, reason] = await new Promise<[number, string]>((resolve) =>
      yw.on('close', (c, r) => resolve([c, r.toString()])),
    )
    expect([code, reason]).toEqual([1013, 'too many sessions from one address'])
    expect(s.server.getStats().errors.X_CRDT_TOO_MANY_CLIENTS).toBe(2)
    // A session that ends frees its place.
    docs[0]!.destroy()
    await waitUntil(() => s.server.getStats().sessions === 2)
    const fifth = track(hpDoc(sockB, 'share-6'))
    await hpSynced(fifth)
    expect(s.server.getStats().sessions).toBe(3)
  })

  it('verifies at most a burst of tokens, then a few a second, per connection: refused ones cost no verification', async () => {
    const clock = createManualClock(1_000_000)
    let verified = 0
    const s = await serve(await level(), {
      clock,
      authorize: () => {
        verified++
        return { access: 'deny', code: 'X_CRDT_BAD_TOKEN', reason: 'invalid token' }
      },
    })
    cleanups.push(s.stop)
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/hocuspocus`)
    cleanups.push(() => ws.terminate())
    const reasons: string[] = []
    let notify = () => {}
    ws.on('message', (data: Buffer) => {
      const d = decoding.createDecoder(new Uint8Array(data))
      decoding.readVarString(d)
      if (decoding.readVarUint(d) !== 2 || decoding.readVarUint(d) !== 1) return // permission denied only
      reasons.push(decoding.readVarString(d))
      notify()
    })
    await new Promise((r) => ws.once('open', r))
    const attempt = (i: number): Promise<string> => {
      const e = encoding.createEncoder()
      encoding.writeVarString(e, `guess-${i}`)
      encoding.writeVarUint(e, 2)
      encoding.writeVarUint(e, 0)
      encoding.writeVarString(e, `forged-${i}`)
      const n = reasons.length
      const answered = new Promise<string>((resolve) => {
        notify = () => {
          if (reasons.length > n) resolve(reasons[n]!)
        }
      })
      ws.send(encoding.toUint8Array(e))
      return answered
    }
    // One at a time, as a token-guessing client would: each answered before the next.
    for (let i = 0; i < 150; i++) await attempt(i)
    expect(verified).toBe(100) // the burst (maxDocumentsPerConnection)
    expect(reasons.filter((r) => r === 'invalid token')).toHaveLength(100)
    expect(reasons.slice(100).every((r) => r === 'too many auth attempts')).toBe(true)
    expect(s.server.getStats().errors.X_CRDT_RATE_LIMITED).toBe(50)
    // The allowance comes back at 10 a second.
    clock.advance(1_000)
    for (let i = 150; i < 162; i++) await attempt(i)
    expect(verified).toBe(110)
    expect(ws.readyState).toBe(WebSocket.OPEN)
  })

  it('verifies at most a burst of tokens, then a few a second, per client address too: more sockets buy no more', async () => {
    const clock = createManualClock(1_000_000)
    let verified = 0
    const s = await serve(
      await level(),
      {
        clock,
        authorize: () => {
          verified++
          return { access: 'deny', code: 'X_CRDT_BAD_TOKEN', reason: 'invalid token' }
        },
      },
      { authAttemptsPerAddressPerSecond: 15 }, // a burst of 150 per address
    )
    cleanups.push(s.stop)
    const sockets = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const ws = new WebSocket(`ws://127.0.0.1:${s.port}/hocuspocus`)
        cleanups.push(() => ws.terminate())
        await new Promise((r) => ws.once('open', r))
        return ws
      }),
    )
    const answers = (ws: WebSocket, n: number): Promise<string[]> =>
      new Promise((resolve) => {
        const got: string[] = []
        ws.on('message', (data: Buffer) => {
          const d = decoding.createDecoder(new Uint8Array(data))
          decoding.readVarString(d)
          if (decoding.readVarUint(d) !== 2 || decoding.readVarUint(d) !== 1) return
          got.push(decoding.readVarString(d))
          if (got.length === n) resolve(got)
        })
      })
    // 4 sockets × 60 guesses: each socket is within its own burst (100), the address is not (150).
    const all = await Promise.all(
      sockets.map((ws, k) => {
        const done = answers(ws, 60)
        for (let i = 0; i < 60; i++) {
          const e = encoding.createEncoder()
          encoding.writeVarString(e, `guess-${k}-${i}`)
          encoding.writeVarUint(e, 2)
          encoding.writeVarUint(e, 0)
          encoding.writeVarString(e, `forged-${k}-${i}`)
          ws.send(encoding.toUint8Array(e))
        }
        return done
      }),
    )
    expect(verified).toBe(150)
    expect(all.flat().filter((r) => r === 'too many auth attempts')).toHaveLength(90)
    clock.advance(1_000)
    const more = answers(sockets[0]!, 20)
    for (let i = 0; i < 20; i++) {
      const e = encoding.createEncoder()
      encoding.writeVarString(e, `later-${i}`)
      encoding.writeVarUint(e, 2)
      encoding.writeVarUint(e, 0)
      encoding.writeVarString(e, `forged-later-${i}`)
      sockets[0]!.send(encoding.toUint8Array(e))
    }
    expect((await more).filter((r) => r === 'too many auth attempts')).toHaveLength(5)
    expect(verified).toBe(165) // 15 a second come back for the address
  })

  it('refuses an oversized auth message, a malformed frame and a bad document name with a reason, changing nothing', async () => {
    const s = await serve(await level(), {}, { maxTokenBytes: 1024 })
    cleanups.push(s.stop)
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/hocuspocus`)
    cleanups.push(() => ws.terminate())
    const got: { address: string; type: number; rest: Uint8Array }[] = []
    let notify = () => {}
    ws.on('message', (data: Buffer) => {
      const d = decoding.createDecoder(new Uint8Array(data))
      got.push({
        address: decoding.readVarString(d),
        type: decoding.readVarUint(d),
        rest: decoding.readTailAsUint8Array(d),
      })
      notify()
    })
    const next = () =>
      new Promise<(typeof got)[number]>((resolve) => {
        const n = got.length
        notify = () => {
          if (got.length > n) resolve(got[n]!)
        }
      })
    await new Promise((r) => ws.once('open', r))
    const auth = (address: string, token: string) => {
      const e = encoding.createEncoder()
      encoding.writeVarString(e, address)
      encoding.writeVarUint(e, 2)
      encoding.writeVarUint(e, 0)
      encoding.writeVarString(e, token)
      return encoding.toUint8Array(e)
    }
    const reasonOf = (m: (typeof got)[number]) => {
      const d = decoding.createDecoder(m.rest)
      expect(decoding.readVarUint(d)).toBe(1) // permission denied
      return decoding.readVarString(d)
    }
    let reply = next()
    ws.send(auth('big', 'x'.repeat(100_000)))
    let m = await reply
    expect(m).toMatchObject({ address: 'big', type: 2 })
    expect(reasonOf(m)).toBe('token too large')
    reply = next()
    ws.send(auth('bad\u0001name', ''))
    m = await reply
    expect(reasonOf(m)).toBe('document name contains control characters')
    ws.send(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f])) // an address length of 4 GiB
    reply = next()
    ws.send(auth('fine', ''))
    m = await reply
    expect(m).toMatchObject({ address: 'fine', type: 2 })
    expect(decoding.readVarUint(decoding.createDecoder(m.rest))).toBe(2) // authenticated
    expect(s.server.getStats()).toMatchObject({
      deniedClients: 2,
      sessions: 1,
      errors: { X_CRDT_BAD_TOKEN: 1, X_CRDT_BAD_DOC_NAME: 1, X_CRDT_BAD_MESSAGE: 1 },
    })
    await waitUntil(() => s.store.loadedDocuments().length > 0)
    expect(s.store.loadedDocuments()).toEqual(['fine']) // only the accepted session opened a document
    expect(ws.readyState).toBe(WebSocket.OPEN)
  })

  it("keeps the store's limits: an update too large or beyond the quota closes that document's session only", async () => {
    const l = await level()
    const store = createDocStore({ db: l.db }, { maxUpdateBytes: 2_000, maxStoredBytes: 6_000 })
    const server = createSyncServer({ store })
    const { port } = await server.listen({ port: 0, hocuspocusPath: '/hocuspocus' })
    cleanups.push(async () => {
      await server.close()
      await store.close()
    })
    const sock = socket(port)
    const big = track(hpDoc(sock, 'big'))
    const small = track(hpDoc(sock, 'small'))
    await Promise.all([hpSynced(big), hpSynced(small)])
    let closed = nextEvent<{ event: { reason: string } }>(big, 'close')
    writeParagraph(big.document, 'x'.repeat(5_000))
    expect((await closed).event.reason).toBe('update too large')
    closed = nextEvent<{ event: { reason: string } }>(small, 'close')
    for (let i = 0; i < 8; i++) writeParagraph(small.document, `${i}`.padEnd(1_000, '#'))
    expect((await closed).event.reason).toBe('storage quota exceeded')
    await store.flush()
    const stats = server.getStats()
    expect(stats.errors.X_CRDT_UPDATE_TOO_LARGE).toBe(1)
    expect(stats.errors.X_CRDT_QUOTA_EXCEEDED).toBeGreaterThanOrEqual(1) // every update sent before the close
    expect(stats.bytesStored).toBeLessThanOrEqual(6_000)
    expect(paragraphs(store.get('big') ?? new Y.Doc())).toEqual([])
    expect(stats.clients).toBe(1) // the socket stays
  })

  it('relays stateless messages to the other Hocuspocus clients of the document', async () => {
    const s = await serve(await level())
    cleanups.push(s.stop)
    const a = track(hpDoc(socket(s.port), 'chat'))
    const b = track(hpDoc(socket(s.port), 'chat'))
    await Promise.all([hpSynced(a), hpSynced(b)])
    const got = nextEvent<{ payload: string }>(b, 'stateless')
    a.sendStateless('{"ping":1}')
    expect(await got).toEqual({ payload: '{"ping":1}' })
  })
})

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (check()) return
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error('condition not reached')
}
