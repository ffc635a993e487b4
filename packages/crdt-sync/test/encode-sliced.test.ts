import { expect, it } from 'vitest'
import fc from 'fast-check'
import * as Y from 'yjs'
import { encodeStateAsUpdateSliced } from '../src/encode-sliced'

const STEP = 37 // structs per step: small, so a document of a few hundred structs takes many steps

function snapshot(doc: Y.Doc): unknown {
  return {
    t: doc.getText('t').toDelta(),
    m: doc.getMap('m').toJSON(),
    a: doc.getArray('a').toJSON(),
    sv: [...Y.decodeStateVector(Y.encodeStateVector(doc))].sort((x, y) => x[0] - y[0]),
  }
}

/** A document of `n` structs or more from several clients, with formatting, maps, arrays and deletions. */
function build(n: number, seed: number, gc: boolean): Y.Doc {
  let s = seed || 1
  const rand = () => (s = (s * 16807) % 2147483647) / 2147483647
  const docs = [1, 2, 3].map((id) => {
    const d = new Y.Doc({ gc })
    d.clientID = id * 1000 + (seed % 1000)
    return d
  })
  for (let i = 0; i < n; i++) {
    const d = docs[i % 3]!
    const t = d.getText('t')
    const r = rand()
    if (r < 0.6) t.insert(Math.floor(rand() * (t.length + 1)), 'abc'[i % 3]!)
    else if (r < 0.75 && t.length > 2) t.delete(Math.floor(rand() * (t.length - 1)), 1)
    else if (r < 0.85 && t.length > 2)
      t.format(Math.floor(rand() * (t.length - 1)), 1, { b: i % 2 === 0 || null })
    else if (r < 0.93) d.getMap('m').set(`k${i % 17}`, i)
    else d.getArray('a').insert(0, [i])
    if (i % 50 === 0) for (const o of docs) Y.applyUpdate(o, Y.encodeStateAsUpdate(d, Y.encodeStateVector(o)))
  }
  for (const a of docs)
    for (const b of docs) Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
  return docs[0]!
}

it('gives what Y.encodeStateAsUpdate gives, whole or as a difference', async () => {
  await fc.assert(
    fc.asyncProperty(fc.nat(1e6), fc.boolean(), fc.nat(100), async (seed, gc, cut) => {
      const doc = build(600, seed, gc)
      const partial = new Y.Doc({ gc })
      // A receiver holding an older, smaller history of the same clients (or nothing).
      if (cut > 50) Y.applyUpdate(partial, Y.encodeStateAsUpdate(build(cut * 3, seed, gc)))
      const sv = cut % 2 === 0 ? undefined : Y.encodeStateVector(partial)
      let turns = 0
      const sliced = await encodeStateAsUpdateSliced(
        doc,
        sv,
        () => {
          turns++
          return Promise.resolve()
        },
        STEP,
      )
      expect(turns).toBeGreaterThan(0)
      const a = new Y.Doc({ gc })
      const b = new Y.Doc({ gc })
      if (sv !== undefined) {
        Y.applyUpdate(a, Y.encodeStateAsUpdate(partial))
        Y.applyUpdate(b, Y.encodeStateAsUpdate(partial))
      }
      Y.applyUpdate(a, sliced)
      Y.applyUpdate(b, Y.encodeStateAsUpdate(doc, sv))
      expect(snapshot(a)).toEqual(snapshot(b))
      expect(a.store.pendingStructs).toBeNull()
      expect(a.store.pendingDs).toBeNull()
    }),
    { numRuns: 40 },
  )
})

it('holds everything the document held when it began, while the document changes between its steps', async () => {
  await fc.assert(
    fc.asyncProperty(fc.nat(1e6), fc.boolean(), async (seed, gc) => {
      const doc = build(800, seed, gc)
      const remote = new Y.Doc({ gc })
      Y.applyUpdate(remote, Y.encodeStateAsUpdate(doc))
      const later: Uint8Array[] = []
      doc.on('update', (u: Uint8Array) => later.push(u))
      let s = seed + 7
      const rand = () => (s = (s * 16807) % 2147483647) / 2147483647
      // Between steps: local edits (inserts splitting structs, deletions, formatting) and remote ones.
      const sliced = await encodeStateAsUpdateSliced(
        doc,
        undefined,
        () => {
          const t = doc.getText('t')
          for (let i = 0; i < 20; i++) {
            if (rand() < 0.5) t.insert(Math.floor(rand() * (t.length + 1)), 'X')
            else if (t.length > 5) t.delete(Math.floor(rand() * (t.length - 3)), 3)
          }
          const rt = remote.getText('t')
          const before = Y.encodeStateVector(remote)
          rt.insert(Math.floor(rand() * (rt.length + 1)), 'R')
          if (rt.length > 10) rt.format(2, 5, { i: true })
          Y.applyUpdate(doc, Y.encodeStateAsUpdate(remote, before))
          return Promise.resolve()
        },
        STEP,
      )
      expect(later.length).toBeGreaterThan(4) // the document did change between steps
      // What the store does: the snapshot, then every update made after encoding began.
      const restored = new Y.Doc({ gc })
      Y.applyUpdate(restored, sliced)
      for (const u of later) Y.applyUpdate(restored, u)
      expect(snapshot(restored)).toEqual(snapshot(doc))
      expect(restored.store.pendingStructs).toBeNull()
      expect(restored.store.pendingDs).toBeNull()
    }),
    { numRuns: 40 },
  )
})
