import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { hkdfSha256, type Identity, verify as mlDsaVerify } from '@x/pqc'

/**
 * Signed DHT records of the node ("peer P is on node N at address A", topic memberships, "node N is at A").
 *
 * Why a delegated key: an ML-DSA-87 signature is 4627 bytes and its public key 2592 bytes, while
 * `@x/kademlia` bounds a value to 4096 bytes (one UDP datagram of 8 KiB with contacts). So every record is
 * signed with a per-node Ed25519 record key (64-byte signature) and that key is certified once by the node's
 * ML-DSA-87 identity: `cert = ML-DSA-87.sign(identity, "x-node/record-key/v1" || edPub)`. A validator accepts a
 * record only when it holds a verified certificate binding `edPub` to node ID `n` (learnt over an authenticated
 * `/p2p-node` link, where the node ID is proven by the ML-DSA handshake). The record key is derived from the
 * identity seed, so it survives restarts with the identity.
 */

export const RECORD_VERSION = 1
export const CERT_CONTEXT = new TextEncoder().encode('x-node/record-key/v1')
export const MAX_RECORD_BYTES = 4096
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
  /** Ed25519 public record key, base64. */
  p: string
  /** Ed25519 signature over the canonical body, base64. */
  s: string
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
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

/** The node's record signer: the Ed25519 key derived from its identity and the ML-DSA certificate over it. */
export class RecordSigner {
  readonly publicKey: Uint8Array
  readonly certificate: Uint8Array
  readonly #privateKey: KeyObject
  readonly #publicB64: string

  constructor(identity: Identity) {
    const seed = hkdfSha256(identity.seed, new Uint8Array(0), enc.encode('x-node/record-key/seed/v1'), 32)
    this.#privateKey = createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    })
    const spki = createPublicKey(this.#privateKey).export({ format: 'der', type: 'spki' })
    this.publicKey = new Uint8Array(spki.subarray(spki.length - 32))
    this.#publicB64 = Buffer.from(this.publicKey).toString('base64')
    this.certificate = identity.sign(this.publicKey, CERT_CONTEXT)
  }

  sign(body: RecordBody): Uint8Array {
    const s = sign(null, canonical(body), this.#privateKey).toString('base64')
    const record: SignedRecord = { ...body, p: this.#publicB64, s }
    const bytes = enc.encode(JSON.stringify(record))
    if (bytes.length > MAX_RECORD_BYTES)
      throw new RangeError(`record of ${bytes.length} bytes exceeds the DHT bound`)
    return bytes
  }
}

/** Verifies a certificate from node `publicKey` (ML-DSA-87) over `edPub`. */
export function verifyCertificate(
  mlDsaPublicKey: Uint8Array,
  edPub: Uint8Array,
  certificate: Uint8Array,
): boolean {
  try {
    return edPub.length === 32 && mlDsaVerify(mlDsaPublicKey, edPub, certificate, CERT_CONTEXT)
  } catch {
    return false
  }
}

const HEX40 = /^[0-9a-f]{40}$/

/** Parses and shape-checks a record (no signature check). `undefined` when malformed. */
export function parseRecord(bytes: Uint8Array): SignedRecord | undefined {
  if (bytes.length === 0 || bytes.length > MAX_RECORD_BYTES) return undefined
  let r: unknown
  try {
    r = JSON.parse(dec.decode(bytes))
  } catch {
    return undefined
  }
  if (typeof r !== 'object' || r === null) return undefined
  const x = r as Partial<SignedRecord>
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
  if (typeof x.p !== 'string' || typeof x.s !== 'string') return undefined
  return x as SignedRecord
}

/** Whether `record` carries a valid Ed25519 signature by `edPub` and matches `key`. */
export function checkRecord(key: Uint8Array, record: SignedRecord, edPub: Uint8Array, now: number): boolean {
  if (record.e < now) return false
  const expected = recordKey(record.t, record.k, record.i ?? 0)
  if (Buffer.compare(Buffer.from(expected), Buffer.from(key)) !== 0) return false
  if (Buffer.from(record.p, 'base64').compare(Buffer.from(edPub)) !== 0) return false
  try {
    const pub = createPublicKey({
      key: Buffer.concat([SPKI_ED25519_PREFIX, edPub]),
      format: 'der',
      type: 'spki',
    })
    return verify(null, canonical(record), pub, Buffer.from(record.s, 'base64'))
  } catch {
    return false
  }
}
