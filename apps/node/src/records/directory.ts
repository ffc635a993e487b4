import { createHash } from 'node:crypto'
import { lookup as lookupHost } from 'node:dns/promises'
import { isIP } from 'node:net'
import type { KademliaNode } from '@x/kademlia'
import type { PeerDirectory } from '@x/signaling'
import type { Logger } from 'pino'
import {
  RECORD_TTL_MS,
  MAX_RECORD_BYTES,
  MAX_TOPIC_MEMBERS,
  TOPIC_SLOTS,
  checkRecord,
  parseRecord,
  recordKey,
  recordSize,
  type RecordBody,
  type RecordSigner,
  type SignedRecord,
} from './dht-records'
import { BoundedMap, type LinkManager } from './p2p-links'

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

/** Records whose signature this node already verified (SHA-256 of key and value → expiry), so the copies of one
 * record that several DHT nodes return, and re-stores of the same bytes, are verified once. */
export const MAX_VERIFIED_CACHE = 4_096

/**
 * A peer record is stored a moment after the peer registers (the DHT put is not awaited by the
 * registration), so a lookup that misses is retried after these delays — 3.75 s in all, inside the signaling
 * server's 5 s hold window — before the signal is answered `PEER_NOT_FOUND`.
 */
export const LOOKUP_RETRY_DELAYS_MS = [250, 500, 1_000, 2_000] as const

/** Each DHT read of a lookup gives up after this long (the whole lookup stays within the hold window). */
export const LOOKUP_GET_TIMEOUT_MS = 2_000

/** Peer → hosting node entries remembered from (validated) topic records, used when the peer record misses. */
export const MAX_MEMBER_CACHE = 10_000

/** How long a validator waits to learn an unknown node's record key over a fresh P2P link. */
export const BINDING_TIMEOUT_MS = 5_000

/** A node whose record key could not be learnt is not dialed again for this long. */
export const BINDING_RETRY_MS = 30_000

/** At most this many validator dials run at once; records needing more are rejected (and re-sent later). */
export const MAX_BINDING_DIALS = 4

/** The host part of `ws://host:port`, without IPv6 brackets; `undefined` when it does not parse. */
function wsHost(address: string): string | undefined {
  try {
    return new URL(address).hostname.replace(/^\[|\]$/g, '').toLowerCase()
  } catch {
    return undefined
  }
}

/** The host part of a routing-table address (`1.2.3.4:5`, `[v6]:5`). */
function udpHost(address: string): string {
  const host = address.startsWith('[')
    ? address.slice(1, address.indexOf(']'))
    : address.slice(0, address.lastIndexOf(':'))
  return host.replace(/^::ffff:/i, '').toLowerCase()
}

/**
 * Whether WebSocket URL `address` points at the host of routing-table address `contactAddress` (the host the
 * node answered from over UDP); a host name is resolved (2 s bound) and any of its addresses may match.
 */
export async function onContactHost(address: string, contactAddress: string): Promise<boolean> {
  const host = wsHost(address)
  if (host === undefined) return false
  const expected = udpHost(contactAddress)
  if (host === expected) return true
  if (isIP(host) !== 0) return false
  try {
    const resolved = await Promise.race([
      lookupHost(host, { all: true }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('dns timeout')), 2_000).unref()),
    ])
    return resolved.some((r) => r.address.replace(/^::ffff:/i, '').toLowerCase() === expected)
  } catch {
    return false
  }
}

/**
 * The validate/select pair injected into `@x/kademlia`: a value is accepted only when it is a well-formed,
 * unexpired record whose ML-DSA-44 signature checks against the record key that its publishing node certified
 * with its ML-DSA-87 identity (the record carries only the key's fingerprint; the key comes from the
 * certificate). `select` keeps the newest. Values already verified are remembered until they expire.
 *
 * The certificate is learnt over an authenticated P2P link. A validator never dials an address just because a
 * record names it: it dials only a node that is already in this node's routing table (it answered this node
 * over UDP), at the WebSocket address the node itself announced in a `hello`, or at the record's address when
 * its host is the host the routing table has for that node (a hostname is resolved and compared). Dials are
 * deduplicated, at most `MAX_BINDING_DIALS` run at once, and a node that fails is not dialed again for
 * `BINDING_RETRY_MS`, so records cannot make the node open connections to hosts of an attacker's choosing.
 */
export function createRecordValidator(
  links: () => LinkManager | undefined,
  dht: () => KademliaNode | undefined,
  logger: Logger,
) {
  const inFlight = new Map<string, Promise<Uint8Array | undefined>>()
  const failedUntil = new BoundedMap<string, number>(1_024)
  const verified = new BoundedMap<string, number>(MAX_VERIFIED_CACHE)
  const stats = { dials: 0, refused: 0, failed: 0, verified: 0, verifiedCached: 0 }

  async function dialAddress(lm: LinkManager, record: SignedRecord): Promise<string | undefined> {
    const contact = dht()?.table.get(new Uint8Array(Buffer.from(record.n, 'hex')))
    if (!contact) return undefined
    const candidate = lm.addresses.get(record.n) ?? record.a
    return (await onContactHost(candidate, contact.address)) ? candidate : undefined
  }

  async function learn(lm: LinkManager, record: SignedRecord): Promise<Uint8Array | undefined> {
    const address = await dialAddress(lm, record)
    if (address === undefined) {
      stats.refused++
      logger.debug({ node: record.n }, 'record of a node outside the routing table: not dialed')
      return undefined
    }
    stats.dials++
    try {
      await Promise.race([
        lm.connect(record.n, address),
        new Promise((_, reject) => setTimeout(reject, BINDING_TIMEOUT_MS).unref()),
      ])
      // The hello (with the certificate) is the first record on the link; give it a moment to arrive.
      for (let i = 0; i < 50 && !lm.bindings.has(record.n); i++) await new Promise((r) => setTimeout(r, 20))
    } catch {
      // counted below
    }
    const key = lm.bindings.get(record.n)
    if (!key) {
      stats.failed++
      failedUntil.set(record.n, Date.now() + BINDING_RETRY_MS)
    }
    return key
  }

  function bindingFor(record: SignedRecord): Promise<Uint8Array | undefined> | Uint8Array | undefined {
    const lm = links()
    if (!lm) return undefined
    if (record.n === lm.nodeId) return lm.recordPublicKey
    const known = lm.bindings.get(record.n)
    if (known) return known
    const pending = inFlight.get(record.n)
    if (pending) return pending
    if ((failedUntil.get(record.n) ?? 0) > Date.now() || inFlight.size >= MAX_BINDING_DIALS) {
      stats.refused++
      return undefined
    }
    const promise = learn(lm, record).finally(() => inFlight.delete(record.n))
    inFlight.set(record.n, promise)
    return promise
  }
  return {
    stats,
    async validate(key: Uint8Array, value: Uint8Array): Promise<boolean> {
      const record = parseRecord(value)
      if (!record) return false
      const digest = createHash('sha256').update(key).update(value).digest('base64')
      const until = verified.get(digest)
      if (until !== undefined && until >= Date.now()) {
        stats.verifiedCached++
        return true
      }
      const pub = await bindingFor(record)
      const ok = pub !== undefined && checkRecord(key, record, pub, Date.now())
      if (ok) {
        stats.verified++
        verified.set(digest, record.e)
      } else logger.debug({ node: record.n, kind: record.t }, 'dht record rejected')
      return ok
    },
    select(_key: Uint8Array, values: Uint8Array[]): number {
      let best = 0
      let bestQ = -Infinity
      values.forEach((v, i) => {
        const r = parseRecord(v)
        if (r && r.q > bestQ) {
          bestQ = r.q
          best = i
        }
      })
      return best
    },
  }
}

export interface DhtDirectoryInit {
  nodeId: string
  /** This node's `/p2p-node` base URL. */
  address: string
  /** Delays between the DHT reads of a lookup that misses. @default LOOKUP_RETRY_DELAYS_MS */
  lookupRetryDelaysMs?: readonly number[]
}

/**
 * `@x/signaling`'s `PeerDirectory` over `@x/kademlia` with signed records. Peer records map a peer to its
 * node; topic records list the members a node hosts (one slot per node, see `TOPIC_SLOTS`). Addresses learnt
 * from records feed the link manager's address book, so the `NodeRelay` can dial the node.
 */
export class DhtPeerDirectory implements PeerDirectory {
  readonly #dht: KademliaNode
  readonly #signer: RecordSigner
  readonly #links: LinkManager
  readonly #log: Logger
  readonly #nodeId: string
  readonly #address: string
  readonly #topics = new Map<string, { members: Set<string>; slot: number | undefined }>()
  readonly #published = new Set<string>()
  /** Peer ID → hosting node and expiry, from topic records read by `findTopic`. */
  readonly #members = new BoundedMap<string, { nodeId: string; expires: number }>(MAX_MEMBER_CACHE)
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
    /** Lookups answered from a topic record after the peer record missed. */
    lookupTopicHits: 0,
    /** Lookups that found the peer record only on a retry. */
    lookupRetryHits: 0,
    failures: 0,
    /** Records signed (ML-DSA-44) and re-publishes that re-used a record signed earlier. */
    signed: 0,
    signReused: 0,
    /** Topic members left out of a topic record because the record would exceed `MAX_RECORD_BYTES`. */
    topicMembersUnlisted: 0,
  }
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(
    components: { dht: KademliaNode; signer: RecordSigner; links: LinkManager; logger: Logger },
    init: DhtDirectoryInit,
  ) {
    this.#dht = components.dht
    this.#signer = components.signer
    this.#links = components.links
    this.#log = components.logger
    this.#nodeId = init.nodeId
    this.#address = init.address
    this.#retryDelaysMs = init.lookupRetryDelaysMs ?? LOOKUP_RETRY_DELAYS_MS
  }

  #body(t: RecordBody['t'], k: string, extra: Partial<RecordBody> = {}): RecordBody {
    const now = Date.now()
    return { v: 1, t, k, n: this.#nodeId, a: this.#address, e: now + RECORD_TTL_MS, q: now, ...extra }
  }

  /** The signed record for `body`: the one signed earlier for this key when its statement is unchanged. */
  #sign(key: Uint8Array, body: RecordBody): { bytes: Uint8Array; expires: number } {
    const id = Buffer.from(key).toString('hex')
    const statement = JSON.stringify([body.t, body.k, body.n, body.a, body.m, body.i, body.w])
    const cached = this.#signed.get(id)
    if (cached?.statement === statement && cached.expires - Date.now() >= RESIGN_BEFORE_EXPIRY_MS) {
      this.stats.signReused++
      return cached
    }
    const signed = { statement, bytes: this.#signer.sign(body), expires: body.e }
    this.stats.signed++
    this.#signed.set(id, signed)
    return signed
  }

  async #put(key: Uint8Array, body: RecordBody): Promise<void> {
    try {
      const { bytes, expires } = this.#sign(key, body)
      await this.#dht.put(key, bytes, {
        ttlMs: Math.max(1, Math.min(RECORD_TTL_MS, expires - Date.now())),
        signal: AbortSignal.timeout(10_000),
      })
    } catch (err) {
      this.stats.failures++
      this.#log.warn({ kind: body.t, err: String(err) }, 'dht put failed')
    }
  }

  async #get(key: Uint8Array, timeoutMs = 10_000): Promise<SignedRecord | undefined> {
    try {
      const value = await this.#dht.get(key, { signal: AbortSignal.timeout(timeoutMs) })
      const record = value && parseRecord(value)
      if (!record || record.e < Date.now()) return undefined
      if (record.n !== this.#nodeId) this.#links.addresses.set(record.n, record.a)
      return record
    } catch {
      return undefined
    }
  }

  /** Publishes the node record now and re-signs it and the topic records every `intervalMs`. */
  start(intervalMs = REFRESH_INTERVAL_MS): void {
    void this.announceNode()
    this.#timer = setInterval(() => void this.#refresh(), intervalMs)
    this.#timer.unref()
  }

  /** Stops the refresh timer. */
  stop(): void {
    clearInterval(this.#timer)
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

  async announce(peerId: string, nodeId: string): Promise<void> {
    if (nodeId !== this.#nodeId) return
    this.stats.announced++
    this.#published.add(peerId)
    await this.#put(recordKey('peer', peerId), this.#body('peer', peerId))
  }

  async withdraw(peerId: string, nodeId: string): Promise<void> {
    if (nodeId !== this.#nodeId) return
    this.stats.withdrawn++
    this.#published.delete(peerId)
    const key = recordKey('peer', peerId)
    this.#dht.unpublish(key)
    await this.#put(key, this.#body('peer', peerId, { w: 1, e: Date.now() + 60_000 }))
  }

  /**
   * The node hosting `peerId`: its peer record; when that misses (a peer that registered a moment ago), the
   * topic records already read that name it; else the peer record again after each of `lookupRetryDelaysMs`.
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
      const member = this.#members.get(peerId)
      if (member && member.expires > Date.now()) {
        this.stats.lookupHits++
        this.stats.lookupTopicHits++
        return member.nodeId
      }
      const delay = this.#retryDelaysMs[attempt]
      if (delay === undefined || this.#closed) return undefined
      await new Promise((r) => setTimeout(r, delay).unref())
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
      for (const m of r.m ?? []) this.#members.set(m, { nodeId: r.n, expires: r.e })
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
    const tasks: Promise<void>[] = [...this.#published].map((p) => this.withdraw(p, this.#nodeId))
    for (const [topic, t] of this.#topics) {
      t.members.clear()
      tasks.push(this.#publishTopic(topic))
    }
    this.#dht.unpublish(recordKey('node', this.#nodeId))
    await Promise.allSettled(tasks)
  }

  getStats(): { dhtNodes: number; dhtBuckets: number } {
    const s = this.#dht.getStats()
    return { dhtNodes: s.totalNodes, dhtBuckets: s.bucketsUsed }
  }
}
