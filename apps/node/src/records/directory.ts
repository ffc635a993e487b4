import type { PeerDirectory, Registration } from '@x/signaling'
import type { Logger } from 'pino'
import {
  RECORD_TTL_MS,
  MAX_RECORD_BYTES,
  MAX_TOPIC_MEMBERS,
  TOPIC_SLOTS,
  parseRecord,
  recordKey,
  recordSize,
  type PeerStatement,
  type RecordBody,
  type SignedRecord,
} from './format'
import { statementNonce } from './proofs'
import { BoundedMap, type Clock } from './util'

/**
 * Records carry their own expiry (`RECORD_TTL_MS`, 5 min), so the DHT's byte-for-byte republishing cannot keep
 * them alive: this node re-publishes its node record and topic records this often. Peer records are
 * re-announced by `@x/signaling` (every `ANNOUNCE_INTERVAL_MS`, 60 s) while the peer stays connected.
 */
export const REFRESH_INTERVAL_MS = 60_000

/**
 * An ML-DSA-44 signature costs a few ms of CPU (pure JS), so a re-publish of an unchanged statement re-uses the
 * record signed earlier while it has at least this long left; only a changed statement (address, members,
 * slot, withdrawal) or an ageing record is signed again. With 60 s refreshes a record is re-signed every 3 min.
 */
export const RESIGN_BEFORE_EXPIRY_MS = RECORD_TTL_MS / 2

/** Signed records kept for re-use (least recently used evicted; an evicted statement is simply signed again). */
export const MAX_SIGNED_CACHE = 4_096

/** A withdrawal record lives this long (and the peer's proof is served as long). */
export const WITHDRAWAL_TTL_MS = 60_000

/**
 * A peer record is stored a moment after the peer registers (the DHT put is not awaited by the
 * registration), so a lookup that misses is retried after these delays — 3.75 s in all, inside the signaling
 * server's 5 s hold window — before the signal is answered `PEER_NOT_FOUND`.
 */
export const LOOKUP_RETRY_DELAYS_MS = [250, 500, 1_000, 2_000] as const

/** Each DHT read of a lookup gives up after this long (the whole lookup stays within the hold window). */
export const LOOKUP_GET_TIMEOUT_MS = 2_000

/** The DHT as the directory uses it (`@x/kademlia`'s node fits). */
export interface RecordStore {
  get(key: Uint8Array, options: { signal: AbortSignal }): Promise<Uint8Array | undefined>
  put(key: Uint8Array, value: Uint8Array, options: { ttlMs: number; signal: AbortSignal }): Promise<unknown>
  unpublish(key: Uint8Array): unknown
  getStats(): { totalNodes: number; bucketsUsed: number }
}

/** Signs record bodies (the node's `RecordSigner`, with the worker pool). */
export interface BodySigner {
  sign(body: RecordBody): Promise<Uint8Array>
}

/** Where hosted registrations are kept to answer proof requests (`PeerProofs`). */
export interface HostedProofs {
  host(registration: Registration): void
  release(peerId: string, until: number): void
}

export interface DhtDirectoryComponents {
  store: RecordStore
  signer: BodySigner
  proofs: HostedProofs
  clock: Clock
  logger: Logger
}

export interface DhtDirectoryInit {
  nodeId: string
  /** This node's `/p2p-node` base URL. */
  address: string
  /** Delays between the DHT reads of a lookup that misses. @default LOOKUP_RETRY_DELAYS_MS */
  lookupRetryDelaysMs?: readonly number[]
}

/**
 * `@x/signaling`'s `PeerDirectory` over the DHT with signed records. Peer records map a peer to its node and carry
 * the peer's own statement that it registered there (so `lookup`, which the signaling server also uses to check
 * who may relay a peer's frames, answers only what the peer itself said); topic records list the members a node
 * hosts (one slot per node, see `TOPIC_SLOTS`); node records say where a node accepts links.
 */
export class DhtPeerDirectory implements PeerDirectory {
  readonly #store: RecordStore
  readonly #signer: BodySigner
  readonly #proofs: HostedProofs
  readonly #clock: Clock
  readonly #log: Logger
  readonly #nodeId: string
  readonly #address: string
  readonly #topics = new Map<string, { members: Set<string>; slot: number | undefined }>()
  /** Peers announced here, with the statement their records carry. */
  readonly #published = new Map<string, PeerStatement>()
  readonly #retryDelaysMs: readonly number[]
  /** Last record signed per DHT key, re-used while its statement is unchanged (see `RESIGN_BEFORE_EXPIRY_MS`). */
  readonly #signed = new BoundedMap<string, { statement: string; bytes: Uint8Array; expires: number }>(
    MAX_SIGNED_CACHE,
  )
  readonly stats = {
    announced: 0,
    withdrawn: 0,
    lookups: 0,
    lookupHits: 0,
    /** Lookups that found the peer record only on a retry. */
    lookupRetryHits: 0,
    failures: 0,
    /** Records signed (ML-DSA-44) and re-publishes that re-used a record signed earlier. */
    signed: 0,
    signReused: 0,
    /** Topic members left out of a topic record because the record would exceed `MAX_RECORD_BYTES`. */
    topicMembersUnlisted: 0,
  }
  #timer: unknown
  #closed = false

  constructor(components: DhtDirectoryComponents, init: DhtDirectoryInit) {
    this.#store = components.store
    this.#signer = components.signer
    this.#proofs = components.proofs
    this.#clock = components.clock
    this.#log = components.logger
    this.#nodeId = init.nodeId
    this.#address = init.address
    this.#retryDelaysMs = init.lookupRetryDelaysMs ?? LOOKUP_RETRY_DELAYS_MS
  }

  #body(t: RecordBody['t'], k: string, extra: Partial<RecordBody> = {}): RecordBody {
    const now = this.#clock.now()
    return { v: 1, t, k, n: this.#nodeId, a: this.#address, e: now + RECORD_TTL_MS, q: now, ...extra }
  }

  /** The signed record for `body`: the one signed earlier for this key when its statement is unchanged. */
  async #sign(key: Uint8Array, body: RecordBody): Promise<{ bytes: Uint8Array; expires: number }> {
    const id = Buffer.from(key).toString('hex')
    const statement = JSON.stringify([body.t, body.k, body.n, body.a, body.m, body.i, body.w, body.p])
    const cached = this.#signed.get(id)
    if (cached?.statement === statement && cached.expires - this.#clock.now() >= RESIGN_BEFORE_EXPIRY_MS) {
      this.stats.signReused++
      return cached
    }
    const signed = { statement, bytes: await this.#signer.sign(body), expires: body.e }
    this.stats.signed++
    this.#signed.set(id, signed)
    return signed
  }

  async #put(key: Uint8Array, body: RecordBody): Promise<void> {
    try {
      const { bytes, expires } = await this.#sign(key, body)
      await this.#store.put(key, bytes, {
        ttlMs: Math.max(1, Math.min(RECORD_TTL_MS, expires - this.#clock.now())),
        signal: AbortSignal.timeout(10_000),
      })
    } catch (err) {
      this.stats.failures++
      this.#log.warn({ kind: body.t, err: String(err) }, 'dht put failed')
    }
  }

  async #get(key: Uint8Array, timeoutMs = 10_000): Promise<SignedRecord | undefined> {
    try {
      const value = await this.#store.get(key, { signal: AbortSignal.timeout(timeoutMs) })
      const record = value && parseRecord(value)
      if (!record || record.e < this.#clock.now()) return undefined
      return record
    } catch {
      return undefined
    }
  }

  /** Publishes the node record now and re-signs it and the topic records every `intervalMs`. */
  start(intervalMs = REFRESH_INTERVAL_MS): void {
    void this.announceNode()
    const tick = (): void => {
      this.#timer = this.#clock.setTimeout(() => {
        void this.#refresh()
        if (!this.#closed) tick()
      }, intervalMs)
    }
    tick()
  }

  /** Stops the refresh timer. */
  stop(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  async #refresh(): Promise<void> {
    await Promise.allSettled([
      this.announceNode(),
      ...[...this.#topics.keys()].map((t) => this.#publishTopic(t)),
    ])
  }

  /** Publishes "node N is at address A" so other nodes can dial it. */
  async announceNode(): Promise<void> {
    await this.#put(recordKey('node', this.#nodeId), this.#body('node', this.#nodeId))
  }

  /** Address of node `nodeId` from the DHT. */
  async resolveNode(nodeId: string): Promise<string | undefined> {
    return (await this.#get(recordKey('node', nodeId)))?.a
  }

  async announce(peerId: string, nodeId: string, registration: Registration): Promise<void> {
    if (nodeId !== this.#nodeId || registration.peerId !== peerId || registration.node !== nodeId) return
    const nonce = statementNonce(registration.statement)
    if (nonce === undefined) return
    const p: PeerStatement = { h: registration.host, t: registration.time, c: nonce }
    this.stats.announced++
    this.#published.set(peerId, p)
    this.#proofs.host(registration)
    await this.#put(recordKey('peer', peerId), this.#body('peer', peerId, { p }))
  }

  async withdraw(peerId: string, nodeId: string): Promise<void> {
    if (nodeId !== this.#nodeId) return
    const p = this.#published.get(peerId)
    const key = recordKey('peer', peerId)
    this.#store.unpublish(key)
    if (p === undefined) return
    this.stats.withdrawn++
    this.#published.delete(peerId)
    // The withdrawal carries the same statement: it replaces this node's record (higher sequence number), but
    // never a newer registration of the peer elsewhere. The proof is served while the withdrawal lives.
    const e = this.#clock.now() + WITHDRAWAL_TTL_MS
    this.#proofs.release(peerId, e)
    await this.#put(key, this.#body('peer', peerId, { w: 1, e, p }))
  }

  /**
   * The node hosting `peerId`, from its peer record only (a topic record naming a peer proves nothing about where
   * it is); when that misses (a peer that registered a moment ago), the record again after each of
   * `lookupRetryDelaysMs`.
   */
  async lookup(peerId: string): Promise<string | undefined> {
    this.stats.lookups++
    const key = recordKey('peer', peerId)
    for (let attempt = 0; ; attempt++) {
      const record = await this.#get(key, LOOKUP_GET_TIMEOUT_MS)
      if (record && record.w !== 1) {
        this.stats.lookupHits++
        if (attempt > 0) this.stats.lookupRetryHits++
        return record.n
      }
      if (record?.w === 1) return undefined // withdrawn: the peer left
      const delay = this.#retryDelaysMs[attempt]
      if (delay === undefined || this.#closed) return undefined
      await new Promise<void>((r) => this.#clock.setTimeout(r, delay))
    }
  }

  async join(topic: string, peerId: string): Promise<void> {
    let t = this.#topics.get(topic)
    if (!t) this.#topics.set(topic, (t = { members: new Set(), slot: undefined }))
    if (t.members.size >= MAX_TOPIC_MEMBERS) return
    t.members.add(peerId)
    await this.#publishTopic(topic)
  }

  async leave(topic: string, peerId: string): Promise<void> {
    const t = this.#topics.get(topic)
    if (!t) return
    t.members.delete(peerId)
    await this.#publishTopic(topic)
    if (t.members.size === 0) this.#topics.delete(topic)
  }

  async #publishTopic(topic: string): Promise<void> {
    const t = this.#topics.get(topic)
    if (!t) return
    if (t.slot === undefined) {
      // First free slot (or our own) starting from a node-specific one: nodes rarely collide.
      const start = parseInt(this.#nodeId.slice(0, 4), 16) % TOPIC_SLOTS
      for (let i = 0; i < TOPIC_SLOTS && t.slot === undefined; i++) {
        const slot = (start + i) % TOPIC_SLOTS
        const existing = await this.#get(recordKey('topic', topic, slot))
        if (!existing || existing.n === this.#nodeId || existing.w === 1) t.slot = slot
      }
      t.slot ??= start
    }
    const slot = t.slot
    const withdrawn = t.members.size === 0
    const make = (m: string[]) =>
      this.#body('topic', topic, { i: slot, m, ...(withdrawn ? { w: 1 as const } : {}) })
    // A record holds what fits in MAX_RECORD_BYTES (the ML-DSA-44 signature takes 2420 of them); members left
    // out stay reachable through their peer records.
    let members = [...t.members]
    let body = make(members)
    while (members.length > 0 && recordSize(body) > MAX_RECORD_BYTES)
      body = make((members = members.slice(0, -1)))
    if (members.length < t.members.size) {
      this.stats.topicMembersUnlisted += t.members.size - members.length
      this.#log.debug({ topic, listed: members.length, members: t.members.size }, 'topic record full')
    }
    await this.#put(recordKey('topic', topic, slot), body)
  }

  async findTopic(topic: string, limit: number): Promise<string[]> {
    const slots = await Promise.all(
      Array.from({ length: TOPIC_SLOTS }, (_, slot) => this.#get(recordKey('topic', topic, slot))),
    )
    const out = new Set<string>()
    for (const r of slots) {
      if (!r || r.w === 1) continue
      for (const m of r.m ?? []) {
        if (out.size >= limit) break
        out.add(m)
      }
    }
    return [...out]
  }

  /** Withdraws every record this node published (graceful shutdown). */
  async withdrawAll(): Promise<void> {
    this.stop()
    this.#closed = true
    const tasks: Promise<void>[] = [...this.#published.keys()].map((p) => this.withdraw(p, this.#nodeId))
    for (const [topic, t] of this.#topics) {
      t.members.clear()
      tasks.push(this.#publishTopic(topic))
    }
    this.#store.unpublish(recordKey('node', this.#nodeId))
    await Promise.allSettled(tasks)
  }

  getStats(): { dhtNodes: number; dhtBuckets: number } {
    const s = this.#store.getStats()
    return { dhtNodes: s.totalNodes, dhtBuckets: s.bucketsUsed }
  }
}
