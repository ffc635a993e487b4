import { describe, expect, it } from 'vitest'
import { KademliaError } from '../src/errors'
import { commonPrefixLength, compareDistance, idEquals } from '../src/id'
import { iterativeLookup, type QueryResult } from '../src/lookup'
import type { Contact } from '../src/routing-table'
import { SeededRandom } from '../src/testing'

/**
 * A synthetic network of `n` honest nodes, each with a Kademlia table of at most 4 contacts per bucket,
 * answered without a transport so that only the lookup logic runs.
 */
function network(n: number, seed: number) {
  const random = new SeededRandom(seed)
  const nodes: Contact[] = Array.from({ length: n }, (_, i) => ({ id: random.bytes(20), address: `n${i}` }))
  const tables = new Map<string, Contact[]>()
  for (const node of nodes) {
    const perBucket = new Map<number, number>()
    const table: Contact[] = []
    for (const other of nodes) {
      if (other === node) continue
      const bucket = commonPrefixLength(node.id, other.id)
      const used = perBucket.get(bucket) ?? 0
      if (used < 4) table.push(other)
      perBucket.set(bucket, used + 1)
    }
    tables.set(node.address, table)
  }
  const closestOf = (address: string, target: Uint8Array, k: number): Contact[] =>
    [...tables.get(address)!].sort((a, b) => compareDistance(a.id, b.id, target)).slice(0, k)
  return { random, nodes, closestOf }
}

const selfId = new Uint8Array(20).fill(0xee)

/** `id` with byte `at` XORed by `mask` (an ID near `id`). */
function near(id: Uint8Array, at: number, mask: number): Uint8Array {
  const out = id.slice()
  out[at] = out[at]! ^ mask
  return out
}

describe('iterativeLookup', () => {
  it('converges on the target from far-away initial contacts', async () => {
    const { nodes, closestOf } = network(300, 1)
    for (const target of nodes.slice(0, 20)) {
      const initial = [...nodes].sort((a, b) => compareDistance(b.id, a.id, target.id)).slice(0, 5)
      const result = await iterativeLookup({
        target: target.id,
        selfId,
        k: 8,
        alpha: 3,
        paths: 1,
        initial,
        query: (c) => Promise.resolve({ contacts: closestOf(c.address, target.id, 8) }),
      })
      expect(idEquals(result.closest[0]!.contact.id, target.id)).toBe(true)
      expect(result.hops).toBeGreaterThan(1)
    }
  })

  it('never queries one node from two disjoint paths', async () => {
    const { nodes, closestOf } = network(300, 2)
    const target = nodes[7]!
    const queried: string[] = []
    const initial = [...nodes].sort((a, b) => compareDistance(b.id, a.id, target.id)).slice(0, 16)
    const result = await iterativeLookup({
      target: target.id,
      selfId,
      k: 8,
      alpha: 3,
      paths: 4,
      initial,
      query: (c) => {
        queried.push(c.address)
        return Promise.resolve({ contacts: closestOf(c.address, target.id, 8) })
      },
    })
    expect(new Set(queried).size).toBe(queried.length)
    expect(result.rpcs).toBe(queried.length)
    expect(idEquals(result.closest[0]!.contact.id, target.id)).toBe(true)
  })

  it('drops a referrer whose contacts answer with another ID, and what only it vouched for', async () => {
    const { random, nodes, closestOf } = network(200, 3)
    const target = nodes[11]!
    // Closer to the target than any initial contact, so that it is queried first.
    const liar: Contact = { id: near(target.id, 2, 0x80), address: 'liar' }
    // Fabricated IDs next to the target, at an address that answers with its own ID.
    const fakes: Contact[] = Array.from({ length: 8 }, () => ({
      id: near(target.id, 19, 1 + random.int(255)),
      address: 'liar',
    }))
    // A contact only the liar vouches for (unqueried when the lie is found), and one we also know ourselves.
    const onlyByLiar: Contact = { id: random.bytes(20), address: 'ghost' }
    const known = [...nodes].sort((a, b) => compareDistance(b.id, a.id, target.id))[0]!
    const queried = new Set<string>()
    const initial = [liar, known]
    const result = await iterativeLookup({
      target: target.id,
      selfId,
      k: 8,
      alpha: 1, // one query at a time: the order below is deterministic
      paths: 1,
      initial,
      // eslint-disable-next-line @typescript-eslint/require-await -- throws as a rejected promise
      query: async (c): Promise<QueryResult> => {
        queried.add(c.address)
        if (c.address === 'liar') {
          if (!idEquals(c.id, liar.id)) throw new KademliaError('X_KAD_BAD_RESPONSE', 'another node ID')
          return { contacts: [...fakes, onlyByLiar, known] }
        }
        return { contacts: closestOf(c.address, target.id, 8) }
      },
    })
    expect(result.closest.map((r) => r.contact.address)).not.toContain('liar')
    // One fake was tried (it exposed the lie); the other seven and the contact only the liar gave were not.
    expect(result.failures).toBe(1)
    expect(queried.has(onlyByLiar.address)).toBe(false)
    // A contact the liar also gave, but that we knew ourselves, is still used, and the lookup completes.
    expect(queried.has(known.address)).toBe(true)
    expect(idEquals(result.closest[0]!.contact.id, target.id)).toBe(true)
  })

  it('keeps live candidates when responders flood it with contacts that fail', async () => {
    const { random, nodes, closestOf } = network(300, 4)
    const target = nodes[21]!
    // Five responders each give k unreachable contacts closer than anything real: 40 failures, more than
    // the candidate list holds (4 k = 32 places).
    const flooders: Contact[] = Array.from({ length: 5 }, (_, i) => ({
      id: random.bytes(20),
      address: `f${i}`,
    }))
    const far = [...nodes].sort((a, b) => compareDistance(b.id, a.id, target.id)).slice(0, 2)
    const result = await iterativeLookup({
      target: target.id,
      selfId,
      k: 8,
      alpha: 3,
      paths: 1,
      initial: [...flooders, ...far],
      // eslint-disable-next-line @typescript-eslint/require-await -- throws as a rejected promise
      query: async (c): Promise<QueryResult> => {
        if (c.address.startsWith('f')) {
          return {
            contacts: Array.from({ length: 8 }, () => ({
              id: near(near(target.id, 19, 1 + random.int(255)), 18, random.int(256)),
              address: 'nowhere',
            })),
          }
        }
        if (c.address === 'nowhere') throw new KademliaError('X_KAD_TIMEOUT', 'no response')
        return { contacts: closestOf(c.address, target.id, 8) }
      },
    })
    expect(result.failures).toBe(40)
    expect(idEquals(result.closest[0]!.contact.id, target.id)).toBe(true)
  })
})
