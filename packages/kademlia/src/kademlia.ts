import { MessageType, StoreStatus, type Message, MAX_CONTACTS_PER_MESSAGE, MAX_VALUE_BYTES } from './codec'
import { sha256, systemClock, systemRandom, systemResolve } from './defaults'
import { KademliaError, throwIfAborted } from './errors'
import { assertId, ID_LENGTH_BITS, ID_LENGTH_BYTES, idEquals, randomIdInBucket, toHex } from './id'
import { iterativeLookup, type LookupResult, type QueryResult, type Responder } from './lookup'
import { RecordStore } from './records'
import {
  parsePeerAddress,
  resolvePeerAddress,
  type IpFamily,
  type ResolveFn,
  type PeerAddress,
} from './resolve'
import { RoutingTable, type Contact } from './routing-table'
import { Rpc, type AdmitFn, type ResponseBody, type RpcMetrics, type RpcStats } from './rpc'
import { exportSnapshot, parseSnapshot, type KademliaState } from './state'
import { TokenIssuer } from './tokens'
import {
  silentLogger,
  type Clock,
  type HashFunction,
  type Logger,
  type MetricLabels,
  type MetricsRegistry,
  type RandomSource,
  type Transport,
} from './types'

export const DEFAULT_K = 20
export const DEFAULT_ALPHA = 3
export const REFRESH_INTERVAL_MS = 60_000
export const BUCKET_STALE_MS = 15 * 60_000
export const BOOTSTRAP_BACKOFF_MS = 1_000
export const MAX_BOOTSTRAP_BACKOFF_MS = 60_000
export const RECORD_TTL_MS = 60 * 60_000
export const TOKEN_ROTATION_MS = 5 * 60_000 // BEP 5: "tokens up to ten minutes old are accepted"

/** Injected services. Only `transport` is required. */
export interface KademliaComponents {
  /** How datagrams reach other nodes: `createUdpTransport()`, or a memory transport in tests. */
  transport: Transport
  /** @default the wall clock */
  clock?: Clock
  /** @default node:crypto randomBytes */
  random?: RandomSource
  /** Hash for write tokens. @default SHA-256 from node:crypto */
  hash?: HashFunction
  /** @default a silent logger */
  logger?: Logger
  /**
   * Decides whether a value may be stored under a key (e.g. checks an ML-DSA signature). Return false or
   * throw to reject. Applied to STOREs we receive, to values found by `get`, and to `put`.
   * @default accept every value
   */
  validate?: (key: Uint8Array, value: Uint8Array) => boolean | Promise<boolean>
  /**
   * Picks the best of several valid values for one key (e.g. highest sequence number); returns its index.
   * @default 0 (the first: the one already held wins)
   */
  select?: (key: Uint8Array, values: Uint8Array[]) => number
  /**
   * Admission hook (e.g. an abuse detector), asked for every inbound request after the per-source token
   * bucket: return false to drop it unanswered (counted in `rpc.refused`). Also told of malformed datagrams
   * (`kind: 'malformed'`, answer ignored). Runs per datagram, so keep it cheap; if it throws, the request is
   * admitted.
   * @default admit everything
   */
  admit?: AdmitFn
  /**
   * Resolves the host names of seed addresses (`seed.example:6091`) to IP addresses, on every bootstrap
   * attempt. Used only with a transport that declares `families` (UDP).
   * @default node:dns/promises `lookup` with `all: true` (/etc/hosts, then DNS)
   */
  resolve?: ResolveFn
  /**
   * Receives the node's metrics: `kademlia_rpc_sent_total{type,outcome}`,
   * `kademlia_rpc_received_total{type,outcome}` and `kademlia_lookup_duration_seconds{outcome}` (prefixed with
   * `init.metricsPrefix`). Routing-table and record figures are in `getStats()`, for a scrape-time gauge.
   * @default none
   */
  metrics?: MetricsRegistry
}

/** Options, all plain data. */
export interface KademliaInit {
  /** Our 160-bit node ID. @default 20 random bytes */
  id?: Uint8Array
  /** Bucket size and replication factor. @default 20 */
  k?: number
  /** Parallel queries per lookup path. @default 3 */
  alpha?: number
  /** Disjoint lookup paths (S/Kademlia); 1 = plain Kademlia. @default 1 */
  disjointPaths?: number
  /**
   * Seed addresses bootstrapped from on `start()`, retried with back-off until the table is healthy. On an
   * IP transport: `1.2.3.4:5`, `[v6]:5` or `host.name:5` (resolved on each attempt); checked by
   * `createKademlia`. @default []
   */
  bootstrap?: string[]
  /** Interval of the refresh (self lookup, stale buckets, record maintenance). @default 60000 */
  refreshIntervalMs?: number
  /** A bucket no lookup went through for this long is refreshed. @default 900000 */
  bucketStaleMs?: number
  /** Bucket refresh lookups per refresh tick (and after a bootstrap). @default 16 */
  maxBucketRefreshesPerTick?: number
  /** First bootstrap retry delay; doubles up to `maxBootstrapBackoffMs`. @default 1000 */
  bootstrapBackoffMs?: number
  /** @default 60000 */
  maxBootstrapBackoffMs?: number
  /** Timeout of a request to an address without an RTT estimate. @default 1000 */
  requestTimeoutMs?: number
  /** Floor of the adaptive timeout. @default 100 */
  minRequestTimeoutMs?: number
  /** Ceiling of the adaptive timeout. @default 5000 */
  maxRequestTimeoutMs?: number
  /** Retransmissions before a request fails. @default 1 */
  retries?: number
  /** Sustained inbound requests per second per source host. @default 100 */
  rateLimitPerSecond?: number
  /** Burst of inbound requests per source host. @default 200 */
  rateLimitBurst?: number
  /** Sources tracked by the rate limiter. @default 4096 */
  maxRateLimitEntries?: number
  /** Addresses whose RTT estimate is kept. @default 1024 */
  maxRttEntries?: number
  /** Requests in flight at once. @default 1024 */
  maxPendingRequests?: number
  /** Contacts of one /24 (IPv4) or /64 (IPv6) per bucket. Loopback is exempt. @default 2 */
  maxPerIpGroupPerBucket?: number
  /** Contacts of one /24 or /64 in the whole table. @default 10 */
  maxPerIpGroupPerTable?: number
  /** Lifetime of a record we publish. @default 3600000 */
  recordTtlMs?: number
  /** The publisher re-puts its records this often (must be below `recordTtlMs`). @default recordTtlMs / 2 */
  republishIntervalMs?: number
  /** Longest TTL accepted in a STORE. @default 86400000 */
  maxRecordTtlMs?: number
  /** Records held at once. @default 10000 */
  maxRecords?: number
  /** Total bytes of values held. @default 16777216 */
  maxRecordBytes?: number
  /** Largest value accepted; at most 4096, the wire limit (`MAX_VALUE_BYTES`). @default 1024 */
  maxValueBytes?: number
  /** After a successful `get`, store the value at the closest node that lacked it. @default true */
  cacheOnPath?: boolean
  /** Write-token secret rotation. @default 300000 */
  tokenRotationMs?: number
  /** Prefix of the metric names given to `components.metrics` (e.g. `'x_'`). @default '' */
  metricsPrefix?: string
}

/** Upper bounds of the lookup-duration histogram, in seconds (loopback lookups take ms; WAN ones, seconds). */
export const LOOKUP_DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const

/** Options of every async operation. */
export interface OperationOptions {
  /** Aborts the operation: it rejects with `X_KAD_ABORTED`. */
  signal?: AbortSignal
}

/** Counters and gauges of a node. */
export interface KademliaStats {
  /** Contacts in the routing table. */
  totalNodes: number
  /** Buckets holding at least one contact. */
  bucketsUsed: number
  /** Seed addresses configured. */
  bootstrapNodes: number
  /** Whether the node has joined (see {@link KademliaNode.ready}); false again after `stop()`. */
  healthy: boolean
  /** Records this node stores for the network (its own and others'). */
  records: number
  /** Bytes of those records' values. */
  recordBytes: number
  /** Keys this node publishes and republishes with `put()`. */
  published: number
  /** The RPC layer's counters. */
  rpc: RpcStats
  /** Iterative lookups since the start. */
  lookups: {
    /** Lookups begun. */
    started: number
    /** Lookups that returned a result. */
    completed: number
    /** Lookups that threw (aborted, stopped, or no contact answered). */
    failed: number
    /** RPCs sent by completed lookups, in total. */
    rpcs: number
    /** Hops of completed lookups, in total (divide by `completed` for the mean). */
    hops: number
  }
  /** `STORE` requests from other nodes, by outcome. */
  store: {
    /** Stored (or an identical or preferred copy was already held). */
    accepted: number
    /** Refused: missing, wrong or expired write token. */
    badToken: number
    /** Refused by `validate`. */
    invalid: number
    /** Refused: the record store is full. */
    full: number
    /** Refused: the value exceeds `maxValueBytes`. */
    tooLarge: number
  }
  /** The background maintenance timer's work. */
  maintenance: {
    /** Bootstraps from the configured seeds. */
    bootstrapAttempts: number
    /** Of those, the ones that failed (retried with back-off). */
    bootstrapFailures: number
    /** Refreshes of the node's own neighbourhood and of stale buckets. */
    refreshes: number
    /** Refreshes and republishes that failed. */
    failures: number
    /** Contacts removed from the table because they stopped answering. */
    evictions: number
    /** Keys republished to the network. */
    republished: number
  }
}

/** A Kademlia node. */
export interface KademliaNode {
  /** Our 160-bit node ID (a fresh copy on every read). */
  readonly id: Uint8Array
  /** The routing table (live; read it, do not change it while the node runs). */
  readonly table: RoutingTable
  /** Whether the node runs: true between `start()` and `stop()`. */
  readonly started: boolean
  /** Starts answering and the maintenance timer. A node cannot start again after `stop()` (`X_KAD_STOPPED`). */
  start(): Promise<void>
  /** Clears every timer, rejects pending requests and `ready()` waiters, and closes the transport. */
  stop(): Promise<void>
  /**
   * Resolves once the node has joined: at once when no seeds are configured (a network of one); otherwise
   * when a bootstrap (the background one from `init.bootstrap`, a `bootstrap()` call, or `importState()`)
   * has left at least one live contact in the table. Failed attempts do not reject it (they are retried);
   * bound the wait with `signal`, whose `X_KAD_ABORTED` carries the last bootstrap error as `cause`.
   * Rejects with `X_KAD_NOT_STARTED` before `start()` and `X_KAD_STOPPED` on `stop()`.
   */
  ready(options?: OperationOptions): Promise<void>
  /**
   * Pings seeds, looks up our own ID and refreshes far buckets. Host names are resolved first (every
   * address of a name is pinged). Rejects with a TypeError for a malformed address, a RangeError for an
   * empty list, `X_KAD_UNRESOLVED` if no seed resolved, `X_KAD_TIMEOUT` if none answered.
   */
  bootstrap(addresses: string[], options?: OperationOptions): Promise<void>
  /** Pings an address (a host name: its first address); resolves with the contact that answered. */
  ping(address: string, options?: OperationOptions): Promise<Contact>
  /** The k closest live contacts to `id` in the network (copies: the caller may keep and change them). */
  findNode(id: Uint8Array, options?: OperationOptions): Promise<Contact[]>
  /** Low-level lookup with its metrics (hops, RPCs); contacts and tokens are copies. */
  lookup(target: Uint8Array, options?: OperationOptions & { disjointPaths?: number }): Promise<LookupResult>
  /** Stores a value at the k closest nodes (and locally); resolves with how many remote nodes accepted. */
  put(key: Uint8Array, value: Uint8Array, options?: OperationOptions & { ttlMs?: number }): Promise<number>
  /** Finds a value; undefined if none valid was found. */
  get(key: Uint8Array, options?: OperationOptions): Promise<Uint8Array | undefined>
  /** Stops republishing a key. */
  unpublish(key: Uint8Array): void
  /** The node's counters now. */
  getStats(): KademliaStats
  /** A snapshot of the routing table and stored records, to save and load with `importState()` after a restart. */
  exportState(): KademliaState
  /** Loads a snapshot; contacts are pinged and added only if they answer. */
  importState(
    state: unknown,
    options?: OperationOptions,
  ): Promise<{
    /** Contacts that answered and were added. */
    contacts: number
    /** Records loaded (not yet expired, and accepted by `validate`). */
    records: number
  }>
}

function positive(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback
  if (typeof v !== 'number' || !(v >= min) || Number.isNaN(v))
    throw new RangeError(`'${name}' must be a number >= ${min}`)
  return v
}

/** Creates a Kademlia node; nothing starts until `start()`. */
export function createKademlia(components: KademliaComponents, init: KademliaInit = {}): KademliaNode {
  if (components?.transport === undefined) throw new TypeError("'components.transport' is required")
  return new Node(components, init)
}

/** A seed or ping address as read: an IP literal or host name, or an opaque name (memory networks). */
type Seed = PeerAddress | { kind: 'opaque'; address: string }

interface Published {
  key: Uint8Array
  value: Uint8Array
  ttlMs: number
  nextAt: number
}

class Node implements KademliaNode {
  readonly #id: Uint8Array
  readonly table: RoutingTable
  readonly #transport: Transport
  readonly #clock: Clock
  readonly #random: RandomSource
  readonly #logger: Logger
  readonly #validate: (key: Uint8Array, value: Uint8Array) => boolean | Promise<boolean>
  readonly #select: (key: Uint8Array, values: Uint8Array[]) => number
  readonly #rpc: Rpc
  readonly #tokens: TokenIssuer
  readonly #records: RecordStore
  readonly #published = new Map<string, Published>()
  readonly #pinging = new Set<number>()
  readonly #k: number
  readonly #alpha: number
  readonly #paths: number
  readonly #seeds: Seed[]
  /** Set when the transport declares IP families: addresses are then parsed and names resolved. */
  readonly #families: ReadonlySet<IpFamily> | undefined
  readonly #resolve: ResolveFn
  readonly #waiters = new Set<{ resolve: () => void; reject: (err: Error) => void }>()
  #lastBootstrapError: unknown = undefined
  #stopped = false
  readonly #cfg: Required<
    Pick<
      KademliaInit,
      | 'refreshIntervalMs'
      | 'bucketStaleMs'
      | 'maxBucketRefreshesPerTick'
      | 'bootstrapBackoffMs'
      | 'maxBootstrapBackoffMs'
      | 'recordTtlMs'
      | 'republishIntervalMs'
      | 'maxRecordTtlMs'
      | 'maxValueBytes'
      | 'cacheOnPath'
    >
  >
  #started = false
  #timer: unknown = undefined
  #healthy = false
  #backoff: number
  #stopController = new AbortController()
  readonly #lookupStats = { started: 0, completed: 0, failed: 0, rpcs: 0, hops: 0 }
  #lookupDuration: { observe(value: number, labels?: MetricLabels): void } | undefined
  readonly #storeStats = { accepted: 0, badToken: 0, invalid: 0, full: 0, tooLarge: 0 }
  readonly #maint = {
    bootstrapAttempts: 0,
    bootstrapFailures: 0,
    refreshes: 0,
    failures: 0,
    evictions: 0,
    republished: 0,
  }

  constructor(components: KademliaComponents, init: KademliaInit) {
    this.#transport = components.transport
    this.#clock = components.clock ?? systemClock
    this.#random = components.random ?? systemRandom
    this.#logger = components.logger ?? silentLogger
    if (components.admit !== undefined && typeof components.admit !== 'function') {
      throw new TypeError('"components.admit" must be a function')
    }
    this.#validate = components.validate ?? (() => true)
    this.#select = components.select ?? (() => 0)
    const id = init.id ?? this.#random(ID_LENGTH_BYTES).slice(0, ID_LENGTH_BYTES)
    assertId(id, 'init.id')
    this.#id = id.slice()
    this.#families = transportFamilies(this.#transport)
    this.#resolve = components.resolve ?? systemResolve
    if (typeof this.#resolve !== 'function') throw new TypeError("'components.resolve' must be a function")
    this.#k = positive('k', init.k, DEFAULT_K)
    if (this.#k > MAX_CONTACTS_PER_MESSAGE) throw new RangeError(`'k' must be <= ${MAX_CONTACTS_PER_MESSAGE}`)
    this.#alpha = positive('alpha', init.alpha, DEFAULT_ALPHA)
    this.#paths = positive('disjointPaths', init.disjointPaths, 1)
    const seeds: unknown = init.bootstrap ?? []
    if (!Array.isArray(seeds)) throw new TypeError("'init.bootstrap' must be an array of strings")
    this.#seeds = seeds.map((a, i) => this.#parseAddress(a, `init.bootstrap[${i}]`))
    const recordTtlMs = positive('recordTtlMs', init.recordTtlMs, RECORD_TTL_MS)
    this.#cfg = {
      refreshIntervalMs: positive('refreshIntervalMs', init.refreshIntervalMs, REFRESH_INTERVAL_MS),
      bucketStaleMs: positive('bucketStaleMs', init.bucketStaleMs, BUCKET_STALE_MS),
      maxBucketRefreshesPerTick: positive('maxBucketRefreshesPerTick', init.maxBucketRefreshesPerTick, 16, 0),
      bootstrapBackoffMs: positive('bootstrapBackoffMs', init.bootstrapBackoffMs, BOOTSTRAP_BACKOFF_MS),
      maxBootstrapBackoffMs: positive(
        'maxBootstrapBackoffMs',
        init.maxBootstrapBackoffMs,
        MAX_BOOTSTRAP_BACKOFF_MS,
      ),
      recordTtlMs,
      republishIntervalMs: positive('republishIntervalMs', init.republishIntervalMs, recordTtlMs / 2),
      maxRecordTtlMs: positive('maxRecordTtlMs', init.maxRecordTtlMs, 24 * 60 * 60_000),
      maxValueBytes: positive('maxValueBytes', init.maxValueBytes, 1024),
      cacheOnPath: init.cacheOnPath ?? true,
    }
    if (this.#cfg.maxValueBytes > MAX_VALUE_BYTES) {
      throw new RangeError(`'maxValueBytes' must be <= ${MAX_VALUE_BYTES} (the wire limit)`)
    }
    if (this.#cfg.republishIntervalMs >= recordTtlMs) {
      throw new RangeError("'republishIntervalMs' must be below 'recordTtlMs'")
    }
    this.#backoff = this.#cfg.bootstrapBackoffMs
    this.table = new RoutingTable(
      this.#id,
      {
        k: this.#k,
        maxPerIpGroupPerBucket: positive('maxPerIpGroupPerBucket', init.maxPerIpGroupPerBucket, 2),
        maxPerIpGroupPerTable: positive('maxPerIpGroupPerTable', init.maxPerIpGroupPerTable, 10),
      },
      () => this.#clock.now(),
    )
    this.#rpc = new Rpc(
      this.#id,
      this.#transport,
      this.#clock,
      this.#random,
      this.#logger,
      {
        initialTimeoutMs: positive('requestTimeoutMs', init.requestTimeoutMs, 1000),
        minTimeoutMs: positive('minRequestTimeoutMs', init.minRequestTimeoutMs, 100),
        maxTimeoutMs: positive('maxRequestTimeoutMs', init.maxRequestTimeoutMs, 5000),
        retries: positive('retries', init.retries, 1, 0),
        rateLimitPerSecond: positive('rateLimitPerSecond', init.rateLimitPerSecond, 100),
        rateLimitBurst: positive('rateLimitBurst', init.rateLimitBurst, 200),
        maxRateLimitEntries: positive('maxRateLimitEntries', init.maxRateLimitEntries, 4096),
        maxRttEntries: positive('maxRttEntries', init.maxRttEntries, 1024),
        maxPendingRequests: positive('maxPendingRequests', init.maxPendingRequests, 1024),
      },
      components.admit,
      this.#registerMetrics(components.metrics, init.metricsPrefix ?? ''),
    )
    this.#rpc.setHandler((msg, from) => this.#onRequest(msg, from))
    this.#tokens = new TokenIssuer(
      components.hash ?? sha256,
      this.#random,
      positive('tokenRotationMs', init.tokenRotationMs, TOKEN_ROTATION_MS),
      this.#clock.now(),
    )
    this.#records = new RecordStore(
      positive('maxRecords', init.maxRecords, 10_000),
      positive('maxRecordBytes', init.maxRecordBytes, 16 * 1024 * 1024),
    )
  }

  /** A copy: the node's own ID is shared with its table and RPC layer. */
  get id(): Uint8Array {
    return this.#id.slice()
  }

  get started(): boolean {
    return this.#started
  }

  async start(): Promise<void> {
    if (this.#started) return
    if (this.#stopped) {
      // The transport was closed by stop(): a UDP socket cannot be rebound, so a restart would be deaf.
      throw new KademliaError(
        'X_KAD_STOPPED',
        'a stopped node cannot start again (its transport is closed): create a new node; exportState() / importState() carry its table and records over',
      )
    }
    this.#started = true
    this.#stopController = new AbortController()
    this.#rpc.open()
    this.#healthy = false
    this.#backoff = this.#cfg.bootstrapBackoffMs
    this.#schedule(this.#seeds.length > 0 ? 0 : this.#cfg.refreshIntervalMs)
    return Promise.resolve()
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    this.#stopped = true
    for (const w of [...this.#waiters]) w.reject(new KademliaError('X_KAD_STOPPED', 'node stopped'))
    this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#stopController.abort()
    this.#rpc.close()
    await this.#transport.close()
  }

  #schedule(ms: number): void {
    this.#clock.clearTimeout(this.#timer)
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined
      void this.#tick()
    }, ms)
  }

  /** One maintenance step. Never throws: failures are logged and counted. */
  async #tick(): Promise<void> {
    if (!this.#started) return
    let next = this.#cfg.refreshIntervalMs
    try {
      if (this.table.size === 0 || !this.#healthy) {
        if (this.#seeds.length > 0) {
          this.#maint.bootstrapAttempts++
          try {
            await this.#bootstrap(this.#seeds, this.#stopController.signal)
            this.#backoff = this.#cfg.bootstrapBackoffMs
          } catch (err) {
            this.#maint.bootstrapFailures++
            if (!this.#started) return
            this.#lastBootstrapError = err
            this.#logger.warn(
              { err, seeds: this.#seeds.length, retryInMs: this.#backoff },
              'bootstrap failed',
            )
            next = this.#backoff
            this.#backoff = Math.min(this.#cfg.maxBootstrapBackoffMs, this.#backoff * 2)
          }
        }
      } else {
        await this.#refresh(this.#stopController.signal)
      }
      await this.#maintainRecords(this.#stopController.signal)
    } catch (err) {
      if (!this.#started) return
      this.#maint.failures++
      this.#logger.warn({ err }, 'refresh failed')
    }
    if (this.#started) this.#schedule(next)
  }

  async #refresh(signal: AbortSignal): Promise<void> {
    this.#maint.refreshes++
    await this.#lookup(this.#id, signal)
    const stale = this.table
      .staleBuckets(this.#cfg.bucketStaleMs)
      .slice(0, this.#cfg.maxBucketRefreshesPerTick)
    for (const index of stale) {
      if (signal.aborted) return
      await this.#lookup(randomIdInBucket(this.#id, index, this.#random(ID_LENGTH_BYTES)), signal)
      this.table.markRefreshed(index)
    }
  }

  async #maintainRecords(signal: AbortSignal): Promise<void> {
    const now = this.#clock.now()
    this.#records.sweep(now)
    for (const p of [...this.#published.values()]) {
      if (signal.aborted) return
      if (p.nextAt > now) continue
      p.nextAt = now + this.#cfg.republishIntervalMs
      try {
        await this.#putRemote(p.key, p.value, p.ttlMs, signal)
        this.#maint.republished++
      } catch (err) {
        this.#maint.failures++
        this.#logger.warn({ err, key: toHex(p.key) }, 'republish failed')
      }
    }
  }

  // ---- inbound ----

  #seen(contact: Contact): void {
    const result = this.table.add(contact)
    if (result.status !== 'full') return
    // Kademlia §2.2: keep the old contact unless it fails to answer.
    const index = this.table.bucketIndex(result.oldest.id)
    if (this.#pinging.has(index) || !this.#started) return
    this.#pinging.add(index)
    const oldest = result.oldest
    this.#rpc
      .request(
        oldest.address,
        { type: MessageType.PING },
        { expectedId: oldest.id, signal: this.#stopController.signal },
      )
      .then(
        () => this.table.add(oldest),
        () => {
          if (this.table.remove(oldest.id)) this.#maint.evictions++
        },
      )
      .finally(() => this.#pinging.delete(index))
  }

  #onRequest(msg: Message, from: string): ResponseBody | undefined | Promise<ResponseBody | undefined> {
    this.#seen({ id: msg.senderId, address: from })
    const now = this.#clock.now()
    switch (msg.type) {
      case MessageType.PING:
        return { type: MessageType.PONG }
      case MessageType.FIND_NODE:
        return {
          type: MessageType.NODES,
          token: this.#tokens.issue(from, now),
          contacts: this.table.closest(msg.target, this.#k, msg.senderId),
        }
      case MessageType.FIND_VALUE: {
        const r = this.#records.get(msg.key, now)
        return {
          type: MessageType.NODES,
          token: this.#tokens.issue(from, now),
          contacts: this.table.closest(msg.key, this.#k, msg.senderId),
          record: r === undefined ? undefined : { value: r.value, ttlMs: r.expiresAt - now },
        }
      }
      case MessageType.STORE:
        return this.#onStore(msg, from, now)
      default:
        return undefined
    }
  }

  async #onStore(
    msg: Extract<Message, { type: typeof MessageType.STORE }>,
    from: string,
    now: number,
  ): Promise<ResponseBody> {
    if (!this.#tokens.verify(msg.token, from, now)) {
      this.#storeStats.badToken++
      return { type: MessageType.STORED, status: StoreStatus.BAD_TOKEN }
    }
    if (msg.value.length > this.#cfg.maxValueBytes) {
      this.#storeStats.tooLarge++
      return { type: MessageType.STORED, status: StoreStatus.TOO_LARGE }
    }
    const status = await this.#storeLocal(
      msg.key,
      msg.value,
      Math.min(msg.ttlMs, this.#cfg.maxRecordTtlMs),
      false,
    )
    return { type: MessageType.STORED, status }
  }

  async #isValid(key: Uint8Array, value: Uint8Array): Promise<boolean> {
    try {
      return (await this.#validate(key, value)) === true
    } catch {
      return false
    }
  }

  async #storeLocal(key: Uint8Array, value: Uint8Array, ttlMs: number, cached: boolean): Promise<number> {
    if (ttlMs <= 0) return StoreStatus.INVALID
    if (!(await this.#isValid(key, value))) {
      this.#storeStats.invalid++
      return StoreStatus.INVALID
    }
    const now = this.#clock.now()
    const existing = this.#records.get(key, now)
    if (existing !== undefined && !bytesEqual(existing.value, value)) {
      let pick = 0
      try {
        pick = this.#select(key, [existing.value, value])
      } catch {
        pick = 0
      }
      if (pick !== 1) {
        // Ours wins; still extend its life if the incoming copy outlives it (a republish of the same).
        this.#storeStats.accepted++
        return StoreStatus.OK
      }
    }
    const outcome = this.#records.put(
      {
        key: key.slice(),
        value: value.slice(),
        expiresAt: now + ttlMs,
        cached: cached && existing?.cached !== false,
      },
      now,
    )
    if (outcome === 'full') {
      this.#storeStats.full++
      return StoreStatus.FULL
    }
    this.#storeStats.accepted++
    return StoreStatus.OK
  }

  // ---- outbound ----

  async ping(address: string, options: OperationOptions = {}): Promise<Contact> {
    const target = this.#parseAddress(address, 'address')
    this.#assertStarted()
    const [first] = await this.#addressesOf(target, options.signal)
    const contact = await this.#ping(first!, options.signal)
    return { id: contact.id.slice(), address: contact.address }
  }

  async #ping(address: string, signal: AbortSignal | undefined): Promise<Contact> {
    const res = await this.#rpc.request(address, { type: MessageType.PING }, { signal })
    const contact = { id: res.senderId, address }
    this.#seen(contact)
    return contact
  }

  /** Reads an address given by a caller; a TypeError names `name` when it is malformed. */
  #parseAddress(address: unknown, name: string): Seed {
    if (this.#families !== undefined) return parsePeerAddress(address, name)
    if (typeof address !== 'string' || address === '') {
      throw new TypeError(`'${name}' must be a non-empty string`)
    }
    return { kind: 'opaque', address }
  }

  async #addressesOf(seed: Seed, signal: AbortSignal | undefined): Promise<string[]> {
    if (seed.kind === 'opaque') return [seed.address]
    return resolvePeerAddress(seed, this.#families!, this.#resolve, signal)
  }

  #setHealthy(healthy: boolean): void {
    this.#healthy = healthy
    if (healthy) for (const w of [...this.#waiters]) w.resolve()
  }

  ready(options: OperationOptions = {}): Promise<void> {
    if (!this.#started) return Promise.reject(new KademliaError('X_KAD_NOT_STARTED', 'call start() first'))
    if (this.#seeds.length === 0 || this.#healthy) return Promise.resolve()
    const { signal } = options
    const aborted = (): KademliaError =>
      new KademliaError('X_KAD_ABORTED', 'ready() aborted before the node joined', {
        cause: this.#lastBootstrapError,
      })
    if (signal?.aborted === true) return Promise.reject(aborted())
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => waiter.reject(aborted())
      const waiter = {
        resolve: (): void => {
          this.#waiters.delete(waiter)
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        reject: (err: Error): void => {
          this.#waiters.delete(waiter)
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      this.#waiters.add(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  #assertStarted(): void {
    if (!this.#started) throw new KademliaError('X_KAD_NOT_STARTED', 'call start() first')
  }

  #query(
    body:
      | { type: typeof MessageType.FIND_NODE; target: Uint8Array }
      | { type: typeof MessageType.FIND_VALUE; key: Uint8Array },
  ) {
    return async (contact: Contact, signal: AbortSignal): Promise<QueryResult> => {
      let res: Message
      try {
        res = await this.#rpc.request(contact.address, body, { signal, expectedId: contact.id })
      } catch (err) {
        if (!signal.aborted && this.table.recordFailure(contact.id)) this.#maint.evictions++
        throw err
      }
      if (res.type !== MessageType.NODES) throw new KademliaError('X_KAD_BAD_RESPONSE', 'unexpected response')
      this.#seen(contact)
      return { contacts: res.contacts, token: res.token, record: res.record }
    }
  }

  async lookup(
    target: Uint8Array,
    options: OperationOptions & { disjointPaths?: number } = {},
  ): Promise<LookupResult> {
    assertId(target, 'target')
    this.#assertStarted()
    const result = await this.#runLookup(
      target,
      { type: MessageType.FIND_NODE, target },
      options.signal,
      options.disjointPaths,
    )
    // Contacts from our table share their ID arrays with every table of the process (interned); a
    // caller writing into "its" result must not reach them.
    return { ...result, closest: result.closest.map(copyResponder) }
  }

  #lookup(target: Uint8Array, signal: AbortSignal | undefined): Promise<LookupResult> {
    return this.#runLookup(target, { type: MessageType.FIND_NODE, target }, signal)
  }

  /** Creates this node's metrics in `metrics`; the RPC counters go to the RPC layer, the histogram stays here. */
  #registerMetrics(metrics: MetricsRegistry | undefined, prefix: string): RpcMetrics | undefined {
    if (metrics === undefined) return undefined
    if (typeof metrics.counter !== 'function' || typeof metrics.histogram !== 'function') {
      throw new TypeError("'components.metrics' must have counter() and histogram()")
    }
    if (typeof prefix !== 'string' || !/^[a-zA-Z_:]?[a-zA-Z0-9_:]*$/.test(prefix)) {
      throw new TypeError("'metricsPrefix' must be a valid start of a Prometheus metric name")
    }
    this.#lookupDuration = metrics.histogram(
      `${prefix}kademlia_lookup_duration_seconds`,
      'Duration of iterative lookups (find node, find value), by outcome',
      ['outcome'],
      LOOKUP_DURATION_BUCKETS_S,
    )
    return {
      sent: metrics.counter(
        `${prefix}kademlia_rpc_sent_total`,
        'DHT requests this node sent, by type and outcome',
        ['type', 'outcome'],
      ),
      received: metrics.counter(
        `${prefix}kademlia_rpc_received_total`,
        'DHT requests this node received, by type and outcome',
        ['type', 'outcome'],
      ),
    }
  }

  async #runLookup(
    target: Uint8Array,
    body:
      | { type: typeof MessageType.FIND_NODE; target: Uint8Array }
      | { type: typeof MessageType.FIND_VALUE; key: Uint8Array },
    signal: AbortSignal | undefined,
    paths = this.#paths,
    onRecord?: (record: { value: Uint8Array; ttlMs: number }, from: Contact) => boolean | Promise<boolean>,
  ): Promise<LookupResult> {
    this.#lookupStats.started++
    const startedAt = this.#clock.now()
    const initial = this.table.closest(target, this.#k * Math.max(1, paths))
    const index = this.table.bucketIndex(target)
    if (index < ID_LENGTH_BITS) this.table.markRefreshed(index)
    try {
      const result = await iterativeLookup({
        target,
        selfId: this.#id,
        k: this.#k,
        alpha: this.#alpha,
        paths,
        initial,
        query: this.#query(body),
        onRecord,
        signal,
      })
      this.#lookupStats.completed++
      this.#lookupStats.rpcs += result.rpcs
      this.#lookupStats.hops += result.hops
      this.#observeLookup(startedAt, { outcome: 'ok' })
      return result
    } catch (err) {
      this.#lookupStats.failed++
      this.#observeLookup(startedAt, { outcome: 'failed' })
      throw err
    }
  }

  #observeLookup(startedAt: number, labels: MetricLabels): void {
    this.#lookupDuration?.observe(Math.max(0, this.#clock.now() - startedAt) / 1000, labels)
  }

  async findNode(id: Uint8Array, options: OperationOptions = {}): Promise<Contact[]> {
    assertId(id, 'id')
    this.#assertStarted()
    const result = await this.#lookup(id, options.signal)
    return result.closest.map((r) => copyContact(r.contact))
  }

  async bootstrap(addresses: string[], options: OperationOptions = {}): Promise<void> {
    if (!Array.isArray(addresses)) throw new TypeError("'addresses' must be an array of strings")
    if (addresses.length === 0) throw new RangeError("'addresses' must not be empty")
    const targets = addresses.map((a, i) => this.#parseAddress(a, `addresses[${i}]`))
    this.#assertStarted()
    try {
      await this.#bootstrap(targets, options.signal)
    } catch (err) {
      this.#lastBootstrapError = err
      throw err
    }
  }

  async #bootstrap(targets: Seed[], signal: AbortSignal | undefined): Promise<void> {
    const resolved = await Promise.allSettled(targets.map((t) => this.#addressesOf(t, signal)))
    throwIfAborted(signal)
    const addresses = new Set<string>()
    const unresolved: unknown[] = []
    for (const r of resolved) {
      if (r.status === 'fulfilled') for (const a of r.value) addresses.add(a)
      else unresolved.push(r.reason)
    }
    if (addresses.size === 0 && this.table.size === 0) {
      const why = unresolved.slice(0, 3).map((e) => (e instanceof Error ? e.message : String(e)))
      throw new KademliaError('X_KAD_UNRESOLVED', `no seed resolved to an address: ${why.join('; ')}`, {
        cause: unresolved[0],
      })
    }
    const answered = await Promise.allSettled([...addresses].map((a) => this.#ping(a, signal)))
    throwIfAborted(signal)
    const ok = answered.filter((r) => r.status === 'fulfilled').length
    if (ok === 0 && this.table.size === 0) {
      const note = unresolved.length > 0 ? `; ${unresolved.length} seed(s) did not resolve` : ''
      throw new KademliaError(
        'X_KAD_TIMEOUT',
        `no bootstrap node answered (${addresses.size} address(es) tried${note})`,
        unresolved.length > 0 ? { cause: unresolved[0] } : undefined,
      )
    }
    const self = await this.#lookup(this.#id, signal)
    // Kademlia §2.3 join: refresh every bucket farther away than our closest neighbour.
    const nearest = self.closest[0]
    const upTo = nearest === undefined ? 0 : this.table.bucketIndex(nearest.contact.id)
    const limit = this.#cfg.maxBucketRefreshesPerTick
    const buckets: number[] = []
    for (let i = upTo - 1; i >= 0 && buckets.length < limit; i--) buckets.push(i)
    for (const i of buckets) {
      throwIfAborted(signal)
      await this.#lookup(randomIdInBucket(this.#id, i, this.#random(ID_LENGTH_BYTES)), signal)
      this.table.markRefreshed(i)
    }
    this.#setHealthy(this.table.size > 0)
    if (!this.#healthy) throw new KademliaError('X_KAD_TIMEOUT', 'bootstrap found no contacts')
  }

  async put(
    key: Uint8Array,
    value: Uint8Array,
    options: OperationOptions & { ttlMs?: number } = {},
  ): Promise<number> {
    assertId(key, 'key')
    if (!(value instanceof Uint8Array)) throw new TypeError("'value' must be a Uint8Array")
    if (value.length > this.#cfg.maxValueBytes)
      throw new RangeError(`'value' exceeds maxValueBytes (${this.#cfg.maxValueBytes})`)
    this.#assertStarted()
    const ttlMs = options.ttlMs ?? this.#cfg.recordTtlMs
    if (!(await this.#isValid(key, value)))
      throw new KademliaError('X_KAD_INVALID_RECORD', 'value rejected by validate()')
    await this.#storeLocal(key, value, ttlMs, false)
    this.#published.set(toHex(key), {
      key: key.slice(),
      value: value.slice(),
      ttlMs,
      nextAt: this.#clock.now() + Math.min(this.#cfg.republishIntervalMs, ttlMs / 2),
    })
    return this.#putRemote(key, value, ttlMs, options.signal)
  }

  unpublish(key: Uint8Array): void {
    assertId(key, 'key')
    this.#published.delete(toHex(key))
  }

  async #putRemote(
    key: Uint8Array,
    value: Uint8Array,
    ttlMs: number,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    const result = await this.#runLookup(key, { type: MessageType.FIND_NODE, target: key }, signal)
    const stores = result.closest
      .filter((r) => r.token !== undefined)
      .map((r) => this.#storeAt(r.contact, r.token!, key, value, ttlMs, signal))
    const outcomes = await Promise.allSettled(stores)
    const stored = outcomes.filter((o) => o.status === 'fulfilled' && o.value).length
    if (stored === 0 && result.closest.length > 0) {
      throw new KademliaError(
        'X_KAD_STORE_FAILED',
        `no node accepted the record (${result.closest.length} asked)`,
      )
    }
    return stored
  }

  async #storeAt(
    contact: Contact,
    token: Uint8Array,
    key: Uint8Array,
    value: Uint8Array,
    ttlMs: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const res = await this.#rpc.request(
      contact.address,
      { type: MessageType.STORE, key, token, ttlMs, value },
      { signal, expectedId: contact.id },
    )
    return res.type === MessageType.STORED && res.status === StoreStatus.OK
  }

  async get(key: Uint8Array, options: OperationOptions = {}): Promise<Uint8Array | undefined> {
    assertId(key, 'key')
    this.#assertStarted()
    const found: Uint8Array[] = []
    const local = this.#records.get(key, this.#clock.now())
    if (local !== undefined) found.push(local.value)
    let bestTtl = 0
    const result = await this.#runLookup(
      key,
      { type: MessageType.FIND_VALUE, key },
      options.signal,
      this.#paths,
      async (record) => {
        if (record.value.length > this.#cfg.maxValueBytes || !(await this.#isValid(key, record.value)))
          return false
        found.push(record.value)
        bestTtl = Math.max(bestTtl, record.ttlMs)
        return true
      },
    )
    if (found.length === 0) return undefined
    let pick = 0
    if (found.length > 1) {
      try {
        pick = this.#select(key, found)
      } catch {
        pick = 0
      }
    }
    // A copy: the local record's bytes are the store's own.
    const value = (found[pick] ?? found[0]!).slice()
    if (this.#cfg.cacheOnPath && bestTtl > 0) {
      // Kademlia §2.3: cache at the closest node observed that did not return the value, with a TTL
      // shortened because more copies exist nearer the key.
      const target = result.closest.find((r) => !r.hadRecord && r.token !== undefined)
      if (target !== undefined) {
        void this.#storeAt(
          target.contact,
          target.token!,
          key,
          value,
          Math.max(1, Math.floor(bestTtl / 2)),
          options.signal,
        ).catch(() => undefined)
      }
    }
    return value
  }

  getStats(): KademliaStats {
    return {
      totalNodes: this.table.size,
      bucketsUsed: this.table.bucketsUsed,
      bootstrapNodes: this.#seeds.length,
      healthy: this.#healthy,
      records: this.#records.size,
      recordBytes: this.#records.bytes,
      published: this.#published.size,
      rpc: { ...this.#rpc.stats },
      lookups: { ...this.#lookupStats },
      store: { ...this.#storeStats },
      maintenance: { ...this.#maint },
    }
  }

  exportState(): KademliaState {
    return exportSnapshot(this.#id, this.table, this.#records.values(), this.#clock.now())
  }

  async importState(
    state: unknown,
    options: OperationOptions = {},
  ): Promise<{ contacts: number; records: number }> {
    this.#assertStarted()
    const snapshot = parseSnapshot(state, this.#k * ID_LENGTH_BITS, this.#cfg.maxValueBytes)
    const now = this.#clock.now()
    let records = 0
    for (const r of snapshot.records) {
      const ttl = r.expiresAt - now
      if (ttl <= 0) continue
      if (
        (await this.#storeLocal(r.key, r.value, Math.min(ttl, this.#cfg.maxRecordTtlMs), false)) ===
        StoreStatus.OK
      )
        records++
    }
    // Contacts from disk are hints, not trusted: each must answer a PING with the same ID first.
    let contacts = 0
    const queue = snapshot.contacts.filter((c) => !idEquals(c.id, this.#id))
    const worker = async (): Promise<void> => {
      for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
        if (options.signal?.aborted === true) return
        try {
          await this.#rpc.request(
            c.address,
            { type: MessageType.PING },
            { expectedId: c.id, signal: options.signal },
          )
          const status = this.table.add(c).status
          if (status === 'added' || status === 'updated') contacts++
        } catch {
          // Dead or changed identity: not trusted.
        }
      }
    }
    await Promise.all(Array.from({ length: 16 }, worker))
    throwIfAborted(options.signal)
    if (contacts > 0) this.#setHealthy(true)
    return { contacts, records }
  }
}

function copyContact(c: Contact): Contact {
  return { id: c.id.slice(), address: c.address }
}

function copyResponder(r: Responder): Responder {
  return { ...r, contact: copyContact(r.contact), token: r.token?.slice() }
}

/** The IP families a transport declares, checked; undefined for opaque addresses. */
function transportFamilies(transport: Transport): ReadonlySet<IpFamily> | undefined {
  const families: unknown = transport.families
  if (families === undefined) return undefined
  if (!Array.isArray(families) || families.length === 0 || !families.every((f) => f === 4 || f === 6)) {
    throw new TypeError("'components.transport.families' must be a non-empty array of 4 and 6")
  }
  return new Set(families as IpFamily[])
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && idEquals(a, b)
}
