import { afterAll, describe, expect, it } from 'vitest'
import {
  deriveSigningSubkey,
  Identity,
  MAX_SUBKEY_LABEL_BYTES,
  sha256,
  SigningSubkey,
  SUBKEY_CERTIFICATE_BYTES,
  SUBKEY_PUBLIC_KEY_BYTES,
  SUBKEY_SIGNATURE_BYTES,
  verify,
  verifySubkeyCertificate,
  verifySubkeySignature,
} from '../src/index'
import { _resetPqcForTesting, _useBackendForTesting, availableBackends } from '../src/testing'
import { h, hexOf } from './vectors'
import kat from './vectors/ml-dsa-44-kat.json'

const backends = await availableBackends()
afterAll(() => _resetPqcForTesting())

const enc = new TextEncoder()
const LABEL = 'x-test/records'
const alice = Identity.generate(new Uint8Array(32).fill(1))
const mallory = Identity.generate(new Uint8Array(32).fill(2))
const aliceKey = deriveSigningSubkey(alice, { label: LABEL })
const malloryKey = deriveSigningSubkey(mallory, { label: LABEL })

describe('signing subkeys', () => {
  it('derive the pinned keys on every backend (x-node record keys stay what they were)', () => {
    // Pinned by scripts/gen-ml-dsa-44-kat.ts from @noble/hashes HKDF + noble ML-DSA-44, cross-checked by
    // OpenSSL; "x-node/record-key" for identity seeds 01…01 and 02…02 are the record keys x-node derived itself
    // before the scheme moved here.
    expect(kat.subkeys.length).toBe(3)
    for (const backend of backends) {
      _useBackendForTesting(backend)
      for (const s of kat.subkeys) {
        const subkey = deriveSigningSubkey(Identity.generate(h(s.identitySeed)), { label: s.label })
        expect(hexOf(sha256(subkey.publicKey)), `${backend.name} ${s.label}`).toBe(s.subkeyPublicKeySha256)
      }
    }
    _resetPqcForTesting()
  })

  it('certify the subkey with the identity under context label + "/v2"; the certificate verifies for that label only', () => {
    expect(aliceKey.publicKey).toHaveLength(SUBKEY_PUBLIC_KEY_BYTES)
    expect(aliceKey.certificate).toHaveLength(SUBKEY_CERTIFICATE_BYTES)
    expect(aliceKey.label).toBe(LABEL)
    expect(verify(alice.publicKey, aliceKey.publicKey, aliceKey.certificate, enc.encode(`${LABEL}/v2`))).toBe(
      true,
    )
    expect(verifySubkeyCertificate(alice.publicKey, aliceKey.publicKey, aliceKey.certificate, LABEL)).toBe(
      true,
    )
    expect(
      verifySubkeyCertificate(alice.publicKey, aliceKey.publicKey, aliceKey.certificate, 'x-test/other'),
    ).toBe(false)
    expect(verifySubkeyCertificate(mallory.publicKey, aliceKey.publicKey, aliceKey.certificate, LABEL)).toBe(
      false,
    )
    expect(verifySubkeyCertificate(alice.publicKey, malloryKey.publicKey, aliceKey.certificate, LABEL)).toBe(
      false,
    )
    expect(
      verifySubkeyCertificate(alice.publicKey, malloryKey.publicKey, malloryKey.certificate, LABEL),
    ).toBe(false)
    // The same identity signing the key under any other context is no certificate.
    const otherContext = alice.sign(aliceKey.publicKey, enc.encode(LABEL))
    expect(verifySubkeyCertificate(alice.publicKey, aliceKey.publicKey, otherContext, LABEL)).toBe(false)
  })

  it('answer false, never throw, for malformed keys and certificates', () => {
    const cert = aliceKey.certificate
    const bad = cert.slice()
    bad[77]! ^= 1
    expect(verifySubkeyCertificate(alice.publicKey, aliceKey.publicKey, bad, LABEL)).toBe(false)
    expect(verifySubkeyCertificate(alice.publicKey, aliceKey.publicKey, cert.subarray(1), LABEL)).toBe(false)
    expect(verifySubkeyCertificate(alice.publicKey, aliceKey.publicKey.subarray(0, 32), cert, LABEL)).toBe(
      false,
    )
    expect(verifySubkeyCertificate(alice.publicKey.subarray(1), aliceKey.publicKey, cert, LABEL)).toBe(false)
    expect(verifySubkeyCertificate('pk' as never, aliceKey.publicKey, cert, LABEL)).toBe(false)
    expect(verifySubkeyCertificate(alice.publicKey, null as never, cert, LABEL)).toBe(false)
    expect(verifySubkeyCertificate(alice.publicKey, aliceKey.publicKey, {} as never, LABEL)).toBe(false)
  })

  it('are deterministic per (identity, label); certificates are hedged and each verifies', () => {
    const again = deriveSigningSubkey(alice, { label: LABEL })
    expect(again.publicKey).toEqual(aliceKey.publicKey)
    expect(again.certificate).not.toEqual(aliceKey.certificate)
    expect(verifySubkeyCertificate(alice.publicKey, aliceKey.publicKey, again.certificate, LABEL)).toBe(true)
    expect(deriveSigningSubkey(alice, { label: 'x-test/other' }).publicKey).not.toEqual(aliceKey.publicKey)
    expect(malloryKey.publicKey).not.toEqual(aliceKey.publicKey)
  })

  it('sign with ML-DSA-44 under a FIPS 204 context; signatures verify for that key, message and context only', () => {
    const ctx = enc.encode('x-test/record/v1')
    const msg = enc.encode('peer p is on node n')
    const sig = aliceKey.sign(msg, ctx)
    expect(sig).toHaveLength(SUBKEY_SIGNATURE_BYTES)
    expect(verifySubkeySignature(aliceKey.publicKey, msg, sig, ctx)).toBe(true)
    expect(verifySubkeySignature(aliceKey.publicKey, msg, aliceKey.sign(msg, ctx), ctx)).toBe(true)
    expect(aliceKey.sign(msg, ctx)).not.toEqual(sig) // hedged
    expect(aliceKey.signDeterministic(msg, ctx)).toEqual(aliceKey.signDeterministic(msg, ctx))
    expect(verifySubkeySignature(aliceKey.publicKey, msg, sig)).toBe(false)
    expect(verifySubkeySignature(aliceKey.publicKey, enc.encode('peer p is on node m'), sig, ctx)).toBe(false)
    expect(verifySubkeySignature(malloryKey.publicKey, msg, sig, ctx)).toBe(false)
    // An identity signature is not a subkey signature, and the other way round.
    expect(verifySubkeySignature(aliceKey.publicKey, msg, alice.sign(msg, ctx), ctx)).toBe(false)
    expect(verify(alice.publicKey, msg, sig, ctx)).toBe(false)
    expect(verifySubkeySignature(aliceKey.publicKey, msg, sig.subarray(1), ctx)).toBe(false)
    expect(() => verifySubkeySignature(aliceKey.publicKey, 'msg' as never, sig)).toThrow(TypeError)
    expect(() => aliceKey.sign(msg, new Uint8Array(256))).toThrow(RangeError)
  })

  it('keep their secrets private and out of JSON', () => {
    expect(Object.keys(aliceKey).sort()).toEqual(['certificate', 'label', 'publicKey'])
    expect(JSON.stringify(aliceKey)).toBe(JSON.stringify({ label: LABEL }))
    expect(aliceKey).toBeInstanceOf(SigningSubkey)
  })

  it('check the identity and label as programmer arguments', () => {
    expect(() => deriveSigningSubkey({} as Identity, { label: LABEL })).toThrow(TypeError)
    expect(() => deriveSigningSubkey(alice, {} as never)).toThrow(TypeError)
    expect(() => deriveSigningSubkey(alice, undefined as never)).toThrow(TypeError)
    expect(() => deriveSigningSubkey(alice, { label: '' })).toThrow(RangeError)
    // Reserved for the package's own derivations (static KEM seed, handshake contexts).
    expect(() => deriveSigningSubkey(alice, { label: 'x-pqc/static-kem-seed/v1' })).toThrow(/reserved/)
    // Counted in UTF-8 bytes: "é" is two.
    const longest = 'a'.repeat(MAX_SUBKEY_LABEL_BYTES)
    expect(MAX_SUBKEY_LABEL_BYTES).toBe(252)
    expect(deriveSigningSubkey(alice, { label: longest }).certificate).toHaveLength(SUBKEY_CERTIFICATE_BYTES)
    expect(() => deriveSigningSubkey(alice, { label: `${longest}a` })).toThrow(RangeError)
    expect(() => deriveSigningSubkey(alice, { label: `${'a'.repeat(MAX_SUBKEY_LABEL_BYTES - 1)}é` })).toThrow(
      RangeError,
    )
    expect(() =>
      verifySubkeyCertificate(alice.publicKey, aliceKey.publicKey, aliceKey.certificate, ''),
    ).toThrow(RangeError)
  })
})
