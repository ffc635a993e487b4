import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import {
  checkFreshness,
  checkRecordWith,
  parseRecord,
  peerStatementText,
  selectRecord,
  type SubkeyVerifier,
} from './format'
import { BoundedMap } from './util'

/** Records whose signature this node already verified (SHA-256 of key and value → expiry), so the copies of one
 * record that several DHT nodes return, and re-stores of the same bytes, are verified once. */
export const MAX_VERIFIED_CACHE = 4_096

/** Record keys of other nodes (see `RecordKeyBook`). */
export interface RecordKeys {
  get(nodeId: string): Uint8Array | undefined
  learn(nodeId: string, address: string | undefined): Promise<Uint8Array | undefined>
}

/** Peer statements (see `PeerProofs`). */
export interface StatementProofs {
  verify(nodeId: string, peerId: string, statement: string, time: number): Promise<boolean>
}

export interface RecordValidatorComponents {
  keys: RecordKeys
  proofs: StatementProofs
  /** Verifies record signatures (ML-DSA-44) off the main thread: the worker pool. */
  verifier: SubkeyVerifier
  /** This node: its own records check against its own key, and need no proof fetched. */
  self: { nodeId: string; recordPublicKey: Uint8Array }
  clock: { now(): number }
  logger: Logger
}

/** The `validate`/`select` pair injected into `@x/kademlia`, and counters. */
export interface RecordValidator {
  validate(key: Uint8Array, value: Uint8Array): Promise<boolean>
  select(key: Uint8Array, values: Uint8Array[]): number
  readonly stats: { verified: number; verifiedCached: number; rejected: number; stale: number }
}

/**
 * A value is accepted only when it is a well-formed record (`parseRecord`), fresh by this node's clock
 * (`checkFreshness`: no sequence number or expiry far in the future), signed by the ML-DSA-44 record key its
 * publishing node certified with its ML-DSA-87 identity, and — for a peer record — backed by the peer's own
 * registration statement at that node (`PeerProofs`). `select` keeps the newest statement, then the highest
 * sequence number (`selectRecord`). Values already verified are remembered until they expire.
 */
export function createRecordValidator(c: RecordValidatorComponents): RecordValidator {
  const verified = new BoundedMap<string, number>(MAX_VERIFIED_CACHE)
  const stats = { verified: 0, verifiedCached: 0, rejected: 0, stale: 0 }
  const reject = (why: string, record?: { n: string; t: string }): boolean => {
    stats.rejected++
    c.logger.debug({ node: record?.n, kind: record?.t, why }, 'dht record rejected')
    return false
  }
  return {
    stats,
    async validate(key, value) {
      const record = parseRecord(value)
      if (!record) return reject('malformed')
      const now = c.clock.now()
      const digest = createHash('sha256').update(key).update(value).digest('base64')
      const until = verified.get(digest)
      if (until !== undefined && until >= now) {
        stats.verifiedCached++
        return true
      }
      if (!checkFreshness(record, now)) {
        stats.stale++
        return reject('out of the freshness bounds', record)
      }
      const self = record.n === c.self.nodeId
      const pub = self
        ? c.self.recordPublicKey
        : (c.keys.get(record.n) ?? (await c.keys.learn(record.n, record.a)))
      if (pub === undefined) return reject('record key unknown', record)
      if (!(await checkRecordWith(c.verifier, key, record, pub, now))) return reject('bad signature', record)
      if (record.t === 'peer' && !self) {
        const statement = peerStatementText(record)
        if (
          statement === undefined ||
          !(await c.proofs.verify(record.n, record.k, statement, record.p?.t ?? 0))
        ) {
          return reject('no proof of the peer statement', record)
        }
      }
      stats.verified++
      verified.set(digest, record.e)
      return true
    },
    select(_key, values) {
      return selectRecord(values, c.clock.now())
    },
  }
}
