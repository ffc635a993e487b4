import { createHash } from 'node:crypto'
import {
  deriveSigningSubkey,
  type Identity,
  type SigningSubkey,
  SUBKEY_CERTIFICATE_BYTES,
  SUBKEY_PUBLIC_KEY_BYTES,
  SUBKEY_SIGNATURE_BYTES,
  verifySubkeyCertificate,
  verifySubkeySignature,
} from '@x/pqc'
import { statementText } from '@x/signaling'

/**
 * Signed DHT records of the node ("peer P is on node N at address A", topic memberships, "node N is at A").
 *
 * Every record is signed with a post-quantum key. An ML-DSA-87 signature (4627 bytes) does not fit
 * `@x/kademlia`'s 4096-byte value bound, so each node signs records with its `@x/pqc` signing subkey for label
 * `RECORD_KEY_LABEL`: an ML-DSA-44 key (FIPS 204, NIST category 2: 1312-byte public key, 2420-byte signature)
 * derived from its identity and certified once by its ML-DSA-87 identity (`deriveSigningSubkey`; the certificate's
 * context is `CERT_CONTEXT`). A validator accepts a record only when it holds a verified certificate binding
 * `recordPub` to node ID `n` (learnt over an authenticated `/p2p-node` link, where the node ID is proven by the
 * ML-DSA-87 handshake). The subkey is derived deterministically from the identity, so it survives restarts with
 * the identity, and is the same key this module derived itself before the derivation moved into `@x/pqc`.
 *
 * Stored form (binary, so the signature is not inflated by base64):
 *
 * | bytes | field |
 * |---|---|
 * | 1 | format `RECORD_FORMAT` (2) |
 * | 8 | record-key fingerprint: SHA-256(recordPub)[0..8] (the key itself is never in a record) |
 * | 2420 | ML-DSA-44 signature over the body, FIPS 204 context `RECORD_CONTEXT` |
 * | rest | body: canonical JSON (`RecordBody`), UTF-8, at most `MAX_BODY_BYTES` |
 *
 * A peer record ("peer P is on node N") is a claim only P can make: it carries the fields of P's own signed
 * registration statement (`x-signaling/2`, node N, the host P dialed, P's time, the server's nonce; see
 * `@x/signaling`'s `statementText`). The statement's ML-DSA-87 public key (2592 bytes) and signature (4627 bytes)
 * do not fit next to the record signature, so the record binds them instead: P's ID is the hash of its key, and
 * the statement text is fixed by the record's fields. A validator fetches the key and signature from N over the
 * authenticated link (`proofs.ts`), checks that the key hashes to P and that the signature verifies over the
 * statement, and caches the result; until then it refuses the record. A node therefore cannot claim another
 * node's peer, and among several records for P the one with the newest statement wins (`selectRecord`), whatever
 * sequence number its publisher chose.
 */

export const RECORD_VERSION = 1
/** Stored-form version byte (1 was the Ed25519 JSON form). */
export const RECORD_FORMAT = 2
/** `@x/pqc` subkey label of the record key. */
export const RECORD_KEY_LABEL = 'x-node/record-key'
/** FIPS 204 context of the ML-DSA-87 certificate over the record key (`@x/pqc` uses label + "/v2"). */
export const CERT_CONTEXT = new TextEncoder().encode(`${RECORD_KEY_LABEL}/v2`)
/** FIPS 204 context of record signatures (domain separation from every other use of the key). */
export const RECORD_CONTEXT = new TextEncoder().encode('x-node/dht-record/v2')
export const RECORD_PUBLIC_KEY_BYTES = SUBKEY_PUBLIC_KEY_BYTES
export const RECORD_SIGNATURE_BYTES = SUBKEY_SIGNATURE_BYTES
export const FINGERPRINT_BYTES = 8
export const RECORD_HEADER_BYTES = 1 + FINGERPRINT_BYTES + RECORD_SIGNATURE_BYTES
export const MAX_RECORD_BYTES = 4096
/** Room left for the JSON body of a record (1667 bytes); documents the layout above. @public */
export const MAX_BODY_BYTES = MAX_RECORD_BYTES - RECORD_HEADER_BYTES
export const MAX_TOPIC_MEMBERS = 24
export const RECORD_TTL_MS = 5 * 60_000
/** How far a record's sequence number and expiry may run ahead of the validator's clock (other nodes' clocks drift). */
export const RECORD_CLOCK_SKEW_MS = 30_000
/**
 * How far a peer's statement time may run ahead of the validator's clock: the signaling server accepts a
 * statement within its own skew bound (`@x/signaling` MAX_CLOCK_SKEW_MS, 120 s), plus the record skew.
 */
export const STATEMENT_CLOCK_SKEW_MS = 120_000 + RECORD_CLOCK_SKEW_MS
/** Most base64 characters of a statement nonce (as `@x/signaling` accepts). */
export const MAX_NONCE_LENGTH = 130
/** Bytes of the `hello` data: the ML-DSA-44 record key, then its ML-DSA-87 certificate. */
export const HELLO_DATA_BYTES = SUBKEY_PUBLIC_KEY_BYTES + SUBKEY_CERTIFICATE_BYTES
/**
 * A DHT key holds one value, so a topic is spread over this many keys ("slots"): each node writes the members
 * it hosts into a slot no other live node holds, and a reader gets every slot.
 */
export const TOPIC_SLOTS = 16

export type RecordKind = 'peer' | 'topic' | 'node'

export interface RecordBody {
  v: 1
  /** Kind of statement. */
  t: RecordKind
  /** Subject: peer ID, topic, or node ID. */
  k: string
  /** Publishing node ID (40 hex). */
  n: string
  /** Publishing node's `/p2p-node` WebSocket base URL. */
  a: string
  /** Expiry, ms since the epoch. */
  e: number
  /** Monotonic sequence (ms) used by `select`: newer wins. */
  q: number
  /** Topic members (topic records only): peer IDs hosted by `n`. */
  m?: string[]
  /** Topic slot (topic records only): each node writes its own slot of the topic, see `TOPIC_SLOTS`. */
  i?: number
  /** Withdrawn: the statement no longer holds (a newer record replaces the old one). */
  w?: 1
  /** Peer records only: the fields of the peer's own registration statement at node `n`. */
  p?: PeerStatement
}

/** The client-chosen and server-chosen fields of a peer's `x-signaling/2` statement (its node is the record's `n`). */
export interface PeerStatement {
  /** The host the peer dialed. */
  h: string
  /** The peer's time when it signed (ms since the epoch). */
  t: number
  /** The server's challenge nonce. */
  c: string
}

/** The exact text peer `record.k` signed to register at node `record.n` (undefined when not a peer record). */
export function peerStatementText(record: Pick<RecordBody, 'n' | 'p'>): string | undefined {
  if (record.p === undefined) return undefined
  try {
    return statementText({ node: record.n, host: record.p.h, time: record.p.t, nonce: record.p.c })
  } catch {
    return undefined
  }
}

export interface SignedRecord extends RecordBody {
  /** Fingerprint of the ML-DSA-44 record key that signed the record (`FINGERPRINT_BYTES`). */
  f: Uint8Array
  /** ML-DSA-44 signature over the canonical body (`RECORD_SIGNATURE_BYTES`). */
  s: Uint8Array
}

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

/** The DHT key of a record: SHA-256 over a domain label and the subject, truncated to 160 bits. */
export function recordKey(kind: RecordKind, subject: string, slot = 0): Uint8Array {
  const label = kind === 'topic' ? `x-node/topic/${slot}/${subject}` : `x-node/${kind}/${subject}`
  return new Uint8Array(createHash('sha256').update(label).digest().subarray(0, 20))
}

function canonical(body: RecordBody): Uint8Array {
  const ordered: RecordBody = { v: body.v, t: body.t, k: body.k, n: body.n, a: body.a, e: body.e, q: body.q }
  if (body.m !== undefined) ordered.m = body.m
  if (body.i !== undefined) ordered.i = body.i
  if (body.w !== undefined) ordered.w = body.w
  if (body.p !== undefined) ordered.p = { h: body.p.h, t: body.p.t, c: body.p.c }
  return enc.encode(JSON.stringify(ordered))
}

/** Stored size of `body` once signed. */
export function recordSize(body: RecordBody): number {
  return RECORD_HEADER_BYTES + canonical(body).length
}

/** The short fingerprint of a record key carried in each record. */
export function fingerprint(recordPublicKey: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(recordPublicKey).digest().subarray(0, FINGERPRINT_BYTES))
}

/** Signs with a subkey off the main thread (a `PqcWorkerPool` fits). */
export interface SubkeySigner {
  signWithSubkey(subkey: SigningSubkey, message: Uint8Array, context?: Uint8Array): Promise<Uint8Array>
}

/** The node's record signer: the ML-DSA-44 key derived from its identity and the ML-DSA-87 certificate over it. */
export class RecordSigner {
  readonly publicKey: Uint8Array
  readonly certificate: Uint8Array
  readonly #subkey: SigningSubkey
  readonly #fingerprint: Uint8Array

  constructor(identity: Identity) {
    this.#subkey = deriveSigningSubkey(identity, { label: RECORD_KEY_LABEL })
    this.publicKey = this.#subkey.publicKey
    this.certificate = this.#subkey.certificate
    this.#fingerprint = fingerprint(this.publicKey)
  }

  /** The `hello` data of this node's links: the record key and its certificate. */
  helloData(): Uint8Array {
    const out = new Uint8Array(HELLO_DATA_BYTES)
    out.set(this.publicKey)
    out.set(this.certificate, SUBKEY_PUBLIC_KEY_BYTES)
    return out
  }

  /** The stored form of `body`, signed. Throws `RangeError` when it would exceed `MAX_RECORD_BYTES`. */
  sign(body: RecordBody): Uint8Array {
    const bytes = this.#checkedBody(body)
    return this.#assemble(bytes, this.#subkey.sign(bytes, RECORD_CONTEXT))
  }

  /** As `sign`, with the ML-DSA-44 signature made by `pool` (off the event loop). */
  async signWith(pool: SubkeySigner, body: RecordBody): Promise<Uint8Array> {
    const bytes = this.#checkedBody(body)
    return this.#assemble(bytes, await pool.signWithSubkey(this.#subkey, bytes, RECORD_CONTEXT))
  }

  #checkedBody(body: RecordBody): Uint8Array {
    const bytes = canonical(body)
    if (RECORD_HEADER_BYTES + bytes.length > MAX_RECORD_BYTES) {
      throw new RangeError(`record of ${RECORD_HEADER_BYTES + bytes.length} bytes exceeds the DHT bound`)
    }
    return bytes
  }

  #assemble(bytes: Uint8Array, signature: Uint8Array): Uint8Array {
    const out = new Uint8Array(RECORD_HEADER_BYTES + bytes.length)
    out[0] = RECORD_FORMAT
    out.set(this.#fingerprint, 1)
    out.set(signature, 1 + FINGERPRINT_BYTES)
    out.set(bytes, RECORD_HEADER_BYTES)
    return out
  }
}

/** Splits `hello` data into the record key and its certificate; `undefined` when the length is wrong. */
export function parseHelloData(
  data: Uint8Array | undefined,
): { recordPub: Uint8Array; certificate: Uint8Array } | undefined {
  if (data === undefined || data.length !== HELLO_DATA_BYTES) return undefined
  return {
    recordPub: data.slice(0, SUBKEY_PUBLIC_KEY_BYTES),
    certificate: data.slice(SUBKEY_PUBLIC_KEY_BYTES),
  }
}

/** Verifies a certificate from node `mlDsaPublicKey` (ML-DSA-87) over ML-DSA-44 record key `recordPub`. */
export function verifyCertificate(
  mlDsaPublicKey: Uint8Array,
  recordPub: Uint8Array,
  certificate: Uint8Array,
): boolean {
  return verifySubkeyCertificate(mlDsaPublicKey, recordPub, certificate, RECORD_KEY_LABEL)
}

const HEX40 = /^[0-9a-f]{40}$/

/**
 * Parses and shape-checks a stored record (no signature check). `undefined` when malformed: wrong size or
 * format byte, a body that is not canonical JSON of a well-formed `RecordBody`.
 */
export function parseRecord(bytes: Uint8Array): SignedRecord | undefined {
  if (bytes.length <= RECORD_HEADER_BYTES || bytes.length > MAX_RECORD_BYTES) return undefined
  if (bytes[0] !== RECORD_FORMAT) return undefined
  const bodyBytes = bytes.subarray(RECORD_HEADER_BYTES)
  let r: unknown
  try {
    r = JSON.parse(dec.decode(bodyBytes))
  } catch {
    return undefined
  }
  if (typeof r !== 'object' || r === null) return undefined
  const x = r as Partial<RecordBody>
  if (x.v !== RECORD_VERSION) return undefined
  if (x.t !== 'peer' && x.t !== 'topic' && x.t !== 'node') return undefined
  if (typeof x.k !== 'string' || x.k.length === 0 || x.k.length > 256) return undefined
  if (typeof x.n !== 'string' || !HEX40.test(x.n)) return undefined
  if (typeof x.a !== 'string' || !/^wss?:\/\/[^\s]{1,250}$/.test(x.a)) return undefined
  if (typeof x.e !== 'number' || typeof x.q !== 'number' || !Number.isFinite(x.e) || !Number.isFinite(x.q)) {
    return undefined
  }
  if (x.m !== undefined) {
    if (!Array.isArray(x.m) || x.m.length > MAX_TOPIC_MEMBERS) return undefined
    if (!x.m.every((p) => typeof p === 'string' && p.length > 0 && p.length <= 256)) return undefined
  }
  if (x.i !== undefined && (!Number.isInteger(x.i) || x.i < 0 || x.i >= TOPIC_SLOTS)) return undefined
  if (x.w !== undefined && x.w !== 1) return undefined
  if (x.t === 'peer') {
    const p = x.p as Partial<PeerStatement> | undefined
    if (typeof p !== 'object' || p === null) return undefined
    if (typeof p.h !== 'string' || p.h.length === 0 || p.h.length > 261) return undefined
    if (typeof p.t !== 'number' || !Number.isSafeInteger(p.t) || p.t < 0) return undefined
    if (typeof p.c !== 'string' || p.c.length === 0 || p.c.length > MAX_NONCE_LENGTH) return undefined
    if (peerStatementText(x as RecordBody) === undefined) return undefined
  } else if (x.p !== undefined) return undefined
  const body = x as RecordBody
  // One encoding per statement: the signed bytes are exactly the canonical form of the parsed body.
  if (Buffer.compare(Buffer.from(canonical(body)), Buffer.from(bodyBytes)) !== 0) return undefined
  return {
    ...body,
    f: bytes.slice(1, 1 + FINGERPRINT_BYTES),
    s: bytes.slice(1 + FINGERPRINT_BYTES, RECORD_HEADER_BYTES),
  }
}

/**
 * Whether `record`'s times are within what a validator whose clock reads `now` accepts: its sequence number no
 * more than `RECORD_CLOCK_SKEW_MS` ahead, its expiry no more than one TTL and that skew ahead, and a peer
 * statement no more than `STATEMENT_CLOCK_SKEW_MS` ahead. A record stamped far in the future (`q` = 2^53 - 1)
 * would otherwise win every `select` for as long as it is republished.
 */
export function checkFreshness(record: RecordBody, now: number): boolean {
  if (record.e < now || record.e > now + RECORD_TTL_MS + RECORD_CLOCK_SKEW_MS) return false
  if (record.q > now + RECORD_CLOCK_SKEW_MS || record.q < 0) return false
  if (record.p !== undefined && record.p.t > now + STATEMENT_CLOCK_SKEW_MS) return false
  return true
}

/**
 * The index of the record to keep among `values` (the `select` of `@x/kademlia`): unparseable or expired values
 * lose; a peer record with a newer statement (the peer registered again, elsewhere or here) beats any with an
 * older one; otherwise the higher sequence number wins (a withdrawal after its announcement).
 */
export function selectRecord(values: readonly Uint8Array[], now: number): number {
  let best = 0
  let bestKey: readonly [number, number, number] = [-1, -1, -1]
  values.forEach((v, i) => {
    const r = parseRecord(v)
    if (r === undefined) return
    const key = [r.e >= now ? 1 : 0, r.p?.t ?? 0, r.q] as const
    const better =
      key[0] !== bestKey[0]
        ? key[0] > bestKey[0]
        : key[1] !== bestKey[1]
          ? key[1] > bestKey[1]
          : key[2] > bestKey[2]
    if (better) {
      bestKey = key
      best = i
    }
  })
  return best
}

/**
 * Whether `record` is unexpired at `now`, stored under its own DHT `key`, and carries a valid ML-DSA-44
 * signature (context `RECORD_CONTEXT`) by `recordPub`, the record key certified for node `record.n`.
 */
export function checkRecord(
  key: Uint8Array,
  record: SignedRecord,
  recordPub: Uint8Array,
  now: number,
): boolean {
  if (record.e < now) return false
  const expected = recordKey(record.t, record.k, record.i ?? 0)
  if (Buffer.compare(Buffer.from(expected), Buffer.from(key)) !== 0) return false
  if (Buffer.compare(Buffer.from(record.f), Buffer.from(fingerprint(recordPub))) !== 0) return false
  return verifySubkeySignature(recordPub, canonical(record), record.s, RECORD_CONTEXT)
}

/** Verifies subkey signatures off the main thread (a `PqcWorkerPool` fits). */
export interface SubkeyVerifier {
  verifySubkeySignature(
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
    context?: Uint8Array,
  ): Promise<boolean>
}

/** As {@link checkRecord}, with the ML-DSA-44 verification done by `pool`. */
export async function checkRecordWith(
  pool: SubkeyVerifier,
  key: Uint8Array,
  record: SignedRecord,
  recordPub: Uint8Array,
  now: number,
): Promise<boolean> {
  if (record.e < now) return false
  const expected = recordKey(record.t, record.k, record.i ?? 0)
  if (Buffer.compare(Buffer.from(expected), Buffer.from(key)) !== 0) return false
  if (Buffer.compare(Buffer.from(record.f), Buffer.from(fingerprint(recordPub))) !== 0) return false
  return pool.verifySubkeySignature(recordPub, canonical(record), record.s, RECORD_CONTEXT)
}
