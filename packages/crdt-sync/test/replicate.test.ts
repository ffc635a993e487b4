import { afterEach, expect, it } from 'vitest'
import * as Y from 'yjs'
import { createDocStore, replicate, type DocStore, type Replication } from '../src/index'
import { createMemoryLinkPair, type MemoryLinkPair } from '../src/testing'
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
    // A document that exists on c only, before any link: it must reach a through b.
    await c.applyUpdate('only-c', Y.encodeStateAsUpdate(withText('from c')))
    // A line a — b — c: changes between a and c are relayed by b.
    const ab = createMemoryLinkPair()
    const bc = createMemoryLinkPair()
    const reps = [replicate(a, ab.a), replicate(b, ab.b), replicate(b, bc.a), replicate(c, bc.b)]
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
  const rep = replicate(store, pair.a)
  for (const junk of [new Uint8Array([]), new Uint8Array([7, 1, 65, 0]), new Uint8Array([2, 200, 1])]) {
    pair.b.send(junk)
  }
  await pair.idle()
  expect(rep.getStats().badFrames).toBe(3)
  rep.close()
  await store.close()
})

function withText(s: string): Y.Doc {
  const d = new Y.Doc()
  d.getText('t').insert(0, s)
  return d
}
