import { afterEach, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import {
  createDocStore,
  replicate,
  type DocStore,
  type Replication,
  type ReplicationAuthorize,
} from '../src/index'
import { createManualClock, createMemoryLinkPair, type MemoryLinkPair } from '../src/testing'
import { tempLevel, type TempLevel } from './helpers'

let level: TempLevel | undefined
afterEach(async () => {
  await level?.dispose()
  level = undefined
})

/** mulberry32: a tiny seeded PRNG, so a failing run can be replayed with SEED=<n>. */
function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const DOCS = ['alpha', 'beta', 'gamma']

async function quiesce(stores: DocStore[], pairs: MemoryLinkPair[], reps: Replication[]): Promise<void> {
  for (let calm = 0, i = 0; calm < 3 && i < 10_000; i++) {
    await Promise.all(pairs.map((p) => p.idle()))
    await Promise.all(stores.map((s) => s.flush()))
    await new Promise((r) => setImmediate(r))
    const busy = reps.some((r) => r.getStats().pending > 0)
    calm = busy ? 0 : calm + 1
  }
}

async function text(store: DocStore, name: string): Promise<string> {
  const h = await store.open(name)
  try {
    return h.doc.getText('t').toJSON()
  } finally {
    h.release()
  }
}

it('three stores over memory links converge after random concurrent edits and a link drop', async () => {
  const seed = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31))
  const random = prng(seed)
  try {
    level = await tempLevel()
    const stores = ['a', 'b', 'c'].map((n) =>
      createDocStore({
        db: level!.level.sublevel<string, Uint8Array>(n, { keyEncoding: 'utf8', valueEncoding: 'view' }),
      }),
    )
    const [a, b, c] = stores as [DocStore, DocStore, DocStore]
    // A document that exists on c only, before any link: it reaches a through b once both hold it open
    // (a client on each asked for it by name).
    await c.applyUpdate('only-c', Y.encodeStateAsUpdate(withText('from c')))
    // A line a — b — c: changes between a and c are relayed by b.
    const ab = createMemoryLinkPair()
    const bc = createMemoryLinkPair()
    const reps = [
      replicate({ store: a, link: ab.a }),
      replicate({ store: b, link: ab.b }),
      replicate({ store: b, link: bc.a }),
      replicate({ store: c, link: bc.b }),
    ]
    const held = [await a.open('only-c'), await b.open('only-c')]
    const edits = 600
    for (let i = 0; i < edits; i++) {
      if (i === 200) ab.drop()
      if (i === 400) ab.restore()
      const store = stores[Math.floor(random() * 3)]!
      const h = await store.open(DOCS[Math.floor(random() * DOCS.length)]!)
      const t = h.doc.getText('t')
      if (t.length > 0 && random() < 0.25) {
        const at = Math.floor(random() * t.length)
        t.delete(at, Math.min(t.length - at, 1 + Math.floor(random() * 3)))
      } else {
        t.insert(Math.floor(random() * (t.length + 1)), String.fromCharCode(97 + Math.floor(random() * 26)))
      }
      h.release()
      if (random() < 0.3) await new Promise((r) => setImmediate(r))
    }
    await quiesce(stores, [ab, bc], reps)
    for (const name of [...DOCS, 'only-c']) {
      const [ta, tb, tc] = await Promise.all(stores.map((s) => text(s, name)))
      expect(tb, `${name} on b`).toBe(ta)
      expect(tc, `${name} on c`).toBe(ta)
    }
    expect(await text(a, 'only-c')).toBe('from c')
    expect(reps[0]!.getStats().sessions).toBe(2) // the drop and return started a second session
    for (const h of held) h.release()
    for (const r of reps) r.close()
    await Promise.all(stores.map((s) => s.close()))
  } catch (err) {
    console.error(`replication convergence failed with SEED=${seed}`)
    throw err
  }
})

it('drops malformed frames from a link and counts them', async () => {
  level = await tempLevel()
  const store = createDocStore({ db: level.db })
  const pair = createMemoryLinkPair()
  const rep = replicate({ store, link: pair.a })
  const junk = [
    new Uint8Array([]),
    new Uint8Array([7, 1, 65, 0]), // unknown kind
    new Uint8Array([2, 200, 1]), // truncated name
    new Uint8Array([0, 1, 0x7e, 1, 200]), // a subscription to '~' with a state vector that does not decode
    new Uint8Array([5, 3, 4, 4, 4]), // the end of a fragmented frame that reassembles into a fragment
  ]
  for (const bytes of junk) pair.b.send(bytes)
  await pair.idle()
  await settle(rep)
  expect(rep.getStats().badFrames).toBe(5)
  rep.close()
  await store.close()
})

/** Decodes what one end sent: kind and document name of every frame (fragments reassembled). */
function recorder(): {
  frames: { kind: number; name: string; payload: Uint8Array }[]
  feed(b: Uint8Array): void
} {
  const frames: { kind: number; name: string; payload: Uint8Array }[] = []
  let parts: Uint8Array[] = []
  const feed = (bytes: Uint8Array): void => {
    const d = decoding.createDecoder(bytes)
    const kind = decoding.readVarUint(d)
    if (kind === 4 || kind === 5) {
      parts.push(decoding.readVarUint8Array(d).slice())
      if (kind === 5) {
        const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
        parts.reduce((at, p) => (whole.set(p, at), at + p.length), 0)
        parts = []
        feed(whole)
      }
      return
    }
    frames.push({ kind, name: decoding.readVarString(d), payload: decoding.readVarUint8Array(d) })
  }
  return { frames, feed }
}

function frame(kind: number, name: string, payload: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, kind)
  encoding.writeVarString(e, name)
  encoding.writeVarUint8Array(e, payload)
  return encoding.toUint8Array(e)
}

async function settle(...reps: Replication[]): Promise<void> {
  for (let calm = 0, i = 0; calm < 3 && i < 100_000; i++) {
    await new Promise((r) => setImmediate(r))
    calm = reps.some((r) => r.getStats().pending > 0) ? 0 : calm + 1
  }
}

const SUBSCRIBE = 0
const STEP_2 = 1
const UPDATE = 2
const UNAVAILABLE = 6

it('a fresh linked node learns no document names and pulls only what authorize lets it read', async () => {
  level = await tempLevel()
  const store = createDocStore({ db: level.db })
  for (let i = 0; i < 200; i++) await store.applyUpdate(`doc-${i}`, update(`text ${i}`))
  await store.applyUpdate('secret', update('the secret'))
  await store.applyUpdate('~hidden', update('hidden'))
  await store.applyUpdate('public', update('for everyone'))
  const open = await store.open('in-memory-only') // held open by a client, never written
  const asked: string[] = []
  // The stranger may read 'public' and nothing else, and write nothing.
  const authorize: ReplicationAuthorize = (peer, doc, access) => {
    asked.push(`${peer}:${access}:${doc}`)
    return doc === 'public' && access === 'read'
  }
  const pair = createMemoryLinkPair()
  const sent = recorder()
  pair.b.onMessage((bytes) => sent.feed(bytes))
  const rep = replicate({ store, link: pair.a, authorize }, { peerId: 'stranger', resyncIntervalMs: 0 })
  await settle(rep)
  await pair.idle()
  // Only the one readable document was named to the stranger, as a subscription with a state vector.
  expect(sent.frames.map((f) => [f.kind, f.name])).toEqual([[SUBSCRIBE, 'public']])
  expect(asked.every((a) => a.startsWith('stranger:'))).toBe(true)
  // Asking by name for what it may not read gets no answer at all, as for a document that does not exist.
  const hostile = new Y.Doc()
  hostile.getText('t').insert(0, 'defaced ')
  const none = Y.encodeStateVector(new Y.Doc())
  for (const name of ['secret', '~hidden', 'doc-7', 'in-memory-only', 'nonexistent']) {
    pair.b.send(frame(SUBSCRIBE, name, none))
  }
  // Updates it pushes are dropped: for documents this side never subscribed to, and for 'public' (no write).
  for (const name of ['secret', 'public', 'doc-7']) {
    pair.b.send(frame(UPDATE, name, Y.encodeStateAsUpdate(hostile)))
    pair.b.send(frame(STEP_2, name, Y.encodeStateAsUpdate(hostile)))
  }
  pair.b.send(frame(SUBSCRIBE, 'public', none))
  await pair.idle()
  await settle(rep)
  await pair.idle()
  // Refused and absent documents get the same answer, so the stranger cannot tell them apart.
  const answers = sent.frames.slice(1)
  expect(answers.map((f) => `${f.kind}:${f.name}`).sort()).toEqual(
    [
      ...['secret', '~hidden', 'doc-7', 'in-memory-only', 'nonexistent'].map((n) => `${UNAVAILABLE}:${n}`),
      `${STEP_2}:public`,
    ].sort(),
  )
  const got = new Y.Doc()
  Y.applyUpdate(got, answers.find((f) => f.kind === STEP_2)!.payload)
  expect(got.getText('t').toJSON()).toBe('for everyone')
  // Nothing the stranger sent reached the store, and nothing it was not allowed to see left it.
  expect(await textOf(store, 'secret')).toBe('the secret')
  expect(await textOf(store, 'public')).toBe('for everyone')
  expect(await textOf(store, 'doc-7')).toBe('text 7')
  const stats = rep.getStats()
  expect(stats.subscribers).toBe(1)
  expect(stats.denied).toBe(4 + 2) // four refused subscriptions, two refused writes to 'public'
  expect(stats.ignored).toBe(1 + 4) // 'nonexistent'; updates for four unsubscribed documents
  open.release()
  rep.close()
  await store.close()
})

it('trusted stores converge by interest: only documents both hold cross, `~` names like any other', async () => {
  level = await tempLevel()
  const [a, b] = ['a', 'b'].map((n) =>
    createDocStore({
      db: level!.level.sublevel<string, Uint8Array>(n, { keyEncoding: 'utf8', valueEncoding: 'view' }),
    }),
  ) as [DocStore, DocStore]
  await a.applyUpdate('~shared', update('from a'))
  await a.applyUpdate('a-only', update('a keeps this'))
  await b.applyUpdate('b-only', update('b keeps this'))
  const pair = createMemoryLinkPair()
  const reps = [replicate({ store: a, link: pair.a }), replicate({ store: b, link: pair.b })]
  const onB = await b.open('~shared') // a client on b asks for it by name
  await quiesce([a, b], [pair], reps)
  expect(onB.doc.getText('t').toJSON()).toBe('from a')
  onB.doc.getText('t').insert(0, '> ')
  await quiesce([a, b], [pair], reps)
  expect(await textOf(a, '~shared')).toBe('> from a')
  expect(await names(b)).toEqual(['b-only', '~shared'])
  expect(await names(a)).toEqual(['a-only', '~shared'])
  onB.release()
  for (const r of reps) r.close()
  await Promise.all([a.close(), b.close()])
})

it('keeps no state and no timer once the link closes or the replication is closed', async () => {
  level = await tempLevel()
  const store = createDocStore({ db: level.db })
  await store.applyUpdate('x', update('x'))
  const clock = createManualClock()
  const pair = createMemoryLinkPair()
  const peer = recorder()
  pair.b.onMessage((bytes) => peer.feed(bytes))
  const rep = replicate({ store, link: pair.a, clock }, { resyncIntervalMs: 1000 })
  pair.b.send(frame(SUBSCRIBE, 'x', Y.encodeStateVector(new Y.Doc())))
  await pair.idle()
  await settle(rep)
  expect(rep.getStats()).toMatchObject({ subscribed: 1, subscribers: 1 })
  expect(clock.pendingTimers).toBe(1)
  clock.advance(1000)
  await settle(rep)
  expect(rep.getStats().resyncs).toBe(1)
  expect(clock.pendingTimers).toBe(1)
  pair.drop()
  expect(rep.getStats()).toMatchObject({ subscribed: 0, subscribers: 0 })
  expect(clock.pendingTimers).toBe(0)
  pair.restore()
  await settle(rep)
  expect(clock.pendingTimers).toBe(1)
  rep.close()
  expect(clock.pendingTimers).toBe(0)
  expect(rep.getStats()).toMatchObject({ subscribed: 0, subscribers: 0 })
  await store.close()
})

it('fragments frames larger than the link carries and reassembles them', async () => {
  level = await tempLevel()
  const [a, b] = ['a', 'b'].map((n) =>
    createDocStore({
      db: level!.level.sublevel<string, Uint8Array>(n, { keyEncoding: 'utf8', valueEncoding: 'view' }),
    }),
  ) as [DocStore, DocStore]
  const big = 'lorem ipsum '.repeat(20_000) // one 240 kB string: a single struct, sent in 1 KiB fragments
  await a.applyUpdate('big', update(big))
  const pair = createMemoryLinkPair({ maxFrameBytes: 1024 })
  const reps = [replicate({ store: a, link: pair.a }), replicate({ store: b, link: pair.b })]
  const h = await b.open('big')
  await quiesce([a, b], [pair], reps)
  expect(h.doc.getText('t').toJSON()).toBe(big)
  expect(reps[0]!.getStats().framesOut).toBeGreaterThan(200)
  expect(reps[1]!.getStats().badFrames).toBe(0)
  h.release()
  for (const r of reps) r.close()
  await Promise.all([a.close(), b.close()])
})

async function textOf(store: DocStore, name: string): Promise<string> {
  return text(store, name)
}

async function names(store: DocStore): Promise<string[]> {
  const out: string[] = []
  for await (const n of store.listDocuments()) out.push(n)
  return out.sort()
}

function update(s: string): Uint8Array {
  return Y.encodeStateAsUpdate(withText(s))
}

function withText(s: string): Y.Doc {
  const d = new Y.Doc()
  d.getText('t').insert(0, s)
  return d
}
