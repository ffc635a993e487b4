import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { hybridKeygen, isPqcError, openBox, sealBox, SEALED_BOX_OVERHEAD_BYTES } from '../src/index'

const enc = new TextEncoder()
const alice = hybridKeygen(new Uint8Array(32).fill(1))
const eve = hybridKeygen(new Uint8Array(32).fill(2))

describe('sealed box', () => {
  it('round-trips random plaintexts and associated data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.uint8Array({ maxLength: 64 }), (pt, ad) => {
        const box = sealBox(alice.publicKey, pt, ad)
        expect(box.length).toBe(pt.length + SEALED_BOX_OVERHEAD_BYTES)
        expect(openBox(alice.secretKey, box, ad)).toEqual(pt)
      }),
      { numRuns: 30 },
    )
  })

  it('rejects every single flipped bit with a typed error', () => {
    const box = sealBox(alice.publicKey, enc.encode('attack at dawn'), enc.encode('ad'))
    fc.assert(
      fc.property(fc.integer({ min: 0, max: box.length * 8 - 1 }), (bit) => {
        const bad = box.slice()
        bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7))
        let err: unknown
        try {
          openBox(alice.secretKey, bad, enc.encode('ad'))
        } catch (e) {
          err = e
        }
        expect(isPqcError(err)).toBe(true)
        expect(['X_PQC_DECRYPT_FAILED', 'X_PQC_BAD_CIPHERTEXT']).toContain((err as { code: string }).code)
      }),
      { numRuns: 60 },
    )
  })

  it('fails for the wrong recipient, wrong AD, truncation and a bad version', () => {
    const box = sealBox(alice.publicKey, enc.encode('hi'), enc.encode('ad'))
    const code = (f: () => unknown): string | undefined => {
      try {
        f()
      } catch (e) {
        return (e as { code?: string }).code
      }
      return undefined
    }
    expect(code(() => openBox(eve.secretKey, box, enc.encode('ad')))).toBe('X_PQC_DECRYPT_FAILED')
    expect(code(() => openBox(alice.secretKey, box, enc.encode('AD')))).toBe('X_PQC_DECRYPT_FAILED')
    expect(code(() => openBox(alice.secretKey, box))).toBe('X_PQC_DECRYPT_FAILED')
    expect(code(() => openBox(alice.secretKey, box.subarray(0, box.length - 1), enc.encode('ad')))).toBe(
      'X_PQC_DECRYPT_FAILED',
    )
    expect(code(() => openBox(alice.secretKey, box.subarray(0, 100)))).toBe('X_PQC_BAD_CIPHERTEXT')
    const v2 = box.slice()
    v2[0] = 2
    expect(code(() => openBox(alice.secretKey, v2, enc.encode('ad')))).toBe('X_PQC_BAD_CIPHERTEXT')
  })

  it('never produces the same box twice for the same input', () => {
    const a = sealBox(alice.publicKey, enc.encode('same'))
    const b = sealBox(alice.publicKey, enc.encode('same'))
    expect(a).not.toEqual(b)
  })
})
