/**
 * Transport-agnostic, mutually authenticated handshake (PROTOCOL.md §2–§4). Two authentication designs share one
 * framing, transcript and key schedule:
 *
 * - `'kem'` (default; KEMTLS / PQNoise style): each side owns a static hybrid KEM key certified once by its
 *   ML-DSA-87 identity; a peer is authenticated by proving it decapsulated a ciphertext sent to its static key.
 *   4 messages, no signature per handshake (certificate checks are cached).
 * - `'sig'` (SIGMA-I style): each side signs the transcript with ML-DSA-87. 3 messages, 2 signatures and 2
 *   verifications per handshake.
 *
 * Both get forward secrecy from an ephemeral hybrid KEM key (ML-KEM-1024 + X25519) made per handshake.
 * The state machines only consume and produce bytes; {@link handshake} drives one over a message pipe.
 */
import { AEAD_TAG_BYTES, aeadOpen, aeadSeal } from '../aead'
import { concatBytes, equalBytes, wipe } from '../bytes'
import { PqcError, isPqcError } from '../errors'
import {
  HYBRID_CIPHERTEXT_BYTES,
  HYBRID_PUBLIC_KEY_BYTES,
  hybridDecapsulate,
  hybridEncapsulate,
  hybridKeygenEphemeral,
} from '../hybrid-kem'
import { type Identity, formatId, idFromPublicKey, parseId, verify } from '../identity'
import { sha3_256 } from '../kdf'
import { ML_DSA_87_PUBLIC_KEY_BYTES, ML_DSA_87_SIGNATURE_BYTES } from '../ml-dsa'
import { utf8 } from './bytes'
import {
  type CertificateCache,
  STATIC_CERT_BYTES,
  type StaticKeys,
  type VerifiedCertificate,
  certificateToBeSigned,
  defaultCertificateCache,
  defaultStaticKeys,
  verifyCertificate,
  verifyCertificateWith,
} from './certificate'
import { SILENT_LOGGER } from '../backend/logger'
import type { PqcLogger } from '../backend/types'
import { SecureSession, type SecureSessionInit } from './secure-session'
import { SymmetricState } from './transcript'

/** Wire version of the handshake (byte 0 of every handshake message). */
export const HANDSHAKE_VERSION = 1
/** Authentication design. */
export type AuthMode = 'kem' | 'sig'
const MODE_BYTE: Record<AuthMode, number> = { kem: 1, sig: 2 }
/** Default handshake deadline, from creation of the state machine to the last message (10 s). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000
/** Largest prologue accepted (bytes). */
export const MAX_PROLOGUE_BYTES = 65_536

const HDR = 3
const MAC = 32
const ZERO_NONCE = new Uint8Array(12)
const SIG_CTX_RESPONDER = utf8('x-pqc/session/v1 responder signature')
const SIG_CTX_INITIATOR = utf8('x-pqc/session/v1 initiator signature')
const IDSIG = ML_DSA_87_PUBLIC_KEY_BYTES + ML_DSA_87_SIGNATURE_BYTES + MAC

/** Exact length of every handshake message, by mode and message number (checked before any parsing). */
export const HANDSHAKE_MESSAGE_BYTES: Record<AuthMode, readonly number[]> = {
  kem: [
    HDR + HYBRID_PUBLIC_KEY_BYTES + STATIC_CERT_BYTES,
    HDR + 2 * HYBRID_CIPHERTEXT_BYTES + STATIC_CERT_BYTES + AEAD_TAG_BYTES,
    HDR + HYBRID_CIPHERTEXT_BYTES + MAC,
    HDR + MAC,
  ],
  sig: [
    HDR + HYBRID_PUBLIC_KEY_BYTES,
    HDR + HYBRID_CIPHERTEXT_BYTES + IDSIG + AEAD_TAG_BYTES,
    HDR + IDSIG + AEAD_TAG_BYTES,
  ],
}

/** Source of time for the handshake deadline. */
export interface HandshakeClock {
  /** Milliseconds, monotonic enough for a deadline. */
  now(): number
}

/** Options common to both roles. */
export interface HandshakeInit {
  /** Our long-term ML-DSA-87 identity. */
  identity: Identity
  /**
   * Our certified static hybrid KEM keys (used by `'kem'` authentication).
   * @default derived from the identity seed by `createStaticKeys(identity)`, memoised per identity
   */
  staticKeys?: StaticKeys
  /** When set, the handshake fails with `X_PQC_IDENTITY_MISMATCH` unless the peer proves this identity (20-byte ID or its printable form). */
  expectedPeerId?: Uint8Array | string
  /**
   * Bytes both sides must agree on (e.g. protocol name and version of the link); mixed into the transcript.
   * @default empty
   */
  prologue?: Uint8Array
  /**
   * Deadline for the whole handshake, measured with `clock` from the creation of the state machine.
   * @default 10_000
   */
  timeoutMs?: number
  /** @default `{ now: Date.now }` */
  clock?: HandshakeClock
  /**
   * Where verified peer certificates are remembered (`false`: verify every time).
   * @default a process-wide cache of 1024 entries
   */
  certificateCache?: CertificateCache | false
  /** Record-layer limits of the resulting session. */
  session?: SecureSessionInit
  /**
   * Pino-shaped logger: `debug` on success and failure (IDs, mode and error code only; never key material).
   * @default silent
   */
  logger?: PqcLogger
}

/** Initiator options. */
export interface InitiatorInit extends HandshakeInit {
  /**
   * Authentication design to propose.
   * @default 'kem'
   */
  auth?: AuthMode
}

/** Responder options. */
export interface ResponderInit extends HandshakeInit {
  /**
   * Authentication designs accepted from initiators.
   * @default ['kem', 'sig']
   */
  accept?: readonly AuthMode[]
}

/** The authenticated peer. */
export interface PeerIdentity {
  /** 20-byte ID: SHA-256(publicKey)[0..20]. */
  readonly id: Uint8Array
  /** The ID as 40 lowercase hex digits. */
  readonly idString: string
  /** ML-DSA-87 public key (2592 bytes). */
  readonly publicKey: Uint8Array
}

/** What a finished handshake yields. */
export interface HandshakeResult {
  /** The encrypted session, keyed by this handshake. */
  readonly session: SecureSession
  /** Who is on the other end, authenticated by the handshake. */
  readonly peer: PeerIdentity
  /** The authentication mode the two sides used. */
  readonly auth: AuthMode
}

/** Where a {@link Handshake} is: waiting for messages, finished, or failed for good. */
export type HandshakeStatus = 'pending' | 'done' | 'failed'

/**
 * Asynchronous ML-DSA-87 operations for {@link Handshake.receiveAsync}: a `PqcWorkerPool` fits, so that the
 * signatures and certificate checks of a handshake run off the event loop. Each must behave as the synchronous
 * `identity.sign` / `verify` (verification answers false, never rejects, for a bad signature).
 */
export interface HandshakeCrypto {
  /** ML-DSA-87 signature of `message` by `identity` under FIPS 204 context `context`. */
  sign(identity: Identity, message: Uint8Array, context: Uint8Array): Promise<Uint8Array>
  /** Whether `signature` is `publicKey`'s ML-DSA-87 signature of `message` under `context`. */
  verify(
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
    context: Uint8Array,
  ): Promise<boolean>
}

/** One ML-DSA operation a handshake step needs (done inline by `receive`, through `HandshakeCrypto` by `receiveAsync`). */
type CryptoOp =
  | { op: 'cert'; certificate: Uint8Array }
  | { op: 'sign'; message: Uint8Array; context: Uint8Array }
  | { op: 'verify'; publicKey: Uint8Array; message: Uint8Array; signature: Uint8Array; context: Uint8Array }

/** A handshake step: yields the ML-DSA operations it needs, returns the reply. */
type Step = Generator<CryptoOp, Uint8Array | undefined, unknown>

/** A handshake state machine. Feed it the peer's messages; send what it returns. */
export interface Handshake {
  /** Which side this machine plays: the initiator sends message 1. */
  readonly role: 'initiator' | 'responder'
  /** Where the handshake is now. */
  readonly status: HandshakeStatus
  /** Mode in use (known to the responder once message 1 arrived). */
  readonly auth: AuthMode | undefined
  /** Initiator only: produce message 1. */
  start(): Uint8Array
  /**
   * Consume the peer's next message. Returns the reply to send, or undefined when there is none.
   * Throws `X_PQC_HANDSHAKE_FAILED` (malformed or tampered message, bad signature or MAC),
   * `X_PQC_IDENTITY_MISMATCH` or `X_PQC_HANDSHAKE_TIMEOUT`; after a throw the machine is failed and holds no keys.
   */
  receive(message: Uint8Array): Uint8Array | undefined
  /**
   * As `receive`, with the step's ML-DSA-87 work (certificate checks, transcript signatures and their
   * verification) done through `crypto`, e.g. a worker pool. One message at a time: a call while another is
   * in progress throws `TypeError`. Rejects with the same codes as `receive`.
   */
  receiveAsync(message: Uint8Array, crypto: HandshakeCrypto): Promise<Uint8Array | undefined>
  /** The session and peer, once `status === 'done'` (each call returns the same result). */
  result(): HandshakeResult
  /** Fail the handshake now (wipes every secret). */
  abort(reason?: unknown): void
}

interface CommonConfig {
  identity: Identity
  staticKeys: StaticKeys | undefined
  expected: Uint8Array | undefined
  prologue: Uint8Array
  deadline: number
  clock: HandshakeClock
  cache: CertificateCache | undefined
  session: SecureSessionInit | undefined
  logger: PqcLogger
}

function config(init: HandshakeInit): CommonConfig {
  if (typeof init !== 'object' || init === null) throw new TypeError('"init" must be an object')
  if (typeof init.identity?.sign !== 'function') throw new TypeError('"identity" must be an Identity')
  const prologue = init.prologue ?? new Uint8Array(0)
  if (!(prologue instanceof Uint8Array)) throw new TypeError('"prologue" must be a Uint8Array')
  if (prologue.length > MAX_PROLOGUE_BYTES)
    throw new RangeError(`"prologue" must be at most ${MAX_PROLOGUE_BYTES} bytes`)
  const timeoutMs = init.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS
  if (!(timeoutMs > 0)) throw new RangeError('"timeoutMs" must be a positive number')
  let expected: Uint8Array | undefined
  if (typeof init.expectedPeerId === 'string') expected = parseId(init.expectedPeerId)
  else if (init.expectedPeerId !== undefined) {
    if (!(init.expectedPeerId instanceof Uint8Array) || init.expectedPeerId.length !== 20) {
      throw new TypeError('"expectedPeerId" must be a 20-byte Uint8Array or an ID string')
    }
    expected = init.expectedPeerId
  }
  const clock = init.clock ?? { now: Date.now }
  return {
    identity: init.identity,
    staticKeys: init.staticKeys,
    expected,
    prologue,
    deadline: clock.now() + timeoutMs,
    clock,
    cache: init.certificateCache === false ? undefined : (init.certificateCache ?? defaultCertificateCache),
    session: init.session,
    logger: init.logger ?? SILENT_LOGGER,
  }
}

function fail(message: string): never {
  throw new PqcError('X_PQC_HANDSHAKE_FAILED', message)
}

class HandshakeMachine implements Handshake {
  readonly role: 'initiator' | 'responder'
  #cfg: CommonConfig
  #mode: AuthMode | undefined
  #accept: readonly AuthMode[]
  #status: HandshakeStatus = 'pending'
  /** Number of the next message this side expects to receive (1-based). */
  #expect: number
  #ss: SymmetricState | undefined
  #ephemeralSecret: Uint8Array | undefined
  #staticKeys: StaticKeys | undefined
  #peer: PeerIdentity | undefined
  #result: HandshakeResult | undefined
  #error: PqcError | undefined
  /** `receiveAsync` is between its ML-DSA operations. */
  #busy = false

  constructor(
    role: 'initiator' | 'responder',
    cfg: CommonConfig,
    mode: AuthMode | undefined,
    accept: readonly AuthMode[],
  ) {
    this.role = role
    this.#cfg = cfg
    this.#mode = mode
    this.#accept = accept
    this.#expect = role === 'initiator' ? 2 : 1
  }

  get status(): HandshakeStatus {
    return this.#status
  }

  get auth(): AuthMode | undefined {
    return this.#mode
  }

  start(): Uint8Array {
    if (this.role !== 'initiator')
      throw new TypeError('start() is for the initiator; the responder only receives')
    if (this.#ss !== undefined) throw new TypeError('start() was already called')
    return this.#guard(() => {
      const mode = this.#mode!
      this.#ss = new SymmetricState(MODE_BYTE[mode], this.#cfg.prologue)
      const e = hybridKeygenEphemeral()
      this.#ephemeralSecret = e.secretKey
      const parts = [header(mode, 1), e.publicKey]
      if (mode === 'kem') parts.push(this.#static().certificate)
      const m1 = concatBytes(...parts)
      this.#ss.absorb(m1)
      return m1
    })
  }

  receive(message: Uint8Array): Uint8Array | undefined {
    const step = this.#begin(message)
    return this.#guard(() => {
      let next = step.next()
      while (!next.done) {
        let answer: unknown
        try {
          answer = this.#runSync(next.value)
        } catch (err) {
          next = step.throw(err)
          continue
        }
        next = step.next(answer)
      }
      return next.value
    })
  }

  async receiveAsync(message: Uint8Array, crypto: HandshakeCrypto): Promise<Uint8Array | undefined> {
    if (typeof crypto?.sign !== 'function' || typeof crypto.verify !== 'function') {
      throw new TypeError('"crypto" must have sign() and verify()')
    }
    const step = this.#begin(message)
    this.#busy = true
    try {
      let next = this.#guard(() => step.next())
      while (!next.done) {
        let outcome: { ok: true; value: unknown } | { ok: false; error: unknown }
        try {
          outcome = { ok: true, value: await this.#runAsync(next.value, crypto) }
        } catch (error) {
          outcome = { ok: false, error }
        }
        // abort() or the deadline may have struck while the operation ran: #guard refuses to go on then.
        next = this.#guard(() => (outcome.ok ? step.next(outcome.value) : step.throw(outcome.error)))
      }
      return next.value
    } finally {
      this.#busy = false
    }
  }

  /** Checks common to both receive paths, then the step generator for `message`. */
  #begin(message: Uint8Array): Step {
    if (!(message instanceof Uint8Array)) throw new TypeError('"message" must be a Uint8Array')
    if (this.role === 'initiator' && this.#ss === undefined)
      throw new TypeError('call start() before receive()')
    if (this.#busy) throw new TypeError('a message is still being processed (receiveAsync)')
    // A finished machine refuses more input without changing state (its session stays valid).
    if (this.#status === 'done') throw new PqcError('X_PQC_HANDSHAKE_FAILED', 'handshake already finished')
    return this.#step(message)
  }

  *#step(message: Uint8Array): Step {
    if (this.role === 'responder' && this.#expect === 1) this.#pickMode(message)
    const mode = this.#mode!
    const n = this.#expect
    const lengths = HANDSHAKE_MESSAGE_BYTES[mode]
    if (message.length !== lengths[n - 1]) {
      fail(`message ${n} must be ${String(lengths[n - 1])} bytes, got ${message.length}`)
    }
    if (message[0] !== HANDSHAKE_VERSION || message[1] !== MODE_BYTE[mode] || message[2] !== n) {
      fail(
        `unexpected header ${String(message[0])}/${String(message[1])}/${String(message[2])} for message ${n}`,
      )
    }
    this.#expect += 2
    return mode === 'kem' ? yield* this.#kem(n, message) : yield* this.#sig(n, message)
  }

  #runSync(op: CryptoOp): unknown {
    switch (op.op) {
      case 'cert':
        return verifyCertificate(op.certificate, this.#cfg.cache)
      case 'sign':
        return this.#cfg.identity.sign(op.message, op.context)
      case 'verify':
        return verify(op.publicKey, op.message, op.signature, op.context)
    }
  }

  async #runAsync(op: CryptoOp, crypto: HandshakeCrypto): Promise<unknown> {
    switch (op.op) {
      case 'cert':
        return verifyCertificateWith(
          op.certificate,
          (pk, m, s, ctx) => crypto.verify(pk, m, s, ctx),
          this.#cfg.cache,
        )
      case 'sign':
        return crypto.sign(this.#cfg.identity, op.message, op.context)
      case 'verify':
        return (await crypto.verify(op.publicKey, op.message, op.signature, op.context)) === true
    }
  }

  result(): HandshakeResult {
    if (this.#result === undefined) {
      throw new PqcError('X_PQC_HANDSHAKE_FAILED', `handshake is ${this.#status}, not done`, {
        cause: this.#error,
      })
    }
    return this.#result
  }

  abort(reason?: unknown): void {
    if (this.#status !== 'pending') return
    this.#error = toHandshakeError(reason ?? new PqcError('X_PQC_HANDSHAKE_FAILED', 'handshake aborted'))
    this.#status = 'failed'
    this.#wipe()
  }

  #guard<T>(step: () => T): T {
    if (this.#status === 'failed') {
      throw new PqcError(this.#error?.code ?? 'X_PQC_HANDSHAKE_FAILED', 'handshake already failed', {
        cause: this.#error,
      })
    }
    try {
      if (this.#cfg.clock.now() > this.#cfg.deadline) {
        throw new PqcError('X_PQC_HANDSHAKE_TIMEOUT', 'handshake deadline passed')
      }
      return step()
    } catch (err) {
      const e = toHandshakeError(err)
      this.#error = e
      this.#status = 'failed'
      this.#wipe()
      this.#cfg.logger.debug(
        { role: this.role, auth: this.#mode, code: e.code, peer: this.#peer?.idString, reason: e.message },
        'pqc handshake failed',
      )
      throw e
    }
  }

  #pickMode(m1: Uint8Array): void {
    const mode = m1[1] === MODE_BYTE.kem ? 'kem' : m1[1] === MODE_BYTE.sig ? 'sig' : undefined
    if (mode === undefined || !this.#accept.includes(mode))
      fail(`authentication mode ${String(m1[1])} not accepted`)
    this.#mode = mode
    this.#ss = new SymmetricState(MODE_BYTE[mode], this.#cfg.prologue)
  }

  #static(): StaticKeys {
    this.#staticKeys ??= this.#cfg.staticKeys ?? defaultStaticKeys(this.#cfg.identity)
    return this.#staticKeys
  }

  #checkPeer(publicKey: Uint8Array, id = idFromPublicKey(publicKey)): void {
    if (this.#cfg.expected !== undefined && !equalBytes(id, this.#cfg.expected)) {
      throw new PqcError(
        'X_PQC_IDENTITY_MISMATCH',
        `peer is ${formatId(id)}, expected ${formatId(this.#cfg.expected)}`,
      )
    }
    this.#peer = { id, idString: formatId(id), publicKey }
  }

  *#certificate(cert: Uint8Array): Generator<CryptoOp, Uint8Array, unknown> {
    // The expected identity is checked before the ML-DSA-87 verification, so a certificate of the wrong
    // identity costs no signature check.
    const tbs = certificateToBeSigned(cert)
    this.#checkPeer(tbs.identityPublicKey)
    const c = (yield { op: 'cert', certificate: cert }) as VerifiedCertificate
    this.#checkPeer(c.identityPublicKey, c.id)
    return c.staticPublicKey
  }

  /** KEM-authenticated flow, PROTOCOL.md §4.1. */
  *#kem(n: number, m: Uint8Array): Step {
    const ss = this.#ss!
    if (n === 1) {
      // R: e_I, cert_I  →  ct_e, ct_I, AEAD(cert_R)
      const ePk = m.subarray(HDR, HDR + HYBRID_PUBLIC_KEY_BYTES)
      const peerStatic = yield* this.#certificate(m.subarray(HDR + HYBRID_PUBLIC_KEY_BYTES))
      ss.absorb(m)
      const e = hybridEncapsulate(ePk)
      const s = hybridEncapsulate(peerStatic)
      const clear = concatBytes(header('kem', 2), e.cipherText, s.cipherText)
      const a2 = ss.peek(clear)
      ss.mixKey(e.sharedSecret)
      ss.mixKey(s.sharedSecret)
      wipe(e.sharedSecret, s.sharedSecret)
      const k2 = ss.key('k2')
      const m2 = concatBytes(clear, aeadSeal(k2, ZERO_NONCE, this.#static().certificate, a2))
      wipe(k2)
      ss.absorb(m2)
      return m2
    }
    if (n === 2) {
      // I: decapsulate both, open cert_R  →  ct_R, Finished_I
      let o = HDR
      const ctE = m.subarray(o, (o += HYBRID_CIPHERTEXT_BYTES))
      const ctI = m.subarray(o, (o += HYBRID_CIPHERTEXT_BYTES))
      const a2 = ss.peek(m.subarray(0, o))
      const ssE = hybridDecapsulate(ctE, this.#ephemeralSecret!)
      const ssI = hybridDecapsulate(ctI, this.#static().secretKey)
      ss.mixKey(ssE)
      ss.mixKey(ssI)
      wipe(ssE, ssI)
      const k2 = ss.key('k2')
      const cert = openOrFail(k2, m.subarray(o), a2, 'message 2')
      wipe(k2)
      const peerStatic = yield* this.#certificate(cert)
      ss.absorb(m)
      const r = hybridEncapsulate(peerStatic)
      ss.mixKey(r.sharedSecret)
      wipe(r.sharedSecret)
      const clear = concatBytes(header('kem', 3), r.cipherText)
      const m3 = concatBytes(clear, ss.mac('initiator finished', ss.peek(clear)))
      ss.absorb(m3)
      return m3
    }
    if (n === 3) {
      // R: decapsulate ct_R, check Finished_I  →  Finished_R; done
      const ctR = m.subarray(HDR, HDR + HYBRID_CIPHERTEXT_BYTES)
      const ssR = hybridDecapsulate(ctR, this.#static().secretKey)
      ss.mixKey(ssR)
      wipe(ssR)
      const clear = m.subarray(0, HDR + HYBRID_CIPHERTEXT_BYTES)
      if (!equalBytes(m.subarray(clear.length), ss.mac('initiator finished', ss.peek(clear)))) {
        fail('initiator Finished MAC does not match')
      }
      ss.absorb(m)
      const hdr = header('kem', 4)
      const m4 = concatBytes(hdr, ss.mac('responder finished', ss.peek(hdr)))
      ss.absorb(m4)
      this.#finish()
      return m4
    }
    // I: check Finished_R; done
    const hdr = m.subarray(0, HDR)
    if (!equalBytes(m.subarray(HDR), ss.mac('responder finished', ss.peek(hdr)))) {
      fail('responder Finished MAC does not match')
    }
    ss.absorb(m)
    this.#finish()
    return undefined
  }

  /** Signature-authenticated flow (SIGMA-I), PROTOCOL.md §4.2. */
  *#sig(n: number, m: Uint8Array): Step {
    const ss = this.#ss!
    if (n === 1) {
      // R: e_I  →  ct_e, AEAD(pk_R, Sig_R, Finished_R)
      ss.absorb(m)
      const e = hybridEncapsulate(m.subarray(HDR))
      const clear = concatBytes(header('sig', 2), e.cipherText)
      const a2 = ss.peek(clear)
      ss.mixKey(e.sharedSecret)
      wipe(e.sharedSecret)
      const m2 = concatBytes(clear, yield* this.#sealIdentity('responder', a2, ss.key('k2')))
      ss.absorb(m2)
      return m2
    }
    if (n === 2) {
      // I: decapsulate, open and check R's identity  →  AEAD(pk_I, Sig_I, Finished_I); done
      const clear = m.subarray(0, HDR + HYBRID_CIPHERTEXT_BYTES)
      const a2 = ss.peek(clear)
      const ssE = hybridDecapsulate(m.subarray(HDR, clear.length), this.#ephemeralSecret!)
      ss.mixKey(ssE)
      wipe(ssE)
      yield* this.#openIdentity('responder', a2, ss.key('k2'), m.subarray(clear.length))
      ss.absorb(m)
      const hdr = header('sig', 3)
      const a3 = ss.peek(hdr)
      const m3 = concatBytes(hdr, yield* this.#sealIdentity('initiator', a3, ss.key('k3')))
      ss.absorb(m3)
      this.#finish()
      return m3
    }
    // R: open and check I's identity; done
    const a3 = ss.peek(m.subarray(0, HDR))
    yield* this.#openIdentity('initiator', a3, ss.key('k3'), m.subarray(HDR))
    ss.absorb(m)
    this.#finish()
    return undefined
  }

  *#sealIdentity(
    who: 'initiator' | 'responder',
    a: Uint8Array,
    key: Uint8Array,
  ): Generator<CryptoOp, Uint8Array, unknown> {
    const id = this.#cfg.identity
    const context = who === 'initiator' ? SIG_CTX_INITIATOR : SIG_CTX_RESPONDER
    let signature: Uint8Array
    try {
      signature = (yield { op: 'sign', message: a, context }) as Uint8Array
    } catch (err) {
      wipe(key)
      throw err
    }
    const fin = this.#ss!.mac(`${who} finished`, sha3_256(a, id.publicKey, signature))
    const sealed = aeadSeal(key, ZERO_NONCE, concatBytes(id.publicKey, signature, fin), a)
    wipe(key)
    return sealed
  }

  *#openIdentity(
    who: 'initiator' | 'responder',
    a: Uint8Array,
    key: Uint8Array,
    sealed: Uint8Array,
  ): Generator<CryptoOp, void, unknown> {
    const payload = openOrFail(key, sealed, a, who === 'initiator' ? 'message 3' : 'message 2')
    wipe(key)
    const publicKey = payload.slice(0, ML_DSA_87_PUBLIC_KEY_BYTES)
    const signature = payload.subarray(
      ML_DSA_87_PUBLIC_KEY_BYTES,
      ML_DSA_87_PUBLIC_KEY_BYTES + ML_DSA_87_SIGNATURE_BYTES,
    )
    const fin = payload.subarray(ML_DSA_87_PUBLIC_KEY_BYTES + ML_DSA_87_SIGNATURE_BYTES)
    this.#checkPeer(publicKey)
    // The Finished MAC is checked first: it costs a hash, the signature an ML-DSA-87 verification.
    if (!equalBytes(fin, this.#ss!.mac(`${who} finished`, sha3_256(a, publicKey, signature)))) {
      fail(`${who} Finished MAC does not match`)
    }
    const context = who === 'initiator' ? SIG_CTX_INITIATOR : SIG_CTX_RESPONDER
    if (!(yield { op: 'verify', publicKey, message: a, signature, context })) {
      fail(`${who} signature does not verify`)
    }
  }

  #finish(): void {
    const ss = this.#ss!
    const [i2r, r2i] = ss.split()
    const initiator = this.role === 'initiator'
    const session = new SecureSession(
      initiator ? i2r : r2i,
      initiator ? r2i : i2r,
      ss.h.slice(),
      this.#cfg.session,
    )
    this.#result = { session, peer: this.#peer!, auth: this.#mode! }
    this.#status = 'done'
    this.#cfg.logger.debug(
      { role: this.role, auth: this.#mode, peer: this.#peer!.idString },
      'pqc handshake done',
    )
    this.#wipe()
  }

  #wipe(): void {
    this.#ss?.wipe()
    if (this.#ephemeralSecret) wipe(this.#ephemeralSecret)
    this.#ephemeralSecret = undefined
  }
}

function header(mode: AuthMode, n: number): Uint8Array {
  return Uint8Array.of(HANDSHAKE_VERSION, MODE_BYTE[mode], n)
}

function openOrFail(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array, what: string): Uint8Array {
  try {
    return aeadOpen(key, ZERO_NONCE, sealed, ad)
  } catch (cause) {
    throw new PqcError('X_PQC_HANDSHAKE_FAILED', `${what} does not authenticate (tampered or wrong keys)`, {
      cause,
    })
  }
}

function toHandshakeError(err: unknown): PqcError {
  if (isPqcError(err, 'X_PQC_IDENTITY_MISMATCH') || isPqcError(err, 'X_PQC_HANDSHAKE_TIMEOUT')) return err
  if (isPqcError(err, 'X_PQC_HANDSHAKE_FAILED')) return err
  return new PqcError('X_PQC_HANDSHAKE_FAILED', err instanceof Error ? err.message : 'handshake failed', {
    cause: err,
  })
}

/** Create the initiator's state machine. Nothing is computed until `start()`. */
export function createInitiator(init: InitiatorInit): Handshake {
  const cfg = config(init)
  const auth = init.auth ?? 'kem'
  if (auth !== 'kem' && auth !== 'sig') throw new TypeError('"auth" must be "kem" or "sig"')
  return new HandshakeMachine('initiator', cfg, auth, [auth])
}

/** Create the responder's state machine; it learns the authentication mode from message 1. */
export function createResponder(init: ResponderInit): Handshake {
  const cfg = config(init)
  const accept = init.accept ?? ['kem', 'sig']
  if (!Array.isArray(accept) || accept.length === 0 || accept.some((m) => m !== 'kem' && m !== 'sig')) {
    throw new TypeError('"accept" must be a non-empty array of "kem" | "sig"')
  }
  return new HandshakeMachine('responder', cfg, undefined, accept)
}

/** A duplex message pipe: whole messages in, whole messages out (a WebSocket, a framed stream, a MessagePort…). */
export interface HandshakePipe {
  /** Sends one whole message to the peer. */
  send(bytes: Uint8Array): void
  /** Register the handler for incoming messages; may return a function that unregisters it. */
  onMessage(handler: (bytes: Uint8Array) => void): (() => void) | void
}

/** Options of {@link handshake}. */
export interface HandshakeRunOptions {
  /** Abort the handshake (rejects with `X_PQC_HANDSHAKE_FAILED`). */
  signal?: AbortSignal
  /**
   * Do the ML-DSA-87 work through these asynchronous operations (a `PqcWorkerPool`) instead of on the calling
   * thread, so that a flood of handshakes does not stall the event loop. Messages are then processed one at a
   * time in arrival order (at most {@link MAX_QUEUED_HANDSHAKE_MESSAGES} waiting).
   * @default undefined (synchronous, on the calling thread)
   */
  crypto?: HandshakeCrypto
}

/** What {@link handshake} resolves to. */
export interface HandshakeRunResult extends HandshakeResult {
  /**
   * Messages that arrived after the peer's last handshake message while it was still being verified
   * asynchronously (the peer's first records, `crypto` only): the caller feeds them to its record handler first.
   * Always empty without `crypto`, where the message handler is unregistered synchronously.
   */
  readonly trailing: readonly Uint8Array[]
}

/**
 * Most messages queued behind one that is being processed asynchronously. A peer sends the next handshake
 * message only after our reply, so only its first records can legitimately queue up.
 */
export const MAX_QUEUED_HANDSHAKE_MESSAGES = 64

/**
 * Drive `machine` over `pipe` until it is done. `timeoutMs` arms a timer (default 10 s) that rejects with
 * `X_PQC_HANDSHAKE_TIMEOUT`; the machine also enforces its own `timeoutMs` deadline at every step. The message
 * handler is unregistered when the promise settles (if `onMessage` returned an unsubscribe function), so the
 * caller can attach its record handler right after.
 */
export function handshake(
  pipe: HandshakePipe,
  machine: Handshake,
  timeoutMs: number = DEFAULT_HANDSHAKE_TIMEOUT_MS,
  options: HandshakeRunOptions = {},
): Promise<HandshakeRunResult> {
  const crypto = options.crypto
  if (crypto !== undefined && (typeof crypto.sign !== 'function' || typeof crypto.verify !== 'function')) {
    throw new TypeError('"crypto" must have sign() and verify()')
  }
  return new Promise<HandshakeRunResult>((resolve, reject) => {
    let settled = false
    let unsubscribe: (() => void) | void = undefined
    /** Async mode: messages waiting while one is processed; `busy` while `receiveAsync` runs. */
    const queue: Uint8Array[] = []
    let busy = false
    const onAbort = (): void =>
      settle(new PqcError('X_PQC_HANDSHAKE_FAILED', 'handshake aborted', { cause: options.signal?.reason }))
    const timer = setTimeout(
      () => settle(new PqcError('X_PQC_HANDSHAKE_TIMEOUT', `no handshake within ${timeoutMs} ms`)),
      timeoutMs,
    )
    function settle(error?: unknown): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      if (typeof unsubscribe === 'function') unsubscribe()
      if (error === undefined) {
        resolve({ ...machine.result(), trailing: queue.splice(0) })
        return
      }
      machine.abort(error)
      reject(toHandshakeError(error))
    }
    function reply(out: Uint8Array | undefined): void {
      if (out !== undefined) pipe.send(out)
      if (machine.status === 'done') settle()
    }
    function drain(): void {
      if (busy || settled || crypto === undefined) return
      const next = queue.shift()
      if (next === undefined) return
      busy = true
      machine.receiveAsync(next, crypto).then(
        (out) => {
          busy = false
          if (settled) return
          try {
            reply(out)
          } catch (err) {
            settle(err)
          }
          drain()
        },
        (err: unknown) => {
          busy = false
          settle(err)
        },
      )
    }
    if (options.signal?.aborted) {
      onAbort()
      return
    }
    options.signal?.addEventListener('abort', onAbort)
    unsubscribe = pipe.onMessage((bytes) => {
      if (settled) return
      if (crypto !== undefined) {
        if (queue.length >= MAX_QUEUED_HANDSHAKE_MESSAGES) {
          settle(new PqcError('X_PQC_HANDSHAKE_FAILED', 'too many messages during the handshake'))
          return
        }
        queue.push(bytes)
        drain()
        return
      }
      try {
        reply(machine.receive(bytes))
      } catch (err) {
        settle(err)
      }
    })
    if (settled && typeof unsubscribe === 'function') unsubscribe()
    if (machine.role === 'initiator' && !settled) {
      try {
        pipe.send(machine.start())
      } catch (err) {
        settle(err)
      }
    }
  })
}
