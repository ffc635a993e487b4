import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { isPqcError } from '../src/errors'
import { Identity, exportIdentitySeed, verify } from '../src/identity'
import { activeBackend, _useBackendForTesting } from '../src/backend/registry'
import type { PqcBackend } from '../src/backend/types'
import { createMemoryPipes } from '../src/testing'
import { CertificateCache, defaultStaticKeys } from '../src/session/certificate'
import {
  type AuthMode,
  type Handshake,
  type HandshakeCrypto,
  MAX_QUEUED_HANDSHAKE_MESSAGES,
  createInitiator,
  createResponder,
  handshake,
} from '../src/session/handshake'
import { createPqcWorkerPool } from '../src/worker-pool'

const MODES: AuthMode[] = ['kem', 'sig']
let alice: Identity
let bob: Identity
let carol: Identity

beforeAll(() => {
  alice = Identity.generate(new Uint8Array(32).fill(11))
  bob = Identity.generate(new Uint8Array(32).fill(12))
  carol = Identity.generate(new Uint8Array(32).fill(13))
  for (const id of [alice, bob, carol]) defaultStaticKeys(id)
})

const original = (): PqcBackend => activeBackend()
let restore: PqcBackend | undefined
afterEach(() => {
  if (restore) _useBackendForTesting(restore)
  restore = undefined
})

/**
 * Makes ML-DSA-87 signing and verification on the calling thread throw, so a test proves that a handshake did
 * all of it through `HandshakeCrypto` (the hybrid KEM stays on the active backend).
 */
function forbidMainThreadMlDsa(): void {
  const base = original()
  restore = base
  _useBackendForTesting({
    ...base,
    mlKemKeygen: (s) => base.mlKemKeygen(s),
    mlKemEncapsulate: (pk, m) => base.mlKemEncapsulate(pk, m),
    mlKemDecapsulate: (ct, sk) => base.mlKemDecapsulate(ct, sk),
    mlKemKeygenRandom: base.mlKemKeygenRandom ? () => base.mlKemKeygenRandom!() : undefined,
    mlDsaSign: () => {
      throw new Error('ML-DSA-87 signing on the main thread')
    },
    mlDsaVerify: () => {
      throw new Error('ML-DSA-87 verification on the main thread')
    },
  })
}

/** A `HandshakeCrypto` over the synchronous functions (captured before the backend is swapped) that counts calls. */
function countingCrypto(): HandshakeCrypto & { signs: number; verifies: number } {
  const base = original()
  const c = {
    signs: 0,
    verifies: 0,
    sign: (identity: Identity, message: Uint8Array, context: Uint8Array) => {
      c.signs++
      const { secretKey } = base.mlDsaKeygen(exportIdentitySeed(identity))
      return Promise.resolve(base.mlDsaSign(secretKey, message, context))
    },
    verify: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, context: Uint8Array) => {
      c.verifies++
      return Promise.resolve(base.mlDsaVerify(publicKey, message, signature, context))
    },
  }
  return c
}

/** Drive two machines with receiveAsync until done; returns the messages. */
async function runAsync(i: Handshake, r: Handshake, crypto: HandshakeCrypto): Promise<Uint8Array[]> {
  const messages: Uint8Array[] = []
  let m: Uint8Array | undefined = i.start()
  let receiver = r
  while (m !== undefined) {
    messages.push(m)
    m = await receiver.receiveAsync(m, crypto)
    receiver = receiver === r ? i : r
  }
  return messages
}

describe('handshake with asynchronous ML-DSA (receiveAsync)', () => {
  it.each(MODES)(
    'completes (%s) with every ML-DSA-87 operation done through the injected crypto',
    async (auth) => {
      const crypto = countingCrypto()
      forbidMainThreadMlDsa()
      const i = createInitiator({ identity: alice, auth, expectedPeerId: bob.id, certificateCache: false })
      const r = createResponder({ identity: bob, certificateCache: false })
      await runAsync(i, r, crypto)
      expect(i.status).toBe('done')
      expect(r.status).toBe('done')
      expect(i.result().peer.idString).toBe(bob.idString)
      expect(r.result().peer.idString).toBe(alice.idString)
      const a = i.result().session
      const b = r.result().session
      expect(new TextDecoder().decode(b.open(a.seal(new TextEncoder().encode('hi'))))).toBe('hi')
      // kem: each side checks the other's certificate (2 verifications, no signature);
      // sig: each side signs the transcript and verifies the other's signature.
      expect({ signs: crypto.signs, verifies: crypto.verifies }).toEqual(
        auth === 'kem' ? { signs: 0, verifies: 2 } : { signs: 2, verifies: 2 },
      )
    },
  )

  it('the synchronous receive() still does the ML-DSA work itself (the guard above is real)', () => {
    forbidMainThreadMlDsa()
    const i = createInitiator({ identity: alice, expectedPeerId: bob.id, certificateCache: false })
    const r = createResponder({ identity: bob, certificateCache: false })
    expect(() => r.receive(i.start())).toThrow()
  })

  it('a verified certificate is cached: the second handshake costs no verification', async () => {
    const cache = new CertificateCache()
    const crypto = countingCrypto()
    for (let k = 0; k < 2; k++) {
      const i = createInitiator({ identity: alice, certificateCache: cache })
      const r = createResponder({ identity: bob, certificateCache: cache })
      await runAsync(i, r, crypto)
    }
    expect(crypto.verifies).toBe(2)
  })

  it('checks the expected identity before paying for the certificate verification', async () => {
    const crypto = countingCrypto()
    const i = createInitiator({ identity: carol, certificateCache: false })
    const r = createResponder({ identity: bob, expectedPeerId: alice.id, certificateCache: false })
    await expect(r.receiveAsync(i.start(), crypto)).rejects.toMatchObject({ code: 'X_PQC_IDENTITY_MISMATCH' })
    expect(crypto.verifies).toBe(0)
    expect(r.status).toBe('failed')
  })

  it('a certificate whose signature does not verify fails the handshake with X_PQC_HANDSHAKE_FAILED', async () => {
    const crypto = { ...countingCrypto(), verify: () => Promise.resolve(false) }
    const i = createInitiator({ identity: alice, certificateCache: false })
    const r = createResponder({ identity: bob, certificateCache: false })
    await expect(r.receiveAsync(i.start(), crypto)).rejects.toMatchObject({ code: 'X_PQC_HANDSHAKE_FAILED' })
  })

  it('a rejected crypto operation fails the handshake with a typed error and wipes the machine', async () => {
    const crypto = { ...countingCrypto(), sign: () => Promise.reject(new Error('pool closed')) }
    const i = createInitiator({ identity: alice, auth: 'sig' })
    const r = createResponder({ identity: bob })
    const err: unknown = await r.receiveAsync(i.start(), crypto).catch((e: unknown) => e)
    expect(isPqcError(err, 'X_PQC_HANDSHAKE_FAILED')).toBe(true)
    expect(r.status).toBe('failed')
    expect(() => r.result()).toThrow()
  })

  it('abort() while an operation runs stops the step when it resumes', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const base = countingCrypto()
    const crypto = {
      ...base,
      verify: async (...a: Parameters<HandshakeCrypto['verify']>) => (await gate, base.verify(...a)),
    }
    const i = createInitiator({ identity: alice, certificateCache: false })
    const r = createResponder({ identity: bob, certificateCache: false })
    const pending = r.receiveAsync(i.start(), crypto)
    r.abort()
    release()
    await expect(pending).rejects.toMatchObject({ code: 'X_PQC_HANDSHAKE_FAILED' })
    expect(r.status).toBe('failed')
  })

  it('refuses a second message while one is being processed, and checks its arguments', async () => {
    const crypto = countingCrypto()
    const i = createInitiator({ identity: alice, certificateCache: false })
    const r = createResponder({ identity: bob, certificateCache: false })
    const m1 = i.start()
    const first = r.receiveAsync(m1, crypto)
    expect(() => r.receive(m1)).toThrow(TypeError)
    await expect(r.receiveAsync(m1, crypto)).rejects.toThrow(TypeError)
    await first
    await expect(r.receiveAsync(m1, {} as HandshakeCrypto)).rejects.toThrow(TypeError)
    // A failed message still fails the machine exactly as receive() does.
    const bad = m1.slice()
    bad[0] = 99
    const fresh = createResponder({ identity: bob })
    await expect(fresh.receiveAsync(bad, crypto)).rejects.toMatchObject({ code: 'X_PQC_HANDSHAKE_FAILED' })
  })
})

describe('handshake(pipe, machine, timeout, { crypto })', () => {
  it.each(MODES)('runs both sides over a pipe with a real worker pool (%s)', async (auth) => {
    const pool = createPqcWorkerPool({}, { size: 1 })
    try {
      const [p, q] = createMemoryPipes()
      const [ri, rr] = await Promise.all([
        handshake(
          p,
          createInitiator({ identity: alice, auth, expectedPeerId: bob.id, certificateCache: false }),
          10_000,
          {
            crypto: pool,
          },
        ),
        handshake(q, createResponder({ identity: bob, certificateCache: false }), 10_000, { crypto: pool }),
      ])
      expect(ri.peer.idString).toBe(bob.idString)
      expect(rr.peer.idString).toBe(alice.idString)
      expect(ri.trailing).toEqual([])
      expect(pool.stats().completed).toBe(auth === 'kem' ? 2 : 4)
      // Signatures made in the worker verify on the main thread too (sanity of what the pool returns).
      expect(verify(alice.publicKey, new Uint8Array(1), await pool.sign(alice, new Uint8Array(1)))).toBe(true)
    } finally {
      await pool.close()
    }
  })

  it("returns the peer's first records that arrive while its last handshake message is still being verified", async () => {
    // In 'sig' mode the initiator is done after sending message 3 and may send records at once, while the
    // responder is still verifying message 3's signature.
    const crypto = countingCrypto()
    const [p, q] = createMemoryPipes()
    const responder = handshake(q, createResponder({ identity: bob, certificateCache: false }), 10_000, {
      crypto,
    })
    const ri = await handshake(p, createInitiator({ identity: alice, auth: 'sig', certificateCache: false }))
    const records = ['one', 'two'].map((t) => ri.session.seal(new TextEncoder().encode(t)))
    for (const r of records) p.send(r)
    const rr = await responder
    expect(rr.trailing.map((b) => new TextDecoder().decode(rr.session.open(b)))).toEqual(['one', 'two'])
  })

  it('fails a handshake buried under more queued messages than it may hold', async () => {
    const crypto = countingCrypto()
    let handler: ((b: Uint8Array) => void) | undefined
    const pipe = { send: () => undefined, onMessage: (h: (b: Uint8Array) => void) => void (handler = h) }
    const done = handshake(pipe, createResponder({ identity: bob }), 10_000, { crypto })
    const m1 = createInitiator({ identity: alice }).start()
    for (let k = 0; k <= MAX_QUEUED_HANDSHAKE_MESSAGES + 1; k++) handler!(m1)
    await expect(done).rejects.toMatchObject({ code: 'X_PQC_HANDSHAKE_FAILED' })
  })

  it('checks that crypto has sign() and verify()', () => {
    const pipe = { send: () => undefined, onMessage: () => undefined }
    expect(() =>
      handshake(pipe, createResponder({ identity: bob }), 1_000, { crypto: {} as HandshakeCrypto }),
    ).toThrow(TypeError)
  })
})
