import { afterAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ml_kem1024 } from '@noble/post-quantum/ml-kem.js'
import { x25519 } from '@noble/curves/ed25519.js'
import { sha3_256, shake256 } from '@noble/hashes/sha3.js'
import {
  HYBRID_CIPHERTEXT_BYTES,
  HYBRID_KEM_LABEL,
  HYBRID_PUBLIC_KEY_BYTES,
  HYBRID_SECRET_KEY_BYTES,
  hybridDecapsulate,
  hybridEncapsulate,
  hybridKeygen,
  isPqcError,
} from '../src/index'
import { _resetPqcForTesting, _useBackendForTesting, availableBackends } from '../src/testing'
import { h, hexOf, loadVectors } from './vectors'

interface Kat {
  tcId: number
  seed: string
  random: string
  publicKey: string
  secretKey: string
  cipherText: string
  sharedSecret: string
}
const kats = loadVectors<Kat>('hybrid-kem-kat.json')[0]?.tests ?? []
const backends = await availableBackends()
afterAll(() => _resetPqcForTesting())

describe('hybrid KEM construction', () => {
  it('matches an independent re-implementation of the documented combiner', () => {
    const t = kats[0]
    if (t === undefined) throw new Error('no KAT')
    const exp = shake256(h(t.seed), { dkLen: 96 })
    const kem = ml_kem1024.keygen(exp.subarray(0, 64))
    const pkX = x25519.getPublicKey(exp.subarray(64))
    expect(hexOf(new Uint8Array([...kem.publicKey, ...pkX]))).toBe(t.publicKey)
    const r = h(t.random)
    const enc = ml_kem1024.encapsulate(kem.publicKey, r.subarray(0, 32))
    const ctX = x25519.getPublicKey(r.subarray(32))
    const ssX = x25519.getSharedSecret(r.subarray(32), pkX)
    const ss = sha3_256(new Uint8Array([...enc.sharedSecret, ...ssX, ...ctX, ...pkX, ...HYBRID_KEM_LABEL]))
    expect(hexOf(new Uint8Array([...enc.cipherText, ...ctX]))).toBe(t.cipherText)
    expect(hexOf(ss)).toBe(t.sharedSecret)
  })

  it('has the documented sizes', () => {
    const kp = hybridKeygen()
    expect([kp.publicKey.length, kp.secretKey.length, kp.seed.length]).toEqual([
      HYBRID_PUBLIC_KEY_BYTES,
      HYBRID_SECRET_KEY_BYTES,
      32,
    ])
    expect(hybridEncapsulate(kp.publicKey).cipherText.length).toBe(HYBRID_CIPHERTEXT_BYTES)
  })
})

describe.each(backends.map((b) => [b.name, b] as const))('hybrid KEM on backend %s', (_n, backend) => {
  it(`reproduces the ${kats.length} self-generated known answers`, () => {
    _useBackendForTesting(backend)
    expect(kats.length).toBeGreaterThan(0)
    for (const t of kats) {
      const kp = hybridKeygen(h(t.seed))
      expect(hexOf(kp.publicKey)).toBe(t.publicKey)
      expect(hexOf(kp.secretKey)).toBe(t.secretKey)
      const enc = hybridEncapsulate(kp.publicKey, h(t.random))
      expect(hexOf(enc.cipherText)).toBe(t.cipherText)
      expect(hexOf(enc.sharedSecret)).toBe(t.sharedSecret)
      expect(hexOf(hybridDecapsulate(h(t.cipherText), h(t.secretKey)))).toBe(t.sharedSecret)
    }
  })

  it('round-trips random encapsulations; any flipped ciphertext bit changes or rejects the secret', () => {
    _useBackendForTesting(backend)
    const kp = hybridKeygen()
    fc.assert(
      fc.property(fc.integer({ min: 0, max: HYBRID_CIPHERTEXT_BYTES * 8 - 1 }), (bit) => {
        const { cipherText, sharedSecret } = hybridEncapsulate(kp.publicKey)
        expect(hybridDecapsulate(cipherText, kp.secretKey)).toEqual(sharedSecret)
        const bad = cipherText.slice()
        bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7))
        try {
          expect(hybridDecapsulate(bad, kp.secretKey)).not.toEqual(sharedSecret)
        } catch (e) {
          expect(isPqcError(e, 'X_PQC_BAD_CIPHERTEXT')).toBe(true)
        }
      }),
      { numRuns: 25 },
    )
  })
})

describe('hostile input', () => {
  const kp = hybridKeygen(new Uint8Array(32).fill(9))
  it('rejects wrong lengths with typed errors', () => {
    expect(() => hybridEncapsulate(new Uint8Array(10))).toThrow(
      expect.objectContaining({ code: 'X_PQC_BAD_KEY' }),
    )
    expect(() => hybridDecapsulate(new Uint8Array(10), kp.secretKey)).toThrow(
      expect.objectContaining({ code: 'X_PQC_BAD_CIPHERTEXT' }),
    )
    expect(() => hybridDecapsulate(new Uint8Array(HYBRID_CIPHERTEXT_BYTES), new Uint8Array(5))).toThrow(
      expect.objectContaining({ code: 'X_PQC_BAD_KEY' }),
    )
  })
  it('rejects a low-order X25519 point in the ciphertext', () => {
    const { cipherText } = hybridEncapsulate(kp.publicKey)
    const bad = cipherText.slice()
    bad.fill(0, HYBRID_CIPHERTEXT_BYTES - 32) // the all-zero u-coordinate has order 1
    expect(() => hybridDecapsulate(bad, kp.secretKey)).toThrow(
      expect.objectContaining({ code: 'X_PQC_BAD_CIPHERTEXT' }),
    )
  })
  it('rejects a public key whose ML-KEM part fails the modulus check', () => {
    const bad = kp.publicKey.slice()
    bad[0] = 0xff
    bad[1] = 0xff
    expect(() => hybridEncapsulate(bad)).toThrow(expect.objectContaining({ code: 'X_PQC_BAD_KEY' }))
  })
  it('checks seed lengths as programmer errors', () => {
    expect(() => hybridKeygen(new Uint8Array(31))).toThrow(RangeError)
  })
})
