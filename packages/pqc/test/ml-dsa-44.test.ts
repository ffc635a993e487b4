/**
 * ML-DSA-44 known answers on every backend that loads here (noble always; node:crypto on Node >= 24.7;
 * liboqs-js when installed), through the public facade:
 * - NIST ACVP keyGen, ML-DSA-44 tcId 1 (acvp-ML-DSA-keyGen-FIPS204-ML-DSA-44-tc1.json, copied from the ACVP
 *   server's files): seed → public and secret key.
 * - ml-dsa-44-kat.json: no official ML-DSA-44 signing vectors are vendored, so these are pinned from noble and
 *   cross-checked by Node 24's OpenSSL 3.5 when generated (scripts/gen-ml-dsa-44-kat.ts): seed → public key and
 *   SHA-256 of the secret key, deterministic signature (rnd = 0³²), and verification of that fixed signature.
 */
import { afterAll, describe, expect, it } from 'vitest'
import {
  mlDsa44Keygen,
  mlDsa44Sign,
  mlDsa44Verify,
  ML_DSA_44_PUBLIC_KEY_BYTES,
  ML_DSA_44_SECRET_KEY_BYTES,
  ML_DSA_44_SIGNATURE_BYTES,
  sha256,
} from '../src/index'
import { _resetPqcForTesting, _useBackendForTesting, availableBackends, selfTest } from '../src/testing'
import { h, hexOf, loadVectors } from './vectors'

const backends = await availableBackends()
afterAll(() => _resetPqcForTesting())

interface AcvpKeyGen {
  tcId: number
  seed: string
  pk: string
  sk: string
}
interface Kat {
  tcId: number
  seed: string
  publicKey: string
  secretKeySha256: string
  message: string
  context: string
  deterministicSignature: string
}

const acvp = loadVectors<AcvpKeyGen>('acvp-ML-DSA-keyGen-FIPS204-ML-DSA-44-tc1.json').flatMap((g) => g.tests)
const kats = loadVectors<Kat>('ml-dsa-44-kat.json').flatMap((g) => g.tests)

it('loads the backends and the vector files it claims to run', () => {
  expect(backends.map((b) => b.name)).toContain('noble')
  expect(acvp).toHaveLength(1)
  expect(kats).toHaveLength(4)
})

for (const backend of backends) {
  describe(`backend ${backend.name}`, () => {
    it('passes its self-test, which includes ML-DSA-44', () => {
      expect(() => selfTest(backend)).not.toThrow()
    })

    it('ACVP ML-DSA-44 keyGen: seed → public and secret key', () => {
      _useBackendForTesting(backend)
      for (const t of acvp) {
        const kp = mlDsa44Keygen(h(t.seed))
        expect(hexOf(kp.publicKey)).toBe(t.pk.toLowerCase())
        expect(hexOf(kp.secretKey)).toBe(t.sk.toLowerCase())
      }
    })

    it('pinned keys, deterministic signatures, and verification of the fixed signatures', () => {
      _useBackendForTesting(backend)
      for (const t of kats) {
        const kp = mlDsa44Keygen(h(t.seed))
        expect(hexOf(kp.publicKey)).toBe(t.publicKey)
        expect(hexOf(sha256(kp.secretKey))).toBe(t.secretKeySha256)
        const msg = h(t.message)
        const ctx = h(t.context)
        const fixed = h(t.deterministicSignature)
        // A backend that cannot take rnd (node, liboqs) hands a deterministic call to noble: same bytes.
        expect(hexOf(mlDsa44Sign(kp.secretKey, msg, ctx, { rnd: new Uint8Array(32) }))).toBe(
          t.deterministicSignature,
        )
        expect(mlDsa44Verify(h(t.publicKey), msg, fixed, ctx)).toBe(true)
        const bad = fixed.slice()
        bad[fixed.length >> 1]! ^= 0x10
        expect(mlDsa44Verify(h(t.publicKey), msg, bad, ctx)).toBe(false)
        expect(mlDsa44Verify(h(t.publicKey), msg, fixed, new TextEncoder().encode('other'))).toBe(false)
        expect(mlDsa44Verify(h(t.publicKey), msg.subarray(1), fixed, ctx)).toBe(false)
      }
    })

    it('hedged signatures differ from each other and verify on every backend', () => {
      _useBackendForTesting(backend)
      const t = kats[1]!
      const kp = mlDsa44Keygen(h(t.seed))
      const a = mlDsa44Sign(kp.secretKey, h(t.message), h(t.context))
      const b = mlDsa44Sign(kp.secretKey, h(t.message), h(t.context))
      expect(a).toHaveLength(ML_DSA_44_SIGNATURE_BYTES)
      expect(hexOf(a)).not.toBe(hexOf(b))
      expect(hexOf(a)).not.toBe(t.deterministicSignature)
      for (const other of backends) {
        expect(other.mlDsa44Verify(kp.publicKey, h(t.message), a, h(t.context))).toBe(true)
      }
    })
  })
}

describe('ML-DSA-44 facade', () => {
  it('answers false for malformed keys and signatures; programmer mistakes throw', () => {
    _resetPqcForTesting()
    const t = kats[0]!
    const pk = h(t.publicKey)
    const sig = h(t.deterministicSignature)
    const msg = h(t.message)
    expect(mlDsa44Verify(pk.subarray(1), msg, sig)).toBe(false)
    expect(mlDsa44Verify(pk, msg, sig.subarray(1))).toBe(false)
    expect(mlDsa44Verify(new Uint8Array(ML_DSA_44_PUBLIC_KEY_BYTES).fill(0xff), msg, sig)).toBe(false)
    expect(mlDsa44Verify('pk' as never, msg, sig)).toBe(false)
    expect(() => mlDsa44Verify(pk, 'msg' as never, sig)).toThrow(TypeError)
    expect(() => mlDsa44Verify(pk, msg, sig, new Uint8Array(256))).toThrow(RangeError)
    expect(() => mlDsa44Keygen(new Uint8Array(31))).toThrow(RangeError)
    expect(() => mlDsa44Sign(new Uint8Array(ML_DSA_44_SECRET_KEY_BYTES - 1), msg)).toThrow(RangeError)
    expect(mlDsa44Keygen().publicKey).toHaveLength(ML_DSA_44_PUBLIC_KEY_BYTES)
  })
})
