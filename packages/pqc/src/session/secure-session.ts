/**
 * AEAD record layer of an established session (PROTOCOL.md §5). Each direction has its own traffic secret;
 * the key and the 96-bit IV of an epoch come from that secret by HKDF, and the secret ratchets forward
 * (HKDF, old secret wiped) after a bounded number of records or bytes. Nonce = IV XOR (0^32 || seq_u64), so a
 * (key, nonce) pair is never reused while seq < 2^53.
 */
import { AEAD_TAG_BYTES, aeadOpen, aeadSeal } from '../aead'
import { PqcError } from '../errors'
import { nodeCrypto } from '../runtime'
import type * as NodeCrypto from 'node:crypto'
import { hkdfExpandSha256, hkdfExtractSha256, hkdfSha256 } from '../kdf'
import { concatBytes, wipe } from '../bytes'
import { utf8 } from './bytes'
import { PROTOCOL_LABEL } from './transcript'

/** Record header: type (1) || epoch u32 BE (4) || seq u64 BE (8). */
export const RECORD_HEADER_BYTES = 13
export const RECORD_TYPE_DATA = 0x17
export const RECORD_TYPE_CLOSE = 0x15
/** Default records under one key before the ratchet (2^20; far below AES-GCM / ChaCha20 limits). */
export const DEFAULT_MAX_RECORDS_PER_KEY = 1_048_576
/** Default plaintext bytes under one key before the ratchet (1 GiB). */
export const DEFAULT_MAX_BYTES_PER_KEY = 1_073_741_824
/** Default largest plaintext in one record (1 MiB). */
export const DEFAULT_MAX_RECORD_BYTES = 1_048_576
const AEAD_NONCE_LEN = 12
type NodeCryptoModule = typeof NodeCrypto
type NodeKeyObject = NodeCrypto.KeyObject
const MAX_SEQ = Number.MAX_SAFE_INTEGER

/** Record-layer limits. Both sides may configure different limits: the receiver follows the sender's epochs. */
export interface SecureSessionInit {
  /**
   * Records sealed under one key before the sending key ratchets forward.
   * @default 1_048_576 (2^20)
   */
  maxRecordsPerKey?: number
  /**
   * Plaintext bytes sealed under one key before the sending key ratchets forward.
   * @default 1_073_741_824 (1 GiB)
   */
  maxBytesPerKey?: number
  /**
   * Largest plaintext accepted by `seal` and `open` (the record is this plus 29 bytes).
   * @default 1_048_576 (1 MiB)
   */
  maxRecordBytes?: number
}

/** Counters of one session (no secrets). */
export interface SecureSessionStats {
  /** Records sealed. */
  recordsSent: number
  /** Records opened successfully. */
  recordsReceived: number
  /** Plaintext bytes sealed. */
  bytesSent: number
  /** Plaintext bytes opened. */
  bytesReceived: number
  /** Key rotations of the sending direction so far (0 for the handshake's key). */
  sendEpoch: number
  /** Key rotations of the receiving direction so far. */
  receiveEpoch: number
  /** Records `open` refused (replayed, reordered, altered, too large, or after close). */
  rejected: number
}

interface Direction {
  secret: Uint8Array
  key: Uint8Array
  /** OpenSSL handle of `key`, made on first use on Node (a raw key costs 13 µs per cipher on Node 24). */
  cipherKey: NodeKeyObject | undefined
  iv: Uint8Array
  epoch: number
  seq: number
  recordsInEpoch: number
  bytesInEpoch: number
}

const KEY_INFO = utf8(`${PROTOCOL_LABEL} record key`)
const IV_INFO = utf8(`${PROTOCOL_LABEL} record iv`)
const RATCHET_INFO = utf8(`${PROTOCOL_LABEL} ratchet`)
const EMPTY = new Uint8Array(0)

function direction(secret: Uint8Array, epoch: number, seq: number): Direction {
  // key = HKDF(T, "", "… record key"), iv = HKDF(T, "", "… record iv"): one extract, two expansions.
  const prk = hkdfExtractSha256(EMPTY, secret)
  const key = hkdfExpandSha256(prk, KEY_INFO, 32)
  const iv = hkdfExpandSha256(prk, IV_INFO, AEAD_NONCE_LEN)
  prk.fill(0)
  return {
    secret,
    key,
    iv,
    cipherKey: undefined,
    epoch,
    seq,
    recordsInEpoch: 0,
    bytesInEpoch: 0,
  }
}

function ratchet(d: Direction): Direction {
  return direction(hkdfSha256(d.secret, EMPTY, RATCHET_INFO, 32), d.epoch + 1, d.seq)
}

function wipeDirection(d: Direction): void {
  wipe(d.secret, d.key, d.iv)
  // A KeyObject cannot be wiped from JS; dropping it lets OpenSSL free (and clear) its copy when collected.
  d.cipherKey = undefined
}

function cipherKey(c: NodeCryptoModule, d: Direction): NodeKeyObject {
  d.cipherKey ??= c.createSecretKey(d.key)
  return d.cipherKey
}

function nonceFor(iv: Uint8Array, seq: number): Uint8Array {
  const nonce = iv.slice()
  const hi = Math.floor(seq / 0x1_0000_0000)
  const lo = seq >>> 0
  nonce[4]! ^= hi >>> 24
  nonce[5]! ^= (hi >>> 16) & 0xff
  nonce[6]! ^= (hi >>> 8) & 0xff
  nonce[7]! ^= hi & 0xff
  nonce[8]! ^= lo >>> 24
  nonce[9]! ^= (lo >>> 16) & 0xff
  nonce[10]! ^= (lo >>> 8) & 0xff
  nonce[11]! ^= lo & 0xff
  return nonce
}

const UNPOOLED_RECORD_BYTES = 4096

function allocUnsafeSlow(length: number): Uint8Array {
  const B = (globalThis as { Buffer?: { allocUnsafeSlow(n: number): Uint8Array } }).Buffer
  if (B === undefined) return new Uint8Array(length)
  const buf = B.allocUnsafeSlow(length)
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length)
}

function u8(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.length)
}

/**
 * AES-256-GCM of `plaintext` with `header` as associated data, as `[ciphertext, tag]` (the same bytes as
 * `aeadSeal`). On Node this calls OpenSSL directly with the direction's cached key object.
 */
function encrypt(
  d: Direction,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  header: Uint8Array,
): [Uint8Array, Uint8Array] {
  const c = nodeCrypto()
  if (c === undefined) {
    const sealed = aeadSeal(d.key, nonce, plaintext, header)
    const n = plaintext.length
    return [sealed.subarray(0, n), sealed.subarray(n)]
  }
  const cipher = c.createCipheriv('aes-256-gcm', cipherKey(c, d), nonce)
  cipher.setAAD(header)
  const body = cipher.update(plaintext)
  const fin = cipher.final() // GCM is a stream mode: always empty
  const ct = fin.length === 0 ? u8(body) : concatBytes(body, fin)
  return [ct, u8(cipher.getAuthTag())]
}

/** Check and decrypt `ciphertext ‖ tag` (`aeadOpen`'s bytes and errors) with the direction's key. */
function decrypt(d: Direction, nonce: Uint8Array, sealed: Uint8Array, header: Uint8Array): Uint8Array {
  const c = nodeCrypto()
  if (c === undefined || sealed.length < AEAD_TAG_BYTES) return aeadOpen(d.key, nonce, sealed, header)
  const n = sealed.length - AEAD_TAG_BYTES
  try {
    const dec = c.createDecipheriv('aes-256-gcm', cipherKey(c, d), nonce)
    dec.setAuthTag(sealed.subarray(n))
    dec.setAAD(header)
    const body = dec.update(sealed.subarray(0, n))
    const fin = dec.final()
    return fin.length === 0 ? u8(body) : concatBytes(body, fin)
  } catch (cause) {
    throw new PqcError('X_PQC_DECRYPT_FAILED', 'authentication failed', { cause })
  }
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`"${name}" must be a positive integer`)
  return value
}

/**
 * An established, mutually authenticated session. `seal` turns plaintext into a record for the peer; `open`
 * checks and decrypts a record from the peer. A rejected record throws a `PqcError` and leaves the session
 * unchanged, so a single forged record cannot desynchronise the two sides; callers should usually drop the link.
 * Obtained from a finished handshake, never constructed directly.
 */
export class SecureSession {
  /** SHA3-256 hash of the whole handshake transcript: identical on both sides, usable as channel binding. */
  readonly handshakeHash: Uint8Array
  #send: Direction
  #recv: Direction
  #maxRecords: number
  #maxBytes: number
  #maxRecordBytes: number
  #closed = false
  #remoteClosed = false
  #stats: SecureSessionStats = {
    recordsSent: 0,
    recordsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    sendEpoch: 0,
    receiveEpoch: 0,
    rejected: 0,
  }

  /** @internal */
  constructor(
    sendSecret: Uint8Array,
    receiveSecret: Uint8Array,
    handshakeHash: Uint8Array,
    init: SecureSessionInit = {},
  ) {
    this.#maxRecords = positiveInt(init.maxRecordsPerKey, DEFAULT_MAX_RECORDS_PER_KEY, 'maxRecordsPerKey')
    this.#maxBytes = positiveInt(init.maxBytesPerKey, DEFAULT_MAX_BYTES_PER_KEY, 'maxBytesPerKey')
    this.#maxRecordBytes = positiveInt(init.maxRecordBytes, DEFAULT_MAX_RECORD_BYTES, 'maxRecordBytes')
    this.#send = direction(sendSecret, 0, 0)
    this.#recv = direction(receiveSecret, 0, 0)
    this.handshakeHash = handshakeHash
  }

  /** True after `close()` was called locally. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * True once the peer's authenticated close record was opened. A transport that ends while this is false
   * was truncated (or the peer crashed): treat the data as possibly incomplete.
   */
  get remoteClosed(): boolean {
    return this.#remoteClosed
  }

  /** The session's counters now (a copy). */
  get stats(): SecureSessionStats {
    return { ...this.#stats, sendEpoch: this.#send.epoch, receiveEpoch: this.#recv.epoch }
  }

  /** Encrypt `plaintext` into one record. Throws `X_PQC_RECORD_TOO_LARGE` or `X_PQC_SESSION_CLOSED`. */
  seal(plaintext: Uint8Array): Uint8Array {
    this.#checkSeal(plaintext)
    return this.#sealRecord(RECORD_TYPE_DATA, plaintext)
  }

  #checkSeal(plaintext: Uint8Array): void {
    if (!(plaintext instanceof Uint8Array)) throw new TypeError('"plaintext" must be a Uint8Array')
    if (this.#closed) throw new PqcError('X_PQC_SESSION_CLOSED', 'session is closed')
    if (plaintext.length > this.#maxRecordBytes) {
      throw new PqcError(
        'X_PQC_RECORD_TOO_LARGE',
        `record of ${plaintext.length} bytes exceeds ${this.#maxRecordBytes}`,
      )
    }
  }

  /**
   * `seal` without the final copy: the same record as three consecutive pieces `[header (13 bytes), ciphertext,
   * tag (16 bytes)]` whose concatenation is exactly what `seal` returns (same checks, same errors, same
   * sequence number used). For transports with gather writes (`socket.cork()` + writes, `writev`,
   * `Buffer.concat` by the caller): it saves one copy of the plaintext size per record, which at 64 KiB is
   * most of what separates `seal` from the raw cipher (README, Speed).
   */
  sealChunks(plaintext: Uint8Array): [header: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array] {
    this.#checkSeal(plaintext)
    return this.#sealParts(RECORD_TYPE_DATA, plaintext)
  }

  /**
   * Check and decrypt one record. Errors: `X_PQC_BAD_MESSAGE` (malformed/truncated header),
   * `X_PQC_RECORD_TOO_LARGE`, `X_PQC_REPLAY` (sequence number already used), `X_PQC_OUT_OF_ORDER` (a record was
   * skipped or reordered), `X_PQC_DECRYPT_FAILED` (altered or truncated record), `X_PQC_SESSION_CLOSED`.
   * Returns an empty array for the peer's close record (then `remoteClosed` is true).
   */
  open(record: Uint8Array): Uint8Array {
    if (!(record instanceof Uint8Array)) throw new TypeError('"record" must be a Uint8Array')
    try {
      return this.#openRecord(record)
    } catch (err) {
      this.#stats.rejected++
      throw err
    }
  }

  /**
   * Close the sending side: returns the authenticated close record to send to the peer, then wipes the sending
   * key. Further `seal` calls throw `X_PQC_SESSION_CLOSED`. Idempotent: a second call returns an empty array.
   */
  close(): Uint8Array {
    if (this.#closed) return new Uint8Array(0)
    const record = this.#sealRecord(RECORD_TYPE_CLOSE, new Uint8Array(0))
    this.#closed = true
    wipeDirection(this.#send)
    return record
  }

  /** Wipe both directions' keys without producing a close record (e.g. the transport died). */
  destroy(): void {
    this.#closed = true
    this.#remoteClosed = true
    wipeDirection(this.#send)
    wipeDirection(this.#recv)
  }

  #sealRecord(type: number, plaintext: Uint8Array): Uint8Array {
    const [header, ct, tag] = this.#sealParts(type, plaintext)
    const length = RECORD_HEADER_BYTES + ct.length + AEAD_TAG_BYTES
    // Every byte is written below, so skip zero-filling large records (unpooled: no other data shares the buffer).
    const record = length >= UNPOOLED_RECORD_BYTES ? allocUnsafeSlow(length) : new Uint8Array(length)
    record.set(header, 0)
    record.set(ct, RECORD_HEADER_BYTES)
    record.set(tag, RECORD_HEADER_BYTES + ct.length)
    return record
  }

  #sealParts(type: number, plaintext: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
    const d = this.#send
    if (d.seq >= MAX_SEQ) throw new PqcError('X_PQC_SESSION_CLOSED', 'sequence numbers exhausted')
    const header = new Uint8Array(RECORD_HEADER_BYTES)
    const view = new DataView(header.buffer)
    header[0] = type
    view.setUint32(1, d.epoch)
    view.setUint32(5, Math.floor(d.seq / 0x1_0000_0000))
    view.setUint32(9, d.seq >>> 0)
    const [ct, tag] = encrypt(d, nonceFor(d.iv, d.seq), plaintext, header)
    d.seq++
    d.recordsInEpoch++
    d.bytesInEpoch += plaintext.length
    this.#stats.recordsSent++
    this.#stats.bytesSent += plaintext.length
    if (
      type === RECORD_TYPE_DATA &&
      (d.recordsInEpoch >= this.#maxRecords || d.bytesInEpoch >= this.#maxBytes)
    ) {
      this.#send = ratchet(d)
      wipeDirection(d)
    }
    return [header, ct, tag]
  }

  #openRecord(record: Uint8Array): Uint8Array {
    if (this.#remoteClosed) throw new PqcError('X_PQC_SESSION_CLOSED', 'peer closed the session')
    if (record.length < RECORD_HEADER_BYTES + AEAD_TAG_BYTES) {
      throw new PqcError('X_PQC_BAD_MESSAGE', `record of ${record.length} bytes is shorter than header + tag`)
    }
    if (record.length > RECORD_HEADER_BYTES + AEAD_TAG_BYTES + this.#maxRecordBytes) {
      throw new PqcError('X_PQC_RECORD_TOO_LARGE', `record of ${record.length} bytes exceeds the limit`)
    }
    const type = record[0]
    if (type !== RECORD_TYPE_DATA && type !== RECORD_TYPE_CLOSE) {
      throw new PqcError('X_PQC_BAD_MESSAGE', `unknown record type ${String(type)}`)
    }
    const view = new DataView(record.buffer, record.byteOffset, RECORD_HEADER_BYTES)
    const epoch = view.getUint32(1)
    const seq = view.getUint32(5) * 0x1_0000_0000 + view.getUint32(9)
    let d = this.#recv
    if (seq < d.seq) throw new PqcError('X_PQC_REPLAY', `record ${seq} already received (next is ${d.seq})`)
    if (seq > d.seq) throw new PqcError('X_PQC_OUT_OF_ORDER', `record ${seq} received, expected ${d.seq}`)
    if (epoch < d.epoch) throw new PqcError('X_PQC_REPLAY', `record from old key epoch ${epoch}`)
    if (epoch > d.epoch + 1)
      throw new PqcError('X_PQC_OUT_OF_ORDER', `record from key epoch ${epoch}, at ${d.epoch}`)
    // The peer ratchets on its own limits; follow it, but commit the new key only once a record authenticates.
    const next = epoch === d.epoch + 1 ? ratchet(d) : undefined
    if (next) d = next
    const header = record.subarray(0, RECORD_HEADER_BYTES)
    let plaintext: Uint8Array
    try {
      plaintext = decrypt(d, nonceFor(d.iv, seq), record.subarray(RECORD_HEADER_BYTES), header)
    } catch (err) {
      if (next) wipeDirection(next)
      throw err
    }
    if (next) {
      wipeDirection(this.#recv)
      this.#recv = next
    }
    d.seq++
    d.recordsInEpoch++
    d.bytesInEpoch += plaintext.length
    this.#stats.recordsReceived++
    this.#stats.bytesReceived += plaintext.length
    if (type === RECORD_TYPE_CLOSE) {
      this.#remoteClosed = true
      wipeDirection(this.#recv)
      return new Uint8Array(0)
    }
    return plaintext
  }
}
