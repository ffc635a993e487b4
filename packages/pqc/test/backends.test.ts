import { afterAll, describe, expect, it } from 'vitest'
import {
  aeadOpen,
  aeadSeal,
  getStatus,
  hybridDecapsulate,
  hybridEncapsulate,
  hybridKeygen,
  initPqc,
  isPqcError,
  PqcError,
  type PqcLogger,
} from '../src/index'
import {
  _resetPqcForTesting,
  _setNodeCryptoForTesting,
  _useBackendForTesting,
  availableBackends,
  nobleBackend,
  selfTest,
} from '../src/testing'
import { chooseBackend } from '../src/backend/registry'
import type { PqcBackend } from '../src/backend/types'

const backends = await availableBackends()
afterAll(() => _resetPqcForTesting())

function captureLogger(): PqcLogger & { warnings: object[] } {
  const warnings: object[] = []
  const l = {
    warnings,
    debug: () => {},
    info: () => {},
    warn: (o: object) => warnings.push(o),
    error: () => {},
    child: () => l,
  }
  return l
}

describe('backend selection', () => {
  it('uses noble before init and reports status exactly', () => {
    _resetPqcForTesting()
    const s = getStatus()
    expect(Object.keys(s).sort()).toEqual(
      [
        'algorithm',
        'backend',
        'dilithiumKeySize',
        'initialized',
        'keyPairs',
        'kyberKeySize',
        'production',
      ].sort(),
    )
    expect(s).toMatchObject({
      initialized: false,
      algorithm: 'ML-KEM-1024+ML-DSA-87',
      kyberKeySize: 1568,
      dilithiumKeySize: 2592,
      backend: 'noble',
      production: false,
    })
  })

  it('auto mode self-tests every backend, skips unavailable ones with a warning and never throws', async () => {
    const logger = captureLogger()
    const r = await initPqc({ logger, benchmarkRounds: 1 })
    expect(r.backends.find((b) => b.name === 'noble')?.ok).toBe(true)
    for (const rep of r.backends.filter((b) => !b.ok)) {
      expect(logger.warnings).toContainEqual(expect.objectContaining({ backend: rep.name }))
    }
    const s = getStatus()
    expect(s.initialized).toBe(true)
    expect(s.backend).toBe(r.backend)
    expect(s.production).toBe(r.backend === 'node')
    if (backends.some((b) => b.name === 'node')) expect(r.backend).toBe('node') // native is measured faster
  })

  it('honours a forced backend and rejects an unavailable one with X_PQC_BACKEND_UNAVAILABLE', async () => {
    expect((await initPqc({ backend: 'noble' })).backend).toBe('noble')
    expect(getStatus().production).toBe(false)
    for (const name of ['node', 'liboqs'] as const) {
      if (backends.some((b) => b.name === name)) continue
      await expect(initPqc({ backend: name })).rejects.toSatisfy((e: unknown) =>
        isPqcError(e, 'X_PQC_BACKEND_UNAVAILABLE'),
      )
    }
    await expect(initPqc({ backend: 'bogus' as never })).rejects.toThrow(TypeError)
  })

  it('prefers a constant-time backend that passed over a faster one, and times only the rest', () => {
    const fake = (name: string, constantTime: boolean) => ({ name, constantTime }) as unknown as PqcBackend
    const openssl = fake('node', true)
    const wasm = fake('liboqs', false)
    const js = fake('noble', false)
    const timed: string[] = []
    const time = (ms: Record<string, number>) => (b: PqcBackend) => {
      timed.push(b.name)
      return ms[b.name]!
    }
    // A busy machine made OpenSSL's three rounds slower than liboqs's: it still wins (production: true).
    expect(chooseBackend([js, openssl, wasm], time({ noble: 9, node: 5, liboqs: 1 })).name).toBe('node')
    expect(timed).toEqual([])
    expect(chooseBackend([js, wasm], time({ noble: 9, liboqs: 1 })).name).toBe('liboqs')
    expect(chooseBackend([js], time({ noble: 9 })).name).toBe('noble')
  })

  it('self-test catches a backend that computes wrong bytes', () => {
    const broken = {
      ...nobleBackend,
      name: 'node' as const,
      mlKemDecapsulate: (c: Uint8Array, sk: Uint8Array) =>
        nobleBackend.mlKemDecapsulate(c, sk).map((x) => x ^ 1),
    }
    expect(() => selfTest(broken)).toThrow(/self-test/)
    expect(() => selfTest({ ...nobleBackend, mlDsaVerify: () => true })).toThrow(/self-test/)
    expect(() => selfTest({ ...nobleBackend, mlDsa44Verify: () => true })).toThrow(/ML-DSA-44/)
    // Consistent with itself and with noble's verify, but not the FIPS 204 key: only the known answer catches it.
    const shifted = (seed: Uint8Array) => nobleBackend.mlDsa44Keygen(seed.map((x) => x ^ 1))
    expect(() =>
      selfTest({
        ...nobleBackend,
        mlDsa44Keygen: (seed) =>
          seed.every((x, i) => x === 255 - i) ? nobleBackend.mlDsa44Keygen(seed) : shifted(seed),
      }),
    ).toThrow(/ML-DSA-44 known answer/)
    for (const b of backends) expect(() => selfTest(b)).not.toThrow()
  })
})

describe('cross-backend equality', () => {
  it('keys from one seed are equal; encapsulations made on one backend decapsulate on every other', () => {
    const seed = new Uint8Array(32).fill(42)
    const made = backends.map((b) => {
      _useBackendForTesting(b)
      const kp = hybridKeygen(seed)
      return { b, kp, enc: hybridEncapsulate(kp.publicKey) }
    })
    for (const x of made) {
      expect(x.kp.publicKey).toEqual(made[0]!.kp.publicKey)
      expect(x.kp.secretKey).toEqual(made[0]!.kp.secretKey)
      for (const y of backends) {
        _useBackendForTesting(y)
        expect(hybridDecapsulate(x.enc.cipherText, x.kp.secretKey)).toEqual(x.enc.sharedSecret)
      }
    }
  })

  it('ML-DSA-44 keys from one seed are equal; signatures made on one backend verify on every other', () => {
    const seed = new Uint8Array(32).fill(44)
    const msg = new TextEncoder().encode('cross-44')
    const ctx = new TextEncoder().encode('ctx')
    for (const a of backends) {
      const kp = a.mlDsa44Keygen(seed)
      const sig = a.mlDsa44Sign(kp.secretKey, msg, ctx)
      for (const b of backends) {
        expect(b.mlDsa44Keygen(seed)).toEqual(kp)
        expect(b.mlDsa44Verify(kp.publicKey, msg, sig, ctx)).toBe(true)
        expect(b.mlDsa44Verify(kp.publicKey, msg, sig, new Uint8Array(0))).toBe(false)
      }
    }
  })

  it('signatures made on one backend verify on every other', () => {
    const seed = new Uint8Array(32).fill(43)
    const msg = new TextEncoder().encode('cross')
    const ctx = new TextEncoder().encode('ctx')
    for (const a of backends) {
      const kp = a.mlDsaKeygen(seed)
      const sig = a.mlDsaSign(kp.secretKey, msg, ctx)
      for (const b of backends) {
        expect(b.mlDsaKeygen(seed).publicKey).toEqual(kp.publicKey)
        expect(b.mlDsaVerify(kp.publicKey, msg, sig, ctx)).toBe(true)
      }
    }
  })
})

describe('AEAD', () => {
  it('node:crypto and @noble/ciphers give the same bytes and reject forgeries', () => {
    const key = new Uint8Array(32).fill(1)
    const nonce = new Uint8Array(12).fill(2)
    const pt = new Uint8Array(1000).map((_, i) => i)
    const ad = new Uint8Array([9, 9])
    const viaNode = aeadSeal(key, nonce, pt, ad)
    _setNodeCryptoForTesting(null)
    try {
      const viaNoble = aeadSeal(key, nonce, pt, ad)
      expect(viaNoble).toEqual(viaNode)
      expect(aeadOpen(key, nonce, viaNode, ad)).toEqual(pt)
      expect(() => aeadOpen(key, nonce, viaNode, new Uint8Array([9]))).toThrow(PqcError)
    } finally {
      _setNodeCryptoForTesting(undefined)
    }
    expect(aeadOpen(key, nonce, viaNode, ad)).toEqual(pt)
    const bad = viaNode.slice()
    bad[5] = (bad[5] as number) ^ 1
    expect(() => aeadOpen(key, nonce, bad, ad)).toThrow(
      expect.objectContaining({ code: 'X_PQC_DECRYPT_FAILED' }),
    )
    expect(() => aeadOpen(key, nonce, new Uint8Array(5))).toThrow(
      expect.objectContaining({ code: 'X_PQC_DECRYPT_FAILED' }),
    )
    expect(() => aeadSeal(new Uint8Array(16), nonce, pt)).toThrow(RangeError)
  })
})
