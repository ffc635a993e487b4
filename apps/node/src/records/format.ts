import { createHash } from 'node:crypto'
import {
  deriveSigningSubkey,
  type Identity,
  type SigningSubkey,
  SUBKEY_PUBLIC_KEY_BYTES,
  SUBKEY_SIGNATURE_BYTES,
  verifySubkeyCertificate,
  verifySubkeySignature,
} from '@x/pqc'

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
/** Room left for the JSON body of a record (1667 bytes). */
export const MAX_BODY_BYTES = MAX_RECORD_BYTES - RECORD_HEADER_BYTES
export const MAX_TOPIC_MEMBERS = 24
export const RECORD_TTL_MS = 5 * 60_000
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

  /** The stored form of `body`, signed. Throws `RangeError` when it would exceed `MAX_RECORD_BYTES`. */
  sign(body: RecordBody): Uint8Array {
    const bytes = canonical(body)
    if (RECORD_HEADER_BYTES + bytes.length > MAX_RECORD_BYTES) {
      throw new RangeError(`record of ${RECORD_HEADER_BYTES + bytes.length} bytes exceeds the DHT bound`)
    }
    const signature = this.#subkey.sign(bytes, RECORD_CONTEXT)
    const out = new Uint8Array(RECORD_HEADER_BYTES + bytes.length)
    out[0] = RECORD_FORMAT
    out.set(this.#fingerprint, 1)
    out.set(signature, 1 + FINGERPRINT_BYTES)
    out.set(bytes, RECORD_HEADER_BYTES)
    return out
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
