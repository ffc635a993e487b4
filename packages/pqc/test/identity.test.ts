import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import {
  exportIdentitySeed,
  formatId,
  getStatus,
  Identity,
  idFromPublicKey,
  parseId,
  verify,
} from '../src/index'

const enc = new TextEncoder()

describe('Identity', () => {
  it('derives keys from the seed and the ID as the first 160 bits of SHA-256(publicKey)', () => {
    const a = Identity.generate(new Uint8Array(32).fill(7))
    const b = Identity.generate(new Uint8Array(32).fill(7))
    expect(a.publicKey).toEqual(b.publicKey)
    expect(a.publicKey.length).toBe(2592)
    const expected = createHash('sha256').update(a.publicKey).digest().subarray(0, 20)
    expect(Buffer.from(a.id)).toEqual(expected)
    expect(a.idString).toBe(expected.toString('hex'))
    expect(a.idString).toMatch(/^[0-9a-f]{40}$/)
    expect(idFromPublicKey(a.publicKey)).toEqual(a.id)
    expect(JSON.stringify(a)).toBe(JSON.stringify({ id: a.idString }))
  })

  it('generates distinct random identities by default', () => {
    expect(Identity.generate().idString).not.toBe(Identity.generate().idString)
  })

  it('formats and parses IDs as inverses', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), (id) => {
        expect(parseId(formatId(id))).toEqual(id)
        expect(parseId(formatId(id).toUpperCase())).toEqual(id)
      }),
    )
    expect(() => parseId('xyz')).toThrow(TypeError)
    expect(() => parseId('g'.repeat(40))).toThrow(TypeError)
  })

  it('signs hedged by default and separates domains by context', () => {
    const a = Identity.generate(new Uint8Array(32).fill(3))
    const msg = enc.encode('hello')
    const ctx = enc.encode('x/test/v1')
    const s1 = a.sign(msg, ctx)
    const s2 = a.sign(msg, ctx)
    expect(s1).not.toEqual(s2) // hedged: fresh randomness
    expect(verify(a.publicKey, msg, s1, ctx)).toBe(true)
    expect(verify(a.publicKey, msg, s1, enc.encode('x/other/v1'))).toBe(false)
    expect(verify(a.publicKey, msg, s1)).toBe(false)
    expect(verify(a.publicKey, enc.encode('hellO'), s1, ctx)).toBe(false)
    expect(a.signDeterministic(msg, ctx)).toEqual(a.signDeterministic(msg, ctx))
  })

  it('returns false (never throws) for malformed signatures and keys', () => {
    const a = Identity.generate(new Uint8Array(32).fill(4))
    expect(verify(a.publicKey, enc.encode('m'), new Uint8Array(10))).toBe(false)
    expect(verify(new Uint8Array(3), enc.encode('m'), new Uint8Array(4627))).toBe(false)
    expect(() => a.sign(enc.encode('m'), new Uint8Array(256))).toThrow(RangeError)
    expect(() => Identity.generate(new Uint8Array(16))).toThrow(RangeError)
  })

  it('counts identities in getStatus().keyPairs', () => {
    const before = getStatus().keyPairs
    const keep = Identity.generate()
    expect(getStatus().keyPairs).toBe(before + 1)
    expect(keep.publicKey.length).toBe(2592)
  })

  it('keeps its seed private: not a property, not in JSON; exportIdentitySeed gives a copy that restores it', () => {
    const seed = new Uint8Array(32).fill(11)
    const a = Identity.generate(seed)
    expect(Object.keys(a)).not.toContain('seed')
    expect((a as unknown as { seed?: unknown }).seed).toBeUndefined()
    expect(JSON.stringify(a)).not.toContain(Buffer.from(seed).toString('hex'))
    const exported = exportIdentitySeed(a)
    expect(exported).toEqual(seed)
    exported.fill(0) // wiping the copy leaves the identity whole
    expect(Identity.generate(exportIdentitySeed(a)).publicKey).toEqual(a.publicKey)
    expect(a.verify(enc.encode('m'), a.sign(enc.encode('m')))).toBe(true)
    expect(() => exportIdentitySeed({} as Identity)).toThrow(TypeError)
  })
})
