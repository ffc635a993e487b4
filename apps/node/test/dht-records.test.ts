import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Identity } from '@x/pqc'
import {
  MAX_RECORD_BYTES,
  RecordSigner,
  checkRecord,
  parseRecord,
  recordKey,
  verifyCertificate,
  type RecordBody,
} from '../src/adapters/dht-records'

const alice = Identity.generate(new Uint8Array(32).fill(1))
const mallory = Identity.generate(new Uint8Array(32).fill(2))
const signer = new RecordSigner(alice)
const now = 1_700_000_000_000

function body(extra: Partial<RecordBody> = {}): RecordBody {
  return {
    v: 1,
    t: 'peer',
    k: 'peer-1',
    n: alice.idString,
    a: 'ws://127.0.0.1:3001',
    e: now + 60_000,
    q: now,
    ...extra,
  }
}

describe('signed DHT records', () => {
  it('a record signed by the node validates under its certified record key', () => {
    expect(verifyCertificate(alice.publicKey, signer.publicKey, signer.certificate)).toBe(true)
    const bytes = signer.sign(body())
    expect(bytes.length).toBeLessThanOrEqual(MAX_RECORD_BYTES)
    const record = parseRecord(bytes)!
    expect(checkRecord(recordKey('peer', 'peer-1'), record, signer.publicKey, now)).toBe(true)
  })

  it('the record key is stable for an identity (survives restarts) and its certificate does not verify for another node', () => {
    expect(new RecordSigner(alice).publicKey).toEqual(signer.publicKey)
    expect(verifyCertificate(mallory.publicKey, signer.publicKey, signer.certificate)).toBe(false)
    const malloryKey = new RecordSigner(mallory)
    expect(verifyCertificate(alice.publicKey, malloryKey.publicKey, malloryKey.certificate)).toBe(false)
  })

  it('rejects expired records, records stored under another key, and records signed by another key', () => {
    const record = parseRecord(signer.sign(body()))!
    expect(checkRecord(recordKey('peer', 'peer-1'), record, signer.publicKey, now + 60_001)).toBe(false)
    expect(checkRecord(recordKey('peer', 'peer-2'), record, signer.publicKey, now)).toBe(false)
    const forged = parseRecord(new RecordSigner(mallory).sign(body()))! // claims n = alice
    expect(checkRecord(recordKey('peer', 'peer-1'), forged, signer.publicKey, now)).toBe(false)
  })

  it('any change to a signed field is rejected', () => {
    const original = parseRecord(signer.sign(body({ t: 'topic', k: 'room', i: 3, m: ['p1', 'p2'] })))!
    const key = recordKey('topic', 'room', 3)
    expect(checkRecord(key, original, signer.publicKey, now)).toBe(true)
    for (const change of [
      { a: 'ws://evil:1' },
      { e: now + 1e9 },
      { q: now + 1 },
      { m: ['p1'] },
      { w: 1 as const },
    ]) {
      expect(checkRecord(key, { ...original, ...change }, signer.publicKey, now)).toBe(false)
    }
  })

  it('parseRecord never throws on random bytes or random JSON', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), (bytes) => {
        expect(() => parseRecord(bytes)).not.toThrow()
      }),
    )
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const r = parseRecord(new TextEncoder().encode(JSON.stringify(value)))
        if (r) expect(r.v).toBe(1)
      }),
    )
  })
})
