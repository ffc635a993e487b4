import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compareDistance, commonPrefixLength, randomIdInBucket } from '../src/id'
import { ipGroup } from '../src/address'
import { RoutingTable } from '../src/routing-table'

const id = (fill: number, last = 0): Uint8Array => {
  const b = new Uint8Array(20).fill(fill)
  b[19] = last
  return b
}
const arbId = fc.uint8Array({ minLength: 20, maxLength: 20 })

describe('RoutingTable', () => {
  it('closest() equals a brute-force XOR sort (property)', () => {
    fc.assert(
      fc.property(
        arbId,
        fc.array(fc.tuple(arbId, fc.nat(3)), { minLength: 0, maxLength: 300 }),
        arbId,
        fc.integer({ min: 1, max: 40 }),
        fc.boolean(),
        (self, raw, target, n, targetNearSelf) => {
          const table = new RoutingTable(self, { k: 8 })
          // Skew some IDs towards self so deep buckets fill too.
          for (const [i, [cid, share]] of raw.entries()) {
            const c = cid.slice()
            c.set(self.subarray(0, share))
            table.add({ id: c, address: `n${i}` })
          }
          const t = targetNearSelf ? self.slice() : target
          if (targetNearSelf) t[19] = target[19]!
          const expected = [...table].sort((a, b) => compareDistance(a.id, b.id, t)).slice(0, n)
          const got = table.closest(t, n)
          expect(got.map((c) => c.address)).toEqual(expected.map((c) => c.address))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('orders by exact distance beyond 53 bits', () => {
    const self = new Uint8Array(20)
    const table = new RoutingTable(self)
    // Differ only in the last byte: a float-based distance would tie these.
    const a = id(0x80, 1)
    const b = id(0x80, 2)
    table.add({ id: b, address: 'b' })
    table.add({ id: a, address: 'a' })
    expect(table.closest(id(0x80, 0), 2).map((c) => c.address)).toEqual(['a', 'b'])
  })

  it('keeps k per bucket, least recently seen first, and caches replacements', () => {
    const self = new Uint8Array(20)
    const table = new RoutingTable(self, { k: 3, replacementCacheSize: 2 })
    for (let i = 1; i <= 3; i++) expect(table.add({ id: id(0x80, i), address: `a${i}` }).status).toBe('added')
    const full = table.add({ id: id(0x80, 9), address: 'a9' })
    expect(full.status).toBe('full')
    if (full.status === 'full') expect(full.oldest.address).toBe('a1')
    // Seeing a1 again moves it to the tail; a2 becomes the oldest.
    expect(table.add({ id: id(0x80, 1), address: 'a1' }).status).toBe('updated')
    expect(table.bucket(0).map((e) => e.address)).toEqual(['a2', 'a3', 'a1'])
    // Removing a contact promotes the newest replacement.
    expect(table.remove(id(0x80, 2))).toBe(true)
    expect(table.has(id(0x80, 9))).toBe(true)
    expect(table.size).toBe(3)
  })

  it('refuses to move a known ID to another address', () => {
    const table = new RoutingTable(new Uint8Array(20))
    table.add({ id: id(1), address: 'x' })
    expect(table.add({ id: id(1), address: 'y' }).status).toBe('conflict')
    expect(table.get(id(1))?.address).toBe('x')
  })

  it('limits contacts per /24 in a bucket and in the table', () => {
    const table = new RoutingTable(new Uint8Array(20), {
      maxPerIpGroupPerBucket: 2,
      maxPerIpGroupPerTable: 3,
    })
    expect(table.add({ id: id(0x80, 1), address: '1.2.3.1:1' }).status).toBe('added')
    expect(table.add({ id: id(0x80, 2), address: '1.2.3.2:1' }).status).toBe('added')
    expect(table.add({ id: id(0x80, 3), address: '1.2.3.3:1' }).status).toBe('rejected')
    expect(table.add({ id: id(0x80, 4), address: '1.2.4.3:1' }).status).toBe('added')
    expect(table.add({ id: id(0x40, 5), address: '1.2.3.9:1' }).status).toBe('added')
    expect(table.add({ id: id(0x20, 6), address: '1.2.3.10:1' }).status).toBe('rejected')
    // Loopback is exempt so local test networks work.
    for (let i = 0; i < 5; i++)
      expect(table.add({ id: id(0x10, i), address: `127.0.0.1:${1000 + i}` }).status).toBe('added')
  })

  it('groups IPv6 by /64 and IPv4-mapped addresses by /24', () => {
    expect(ipGroup('[2001:db8:1:2:3::1]:5')).toBe(ipGroup('[2001:db8:1:2:ffff::9]:6'))
    expect(ipGroup('[2001:db8:1:2::1]:5')).not.toBe(ipGroup('[2001:db8:1:3::1]:5'))
    expect(ipGroup('[::ffff:1.2.3.4]:5')).toBe(ipGroup('1.2.3.9:7'))
    const table = new RoutingTable(new Uint8Array(20), { maxPerIpGroupPerBucket: 1 })
    expect(table.add({ id: id(0x80, 1), address: '[2001:db8::1]:1' }).status).toBe('added')
    expect(table.add({ id: id(0x80, 2), address: '[2001:db8::2]:1' }).status).toBe('rejected')
  })

  it('recordFailure evicts after repeated failures', () => {
    const table = new RoutingTable(new Uint8Array(20))
    table.add({ id: id(0x80, 1), address: 'a' })
    expect(table.recordFailure(id(0x80, 1))).toBe(false)
    expect(table.recordFailure(id(0x80, 1))).toBe(true)
    expect(table.size).toBe(0)
  })

  it('randomIdInBucket lands in the requested bucket', () => {
    fc.assert(
      fc.property(arbId, arbId, fc.integer({ min: 0, max: 159 }), (self, rnd, i) => {
        expect(commonPrefixLength(self, randomIdInBucket(self, i, rnd))).toBe(i)
      }),
    )
  })

  it('validates arguments', () => {
    expect(() => new RoutingTable(new Uint8Array(3))).toThrow(TypeError)
    const table = new RoutingTable(new Uint8Array(20))
    expect(() => table.add({ id: new Uint8Array(19), address: 'a' })).toThrow(/contact.id/)
    expect(table.add({ id: new Uint8Array(20), address: 'self' }).status).toBe('self')
  })
})
