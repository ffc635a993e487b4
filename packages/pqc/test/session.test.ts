import fc from 'fast-check'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { aeadOpen } from '../src/aead'
import { isPqcError } from '../src/errors'
import { Identity } from '../src/identity'
import { hkdfSha256 } from '../src/kdf'
import { _setNodeCryptoForTesting } from '../src/runtime'
import { _useBackendForTesting } from '../src/backend/registry'
import { availableBackends, createMemoryPipes, nobleBackend } from '../src/testing'
import {
  CertificateCache,
  createStaticKeys,
  defaultStaticKeys,
  verifyCertificate,
} from '../src/session/certificate'
import {
  type AuthMode,
  type Handshake,
  type HandshakePipe,
  HANDSHAKE_MESSAGE_BYTES,
  createInitiator,
  createResponder,
  handshake,
} from '../src/session/handshake'
import { RECORD_HEADER_BYTES, SecureSession } from '../src/session/secure-session'
import { concatBytes } from '../src/bytes'

const MODES: AuthMode[] = ['kem', 'sig']
let alice: Identity
let bob: Identity
let carol: Identity

beforeAll(() => {
  alice = Identity.generate(new Uint8Array(32).fill(1))
  bob = Identity.generate(new Uint8Array(32).fill(2))
  carol = Identity.generate(new Uint8Array(32).fill(3))
  // Certify the static keys once so each test pays only the per-handshake cost.
  for (const id of [alice, bob, carol]) defaultStaticKeys(id)
})

/** Run a handshake to completion; `tamper(n, m)` may replace message n. Returns both machines and messages. */
function run(
  initiator: Handshake,
  responder: Handshake,
  tamper: (n: number, m: Uint8Array) => Uint8Array = (_n, m) => m,
): { messages: Uint8Array[]; error?: unknown } {
  const messages: Uint8Array[] = []
  let m: Uint8Array | undefined = initiator.start()
  let receiver = responder
  try {
    while (m !== undefined) {
      m = tamper(messages.length + 1, m)
      messages.push(m)
      m = receiver.receive(m)
      receiver = receiver === responder ? initiator : responder
    }
  } catch (error) {
    return { messages, error }
  }
  return { messages }
}

function pair(auth: AuthMode, extra: { session?: ConstructorParameters<typeof SecureSession>[3] } = {}) {
  const i = createInitiator({ identity: alice, auth, expectedPeerId: bob.id, ...extra })
  const r = createResponder({ identity: bob, expectedPeerId: alice.idString, ...extra })
  const { error } = run(i, r)
  expect(error).toBeUndefined()
  return { i, r, a: i.result().session, b: r.result().session }
}

const enc = (s: string) => new TextEncoder().encode(s)

describe.each(MODES)('handshake (%s authentication)', (auth) => {
  it('authenticates both sides and agrees on the transcript hash', () => {
    const i = createInitiator({ identity: alice, auth })
    const r = createResponder({ identity: bob })
    const { messages, error } = run(i, r)
    expect(error).toBeUndefined()
    expect(messages.map((m) => m.length)).toEqual(HANDSHAKE_MESSAGE_BYTES[auth])
    expect(i.status).toBe('done')
    expect(r.status).toBe('done')
    expect(i.result().peer.idString).toBe(bob.idString)
    expect(r.result().peer.idString).toBe(alice.idString)
    expect(r.result().auth).toBe(auth)
    expect(i.result().session.handshakeHash).toEqual(r.result().session.handshakeHash)
    const a = i.result().session
    const b = r.result().session
    // Extra input to a finished machine is refused and does not disturb it.
    expect(() => i.receive(messages[0]!)).toThrow(expect.objectContaining({ code: 'X_PQC_HANDSHAKE_FAILED' }))
    expect(i.status).toBe('done')
    expect(b.open(a.seal(enc('ping')))).toEqual(enc('ping'))
    expect(a.open(b.seal(enc('pong')))).toEqual(enc('pong'))
  })

  it('gives fresh keys per handshake (ephemeral KEM)', () => {
    const one = pair(auth)
    const two = pair(auth)
    expect(one.a.handshakeHash).not.toEqual(two.a.handshakeHash)
    const record = one.a.seal(enc('x'))
    expect(() => two.b.open(record)).toThrow(expect.objectContaining({ code: 'X_PQC_DECRYPT_FAILED' }))
  })

  it('rejects a peer that is not the expected identity, on either side', () => {
    const i = createInitiator({ identity: alice, auth, expectedPeerId: carol.id })
    const r = createResponder({ identity: bob })
    const { error } = run(i, r)
    expect(isPqcError(error, 'X_PQC_IDENTITY_MISMATCH')).toBe(true)
    expect(i.status).toBe('failed')
    expect(() => i.result()).toThrow(expect.objectContaining({ code: 'X_PQC_HANDSHAKE_FAILED' }))

    const i2 = createInitiator({ identity: alice, auth })
    const r2 = createResponder({ identity: bob, expectedPeerId: carol.idString })
    expect(isPqcError(run(i2, r2).error, 'X_PQC_IDENTITY_MISMATCH')).toBe(true)
    expect(r2.status).toBe('failed')
  })

  it('logs success and failure at debug level without key material', () => {
    const lines: { obj: Record<string, unknown>; msg?: string }[] = []
    const logger = {
      debug: (obj: object, msg?: string) => lines.push({ obj: obj as Record<string, unknown>, msg }),
      info: () => {},
      warn: () => {},
      error: () => {},
      child: () => logger,
    }
    run(createInitiator({ identity: alice, auth, logger }), createResponder({ identity: bob, logger }))
    run(
      createInitiator({ identity: alice, auth, logger, expectedPeerId: carol.id }),
      createResponder({ identity: bob, logger }),
    )
    expect(lines.map((l) => l.msg)).toContain('pqc handshake done')
    expect(lines.find((l) => l.msg === 'pqc handshake failed')?.obj.code).toBe('X_PQC_IDENTITY_MISMATCH')
    for (const l of lines) expect(Object.values(l.obj).some((v) => v instanceof Uint8Array)).toBe(false)
  })

  it('fails on a different prologue', () => {
    const i = createInitiator({ identity: alice, auth, prologue: enc('link/1') })
    const r = createResponder({ identity: bob, prologue: enc('link/2') })
    expect(isPqcError(run(i, r).error, 'X_PQC_HANDSHAKE_FAILED')).toBe(true)
  })

  it('times out with an injected clock and yields no keys', () => {
    let now = 1_000
    const clock = { now: () => now }
    const i = createInitiator({ identity: alice, auth, clock, timeoutMs: 500 })
    const r = createResponder({ identity: bob, clock, timeoutMs: 500 })
    const m1 = i.start()
    now += 501
    let err: unknown
    try {
      r.receive(m1)
    } catch (e) {
      err = e
    }
    expect(isPqcError(err, 'X_PQC_HANDSHAKE_TIMEOUT')).toBe(true)
    expect(r.status).toBe('failed')
    expect(() => r.result()).toThrow()
    // A failed machine stays failed.
    expect(() => r.receive(m1)).toThrow(expect.objectContaining({ code: 'X_PQC_HANDSHAKE_TIMEOUT' }))
  })

  it('rejects any single flipped bit in any handshake message', () => {
    const count = HANDSHAKE_MESSAGE_BYTES[auth].length
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: count }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (n, pos, bit) => {
          const i = createInitiator({ identity: alice, auth })
          const r = createResponder({ identity: bob })
          // Machine that receives message n: odd messages go to the responder.
          const target = n % 2 === 1 ? r : i
          const { error } = run(i, r, (k, m) => {
            if (k !== n) return m
            const t = m.slice()
            const at = pos % t.length
            t[at] = t[at]! ^ (1 << bit)
            return t
          })
          expect(isPqcError(error, 'X_PQC_HANDSHAKE_FAILED')).toBe(true)
          expect(target.status).not.toBe('done')
          // And nobody who saw the tampered message or followed it holds a session.
          if (n === count) expect(target.status).toBe('failed')
        },
      ),
      { numRuns: 24 },
    )
  })

  it('rejects truncated, extended and replayed handshake messages', () => {
    for (const mutate of [
      (m: Uint8Array) => m.subarray(0, m.length - 1),
      (m: Uint8Array) => Uint8Array.of(...m, 0),
    ]) {
      const i = createInitiator({ identity: alice, auth })
      const r = createResponder({ identity: bob })
      const { error } = run(i, r, (k, m) => (k === 2 ? mutate(m) : m))
      expect(isPqcError(error, 'X_PQC_HANDSHAKE_FAILED')).toBe(true)
    }
    // A message from another handshake (replay) does not fit this transcript.
    const old = run(createInitiator({ identity: alice, auth }), createResponder({ identity: bob })).messages
    const i = createInitiator({ identity: alice, auth })
    const r = createResponder({ identity: bob })
    const { error } = run(i, r, (k, m) => (k === 2 ? old[1]! : m))
    expect(isPqcError(error, 'X_PQC_HANDSHAKE_FAILED')).toBe(true)
  })
})

describe('handshake across backends', () => {
  afterEach(() => {
    _useBackendForTesting(nobleBackend)
  })

  it('completes in both modes with each side on any available backend (noble, node, liboqs)', async () => {
    const backends = await availableBackends()
    for (const bi of backends) {
      for (const br of backends) {
        for (const auth of MODES) {
          const i = createInitiator({ identity: alice, auth, expectedPeerId: bob.id })
          const r = createResponder({ identity: bob, expectedPeerId: alice.id })
          _useBackendForTesting(bi)
          let m: Uint8Array | undefined = i.start()
          let to = r
          while (m !== undefined) {
            _useBackendForTesting(to === i ? bi : br)
            m = to.receive(m)
            to = to === r ? i : r
          }
          expect([bi.name, br.name, auth, i.status, r.status]).toEqual([
            bi.name,
            br.name,
            auth,
            'done',
            'done',
          ])
          expect(r.result().session.open(i.result().session.seal(enc('x')))).toEqual(enc('x'))
        }
      }
    }
  })
})

describe('hostile input', () => {
  it('a responder fed arbitrary bytes throws only X_PQC_HANDSHAKE_FAILED', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc
            .constantFrom(...HANDSHAKE_MESSAGE_BYTES.kem, ...HANDSHAKE_MESSAGE_BYTES.sig)
            .chain((n) =>
              fc
                .tuple(fc.integer({ min: 1, max: 2 }), fc.uint8Array({ minLength: n - 3, maxLength: n - 3 }))
                .map(([mode, body]) => Uint8Array.of(1, mode, 1, ...body)),
            ),
        ),
        (bytes) => {
          const r = createResponder({ identity: bob })
          let err: unknown
          try {
            r.receive(bytes)
          } catch (e) {
            err = e
          }
          // A well-formed random m1 in sig mode is accepted (it is just an unknown ephemeral key): then the
          // responder answers and waits; anything else must fail with the typed error.
          if (err === undefined) expect(r.status).toBe('pending')
          else expect(isPqcError(err, 'X_PQC_HANDSHAKE_FAILED')).toBe(true)
        },
      ),
      { numRuns: 60 },
    )
  })

  it('a session fed arbitrary bytes throws only typed errors and stays usable', () => {
    const { a, b } = pair('sig')
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(() => b.open(bytes)).toThrow(
          expect.objectContaining({ code: expect.stringMatching(/^X_PQC_/) as string }),
        )
      }),
      { numRuns: 200 },
    )
    expect(b.open(a.seal(enc('still fine')))).toEqual(enc('still fine'))
  })
})

describe('handshake modes', () => {
  it('a responder that accepts only kem refuses sig', () => {
    const i = createInitiator({ identity: alice, auth: 'sig' })
    const r = createResponder({ identity: bob, accept: ['kem'] })
    expect(isPqcError(run(i, r).error, 'X_PQC_HANDSHAKE_FAILED')).toBe(true)
  })

  it('kem: a stolen certificate without its static secret key does not authenticate', () => {
    // Carol presents Bob's (public) certificate but only has her own static secret key.
    const stolen = { ...defaultStaticKeys(carol), certificate: defaultStaticKeys(bob).certificate }
    const i = createInitiator({ identity: alice, auth: 'kem', expectedPeerId: bob.id })
    const r = createResponder({ identity: carol, staticKeys: stolen })
    const { error } = run(i, r)
    // Carol cannot decapsulate the ciphertext sent to Bob's static key, so her Finished check fails.
    expect(isPqcError(error, 'X_PQC_HANDSHAKE_FAILED')).toBe(true)
    expect(r.status).toBe('failed')
    expect(i.status).not.toBe('done')
  })

  it('kem: certificates verify, are cached, and tampering is detected', () => {
    const keys = createStaticKeys(alice, new Uint8Array(32).fill(9))
    const cache = new CertificateCache(2)
    expect(verifyCertificate(keys.certificate, cache).id).toEqual(alice.id)
    expect(cache.size).toBe(1)
    const bad = keys.certificate.slice()
    bad[bad.length - 100]! ^= 1
    expect(() => verifyCertificate(bad, cache)).toThrow(
      expect.objectContaining({ code: 'X_PQC_BAD_SIGNATURE' }),
    )
    expect(() => verifyCertificate(bad.subarray(1))).toThrow(
      expect.objectContaining({ code: 'X_PQC_BAD_MESSAGE' }),
    )
  })

  it('checks arguments', () => {
    expect(() => createInitiator({ identity: alice, expectedPeerId: new Uint8Array(3) })).toThrow(TypeError)
    expect(() => createInitiator({ identity: alice, timeoutMs: 0 })).toThrow(RangeError)
    expect(() => createResponder({ identity: bob }).start()).toThrow(TypeError)
    expect(() => createResponder({ identity: bob, accept: [] })).toThrow(TypeError)
  })
})

/** Two connected in-memory pipes delivering asynchronously (like a socket). */
function memoryPipes(): [HandshakePipe & { deliver: boolean }, HandshakePipe & { deliver: boolean }] {
  const handlers: [((b: Uint8Array) => void) | undefined, ((b: Uint8Array) => void) | undefined] = [
    undefined,
    undefined,
  ]
  const make = (self: 0 | 1) => ({
    deliver: true,
    send(bytes: Uint8Array) {
      if (!this.deliver) return
      queueMicrotask(() => handlers[self === 0 ? 1 : 0]?.(bytes))
    },
    onMessage(h: (b: Uint8Array) => void) {
      handlers[self] = h
      return () => {
        handlers[self] = undefined
      }
    },
  })
  return [make(0), make(1)]
}

describe('handshake(pipe)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it.each(MODES)('runs both sides over a message pipe (%s)', async (auth) => {
    const [p, q] = memoryPipes()
    const [ri, rr] = await Promise.all([
      handshake(p, createInitiator({ identity: alice, auth, expectedPeerId: bob.id })),
      handshake(q, createResponder({ identity: bob })),
    ])
    expect(ri.peer.idString).toBe(bob.idString)
    expect(rr.peer.idString).toBe(alice.idString)
    expect(rr.session.open(ri.session.seal(enc('over the pipe')))).toEqual(enc('over the pipe'))
  })

  it('createMemoryPipes (./testing) queues records sent before the peer attaches its record handler', async () => {
    const [p, q] = createMemoryPipes()
    const rPromise = handshake(q, createResponder({ identity: bob })).then((res) => {
      q.send(res.session.seal(enc('first record, sent at once')))
      return res
    })
    const ri = await handshake(p, createInitiator({ identity: alice }))
    await rPromise
    await new Promise((resolve) => setTimeout(resolve, 0))
    const got = await new Promise<Uint8Array>((resolve) => p.onMessage((b) => resolve(ri.session.open(b))))
    expect(got).toEqual(enc('first record, sent at once'))
    expect(p.sent).toBe(2)
    p.close()
  })

  it('rejects with X_PQC_HANDSHAKE_TIMEOUT when the peer never answers (fake timers)', async () => {
    vi.useFakeTimers()
    const [p] = memoryPipes()
    const machine = createInitiator({ identity: alice })
    const done = handshake(p, machine, 2_000)
    const check = expect(done).rejects.toMatchObject({ code: 'X_PQC_HANDSHAKE_TIMEOUT' })
    await vi.advanceTimersByTimeAsync(2_001)
    await check
    expect(machine.status).toBe('failed')
  })

  it('rejects with the typed error when a message is tampered with in transit', async () => {
    const [p, q] = memoryPipes()
    const origSend = q.send.bind(q)
    q.send = (b: Uint8Array) => {
      const t = b.slice()
      t[t.length - 1]! ^= 0x80
      origSend(t)
    }
    const [ri] = await Promise.allSettled([
      handshake(p, createInitiator({ identity: alice })),
      handshake(q, createResponder({ identity: bob }), 500),
    ])
    expect(ri.status).toBe('rejected')
    expect(isPqcError((ri as PromiseRejectedResult).reason, 'X_PQC_HANDSHAKE_FAILED')).toBe(true)
  })

  it('can be aborted with an AbortSignal', async () => {
    const [p] = memoryPipes()
    const ac = new AbortController()
    const done = handshake(p, createInitiator({ identity: alice }), 10_000, { signal: ac.signal })
    ac.abort()
    await expect(done).rejects.toMatchObject({ code: 'X_PQC_HANDSHAKE_FAILED' })
  })
})

describe('SecureSession records', () => {
  // Sessions built straight from known traffic secrets: fast, and lets tests recompute the key schedule.
  function sessions(init: ConstructorParameters<typeof SecureSession>[3] = {}) {
    const s1 = new Uint8Array(32).fill(0xa1)
    const s2 = new Uint8Array(32).fill(0xb2)
    const h = new Uint8Array(32)
    return {
      a: new SecureSession(s1.slice(), s2.slice(), h, init),
      b: new SecureSession(s2.slice(), s1.slice(), h, init),
      s1,
    }
  }

  it('round-trips random message sequences in both directions, across key rotations', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.uint8Array({ maxLength: 300 })), { maxLength: 60 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 2_000 }),
        (script, maxRecordsPerKey, maxBytesPerKey) => {
          // Different limits per side: the receiver follows the sender's epochs.
          const { a, b } = sessions({ maxRecordsPerKey, maxBytesPerKey })
          for (const [aToB, msg] of script) {
            const [from, to] = aToB ? [a, b] : [b, a]
            const record = from.seal(msg)
            expect(to.open(record)).toEqual(msg)
            // The receiver ratchets lazily, on the first record of the sender's next epoch.
            expect(to.stats.receiveEpoch).toBe(new DataView(record.buffer, record.byteOffset).getUint32(1))
          }
        },
      ),
      { numRuns: 100 },
    )
  })

  it('rejects any single flipped bit in a record, and the session survives', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (msg, pos, bit) => {
          const { a, b } = sessions()
          const record = a.seal(msg)
          const bad = record.slice()
          bad[pos % bad.length]! ^= 1 << bit
          let err: unknown
          try {
            b.open(bad)
          } catch (e) {
            err = e
          }
          expect(isPqcError(err)).toBe(true)
          expect(b.open(record)).toEqual(msg)
          expect(b.stats.rejected).toBe(1)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('rejects replays, reordering and truncation with typed errors', () => {
    const { a, b } = sessions()
    const r0 = a.seal(enc('zero'))
    const r1 = a.seal(enc('one'))
    const r2 = a.seal(enc('two'))
    expect(() => b.open(r1)).toThrow(expect.objectContaining({ code: 'X_PQC_OUT_OF_ORDER' }))
    expect(b.open(r0)).toEqual(enc('zero'))
    expect(() => b.open(r0)).toThrow(expect.objectContaining({ code: 'X_PQC_REPLAY' }))
    expect(() => b.open(r1.subarray(0, r1.length - 1))).toThrow(
      expect.objectContaining({ code: 'X_PQC_DECRYPT_FAILED' }),
    )
    expect(() => b.open(r1.subarray(0, RECORD_HEADER_BYTES + 3))).toThrow(
      expect.objectContaining({ code: 'X_PQC_BAD_MESSAGE' }),
    )
    expect(b.open(r1)).toEqual(enc('one'))
    expect(b.open(r2)).toEqual(enc('two'))
    expect(() => b.open(r1)).toThrow(expect.objectContaining({ code: 'X_PQC_REPLAY' }))
  })

  it('detects stream truncation through the authenticated close record', () => {
    const { a, b } = sessions()
    const data = a.seal(enc('last words'))
    const more = a.seal(enc('really last'))
    const bye = a.close()
    expect(a.closed).toBe(true)
    expect(() => a.seal(enc('more'))).toThrow(expect.objectContaining({ code: 'X_PQC_SESSION_CLOSED' }))
    expect(a.close()).toHaveLength(0)
    b.open(data)
    expect(b.remoteClosed).toBe(false) // a transport ending here would be a truncation
    // A data record cannot be turned into a close record by flipping its (authenticated) type byte.
    const forged = more.slice()
    forged[0] = 0x15
    expect(() => b.open(forged)).toThrow(expect.objectContaining({ code: 'X_PQC_DECRYPT_FAILED' }))
    expect(b.remoteClosed).toBe(false)
    expect(b.open(more)).toEqual(enc('really last'))
    expect(b.open(bye)).toHaveLength(0)
    expect(b.remoteClosed).toBe(true)
    expect(() => b.open(data)).toThrow(expect.objectContaining({ code: 'X_PQC_SESSION_CLOSED' }))
  })

  it('bounds record size on both ends', () => {
    const { a, b } = sessions({ maxRecordBytes: 100 })
    expect(() => a.seal(new Uint8Array(101))).toThrow(
      expect.objectContaining({ code: 'X_PQC_RECORD_TOO_LARGE' }),
    )
    const big = sessions({ maxRecordBytes: 1000 }).a.seal(new Uint8Array(500))
    expect(() => b.open(big)).toThrow(expect.objectContaining({ code: 'X_PQC_RECORD_TOO_LARGE' }))
    expect(
      () =>
        new SecureSession(new Uint8Array(32), new Uint8Array(32), new Uint8Array(32), {
          maxRecordsPerKey: 0,
        }),
    ).toThrow(RangeError)
  })

  it('rotation changes the key exactly as PROTOCOL.md §5 says, and both sides agree across the boundary', () => {
    const { a, b, s1 } = sessions({ maxRecordsPerKey: 2 })
    const info = (s: string) => enc(`x-pqc/session/v1 ${s}`)
    const none = new Uint8Array(0)
    const keyOf = (secret: Uint8Array) => hkdfSha256(secret, none, info('record key'), 32)
    const ivOf = (secret: Uint8Array) => hkdfSha256(secret, none, info('record iv'), 12)
    const secret1 = hkdfSha256(s1, none, info('ratchet'), 32)
    const records = [0, 1, 2, 3].map((n) => a.seal(enc(`record ${n}`)))
    const epochs = records.map((r) => new DataView(r.buffer, r.byteOffset).getUint32(1))
    expect(epochs).toEqual([0, 0, 1, 1])
    // Record 2 (seq 2, epoch 1) opens with the ratcheted key and not with the epoch-0 key.
    const nonce = (secret: Uint8Array, seq: number) => {
      const n = ivOf(secret)
      n[11]! ^= seq
      return n
    }
    const r2 = records[2]!
    const header = r2.subarray(0, RECORD_HEADER_BYTES)
    const body = r2.subarray(RECORD_HEADER_BYTES)
    expect(aeadOpen(keyOf(secret1), nonce(secret1, 2), body, header)).toEqual(enc('record 2'))
    expect(() => aeadOpen(keyOf(s1), nonce(s1, 2), body, header)).toThrow()
    for (const [n, r] of records.entries()) expect(b.open(r)).toEqual(enc(`record ${n}`))
    // After 4 records the sender has moved to epoch 2; the receiver follows on the first epoch-2 record.
    expect(a.stats.sendEpoch).toBe(2)
    expect(b.stats.receiveEpoch).toBe(1)
    expect(b.open(a.seal(enc('record 4')))).toEqual(enc('record 4'))
    expect(b.stats.receiveEpoch).toBe(2)
  })

  it('rotates on bytes too, and a forged next-epoch record does not move the receiver', () => {
    const { a, b } = sessions({ maxBytesPerKey: 10 })
    const r0 = a.seal(new Uint8Array(10))
    const r1 = a.seal(new Uint8Array(3))
    expect(a.stats.sendEpoch).toBe(1)
    b.open(r0)
    const forged = r1.slice()
    forged[forged.length - 1]! ^= 1
    expect(() => b.open(forged)).toThrow(expect.objectContaining({ code: 'X_PQC_DECRYPT_FAILED' }))
    expect(b.stats.receiveEpoch).toBe(0)
    expect(b.open(r1)).toEqual(new Uint8Array(3))
    expect(b.stats.receiveEpoch).toBe(1)
  })

  it('sealChunks gives the pieces of the record seal would give, interleaves with seal, and shares its limits', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.uint8Array({ maxLength: 5_000 })), { maxLength: 30 }),
        fc.integer({ min: 1, max: 5 }),
        (script, maxRecordsPerKey) => {
          const x = sessions({ maxRecordsPerKey })
          const y = sessions({ maxRecordsPerKey })
          for (const [chunked, msg] of script) {
            let record: Uint8Array
            if (chunked) {
              const parts = y.a.sealChunks(msg)
              expect(parts.map((p) => p.length)).toEqual([RECORD_HEADER_BYTES, msg.length, 16])
              record = concatBytes(...parts)
            } else record = y.a.seal(msg)
            // The twin session x seals the same sequence number with seal().
            expect(record).toEqual(x.a.seal(msg))
            expect(y.b.open(record)).toEqual(msg)
          }
          expect(y.a.stats).toEqual(x.a.stats)
        },
      ),
      { numRuns: 50 },
    )
    const { a } = sessions({ maxRecordBytes: 10 })
    expect(() => a.sealChunks(new Uint8Array(11))).toThrow(
      expect.objectContaining({ code: 'X_PQC_RECORD_TOO_LARGE' }),
    )
    expect(() => a.sealChunks('x' as unknown as Uint8Array)).toThrow(TypeError)
    a.close()
    expect(() => a.sealChunks(new Uint8Array(1))).toThrow(
      expect.objectContaining({ code: 'X_PQC_SESSION_CLOSED' }),
    )
  })

  it('gives the same record bytes with and without node:crypto (browser path)', () => {
    const msgs = [new Uint8Array(0), enc('hello'), new Uint8Array(70_000).fill(3)]
    const native = sessions({ maxRecordsPerKey: 2 })
    const expected = msgs.map((m) => native.a.seal(m))
    _setNodeCryptoForTesting(null)
    try {
      const browser = sessions({ maxRecordsPerKey: 2 })
      expect(msgs.map((m) => browser.a.seal(m))).toEqual(expected)
      for (const [n, r] of expected.entries()) expect(browser.b.open(r)).toEqual(msgs[n])
    } finally {
      _setNodeCryptoForTesting(undefined)
    }
  })

  it('works on sessions from a real handshake with tiny rotation limits', () => {
    const { a, b } = pair('kem', { session: { maxRecordsPerKey: 3 } })
    for (let n = 0; n < 20; n++) {
      expect(b.open(a.seal(enc(`m${n}`)))).toEqual(enc(`m${n}`))
      expect(a.open(b.seal(enc(`r${n}`)))).toEqual(enc(`r${n}`))
    }
    expect(a.stats.sendEpoch).toBe(6)
  })
})
