// Replication in the topologies the node builds: a full mesh of three stores, duplicate links between one
// pair (both carrying frames, then one closed), links opening while live edits flow, documents created after
// the links are up, and a link that loses frames without ever reporting a state change. Replication is by
// interest: a store takes part in a document once it holds it (stored, or opened by a client).
import { afterEach, expect, it } from 'vitest'
import * as Y from 'yjs'
import {
  createDocStore,
  replicate,
  type DocStore,
  type DocStoreComponents,
  type Replication,
} from '../src/index'
import {
  createManualClock,
  createMemoryLinkPair,
  type ManualClock,
  type MemoryLinkInit,
  type MemoryLinkPair,
} from '../src/testing'
import { tempLevel, type TempLevel } from './helpers'

let level: TempLevel | undefined
let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn()
  cleanup = []
  await level?.dispose()
  level = undefined
})

/** mulberry32: seeded, so a failing run can be replayed with SEED=<n>. */
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

interface Net {
  stores: DocStore[]
  pairs: MemoryLinkPair[]
  reps: Replication[]
  /** The replications' timers (periodic resync). */
  timers: ManualClock
  /** Links stores i and j with a new memory link pair (one replication per end). */
  link(
    i: number,
    j: number,
    init?: MemoryLinkInit,
  ): { pair: MemoryLinkPair; reps: [Replication, Replication] }
  /** Waits until no frame is in flight, nothing is being written and no replication step is pending. */
  quiesce(): Promise<void>
}

async function network(n: number, clock?: DocStoreComponents['clock']): Promise<Net> {
  level = await tempLevel()
  const l = level
  const stores = Array.from({ length: n }, (_, i) =>
    createDocStore({
      db: l.level.sublevel<string, Uint8Array>(`s${i}`, { keyEncoding: 'utf8', valueEncoding: 'view' }),
      clock,
    }),
  )
  const timers = createManualClock()
  const net: Net = {
    stores,
    pairs: [],
    reps: [],
    timers,
    link(i, j, init) {
      const pair = createMemoryLinkPair(init)
      const reps: [Replication, Replication] = [
        replicate({ store: stores[i]!, link: pair.a, clock: timers }),
        replicate({ store: stores[j]!, link: pair.b, clock: timers }),
      ]
      net.pairs.push(pair)
      net.reps.push(...reps)
      return { pair, reps }
    },
    async quiesce() {
      for (let calm = 0, i = 0; calm < 3 && i < 10_000; i++) {
        await Promise.all(net.pairs.map((p) => p.idle()))
        await Promise.all(stores.map((s) => s.flush()))
        await new Promise((r) => setImmediate(r))
        const busy = net.reps.some((r) => r.getStats().pending > 0)
        calm = busy ? 0 : calm + 1
      }
    },
  }
  cleanup.push(async () => {
    for (const r of net.reps) r.close()
    await Promise.all(stores.map((s) => s.close()))
  })
  return net
}

async function text(store: DocStore, name: string): Promise<string> {
  const h = await store.open(name)
  try {
    return h.doc.getText('t').toJSON()
  } finally {
    h.release()
  }
}

async function names(store: DocStore): Promise<string[]> {
  const out: string[] = []
  for await (const n of store.listDocuments()) out.push(n)
  return out
}

/** One random edit (insert, or delete now and then) of a random document on a random store. */
async function randomEdit(
  random: () => number,
  stores: DocStore[],
  docs: string[],
  deletes = true,
): Promise<void> {
  const store = stores[Math.floor(random() * stores.length)]!
  const h = await store.open(docs[Math.floor(random() * docs.length)]!)
  const t = h.doc.getText('t')
  if (deletes && t.length > 0 && random() < 0.25) {
    const at = Math.floor(random() * t.length)
    t.delete(at, Math.min(t.length - at, 1 + Math.floor(random() * 3)))
  } else {
    t.insert(Math.floor(random() * (t.length + 1)), String.fromCharCode(97 + Math.floor(random() * 26)))
  }
  h.release()
}

/** Every store takes part in every document (a client on each holds it open), then all agree. */
async function expectConverged(net: Net, stores: DocStore[], docs: string[]): Promise<void> {
  const held = await Promise.all(stores.flatMap((s) => docs.map((d) => s.open(d))))
  await net.quiesce()
  for (const h of held) h.release()
  for (const name of docs) {
    const texts = await Promise.all(stores.map((s) => text(s, name)))
    for (let i = 1; i < texts.length; i++) expect(texts[i], `${name} on store ${i}`).toBe(texts[0])
  }
  const lists = await Promise.all(stores.map(names))
  for (let i = 1; i < lists.length; i++) expect(lists[i], `documents on store ${i}`).toEqual(lists[0])
}

/**
 * The seed of a randomised test: fixed unless `SEED` is set (`SEED=<n>` replays one, `SEED=random` explores), so a
 * run of the suite is reproducible. Whether a schedule loses enough update frames to exercise the repairs depends on
 * the seed (SEED=1577021544 loses 3 frames, none of them a gap the receiver can see), and the tests check that
 * premise before the property.
 */
const DEFAULT_SEED = 20_261_208
function seeded(): { seed: number; random: () => number } {
  const env = process.env.SEED
  const seed =
    env === 'random' ? Math.floor(Math.random() * 2 ** 31) : env !== undefined ? Number(env) : DEFAULT_SEED
  return { seed, random: prng(seed) }
}

async function withSeed(seed: number, fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    console.error(`failed with SEED=${seed}`)
    throw err
  }
}

it('full mesh of three stores: concurrent edits and documents created after the links are up converge', async () => {
  const { seed, random } = seeded()
  await withSeed(seed, async () => {
    const net = await network(3)
    const [a, b, c] = net.stores as [DocStore, DocStore, DocStore]
    await a.applyUpdate('before', update('made on a before any link'))
    net.link(0, 1)
    net.link(1, 2)
    net.link(0, 2)
    const docs = ['x', 'y']
    for (let i = 0; i < 400; i++) {
      // Brand-new documents appear on one side while the mesh is running.
      if (i % 50 === 25) docs.push(`new-${i}`)
      await randomEdit(random, net.stores, docs)
      if (random() < 0.3) await new Promise((r) => setImmediate(r))
    }
    // One more new document, edited only on c: a, whose client asks for it by name, gets it; b never hears of it.
    await c.applyUpdate('late', update('only c wrote this'))
    const onA = await a.open('late')
    await net.quiesce()
    expect(onA.doc.getText('t').toJSON()).toBe('only c wrote this')
    onA.release()
    expect(await names(a)).toContain('late')
    expect(await names(b)).not.toContain('late')
    expect(await b.has('late')).toBe(false)
    await expectConverged(net, net.stores, [...docs, 'before', 'late'])
    expect(await text(b, 'before')).toBe('made on a before any link')
  })
})

it('two links between one pair (a duplicate), then one of them closed mid-stream, lose nothing', async () => {
  const { seed, random } = seeded()
  await withSeed(seed, async () => {
    const net = await network(3)
    net.link(1, 2)
    net.link(0, 2)
    const first = net.link(0, 1)
    const docs = ['p', 'q', 'r']
    for (let i = 0; i < 300; i++) {
      // The duplicate opens while edits flow, both carry frames for a while, then the first is closed with
      // frames in flight (as the node does when both sides dialled) and its replications end.
      if (i === 60) net.link(0, 1, { open: false }).pair.restore()
      if (i === 180) {
        first.pair.drop()
        for (const r of first.reps) r.close()
      }
      await randomEdit(random, net.stores, docs)
      if (random() < 0.3) await new Promise((r) => setImmediate(r))
    }
    await net.quiesce()
    await expectConverged(net, net.stores, docs)
  })
})

it('live edits racing the state-vector catch-up of links that open (and reopen) mid-stream', async () => {
  const { seed, random } = seeded()
  await withSeed(seed, async () => {
    const net = await network(3)
    const links = [
      net.link(0, 1, { open: false }),
      net.link(1, 2, { open: false }),
      net.link(0, 2, { open: false }),
    ]
    const docs = ['m', 'n']
    // Each store has its own history before any link opens.
    for (let i = 0; i < 60; i++) await randomEdit(random, net.stores, docs)
    for (let i = 0; i < 300; i++) {
      if (i === 0) links[0]!.pair.restore() // opens in the same turn as the next edits
      if (i === 40) links[1]!.pair.restore()
      if (i === 80) links[2]!.pair.restore()
      if (i === 150) links[0]!.pair.drop()
      if (i === 151) links[0]!.pair.restore() // a flap: catch-up again, while edits continue
      if (i % 70 === 69) docs.push(`fresh-${i}`)
      await randomEdit(random, net.stores, docs)
      if (random() < 0.5) await new Promise((r) => setImmediate(r))
    }
    await net.quiesce()
    await expectConverged(net, net.stores, docs)
  })
})

it('heals insertions lost by a link that stays open (no state change): asks back, re-asks on gaps, periodic resync', async () => {
  const { seed, random } = seeded()
  await withSeed(seed, async () => {
    const net = await network(3)
    // a–b loses each frame with probability 0.2 in both directions, and always the very first frame a sends
    // (its first catch-up offer); b–c and a–c are fine but a–c starts late.
    let firstFromA = true
    const lossy = net.link(0, 1, {
      lose: (_bytes, from) => {
        if (from === 'a' && firstFromA) {
          firstFromA = false
          return true
        }
        return random() < 0.2
      },
    })
    await net.stores[0]!.applyUpdate('seeded', update('a had this before the link'))
    await net.stores[1]!.applyUpdate('seeded-b', update('b had this before the link'))
    const docs = ['u', 'v']
    for (let i = 0; i < 200; i++) {
      // Insertions only: a lost deletion does not move any state vector, so only a new session repairs it.
      await randomEdit(random, net.stores.slice(0, 2), docs, false)
      if (random() < 0.3) await new Promise((r) => setImmediate(r))
    }
    await net.quiesce()
    expect(lossy.pair.lost).toBeGreaterThan(10)
    const asks = lossy.reps[0].getStats().asks + lossy.reps[1].getStats().asks
    // The periodic resync repairs what was lost (a lost deletion is visible only to a full exchange).
    // Both stores hold every document (a client on each), as in a long-running session.
    const held = await Promise.all(
      net.stores.slice(0, 2).flatMap((s) => [...docs, 'seeded', 'seeded-b'].map((d) => s.open(d))),
    )
    for (let round = 0; round < 20; round++) {
      net.timers.advance(300_000) // the default resyncIntervalMs
      await net.quiesce()
    }
    for (const h of held) h.release()
    await expectConverged(net, net.stores.slice(0, 2), [...docs, 'seeded', 'seeded-b'])
    expect(asks).toBeGreaterThan(0)
    expect(lossy.reps[0].getStats().resyncs).toBe(20)
    // Once a third store joins over a reliable link, it converges too.
    net.link(0, 2)
    net.link(1, 2)
    await net.quiesce()
    await expectConverged(net, net.stores, [...docs, 'seeded', 'seeded-b'])
  })
})

it('repairs a lost deletion at the next session (link reopen)', async () => {
  const net = await network(2)
  let loseNext = false
  const { pair } = net.link(0, 1, { lose: () => (loseNext ? !(loseNext = false) : false) })
  const [a, b] = net.stores as [DocStore, DocStore]
  await a.applyUpdate('d', update('hello world'))
  await b.open('d').then((h) => h.release()) // b takes part in 'd'
  await net.quiesce()
  expect(await text(b, 'd')).toBe('hello world')
  const h = await a.open('d')
  loseNext = true
  h.doc.getText('t').delete(0, 6)
  h.release()
  await net.quiesce()
  expect(pair.lost).toBe(1)
  expect(await text(b, 'd')).toBe('hello world') // lost, and no state vector differs
  pair.drop()
  pair.restore()
  await net.quiesce()
  expect(await text(b, 'd')).toBe('world')
})

it('a resync round with nothing to repair sends one offer per document and loads nothing', async () => {
  let now = 0
  const net = await network(2, { now: () => now })
  const { reps } = net.link(0, 1)
  const [a, b] = net.stores as [DocStore, DocStore]
  for (let i = 0; i < 5; i++) {
    await a.applyUpdate(`doc-${i}`, update(`text ${i}`))
    await b.open(`doc-${i}`).then((h) => h.release()) // b takes part in it
  }
  await net.quiesce()
  now += 60_000
  await Promise.all(net.stores.map((s) => s.evictIdle()))
  expect(a.getStats().openDocuments + b.getStats().openDocuments).toBe(0)
  const before = reps.map((r) => r.getStats().framesOut)
  reps[0].resync()
  reps[1].resync()
  await net.quiesce()
  expect(reps.map((r, i) => r.getStats().framesOut - before[i]!)).toEqual([5, 5])
  expect(a.getStats().openDocuments + b.getStats().openDocuments).toBe(0)
})

function update(s: string): Uint8Array {
  const d = new Y.Doc()
  d.getText('t').insert(0, s)
  return Y.encodeStateAsUpdate(d)
}
