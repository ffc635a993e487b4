/**
 * NIST ACVP and C2SP Wycheproof vectors for ML-KEM-1024 and ML-DSA-87, run through the public facade on every
 * backend that loads here (noble always; node:crypto on Node >= 24.7; liboqs-js when installed).
 * ACVP ML-DSA groups used: signatureInterface "external" + preHash "pure" (the API we expose). Skipped:
 * "internal" (raw M' / external mu) and "preHash" (HashML-DSA) groups, which this package does not expose.
 */
import { afterAll, describe, expect, it } from 'vitest'
import {
  checkMlKemPublicKey,
  checkMlKemSecretKey,
  isPqcError,
  mlDsaKeygen,
  mlDsaSign,
  mlDsaVerify,
  mlKemDecapsulate,
  mlKemEncapsulate,
  mlKemKeygen,
} from '../src/index'
import { _resetPqcForTesting, _useBackendForTesting, availableBackends, nobleBackend } from '../src/testing'
import { ml_dsa87 } from '@noble/post-quantum/ml-dsa.js'
import { h, hexOf, loadVectors } from './vectors'

const backends = await availableBackends()
afterAll(() => _resetPqcForTesting())

interface AcvpKemKeyGen {
  tcId: number
  d: string
  z: string
  ek: string
  dk: string
}
interface AcvpKemEncDec {
  tcId: number
  ek?: string
  dk?: string
  c?: string
  k?: string
  m?: string
  testPassed?: boolean
}
interface AcvpDsaKeyGen {
  tcId: number
  seed: string
  pk: string
  sk: string
}
interface AcvpDsaSigGen {
  tcId: number
  sk: string
  message: string
  context?: string
  rnd?: string
  signature: string
}
interface AcvpDsaSigVer {
  tcId: number
  pk: string
  message: string
  context?: string
  signature: string
  testPassed: boolean
}
interface WpResult {
  tcId: number
  result: 'valid' | 'invalid' | 'acceptable'
  flags?: string[]
}
interface WpDsaVerify extends WpResult {
  msg: string
  sig: string
  ctx?: string
}
interface WpDsaSign extends WpResult {
  msg?: string
  mu?: string
  sig: string
  ctx?: string
  rnd?: string
}
interface WpKemKeyGen extends WpResult {
  seed: string
  ek: string
  dk: string
}
interface WpKem extends WpResult {
  seed: string
  ek: string
  c: string
  K: string
}
interface WpKemEncaps extends WpResult {
  m: string
  ek: string
  c: string
  K: string
}
interface WpKemDecaps extends WpResult {
  dk: string
  c: string
  K: string
}

const kemKeyGen = loadVectors<AcvpKemKeyGen>('acvp-ML-KEM-keyGen-FIPS203-ML-KEM-1024.json.gz')
const kemEncDec = loadVectors<AcvpKemEncDec>('acvp-ML-KEM-encapDecap-FIPS203-ML-KEM-1024.json.gz')
const dsaKeyGen = loadVectors<AcvpDsaKeyGen>('acvp-ML-DSA-keyGen-FIPS204-ML-DSA-87.json.gz')
const dsaSigGen = loadVectors<AcvpDsaSigGen>('acvp-ML-DSA-sigGen-FIPS204-ML-DSA-87.json.gz')
const dsaSigVer = loadVectors<AcvpDsaSigVer>('acvp-ML-DSA-sigVer-FIPS204-ML-DSA-87.json.gz')
const wpDsaVerify = loadVectors<WpDsaVerify>('wycheproof-mldsa_87_verify_test.json.gz')
const wpDsaSign = loadVectors<WpDsaSign>('wycheproof-mldsa_87_sign_seed_test.json.gz')
const wpKemKeyGen = loadVectors<WpKemKeyGen>('wycheproof-mlkem_1024_keygen_seed_test.json.gz')
const wpKem = loadVectors<WpKem>('wycheproof-mlkem_1024_test.json.gz')
const wpKemEncaps = loadVectors<WpKemEncaps>('wycheproof-mlkem_1024_encaps_test.json.gz')
const wpKemDecaps = loadVectors<WpKemDecaps>('wycheproof-mlkem_1024_semi_expanded_decaps_test.json.gz')

function pureExternal(g: Record<string, unknown>): boolean {
  return g.signatureInterface === 'external' && g.preHash === 'pure'
}

it('loads every vector file with cases and finds at least the noble backend', () => {
  expect(backends.map((b) => b.name)).toContain('noble')
})

describe.each(backends.map((b) => [b.name, b] as const))('backend %s', (_name, backend) => {
  const derandomized = backend.derandomized

  it('ACVP ML-KEM keyGen', () => {
    _useBackendForTesting(backend)
    let n = 0
    for (const g of kemKeyGen)
      for (const t of g.tests) {
        const kp = mlKemKeygen(new Uint8Array([...h(t.d), ...h(t.z)]))
        expect(hexOf(kp.publicKey), `tc ${t.tcId}`).toBe(t.ek.toLowerCase())
        expect(hexOf(kp.secretKey), `tc ${t.tcId}`).toBe(t.dk.toLowerCase())
        n++
      }
    expect(n).toBeGreaterThan(0)
  })

  it('ACVP ML-KEM encapsulation, decapsulation and key checks', () => {
    _useBackendForTesting(backend)
    let n = 0
    for (const g of kemEncDec)
      for (const t of g.tests) {
        n++
        switch (g.function) {
          case 'encapsulation': {
            if (derandomized) {
              const r = mlKemEncapsulate(h(t.ek), h(t.m))
              expect(hexOf(r.cipherText)).toBe(t.c?.toLowerCase())
              expect(hexOf(r.sharedSecret)).toBe(t.k?.toLowerCase())
            }
            // Every backend: decapsulating the expected ciphertext gives the expected key.
            expect(hexOf(mlKemDecapsulate(h(t.c), h(t.dk)))).toBe(t.k?.toLowerCase())
            break
          }
          case 'decapsulation':
            expect(hexOf(mlKemDecapsulate(h(t.c), h(t.dk))), `tc ${t.tcId}`).toBe(t.k?.toLowerCase())
            break
          case 'encapsulationKeyCheck': {
            const ok = (() => {
              try {
                checkMlKemPublicKey(h(t.ek))
                return true
              } catch (e) {
                expect(isPqcError(e, 'X_PQC_BAD_KEY')).toBe(true)
                return false
              }
            })()
            expect(ok, `tc ${t.tcId}`).toBe(t.testPassed)
            break
          }
          case 'decapsulationKeyCheck': {
            const ok = (() => {
              try {
                checkMlKemSecretKey(h(t.dk))
                return true
              } catch (e) {
                expect(isPqcError(e, 'X_PQC_BAD_KEY')).toBe(true)
                return false
              }
            })()
            expect(ok, `tc ${t.tcId}`).toBe(t.testPassed)
            break
          }
          default:
            throw new Error(`unknown ACVP function ${String(g.function)}`)
        }
      }
    expect(n).toBe(55)
  })

  it('ACVP ML-DSA keyGen', () => {
    _useBackendForTesting(backend)
    for (const g of dsaKeyGen)
      for (const t of g.tests) {
        const kp = mlDsaKeygen(h(t.seed))
        expect(hexOf(kp.publicKey), `tc ${t.tcId}`).toBe(t.pk.toLowerCase())
        expect(hexOf(kp.secretKey), `tc ${t.tcId}`).toBe(t.sk.toLowerCase())
      }
  })

  it('ACVP ML-DSA sigGen (external, pure)', () => {
    _useBackendForTesting(backend)
    let n = 0
    for (const g of dsaSigGen) {
      if (!pureExternal(g)) continue
      for (const t of g.tests) {
        n++
        const rnd = g.deterministic === true ? new Uint8Array(32) : h(t.rnd)
        // Exact bytes: derandomized signing is routed to a backend that can take rnd.
        const sig = mlDsaSign(h(t.sk), h(t.message), h(t.context), { rnd })
        expect(hexOf(sig), `tc ${t.tcId}`).toBe(t.signature.toLowerCase())
        // Hedged signing on this very backend, checked by noble.
        const own = backend.mlDsaSign(h(t.sk), h(t.message), h(t.context))
        const pk = ml_dsa87.getPublicKey(h(t.sk))
        expect(nobleBackend.mlDsaVerify(pk, h(t.message), own, h(t.context))).toBe(true)
      }
    }
    expect(n).toBe(30)
  })

  it('ACVP ML-DSA sigVer (external, pure)', () => {
    _useBackendForTesting(backend)
    let n = 0
    for (const g of dsaSigVer) {
      if (!pureExternal(g)) continue
      for (const t of g.tests) {
        n++
        expect(mlDsaVerify(h(t.pk), h(t.message), h(t.signature), h(t.context)), `tc ${t.tcId}`).toBe(
          t.testPassed,
        )
      }
    }
    expect(n).toBe(15)
  })

  it('Wycheproof ML-DSA-87 verify', () => {
    _useBackendForTesting(backend)
    for (const g of wpDsaVerify) {
      const pk = h(g.publicKey as string)
      for (const t of g.tests) {
        let got: boolean
        try {
          got = mlDsaVerify(pk, h(t.msg), h(t.sig), h(t.ctx))
        } catch (e) {
          // Only a context longer than 255 bytes is a caller error (RangeError); it must be an invalid case.
          expect(e).toBeInstanceOf(RangeError)
          got = false
        }
        expect(got, `tc ${t.tcId} ${t.flags?.join(',')}`).toBe(t.result === 'valid')
      }
    }
  })

  it('Wycheproof ML-DSA-87 sign from seed', () => {
    _useBackendForTesting(backend)
    let n = 0
    for (const g of wpDsaSign) {
      const seed = h(g.privateSeed as string)
      if (seed.length !== 32) {
        expect(() => mlDsaKeygen(seed)).toThrow(RangeError)
        continue
      }
      const kp = mlDsaKeygen(seed)
      expect(hexOf(kp.publicKey)).toBe((g.publicKey as string).toLowerCase())
      for (const t of g.tests) {
        if (t.msg === undefined) continue // external-mu cases: not exposed
        n++
        const rnd = t.rnd === undefined ? new Uint8Array(32) : h(t.rnd)
        if (t.result === 'invalid') {
          expect(() => mlDsaSign(kp.secretKey, h(t.msg), h(t.ctx), { rnd }), `tc ${t.tcId}`).toThrow()
          continue
        }
        expect(hexOf(mlDsaSign(kp.secretKey, h(t.msg), h(t.ctx), { rnd })), `tc ${t.tcId}`).toBe(t.sig)
        expect(mlDsaVerify(kp.publicKey, h(t.msg), h(t.sig), h(t.ctx))).toBe(true)
      }
    }
    expect(n).toBeGreaterThan(50)
  })

  it('Wycheproof ML-KEM-1024 keygen from seed', () => {
    _useBackendForTesting(backend)
    for (const g of wpKemKeyGen)
      for (const t of g.tests) {
        const kp = mlKemKeygen(h(t.seed))
        expect(hexOf(kp.publicKey), `tc ${t.tcId}`).toBe(t.ek)
        expect(hexOf(kp.secretKey), `tc ${t.tcId}`).toBe(t.dk)
      }
  })

  it('Wycheproof ML-KEM-1024 decapsulation (seed, ek, c → K)', () => {
    _useBackendForTesting(backend)
    for (const g of wpKem)
      for (const t of g.tests) {
        if (h(t.seed).length !== 64) {
          expect(t.result).toBe('invalid')
          expect(() => mlKemKeygen(h(t.seed))).toThrow(RangeError)
          continue
        }
        const kp = mlKemKeygen(h(t.seed))
        expect(hexOf(kp.publicKey)).toBe(t.ek)
        const run = (): string => hexOf(mlKemDecapsulate(h(t.c), kp.secretKey))
        if (t.result === 'valid') expect(run(), `tc ${t.tcId}`).toBe(t.K)
        else expect(run, `tc ${t.tcId}`).toThrow(/ciphertext/)
      }
  })

  it('Wycheproof ML-KEM-1024 encapsulation (modulus check)', () => {
    _useBackendForTesting(backend)
    for (const g of wpKemEncaps)
      for (const t of g.tests) {
        if (t.result === 'invalid') {
          let err: unknown
          try {
            mlKemEncapsulate(h(t.ek), derandomized ? h(t.m) : undefined)
          } catch (e) {
            err = e
          }
          expect(isPqcError(err, 'X_PQC_BAD_KEY'), `tc ${t.tcId}`).toBe(true)
        } else if (derandomized) {
          const r = mlKemEncapsulate(h(t.ek), h(t.m))
          expect(hexOf(r.cipherText), `tc ${t.tcId}`).toBe(t.c)
          expect(hexOf(r.sharedSecret), `tc ${t.tcId}`).toBe(t.K)
        } else {
          expect(mlKemEncapsulate(h(t.ek)).cipherText.length).toBe(1568)
        }
      }
  })

  it('Wycheproof ML-KEM-1024 semi-expanded decapsulation keys', () => {
    _useBackendForTesting(backend)
    for (const g of wpKemDecaps)
      for (const t of g.tests) {
        const run = (): string => hexOf(mlKemDecapsulate(h(t.c), h(t.dk)))
        if (t.result === 'valid') expect(run(), `tc ${t.tcId}`).toBe(t.K)
        else {
          let err: unknown
          try {
            run()
          } catch (e) {
            err = e
          }
          expect(isPqcError(err), `tc ${t.tcId} ${t.flags?.join(',')}`).toBe(true)
        }
      }
  })

  it('gives the vector answers when one key object is used again and again (cached and prepared paths)', () => {
    _useBackendForTesting(backend)
    let n = 0
    for (const g of kemEncDec)
      for (const t of g.tests) {
        if (g.function !== 'encapsulation' && g.function !== 'decapsulation') continue
        const dk = h(t.dk)
        const ek = h(t.ek ?? '')
        // Use 1 takes the one-shot path; from use 2 on, backends use what they cached for the key.
        for (let use = 1; use <= 3; use++) {
          expect(hexOf(mlKemDecapsulate(h(t.c), dk)), `tc ${t.tcId} use ${use}`).toBe(t.k?.toLowerCase())
          if (g.function === 'encapsulation' && derandomized) {
            const r = mlKemEncapsulate(ek, h(t.m))
            expect(hexOf(r.cipherText), `tc ${t.tcId} use ${use}`).toBe(t.c?.toLowerCase())
            expect(hexOf(r.sharedSecret), `tc ${t.tcId} use ${use}`).toBe(t.k?.toLowerCase())
          }
          n++
        }
      }
    // Implicit rejection on a reused key: an altered ciphertext gives the same pseudo-random key every time.
    for (const g of wpKem)
      for (const t of g.tests) {
        if (h(t.seed).length !== 64 || t.result !== 'valid') continue
        const kp = mlKemKeygen(h(t.seed))
        for (let use = 1; use <= 3; use++) {
          expect(hexOf(mlKemDecapsulate(h(t.c), kp.secretKey)), `tc ${t.tcId} use ${use}`).toBe(t.K)
          const enc = mlKemEncapsulate(kp.publicKey)
          expect(mlKemDecapsulate(enc.cipherText, kp.secretKey)).toEqual(enc.sharedSecret)
          n++
        }
      }
    expect(n).toBeGreaterThan(30)
  })
})
