import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Identity, mlDsa44Keygen, mlDsa44Sign } from '@x/pqc'
import {
  CERT_CONTEXT,
  MAX_RECORD_BYTES,
  MAX_TOPIC_MEMBERS,
  RECORD_CONTEXT,
  RECORD_FORMAT,
  RECORD_HEADER_BYTES,
  RECORD_PUBLIC_KEY_BYTES,
  RECORD_SIGNATURE_BYTES,
  RecordSigner,
  checkRecord,
  fingerprint,
  parseRecord,
  recordKey,
  recordSize,
  verifyCertificate,
  checkFreshness,
  peerStatementText,
  RECORD_CLOCK_SKEW_MS,
  RECORD_TTL_MS,
  selectRecord,
  STATEMENT_CLOCK_SKEW_MS,
  type RecordBody,
} from '../src/records/format'

const alice = Identity.generate(new Uint8Array(32).fill(1))
const mallory = Identity.generate(new Uint8Array(32).fill(2))
const signer = new RecordSigner(alice)
const mallorySigner = new RecordSigner(mallory)
const now = 1_700_000_000_000
const key1 = recordKey('peer', 'peer-1')

const statement = { h: '127.0.0.1:3001', t: now - 1_000, c: 'bm9uY2Utbm9uY2Utbm9uY2U=' }

function body(extra: Partial<RecordBody> = {}): RecordBody {
  const b: RecordBody = {
    v: 1,
    t: 'peer',
    k: 'peer-1',
    n: alice.idString,
    a: 'ws://127.0.0.1:3001',
    e: now + 60_000,
    q: now,
    ...extra,
  }
  // A peer record always carries its peer's statement; other kinds never do.
  if (b.t === 'peer' && !('p' in extra)) b.p = statement
  if (b.t !== 'peer') delete b.p
  return b
}

/** Whether a validator holding `pub` as node `n`'s certified record key would accept `bytes` under `key`. */
function accepted(key: Uint8Array, bytes: Uint8Array, pub = signer.publicKey, at = now): boolean {
  const record = parseRecord(bytes)
  return record !== undefined && checkRecord(key, record, pub, at)
}

/** A stored record with an ML-DSA-44 signature by a raw key (not derived from, nor certified by, an identity). */
function signedBy(secretKey: Uint8Array, publicKey: Uint8Array, b: RecordBody, fp = fingerprint(publicKey)) {
  const json = new TextEncoder().encode(
    JSON.stringify({ v: b.v, t: b.t, k: b.k, n: b.n, a: b.a, e: b.e, q: b.q, ...(b.p ? { p: b.p } : {}) }),
  )
  const out = new Uint8Array(RECORD_HEADER_BYTES + json.length)
  out[0] = RECORD_FORMAT
  out.set(fp, 1)
  out.set(mlDsa44Sign(secretKey, json, RECORD_CONTEXT), 9)
  out.set(json, RECORD_HEADER_BYTES)
  return out
}

describe('ML-DSA-44 signed DHT records', () => {
  it('a record signed by the certified ML-DSA-44 record key validates, and fits the DHT bound', () => {
    expect(signer.publicKey.length).toBe(RECORD_PUBLIC_KEY_BYTES)
    expect(verifyCertificate(alice.publicKey, signer.publicKey, signer.certificate)).toBe(true)
    const bytes = signer.sign(body())
    expect(bytes[0]).toBe(RECORD_FORMAT)
    expect(bytes.length).toBeLessThanOrEqual(MAX_RECORD_BYTES)
    expect(bytes.length).toBe(recordSize(body()))
    const record = parseRecord(bytes)!
    expect(record.s.length).toBe(RECORD_SIGNATURE_BYTES)
    // The record names its key by fingerprint only: the 1312-byte key is not in it.
    expect(Buffer.from(bytes).includes(Buffer.from(signer.publicKey.subarray(0, 64)))).toBe(false)
    expect(checkRecord(key1, record, signer.publicKey, now)).toBe(true)
  })

  it('the record key is stable for an identity (survives restarts) and certified for that identity only', () => {
    expect(new RecordSigner(alice).publicKey).toEqual(signer.publicKey)
    // The key this module derived itself (HKDF over the identity seed + noble) before @x/pqc's subkeys took over.
    expect(createHash('sha256').update(signer.publicKey).digest('hex')).toBe(
      '58c935310443829ddf18310153f18112292f69cd00fddf3f57fa1c23192557b7',
    )
    expect(mallorySigner.publicKey).not.toEqual(signer.publicKey)
    expect(verifyCertificate(mallory.publicKey, signer.publicKey, signer.certificate)).toBe(false)
    expect(verifyCertificate(alice.publicKey, mallorySigner.publicKey, mallorySigner.certificate)).toBe(false)
    // A certificate is over the exact key, under the certificate context only.
    expect(verifyCertificate(alice.publicKey, mallorySigner.publicKey, signer.certificate)).toBe(false)
    expect(verifyCertificate(alice.publicKey, signer.publicKey.subarray(0, 32), signer.certificate)).toBe(
      false,
    )
    const otherContext = alice.sign(signer.publicKey, new TextEncoder().encode('x-node/record-key/v1'))
    expect(verifyCertificate(alice.publicKey, signer.publicKey, otherContext)).toBe(false)
    expect(CERT_CONTEXT).not.toEqual(RECORD_CONTEXT)
  })

  it('any flipped bit anywhere in a stored record is rejected', () => {
    const bytes = signer.sign(body({ t: 'topic', k: 'room', i: 3, m: ['p1', 'p2'] }))
    const key = recordKey('topic', 'room', 3)
    expect(accepted(key, bytes)).toBe(true)
    fc.assert(
      fc.property(fc.nat(bytes.length * 8 - 1), (bit) => {
        const flipped = bytes.slice()
        flipped[bit >> 3]! ^= 1 << (bit & 7)
        expect(accepted(key, flipped)).toBe(false)
      }),
      { numRuns: 150 },
    )
    // The first bit of each region: format, fingerprint, signature, body.
    for (const at of [0, 1, 9, RECORD_HEADER_BYTES - 1, RECORD_HEADER_BYTES + 10, bytes.length - 2]) {
      const flipped = bytes.slice()
      flipped[at]! ^= 0x01
      expect(accepted(key, flipped)).toBe(false)
    }
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

  it("rejects a record signed by another node's key, by an uncertified key, expired, or under another key", () => {
    // Mallory signs with her own certified record key but claims to be Alice: the validator checks against
    // Alice's certified key (fingerprint mismatch), and against her key with Alice's fingerprint the
    // signature still fails.
    const forged = mallorySigner.sign(body())
    expect(accepted(key1, forged)).toBe(false)
    const relabelled = forged.slice()
    relabelled.set(fingerprint(signer.publicKey), 1)
    expect(accepted(key1, relabelled)).toBe(false)
    // A fresh ML-DSA-44 key nobody certified: no certificate from Alice verifies for it, and its record does not
    // check against Alice's certified key, even when it copies Alice's key fingerprint.
    const rogue = mlDsa44Keygen(new Uint8Array(32).fill(9))
    expect(verifyCertificate(alice.publicKey, rogue.publicKey, signer.certificate)).toBe(false)
    expect(accepted(key1, signedBy(rogue.secretKey, rogue.publicKey, body()), rogue.publicKey)).toBe(true)
    expect(accepted(key1, signedBy(rogue.secretKey, rogue.publicKey, body()))).toBe(false)
    expect(
      accepted(key1, signedBy(rogue.secretKey, rogue.publicKey, body(), fingerprint(signer.publicKey))),
    ).toBe(false)
    // Expired, and stored under a key other than its own.
    const bytes = signer.sign(body())
    expect(accepted(key1, bytes, signer.publicKey, now + 60_000)).toBe(true)
    expect(accepted(key1, bytes, signer.publicKey, now + 60_001)).toBe(false)
    expect(accepted(recordKey('peer', 'peer-2'), bytes)).toBe(false)
  })

  it('an oversized record is neither signed nor parsed', () => {
    const big = body({
      t: 'topic',
      k: 'room',
      i: 0,
      m: Array.from({ length: 20 }, (_, i) => `${i}`.repeat(90)),
    })
    expect(recordSize(big)).toBeGreaterThan(MAX_RECORD_BYTES)
    expect(() => signer.sign(big)).toThrow(RangeError)
    // A validator never even parses a value over the bound.
    const bytes = signer.sign(body())
    const padded = new Uint8Array(MAX_RECORD_BYTES + 1)
    padded.set(bytes)
    expect(parseRecord(padded)).toBeUndefined()
    // Nor a body in a non-canonical encoding (the signed bytes are the one canonical form).
    const spaced = new Uint8Array(bytes.length + 1)
    spaced.set(bytes.subarray(0, RECORD_HEADER_BYTES))
    spaced.set(new TextEncoder().encode(' '), RECORD_HEADER_BYTES)
    spaced.set(bytes.subarray(RECORD_HEADER_BYTES), RECORD_HEADER_BYTES + 1)
    expect(parseRecord(spaced)).toBeUndefined()
  })

  it('the longest realistic records fit in 4096 bytes as stored', () => {
    // The longest address parseRecord accepts (`wss://` + 250 characters), the longest peer ID @x/signaling
    // accepts (128 printable ASCII characters), a 256-character topic.
    const address = `wss://${'a'.repeat(250)}`
    // …and the longest statement @x/signaling accepts: a 259-character host, a 130-character nonce.
    const longest = { h: `${'h'.repeat(253)}:65535`, t: 9_999_999_999_999, c: `${'A'.repeat(128)}==` }
    const peer = body({
      k: 'p'.repeat(128),
      a: address,
      e: 9_999_999_999_999,
      q: 9_999_999_999_999,
      p: longest,
    })
    const peerBytes = signer.sign(peer)
    expect(peerBytes.length).toBeLessThanOrEqual(MAX_RECORD_BYTES)
    expect(accepted(recordKey('peer', peer.k), peerBytes, signer.publicKey, 0)).toBe(true)
    const node = signer.sign(body({ t: 'node', k: alice.idString, a: address }))
    expect(node.length).toBeLessThanOrEqual(MAX_RECORD_BYTES)
    // A topic record of 24 UUID-sized peer IDs (36 characters) with a long topic and address fits too.
    const members = Array.from({ length: MAX_TOPIC_MEMBERS }, (_, i) => `${i}`.padStart(36, 'x'))
    const topic = body({
      t: 'topic',
      k: 't'.repeat(256),
      a: `ws://${'h'.repeat(60)}:3001`,
      i: 15,
      m: members,
    })
    const topicBytes = signer.sign(topic)
    expect(topicBytes.length).toBeLessThanOrEqual(MAX_RECORD_BYTES)
    expect(accepted(recordKey('topic', topic.k, 15), topicBytes)).toBe(true)
  })

  it('parseRecord never throws on random bytes or random JSON bodies', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), (bytes) => {
        expect(() => parseRecord(bytes)).not.toThrow()
      }),
    )
    const header = signer.sign(body()).subarray(0, RECORD_HEADER_BYTES)
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const json = new TextEncoder().encode(JSON.stringify(value))
        const bytes = new Uint8Array(header.length + json.length)
        bytes.set(header)
        bytes.set(json, header.length)
        const r = parseRecord(bytes)
        if (r) expect(r.v).toBe(1)
      }),
    )
  })
})

describe('peer statements, freshness and selection (issue 17)', () => {
  it('a peer record carries a well-formed statement of its peer; other records carry none', () => {
    expect(parseRecord(signer.sign(body()))?.p).toEqual(statement)
    expect(peerStatementText(body())).toBe(
      `x-signaling/2\nnode:${alice.idString}\nhost:127.0.0.1:3001\ntime:${statement.t}\nnonce:${statement.c}`,
    )
    const bare = { ...body(), p: undefined }
    delete bare.p
    expect(parseRecord(signer.sign(bare))).toBeUndefined()
    expect(
      parseRecord(signer.sign({ ...body({ t: 'node', k: alice.idString }), p: statement })),
    ).toBeUndefined()
    for (const p of [
      { ...statement, h: 'not a host!' },
      { ...statement, c: 'not base64!' },
      { ...statement, t: -1 },
      { ...statement, t: 1.5 },
    ]) {
      expect(parseRecord(signer.sign(body({ p }))), JSON.stringify(p)).toBeUndefined()
    }
  })

  it('freshness: a sequence number, an expiry or a statement time far ahead of the clock is refused', () => {
    expect(checkFreshness(body(), now)).toBe(true)
    expect(checkFreshness(body({ q: Number.MAX_SAFE_INTEGER }), now)).toBe(false) // the q = 2^53 - 1 hijack
    expect(checkFreshness(body({ q: now + RECORD_CLOCK_SKEW_MS }), now)).toBe(true)
    expect(checkFreshness(body({ q: now + RECORD_CLOCK_SKEW_MS + 1 }), now)).toBe(false)
    expect(checkFreshness(body({ e: now + RECORD_TTL_MS + RECORD_CLOCK_SKEW_MS }), now)).toBe(true)
    expect(checkFreshness(body({ e: now + RECORD_TTL_MS + RECORD_CLOCK_SKEW_MS + 1 }), now)).toBe(false)
    expect(checkFreshness(body({ e: now - 1 }), now)).toBe(false)
    expect(checkFreshness(body({ p: { ...statement, t: now + STATEMENT_CLOCK_SKEW_MS + 1 } }), now)).toBe(
      false,
    )
  })

  it('select: the newest statement wins over any sequence number; then the higher sequence; expired loses', () => {
    const older = signer.sign(body({ q: now + 20_000, p: { ...statement, t: now - 50_000 } }))
    const newer = signer.sign(body({ q: now, p: { ...statement, t: now - 1_000 } }))
    expect(selectRecord([older, newer], now)).toBe(1)
    expect(selectRecord([newer, older], now)).toBe(0)
    const withdrawn = signer.sign(body({ q: now + 5, w: 1 }))
    expect(selectRecord([newer, withdrawn], now)).toBe(1)
    const expired = signer.sign(body({ e: now - 1, p: { ...statement, t: now } }))
    expect(selectRecord([expired, older], now)).toBe(1)
    expect(selectRecord([Uint8Array.of(1, 2, 3), older], now)).toBe(1)
  })
})
