import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { fromHex, toHex } from '../src/bytes'
import { hkdfSha256, hmacSha256 } from '../src/kdf'
import { _setNodeCryptoForTesting } from '../src/runtime'

afterEach(() => _setNodeCryptoForTesting(undefined))

describe('hkdfSha256', () => {
  // RFC 5869 appendix A.1–A.3 (SHA-256).
  const cases = [
    {
      ikm: '0b'.repeat(22),
      salt: '000102030405060708090a0b0c',
      info: 'f0f1f2f3f4f5f6f7f8f9',
      l: 42,
      okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    },
    {
      ikm: Array.from({ length: 80 }, (_, i) => i.toString(16).padStart(2, '0')).join(''),
      salt: Array.from({ length: 80 }, (_, i) => (0x60 + i).toString(16).padStart(2, '0')).join(''),
      info: Array.from({ length: 80 }, (_, i) => (0xb0 + i).toString(16).padStart(2, '0')).join(''),
      l: 82,
      okm:
        'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09' +
        'da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
    },
    {
      ikm: '0b'.repeat(22),
      salt: '',
      info: '',
      l: 42,
      okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    },
  ]

  for (const path of ['node:crypto', 'browser'] as const) {
    it(`gives the RFC 5869 answers (${path})`, () => {
      if (path === 'browser') _setNodeCryptoForTesting(null)
      for (const t of cases) {
        expect(toHex(hkdfSha256(fromHex(t.ikm), fromHex(t.salt), fromHex(t.info), t.l))).toBe(t.okm)
      }
    })
  }

  it('equals noble for any key, salt (also longer than a block), info and length', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.uint8Array({ maxLength: 150 }),
        fc.uint8Array({ maxLength: 1500 }),
        fc.integer({ min: 1, max: 255 * 32 }),
        (ikm, salt, info, l) => {
          expect(hkdfSha256(ikm, salt, info, l)).toEqual(hkdf(sha256, ikm, salt, info, l))
        },
      ),
      { numRuns: 100 },
    )
  })

  it('refuses lengths outside 1..8160', () => {
    const z = new Uint8Array(0)
    expect(() => hkdfSha256(z, z, z, 0)).toThrow(RangeError)
    expect(() => hkdfSha256(z, z, z, 255 * 32 + 1)).toThrow(RangeError)
  })
})

describe('hmacSha256', () => {
  for (const path of ['node:crypto', 'browser'] as const) {
    it(`gives the RFC 4231 answers (${path})`, () => {
      if (path === 'browser') _setNodeCryptoForTesting(null)
      const te = new TextEncoder()
      // Test case 2 (short key) and 6 (131-byte key, longer than a block).
      expect(toHex(hmacSha256(te.encode('Jefe'), te.encode('what do ya want for nothing?')))).toBe(
        '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
      )
      expect(
        toHex(
          hmacSha256(
            new Uint8Array(131).fill(0xaa),
            te.encode('Test Using Larger Than Block-Size Key - Hash Key First'),
          ),
        ),
      ).toBe('60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54')
    })
  }
})
