/**
 * The node's AI engine: adaptive abuse detection. It watches signaling connections (through `@x/signaling`'s
 * guard hook), CRDT connections and raw sockets on the WebSocket port, and DHT requests (through `@x/kademlia`'s
 * admit hook); learns what normal traffic looks like on this node (see `model.ts`); scores every connection,
 * every connection as a target, every address, every address prefix and the whole node four times a second
 * (see `features.ts`); and throttles, then blocks, what stands out (see `policy.ts`). The packages do not know
 * it exists: they only call their hooks.
 *
 * Who is innocent: replies to a peer that made contact first and signals to peers a connection discovered never
 * count as initiated; a flooded peer is never punished, its flooders are; an address is allowed as much as the
 * members in good standing it carries; a PeerJS ID is keyed with its holder's token digest. What is learned:
 * only observations of keys in good standing, with each address prefix's weight capped, so that one source or a
 * few cannot move the baselines; and every feature has a ceiling the learning cannot raise the threshold past.
 */
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { GuardEndpoint, GuardSession, SignalingGuard } from '@x/signaling'
import type { AdmitFn } from '@x/kademlia'
import {
  A,
  ADDRESS_FEATURES,
  AddressRecord,
  FrameClass,
  N,
  NODE_FEATURES,
  PRESSES,
  PREFIX_SCORED,
  PrefixRecord,
  S,
  SESSION_FEATURES,
  SessionRecord,
  SHORT_LIVED_MS,
  TARGET_FEATURES,
  decayFor,
  frameClass,
  peerKey,
  perMember,
} from './features'
import { BASELINE_HALF_LIFE_MS, RobustBaselineModel, type AnomalyModel } from './model'
import {
  PolicyBook,
  type PolicyEntry,
  type PolicyLevel,
  type PolicyOptions,
  type Reason,
  type Transition,
} from './policy'

export const AI_TICK_MS = 250
/** Observations learned per model before the engine reports itself trained. */
export const MIN_TRAINING_SAMPLES = 500
/** Only observations scoring below this (octaves above the 99th percentile) are learned. */
const LEARN_MAX_SCORE = 0.5
/**
 * A prefix may hold at most this share of a model's learned weight (or `MIN_SOURCE_WEIGHT`, whichever is more),
 * and of observations above the 99th percentile at most `ABOVE_P99_SHARE`: one source, or a few, cannot move a
 * baseline the prior and everyone else set.
 */
const SOURCE_SHARE = 0.02
const MIN_SOURCE_WEIGHT = 20
const ABOVE_P99_SHARE = 0.0025
/**
 * For this long after the engine starts, the node-wide model neither learns nor puts anything under pressure,
 * and arrival rates (connections, new identities, short-lived connections) are not scored: after a restart
 * every client reconnects and every DHT neighbour bootstraps at once, which is neither normal load nor an attack.
 */
export const NODE_SETTLE_MS = 60_000
/** An identity (or an unauthenticated connection) is an established member of its address after this long. */
const ESTABLISHED_AFTER_MS = 60_000
/** A new identity that leaves within this time counts as churn. */
const CHURN_WITHIN_MS = 60_000
/** A key whose score averaged over a minute exceeds this is rising: nothing it does is learned. */
const RISING_SCORE = 0.1
/** Per round, the weight of the past in that average (τ = 1 min at 4 rounds a second). */
const SLOW_A = Math.exp(-AI_TICK_MS / 60_000)
/** Each key is learned every this many rounds. */
const LEARN_EVERY = 4
/** Throttled sessions may send this many frames per second (burst twice as many). */
const THROTTLED_FRAMES_PER_S = 10
/** Throttled for flooding a peer: this many. */
const THROTTLED_FLOODER_FRAMES_PER_S = 1
/** Throttled addresses may open this many connections per second (burst 2) and send DHT requests at 5/s. */
const THROTTLED_CONNECTIONS_PER_S = 0.5
const THROTTLED_DHT_PER_S = 5
/** Refusals that carry a reason (the WebSocket is opened to close it with 4030) per address per second. */
const TOLD_REFUSALS_PER_S = 1
/** Address records kept at most; idle ones are dropped first. */
const MAX_ADDRESSES = 50_000
/** An address record with nothing open and no activity for this long is forgotten. */
const ADDRESS_IDLE_MS = 60_000
/** DHT sources remembered (a source not among them is new). */
const MAX_DHT_SOURCES = 50_000
/** During a surge of new DHT sources, sources first seen this long before it began are held back too. */
const SURGE_LOOKBACK_MS = 30_000
/** The state is written this often while running (and at stop). */
export const AI_PERSIST_INTERVAL_MS = 5 * 60_000
/** Key of the persisted state in the store. */
export const AI_STATE_KEY = 'ai-state'

interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}

/** Where the learned state is kept across restarts (the node passes a LevelDB sub-level). */
export interface AiStateStore {
  get(key: string): Promise<Uint8Array | undefined>
  put(key: string, value: Uint8Array): Promise<void>
}

/** The node's client-address resolver, as far as the engine needs it (see `client-address.ts`). */
export interface AiClientAddress {
  (req: IncomingMessage): string
  /** Whether the node resolves clients through trusted proxies. */
  readonly trustsProxies: boolean
  /** Whether `address` is a trusted proxy (its raw sockets cannot be told apart by client). */
  isTrustedProxy(address: string): boolean
}

export interface AiEngineComponents {
  logger: Logger
  /** @default Date */
  clock?: { now(): number }
  /** Persisted learned state. @default none: every start learns from the prior */
  store?: AiStateStore
  /** Client addresses of upgrades behind trusted proxies. @default the socket's address */
  clientAddress?: AiClientAddress
  /** Models to use instead of the default robust baselines (their feature lists must match). */
  sessionModel?: AnomalyModel
  addressModel?: AnomalyModel
}

export interface AiEngineInit {
  /** Off: no hooks are installed and `/api/health` reports `ai` as disabled. @default true */
  enabled?: boolean
  /**
   * IP addresses and peer IDs that are scored but never throttled or blocked. Loopback entries are ignored when
   * the node trusts proxies (`trustsProxies`): clients then arrive with their own addresses, and one that the
   * proxies report as loopback must not be exempt. @default []
   */
  allowList?: readonly string[]
  /** The node resolves client addresses through trusted proxies. @default components.clientAddress?.trustsProxies */
  trustsProxies?: boolean
  /** @default AI_TICK_MS */
  tickMs?: number
  policy?: PolicyOptions
}

/** `ai` in `/api/health`. */
export type AiHealth =
  | { status: 'disabled'; reason: string }
  | {
      status: 'ok'
      model: string
      training: 'learning' | 'trained'
      samples: { sessions: number; addresses: number }
      /** Connections, addresses and prefixes scored in the last tick, and in all. */
      scored: number
      scoredTotal: number
      throttled: number
      blocked: number
      /** Node-wide features under pressure now (an attack spread over many sources). */
      pressure: string[]
      /** Peers being flooded now (their flooders are throttled). */
      flooded: number
    }

/** One entry of `GET /api/ai/flagged`. */
export interface FlaggedEntry {
  kind: 'peer' | 'peerjs' | 'connection' | 'address' | 'prefix'
  id: string
  /** PeerJS: digest of the token that held the ID when it was flagged. */
  credential?: string
  /** Source address, when known. */
  address?: string
  level: PolicyLevel
  score: number
  peak: number
  since: number
  until?: number
  firstFlagged: number
  offenses: number
  reasons: Reason[]
}

/** What the CRDT endpoint tells the engine about one y-websocket connection. */
export interface CrdtGuardSession {
  /** `bytes` arrived on the connection. */
  data(bytes: number): void
  /** The connection closed. */
  closed(): void
}

export interface AiEngine {
  readonly enabled: boolean
  /** For `@x/signaling` (`components.guard`); undefined when disabled. */
  readonly guard: SignalingGuard | undefined
  /** For `@x/kademlia` (`components.admit`); undefined when disabled. */
  readonly admitDht: AdmitFn | undefined
  /** A TCP connection on the WebSocket port (before any HTTP). Returns false when it must be destroyed. */
  socketOpened(socket: Socket): boolean
  /** That socket was upgraded to a WebSocket (it is no longer pending). */
  socketUpgraded(socket: Socket): void
  /** A CRDT (y-websocket) connection from `address`; as `SignalingGuard.connect`. */
  crdtConnect(address: string, close: (reason: string) => void): CrdtGuardSession | false | string
  /**
   * The CRDT path's upgrade: returns true when it may proceed (the socket is then followed), false when the
   * engine refused it (answered 429, or opened and closed with 4030 and the reason).
   */
  crdtUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean
  /** Loads the persisted state (if a store was given); resolves with whether there was one that fit. */
  restore(): Promise<boolean>
  /** Writes the learned state to the store. */
  persist(): Promise<void>
  start(): void
  /** Stops the timers and persists the state. */
  stop(): Promise<void>
  health(): AiHealth
  /** Actions since the start: keys throttled, blocked, and released (`normal`). */
  actions(): Readonly<Record<PolicyLevel, number>>
  /** Currently throttled or blocked keys, then recently released ones, most severe first. */
  flagged(): FlaggedEntry[]
  /** Runs one scoring round now (tests and the evaluation; the timer calls it every `tickMs`). */
  tick(): void
}

/** Creates the engine; nothing runs before `start()`. */
export function createAiEngine(components: AiEngineComponents, init: AiEngineInit = {}): AiEngine {
  if (init.enabled === false) return disabledEngine
  return new Engine(components, init)
}

const disabledEngine: AiEngine = {
  enabled: false,
  guard: undefined,
  admitDht: undefined,
  socketOpened: () => true,
  socketUpgraded: () => {},
  crdtConnect: () => ({ data() {}, closed() {} }),
  crdtUpgrade: () => true,
  restore: () => Promise.resolve(false),
  persist: () => Promise.resolve(),
  start: () => {},
  stop: () => Promise.resolve(),
  health: () => ({ status: 'disabled', reason: 'the AI engine is turned off (--ai off)' }),
  flagged: () => [],
  actions: () => ({ normal: 0, throttled: 0, blocked: 0 }),
  tick: () => {},
}

/** Host part of `host:port` / `[v6]:port`. */
export function hostOf(address: string): string {
  if (address.startsWith('[')) {
    const end = address.indexOf(']')
    return end === -1 ? address : address.slice(1, end)
  }
  const colon = address.lastIndexOf(':')
  return colon === -1 || address.indexOf(':') !== colon ? address : address.slice(0, colon)
}

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is the IPv4 address. */
function normalise(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1'
}

/** A WebSocket close frame (server to client: unmasked) with `code` and `reason`. */
function closeFrame(code: number, reason: string): Buffer {
  const text = Buffer.from(reason).subarray(0, 123)
  return Buffer.concat([Buffer.from([0x88, 2 + text.length, code >> 8, code & 255]), text])
}

const CLOSE_BLOCKED = 4030
const CAP_SIGNALS = SESSION_FEATURES[S.SIGNALS]!.ceiling!
const CAP_TOPICS = SESSION_FEATURES[S.TOPICS]!.ceiling!
const CAP_DHT = ADDRESS_FEATURES[A.DHT]!.ceiling!
const CAP_CONNECTIONS = ADDRESS_FEATURES[A.CONNECTIONS]!.ceiling!
const CAP_UNPRODUCTIVE = ADDRESS_FEATURES[A.UNPRODUCTIVE]!.ceiling!
const CAP_CRDT_BYTES = ADDRESS_FEATURES[A.CRDT_BYTES]!.ceiling!

class Session extends SessionRecord implements GuardSession {
  /** The policy level of this session's key, refreshed every tick and on every transition. */
  level: PolicyLevel = 'normal'
  allowed: boolean
  /** The score the victims it floods give it (this round), and why. */
  external = 0
  externalReason: Reason | undefined
  /** Throttled for flooding a peer: a tighter bucket. */
  flooder = false
  /** Score averaged over about a minute (rising keys are not learned). */
  slowScore = 0

  constructor(
    readonly engine: Engine,
    id: number,
    address: AddressRecord,
    endpoint: GuardEndpoint | 'crdt',
    close: (reason: string) => void,
    now: number,
    allowed: boolean,
  ) {
    super(id, address, endpoint, close, now)
    this.allowed = allowed
  }

  frame(type: string, bytes: number, target: string | undefined): boolean {
    const cls = frameClass(type)
    this.noteFrame(cls, bytes, target, this.engine.now)
    if (this.level === 'normal' || cls === FrameClass.Dropped) return true
    return this.engine.admitThrottled(this)
  }

  sent(_bytes: number, from?: string): void {
    if (from !== undefined) this.noteSent(from, this.engine.now)
  }

  error(): void {
    this.errors++
  }

  registered(peerId: string | undefined, credential?: string): void {
    this.engine.onRegistered(this, peerId, credential)
  }

  discovered(peers: readonly string[]): void {
    this.noteDiscovered(peers, this.engine.now())
  }

  topics(held: number): void {
    this.address.topicsHeld += held - this.topicsHeld
    this.topicsHeld = held
    // A y-webrtc connection is productive once it subscribed to something.
    if (held > 0 && !this.settled && this.endpoint === 'y-webrtc') this.settle(undefined)
  }

  published(_topic: string, receivers: number): void {
    this.fanoutBytes += this.lastBytes * receivers
  }

  closed(): void {
    this.engine.onClosed(this)
  }
}

/** Per model: how much each source prefix has taught it (decayed), to cap it. */
class SourceShares {
  readonly #w = new Map<string, { w: number; above: number; at: number; n: number; prev: number }>()
  readonly #halfLifeMs: number
  #swept = 0

  constructor(halfLifeMs: number) {
    this.#halfLifeMs = halfLifeMs
  }

  /** The weight an observation from `prefix` may be learned with (0: not at all). */
  weight(prefix: string, total: number, aboveP99: boolean, now: number): number {
    let e = this.#w.get(prefix)
    if (e === undefined) {
      e = { w: 0, above: 0, at: now, n: 0, prev: 1 }
      this.#w.set(prefix, e)
    } else if (now > e.at) {
      const f = 0.5 ** ((now - e.at) / this.#halfLifeMs)
      e.w *= f
      e.above *= f
      e.at = now
    }
    e.n++
    // Every prefix weighs at most 1 per round, however many keys it holds (a NAT'd office is one voice).
    const w = 1 / Math.max(1, e.prev)
    if (e.w + w > Math.max(SOURCE_SHARE * total, MIN_SOURCE_WEIGHT)) return 0
    if (aboveP99) {
      if (e.above + w > Math.max(ABOVE_P99_SHARE * total, 1)) return 0
      e.above += w
    }
    e.w += w
    return w
  }

  /** End of a round: this round's counts become the next round's divisors. */
  round(now: number): void {
    for (const e of this.#w.values()) {
      e.prev = e.n > 0 ? e.n : 1
      e.n = 0
    }
    if (now - this.#swept > 60_000) {
      this.#swept = now
      for (const [k, e] of this.#w) if (e.w < 0.01 && e.n === 0) this.#w.delete(k)
    }
  }
}

interface Scored {
  model: AnomalyModel
  x: Float64Array
  scores: Float64Array
}

class Engine implements AiEngine {
  readonly enabled = true
  readonly guard: SignalingGuard
  readonly admitDht: AdmitFn
  readonly now: () => number
  readonly #log: Logger
  readonly #clock: { now(): number }
  readonly #store: AiStateStore | undefined
  readonly #clientAddress: AiClientAddress | undefined
  readonly #tickMs: number
  readonly #allow: ReadonlySet<string>
  readonly #sessionModel: AnomalyModel
  readonly #targetModel: AnomalyModel
  readonly #addressModel: AnomalyModel
  readonly #prefixModel: AnomalyModel
  readonly #nodeModel: AnomalyModel
  readonly #shares = new Map<AnomalyModel, SourceShares>()
  readonly #policy: PolicyBook
  readonly #throttleScore: number
  readonly #sessions = new Set<Session>()
  /** Registered sessions by peer ID: native, and PeerJS (its own namespace). */
  readonly #byPeer = new Map<string, Session>()
  readonly #byPeerjs = new Map<string, Session>()
  readonly #addresses = new Map<string, AddressRecord>()
  readonly #prefixes = new Map<string, PrefixRecord>()
  /** Address of flagged keys, for the flagged list. */
  readonly #keyInfo = new Map<string, { address: string }>()
  readonly #dhtSources = new Map<string, number>()
  #newDhtSources = 0
  #newDhtSources60 = 0
  /** Address features under node-wide pressure: since when (0: none). */
  readonly #pressureSince = new Float64Array(ADDRESS_FEATURES.length)
  /** The pressure mask of the address being scored (pressure applies to sources that appeared with it). */
  readonly #pressure = new Uint8Array(ADDRESS_FEATURES.length)
  #pressed = false
  #pressureNames: string[] = []
  #dhtSurgeSince = 0
  #flooded = 0
  #nextId = 1
  #timer: ReturnType<typeof setInterval> | undefined
  #persistTimer: ReturnType<typeof setInterval> | undefined
  #lastTick: number
  #round = 0
  readonly #bornAt: number
  #scored = 0
  #scoredTotal = 0
  readonly #wss: WebSocketServer
  readonly #sx = new Float64Array(SESSION_FEATURES.length)
  readonly #ss = new Float64Array(SESSION_FEATURES.length)
  readonly #tx = new Float64Array(TARGET_FEATURES.length)
  readonly #ts = new Float64Array(TARGET_FEATURES.length)
  readonly #ar = new Float64Array(ADDRESS_FEATURES.length)
  readonly #ax = new Float64Array(ADDRESS_FEATURES.length)
  readonly #as = new Float64Array(ADDRESS_FEATURES.length)
  readonly #nx = new Float64Array(NODE_FEATURES.length)
  readonly #ns = new Float64Array(NODE_FEATURES.length)

  constructor(components: AiEngineComponents, init: AiEngineInit) {
    this.#log = components.logger
    this.#clock = components.clock ?? Date
    this.now = () => this.#clock.now()
    this.#store = components.store
    this.#clientAddress = components.clientAddress
    this.#tickMs = init.tickMs ?? AI_TICK_MS
    if (!Number.isFinite(this.#tickMs) || this.#tickMs <= 0) {
      throw new RangeError(`"tickMs" must be a positive number, got ${String(init.tickMs)}`)
    }
    const trustsProxies = init.trustsProxies ?? components.clientAddress?.trustsProxies ?? false
    const allow = (init.allowList ?? []).map((a) => normalise(a))
    this.#allow = new Set(trustsProxies ? allow.filter((a) => !isLoopback(a)) : allow)
    this.#policy = new PolicyBook(init.policy)
    this.#throttleScore = this.#policy.throttleScore
    const throttleAt = this.#throttleScore
    this.#sessionModel =
      components.sessionModel ?? new RobustBaselineModel(SESSION_FEATURES, { throttleAt, name: 'sessions' })
    this.#addressModel =
      components.addressModel ?? new RobustBaselineModel(ADDRESS_FEATURES, { throttleAt, name: 'addresses' })
    if (this.#sessionModel.features.length !== SESSION_FEATURES.length) {
      throw new RangeError('"sessionModel" must score the session features')
    }
    if (this.#addressModel.features.length !== ADDRESS_FEATURES.length) {
      throw new RangeError('"addressModel" must score the address features')
    }
    this.#targetModel = new RobustBaselineModel(TARGET_FEATURES, { throttleAt, name: 'targets' })
    this.#prefixModel = new RobustBaselineModel(ADDRESS_FEATURES, { throttleAt, name: 'prefixes' })
    this.#nodeModel = new RobustBaselineModel(NODE_FEATURES, { throttleAt, name: 'node' })
    for (const m of this.#models()) this.#shares.set(m, new SourceShares(BASELINE_HALF_LIFE_MS))
    this.#lastTick = this.#clock.now()
    this.#bornAt = this.#lastTick
    this.#wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1024 })
    this.guard = { connect: (address, endpoint, close) => this.#connect(address, endpoint, close) }
    this.admitDht = ({ from, kind }) => this.#admitDht(from, kind)
  }

  #models(): AnomalyModel[] {
    return [this.#sessionModel, this.#targetModel, this.#addressModel, this.#prefixModel, this.#nodeModel]
  }

  start(): void {
    if (this.#timer !== undefined) return
    this.#lastTick = this.#clock.now()
    this.#timer = setInterval(() => this.tick(), this.#tickMs)
    this.#timer.unref()
    if (this.#store !== undefined) {
      this.#persistTimer = setInterval(
        () => void this.persist().catch(() => undefined),
        AI_PERSIST_INTERVAL_MS,
      )
      this.#persistTimer.unref()
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    clearInterval(this.#persistTimer)
    this.#timer = undefined
    this.#persistTimer = undefined
    await this.persist()
  }

  async restore(): Promise<boolean> {
    if (this.#store === undefined) return false
    let raw: Uint8Array | undefined
    try {
      raw = await this.#store.get(AI_STATE_KEY)
    } catch (err) {
      this.#log.warn({ err: String(err) }, 'ai: reading the learned state failed; learning afresh')
      return false
    }
    if (raw === undefined) return false
    let state: { v?: unknown; models?: Record<string, unknown> }
    try {
      state = JSON.parse(new TextDecoder().decode(raw)) as typeof state
    } catch {
      this.#log.warn({}, 'ai: the learned state is not JSON; learning afresh')
      return false
    }
    if (state.v !== 1 || typeof state.models !== 'object' || state.models === null) return false
    let loaded = 0
    for (const m of this.#models()) if (m.load(state.models[m.name])) loaded++
    this.#log.info({ models: loaded }, 'ai: learned state restored')
    return loaded > 0
  }

  async persist(): Promise<void> {
    if (this.#store === undefined) return
    const models: Record<string, unknown> = {}
    for (const m of this.#models()) models[m.name] = m.save()
    await this.#store.put(AI_STATE_KEY, new TextEncoder().encode(JSON.stringify({ v: 1, models })))
  }

  // ------------------------------------------------------------------ hooks (hot path)

  #address(ip: string, now: number): AddressRecord {
    const key = normalise(ip)
    let rec = this.#addresses.get(key)
    if (rec === undefined) {
      if (this.#addresses.size >= MAX_ADDRESSES) this.#forgetIdleAddresses()
      rec = new AddressRecord(key, now)
      this.#addresses.set(key, rec)
    }
    return rec
  }

  #allowed(addr: AddressRecord): boolean {
    return this.#allow.size > 0 && this.#allow.has(addr.address)
  }

  /**
   * Whether a new connection (or socket) from `addr` may proceed: true, or a refusal (`false`: 429; a string:
   * the reason, told at most TOLD_REFUSALS_PER_S times a second per address).
   */
  #admitConnection(addr: AddressRecord, now: number): true | false | string {
    let level = this.#policy.level(addr.key)
    let entry: PolicyEntry | undefined
    if (level !== 'normal') entry = this.#policy.get(addr.key)
    if (level === 'normal' && addr.members === 0) {
      // A flagged prefix holds back its addresses that carry no member in good standing.
      const prefixLevel = this.#policy.level(`net:${addr.prefix}`)
      if (prefixLevel !== 'normal') {
        level = prefixLevel
        entry = this.#policy.get(`net:${addr.prefix}`)
      }
    }
    if (level === 'normal') return true
    if (level === 'throttled' && takeToken(addr, 'conn', now)) return true
    if (!takeToken(addr, 'tell', now)) return false
    return refusal(entry, now)
  }

  #connect(
    ip: string,
    endpoint: GuardEndpoint | 'crdt',
    close: (reason: string) => void,
  ): Session | false | string {
    const now = this.#clock.now()
    const addr = this.#address(ip, now)
    addr.connections++
    const allowed = this.#allowed(addr)
    if (!allowed) {
      const verdict = this.#admitConnection(addr, now)
      if (verdict !== true) return verdict
    }
    const session = new Session(this, this.#nextId++, addr, endpoint, close, now, allowed)
    addr.sessions.add(session)
    this.#sessions.add(session)
    return session
  }

  admitThrottled(s: Session): boolean {
    if (s.level === 'blocked') return false
    const now = this.#clock.now()
    const perS = s.flooder ? THROTTLED_FLOODER_FRAMES_PER_S : THROTTLED_FRAMES_PER_S
    let tokens = s.tokens + ((now - s.refilledAt) * perS) / 1000
    if (tokens > perS * 2) tokens = perS * 2
    s.refilledAt = now
    if (tokens < 1) {
      s.tokens = tokens
      return false
    }
    s.tokens = tokens - 1
    return true
  }

  onRegistered(s: Session, peerId: string | undefined, credential: string | undefined): void {
    const addr = s.address
    if (peerId === undefined) {
      addr.authFailures++
      return
    }
    const key = peerKey(s.endpoint, peerId, credential)
    // A connection flagged before it registered stays flagged as the peer it becomes.
    this.#policy.rekey(s.key, key)
    s.settle(key, peerId)
    ;(s.endpoint === 'peerjs' ? this.#byPeerjs : this.#byPeer).set(peerId, s)
    s.allowed ||= this.#allow.has(peerId)
    s.registeredAt = this.#clock.now()
    s.newIdentity = addr.noteIdentity(key, s.registeredAt)
    if (!s.allowed) {
      s.level = this.#policy.level(key)
      if (s.level === 'blocked') s.close(refusal(this.#policy.get(key), this.#clock.now()))
    }
  }

  onClosed(s: Session): void {
    if (s.isClosed) return
    s.isClosed = true
    this.#sessions.delete(s)
    s.address.sessions.delete(s)
    s.address.topicsHeld -= s.topicsHeld
    if (s.peerId !== undefined) {
      const map = s.endpoint === 'peerjs' ? this.#byPeerjs : this.#byPeer
      if (map.get(s.peerId) === s) map.delete(s.peerId)
    }
    if (!s.settled) s.address.unsettled--
    const now = this.#clock.now()
    if (now - s.openedAt < SHORT_LIVED_MS) s.address.shortLived++
    if (s.newIdentity && now - s.registeredAt < CHURN_WITHIN_MS) s.address.noteDeparture(s.key, now)
  }

  socketOpened(socket: Socket): boolean {
    const raw = socket.remoteAddress
    if (raw === undefined) return true
    // Behind a trusted proxy a raw socket is the proxy's, shared by every client: nothing to tell apart.
    if (this.#clientAddress?.trustsProxies === true && this.#clientAddress.isTrustedProxy(raw)) return true
    const now = this.#clock.now()
    const addr = this.#address(raw, now)
    if (!this.#allowed(addr)) {
      const level = this.#policy.level(addr.key)
      if (level === 'blocked') return false
      if (addr.members === 0 && this.#policy.level(`net:${addr.prefix}`) === 'blocked') return false
    }
    addr.addPending(socket, now)
    socket.once('close', () => addr.removePending(socket))
    return true
  }

  socketUpgraded(socket: Socket): void {
    const ip = socket.remoteAddress
    if (ip !== undefined) this.#addresses.get(normalise(ip))?.removePending(socket)
  }

  crdtConnect(address: string, close: (reason: string) => void): CrdtGuardSession | false | string {
    const s = this.#connect(address, 'crdt', close)
    if (s === false || typeof s === 'string') return s
    return {
      data: (bytes: number) => {
        if (!s.settled) s.settle(undefined)
        s.bytesIn += bytes
        s.address.crdtBytes += bytes
      },
      closed: () => this.onClosed(s),
    }
  }

  crdtUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    let address: string
    try {
      address = this.#clientAddress?.(req) ?? (socket as Partial<Socket>).remoteAddress ?? ''
    } catch {
      address = (socket as Partial<Socket>).remoteAddress ?? ''
    }
    if (address === '') return true
    const session = this.crdtConnect(address, (reason) => {
      // The sync server owns the WebSocket: say why in a close frame of our own, then end the socket.
      if (socket.destroyed) return
      socket.write(closeFrame(CLOSE_BLOCKED, reason))
      socket.end()
      setTimeout(() => socket.destroy(), 1_000).unref()
    })
    if (session === false) {
      socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return false
    }
    if (typeof session === 'string') {
      socket.on('error', () => socket.destroy())
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => {})
        ws.close(CLOSE_BLOCKED, session.slice(0, 123))
      })
      return false
    }
    socket.on('data', (chunk: Buffer) => session.data(chunk.length))
    socket.once('close', () => session.closed())
    return true
  }

  #admitDht(from: string, kind: string): boolean {
    const now = this.#clock.now()
    const ip = hostOf(from)
    const addr = this.#address(ip, now)
    if (kind === 'malformed') {
      addr.dhtBad++
      return true
    }
    addr.dht++
    if (kind === 'store') addr.dhtStores++
    if (addr.dhtSince === 0) {
      const known = this.#dhtSources.get(addr.address)
      if (known === undefined) {
        this.#newDhtSources++
        if (this.#dhtSources.size >= MAX_DHT_SOURCES) {
          const oldest = this.#dhtSources.keys().next().value
          if (oldest !== undefined) this.#dhtSources.delete(oldest)
        }
        this.#dhtSources.set(addr.address, now)
        addr.dhtSince = now
      } else addr.dhtSince = known
    }
    if (this.#allowed(addr)) return true
    const level = this.#policy.level(addr.key)
    if (level === 'normal') {
      if (addr.members > 0) return true
      const prefixLevel = this.#policy.level(`net:${addr.prefix}`)
      if (prefixLevel === 'normal') return true
      return prefixLevel === 'throttled' && takeToken(addr, 'dht', now)
    }
    if (level === 'blocked') return false
    // New sources held back during a surge of new sources must not reach the routing table at all.
    if (this.#inSurge(addr)) return false
    return takeToken(addr, 'dht', now)
  }

  #inSurge(addr: AddressRecord): boolean {
    return (
      this.#dhtSurgeSince !== 0 &&
      addr.members === 0 &&
      addr.dhtSince !== 0 &&
      addr.dhtSince >= this.#dhtSurgeSince - SURGE_LOOKBACK_MS
    )
  }

  // ------------------------------------------------------------------ scoring

  tick(): void {
    const now = this.#clock.now()
    const dt = Math.max(1, now - this.#lastTick)
    this.#lastTick = now
    this.#round++
    for (const m of this.#models()) m.decay(dt)
    const d = decayFor(dt)
    const throttle = this.#throttleScore
    let scored = 0
    const transitions: [Transition, Iterable<Session>][] = []
    const nx = this.#nx
    nx.fill(0)

    // 1. Fold every connection; count the members in good standing of every address.
    const active: Session[] = []
    for (const addr of this.#addresses.values()) {
      addr.members = 0
      addr.established = 0
    }
    for (const s of this.#sessions) {
      s.external = 0
      s.externalReason = undefined
      const isActive = s.fold(now, d)
      if (s.settled && s.level === 'normal') {
        const addr = s.address
        addr.members++
        // Once established, a connection stays so (its identity's record at the address is kept for the hour).
        s.established ||= s.key.startsWith('conn:')
          ? now - s.openedAt >= ESTABLISHED_AFTER_MS
          : addr.establishedFor(s.key, now, ESTABLISHED_AFTER_MS)
        if (s.established) addr.established++
      }
      if (isActive || this.#policy.get(s.key) !== undefined) active.push(s)
      nx[N.SIGNALS] = nx[N.SIGNALS]! + Math.min(s.rateInitiated, CAP_SIGNALS)
      nx[N.TOPICS] = nx[N.TOPICS]! + Math.min(s.topicsHeld, CAP_TOPICS)
    }

    // 2. Connections as targets: a flooded peer is not punished; its flooders are.
    let flooded = 0
    for (const s of active) {
      if (!s.receiving) continue
      const x = s.targetVector(now, this.#tx)
      const score = this.#targetModel.score(x, this.#ts)
      scored++
      if (score >= throttle) {
        flooded++
        const reasons = this.#reasons({ model: this.#targetModel, x, scores: this.#ts })
        const top = reasons[0]
        for (const f of s.flooders(now)) {
          const src = (s.endpoint === 'peerjs' ? this.#byPeerjs : this.#byPeer).get(f.peer)
          if (src === undefined || src.allowed || src.external >= score) continue
          src.external = score
          src.externalReason = {
            feature: `flooding a peer: ${top?.feature ?? 'signals received'}`,
            value: round(f.recent / 2),
            p99: top?.p99 ?? 0,
            score: round(score),
          }
        }
      } else this.#learn(this.#targetModel, s.address.prefix, x, score, s.slowScore, now, s.id)
    }
    this.#flooded = flooded

    // 3. Connections as senders.
    for (const s of active) {
      const x = s.vector(this.#sx)
      const own = this.#sessionModel.score(x, this.#ss)
      const score = Math.max(own, s.external)
      scored++
      s.slowScore = SLOW_A * s.slowScore + (1 - SLOW_A) * score
      if (!s.allowed) {
        const fromExternal = s.external > own
        const t = this.#policy.update(s.key, score, now, () =>
          fromExternal && s.externalReason !== undefined
            ? [s.externalReason]
            : this.#reasons({ model: this.#sessionModel, x, scores: this.#ss }),
        )
        if (t !== undefined) {
          transitions.push([t, [s]])
          if (!this.#keyInfo.has(s.key)) this.#keyInfo.set(s.key, { address: s.address.address })
          if (t.from === 'normal') {
            s.address.flaggedKeys++
            s.flooder = fromExternal
          }
        }
      }
      s.level = s.allowed ? 'normal' : this.#policy.level(s.key)
      if (s.level === 'normal') s.flooder = false
      if (s.level === 'normal' && own < LEARN_MAX_SCORE && s.external === 0) {
        this.#learn(this.#sessionModel, s.address.prefix, x, own, s.slowScore, now, s.id)
      }
    }

    // 4. Addresses, summed into their prefixes.
    const ar = this.#ar
    const settling = now - this.#bornAt < NODE_SETTLE_MS
    for (const addr of this.#addresses.values()) {
      const isActive = addr.fold(now, d)
      const entry = this.#policy.get(addr.key)
      if (!isActive && entry === undefined) {
        const idle = addr.sessions.size === 0 && addr.pendingSockets.size === 0
        if (idle && now - addr.lastActive > ADDRESS_IDLE_MS) this.#addresses.delete(addr.address)
        continue
      }
      addr.raw(ar)
      let prefix = this.#prefixes.get(addr.prefix)
      if (prefix === undefined) {
        prefix = new PrefixRecord(addr.prefix)
        this.#prefixes.set(addr.prefix, prefix)
      }
      prefix.add(ar, addr.members, addr.established)
      // Each source adds at most its ceiling (per member): a few sources cannot make the node's baseline.
      const m = Math.max(1, addr.members)
      nx[N.DHT] = nx[N.DHT]! + Math.min(ar[A.DHT]!, CAP_DHT)
      nx[N.CONNECTIONS] = nx[N.CONNECTIONS]! + Math.min(ar[A.CONNECTIONS]!, CAP_CONNECTIONS * m)
      nx[N.UNPRODUCTIVE] = nx[N.UNPRODUCTIVE]! + Math.min(ar[A.UNPRODUCTIVE]!, CAP_UNPRODUCTIVE)
      nx[N.CRDT_BYTES] = nx[N.CRDT_BYTES]! + Math.min(ar[A.CRDT_BYTES]!, CAP_CRDT_BYTES * m)
      const x = perMember(ar, addr.members, addr.established, this.#ax)
      if (settling) {
        // Everyone reconnects after a restart, and nobody is established yet: arrivals say nothing.
        x[A.CONNECTIONS] = 0
        x[A.NEW_IDENTITIES] = 0
        x[A.SHORT_LIVED] = 0
      }
      let score = this.#addressModel.score(x, this.#as, this.#pressureOf(addr))
      let surge = false
      if (score < throttle && this.#inSurge(addr)) {
        score = throttle
        surge = true
      }
      scored++
      const allowed = this.#allowed(addr)
      const slow = addr.slowScore
      addr.slowScore = SLOW_A * slow + (1 - SLOW_A) * score
      if (!allowed) {
        const t = this.#policy.update(addr.key, score, now, () =>
          surge
            ? [{ feature: 'new DHT source during a surge of new sources', value: 1, p99: 0, score: throttle }]
            : this.#reasons({ model: this.#addressModel, x, scores: this.#as }),
        )
        if (t !== undefined) transitions.push([t, addr.sessions as Set<Session>])
      }
      const level = allowed ? 'normal' : this.#policy.level(addr.key)
      if (isActive && level === 'normal' && score < LEARN_MAX_SCORE) {
        this.#learn(this.#addressModel, addr.prefix, x, score, slow, now, addr.createdAt)
      }
    }

    // 5. Prefixes with more than one address: an attacker spread over a /24 or a /64.
    for (const prefix of this.#prefixes.values()) {
      if (!prefix.touched) {
        if (this.#policy.get(prefix.key) === undefined) this.#prefixes.delete(prefix.prefix)
        else this.#policy.update(prefix.key, 0, now, () => [])
        continue
      }
      if (prefix.addresses >= 2) {
        const x = perMember(prefix.spread(), prefix.members, prefix.established, this.#ax, PREFIX_SCORED)
        const score = this.#prefixModel.score(x, this.#as, this.#pressureOf(undefined))
        scored++
        const t = this.#policy.update(prefix.key, score, now, () =>
          this.#reasons({ model: this.#prefixModel, x, scores: this.#as }),
        )
        if (t !== undefined) transitions.push([t, []])
        if (score < LEARN_MAX_SCORE && this.#policy.level(prefix.key) === 'normal') {
          this.#learn(this.#prefixModel, prefix.prefix, x, score, 0, now)
        }
      }
      prefix.reset()
    }

    // 6. The whole node: pressure on a feature lowers the bar for the sources that make it.
    this.#newDhtSources60 = d.minute * this.#newDhtSources60 + this.#newDhtSources
    this.#newDhtSources = 0
    nx[N.NEW_DHT_SOURCES] = this.#newDhtSources60
    let newIdentities = 0
    for (const addr of this.#addresses.values()) newIdentities += addr.rateNewIdentities * 60
    nx[N.NEW_IDENTITIES] = newIdentities
    const nodeScore = settling ? 0 : this.#nodeModel.score(nx, this.#ns)
    if (settling) this.#ns.fill(0)
    scored++
    const pressed: string[] = []
    const on = new Uint8Array(ADDRESS_FEATURES.length)
    for (let j = 0; j < NODE_FEATURES.length; j++) {
      if (this.#ns[j]! < throttle) continue
      pressed.push(NODE_FEATURES[j]!.name)
      for (const i of PRESSES[j]!) on[i] = 1
    }
    this.#pressed = pressed.length > 0
    for (let i = 0; i < on.length; i++) {
      if (on[i] === 0) this.#pressureSince[i] = 0
      else if (this.#pressureSince[i] === 0) this.#pressureSince[i] = now
    }
    if (this.#ns[N.NEW_DHT_SOURCES]! >= throttle) this.#dhtSurgeSince ||= now
    else this.#dhtSurgeSince = 0
    if (pressed.join() !== this.#pressureNames.join()) {
      this.#log.warn({ pressure: pressed }, 'ai: node-wide pressure changed')
    }
    this.#pressureNames = pressed
    // One observation a round, made of contributions each capped at its source's ceiling: no per-source share.
    if (!settling && nodeScore < LEARN_MAX_SCORE) this.#nodeModel.learn(nx)

    for (const t of this.#policy.expire(now)) {
      // A session's key that expires has no open session to update (it was closed when blocked, or its level
      // is read again when it next speaks); an address's sessions are at hand.
      const addr = t.entry.key.startsWith('addr:') ? this.#addresses.get(t.entry.key.slice(5)) : undefined
      transitions.push([t, (addr?.sessions as Set<Session> | undefined) ?? []])
    }
    for (const [t, sessions] of transitions) this.#apply(t, sessions, now)
    for (const key of this.#keyInfo.keys()) if (this.#policy.get(key) === undefined) this.#keyInfo.delete(key)
    for (const sh of this.#shares.values()) sh.round(now)
    this.#scored = scored
    this.#scoredTotal += scored
  }

  /**
   * The features under pressure for `addr`: those whose pressure began after (or just before) the address
   * appeared, as a DHT source for DHT features. Sources established before an attack keep their usual bar.
   * Prefixes (`undefined`) are under every pressure.
   */
  #pressureOf(addr: AddressRecord | undefined): Uint8Array | undefined {
    if (!this.#pressed) return undefined
    const mask = this.#pressure
    for (let i = 0; i < mask.length; i++) {
      const since = this.#pressureSince[i]!
      if (since === 0) {
        mask[i] = 0
        continue
      }
      const born =
        addr === undefined
          ? Infinity
          : i === A.DHT || i === A.DHT_STORES || i === A.DHT_10M
            ? addr.dhtSince || Infinity
            : addr.createdAt
      mask[i] = born >= since - SURGE_LOOKBACK_MS ? 1 : 0
    }
    return mask
  }

  /**
   * Learns `x` if its source's share allows (rising keys and keys above the p99 are held to tighter caps). Each
   * key is learned every LEARN_EVERY rounds (`phase` spreads them over the rounds): the baseline needs samples,
   * not every round of every key.
   */
  #learn(
    model: AnomalyModel,
    source: string,
    x: Float64Array,
    score: number,
    slow: number,
    now: number,
    phase = 0,
  ): void {
    if (score >= LEARN_MAX_SCORE || (phase + this.#round) % LEARN_EVERY !== 0) return
    const above = score > 0
    if (above && slow > RISING_SCORE) return
    const w = this.#shares.get(model)!.weight(source, model.samples, above, now)
    if (w > 0) model.learn(x, w)
  }

  #reasons({ model, x, scores }: Scored): Reason[] {
    const out: Reason[] = []
    for (let i = 0; i < scores.length; i++) {
      if (scores[i]! <= 0) continue
      out.push({
        feature: model.features[i]!.name,
        value: round(x[i]!),
        p99: round(model.baseline(i).p99),
        score: round(scores[i]!),
      })
    }
    return out.sort((a, b) => b.score - a.score).slice(0, 4)
  }

  #apply(t: Transition, sessions: Iterable<Session>, now: number): void {
    const e = t.entry
    const address =
      this.#keyInfo.get(e.key)?.address ?? (e.key.startsWith('addr:') ? e.key.slice(5) : undefined)
    const fields = {
      key: e.key,
      ...(address === undefined ? {} : { address }),
      from: t.from,
      to: t.to,
      score: round(e.score),
      reasons: e.reasons,
      ...(t.to === 'blocked' ? { untilMs: e.until - now } : {}),
    }
    if (t.to === 'normal' || (t.from === 'blocked' && t.to === 'throttled')) {
      this.#log.info(fields, `ai: ${e.key} ${t.from} -> ${t.to}`)
    } else this.#log.warn(fields, `ai: ${e.key} ${t.to}`)
    // Keep the sessions' cached levels in step at once (not only at the next tick).
    const isAddress = e.key.startsWith('addr:')
    for (const s of [...sessions]) {
      if (!isAddress) s.level = e.level
      if (e.level === 'blocked' && !s.allowed) s.close(refusal(e, now))
    }
    if (isAddress && e.level === 'blocked') {
      const addr = this.#addresses.get(e.key.slice(5))
      for (const socket of addr?.pendingSockets.keys() ?? []) (socket as Socket).destroy()
    }
    if (e.key.startsWith('net:') && e.level === 'blocked') {
      // A blocked prefix: what its addresses without a member in good standing hold open for nothing goes.
      const prefix = e.key.slice(4)
      for (const addr of this.#addresses.values()) {
        if (addr.prefix !== prefix || addr.members > 0 || this.#allowed(addr)) continue
        for (const s of [...addr.sessions] as Session[]) if (!s.settled) s.close(refusal(e, now))
        for (const socket of [...addr.pendingSockets.keys()]) (socket as Socket).destroy()
      }
    }
  }

  /** At the cap: forgets every address with nothing open and nothing flagged, however recently it was seen. */
  #forgetIdleAddresses(): void {
    for (const addr of this.#addresses.values()) {
      if (addr.sessions.size > 0 || addr.pendingSockets.size > 0) continue
      if (this.#policy.get(addr.key) === undefined) this.#addresses.delete(addr.address)
    }
  }

  // ------------------------------------------------------------------ reports

  health(): AiHealth {
    const samples = {
      sessions: Math.round(this.#sessionModel.samples),
      addresses: Math.round(this.#addressModel.samples),
    }
    return {
      status: 'ok',
      model: this.#sessionModel.name === 'sessions' ? 'robust-baselines' : this.#sessionModel.name,
      training:
        samples.sessions >= MIN_TRAINING_SAMPLES && samples.addresses >= MIN_TRAINING_SAMPLES
          ? 'trained'
          : 'learning',
      samples,
      scored: this.#scored,
      scoredTotal: this.#scoredTotal,
      throttled: this.#policy.count('throttled'),
      blocked: this.#policy.count('blocked'),
      pressure: this.#pressureNames,
      flooded: this.#flooded,
    }
  }

  actions(): Readonly<Record<PolicyLevel, number>> {
    return this.#policy.actions()
  }

  flagged(): FlaggedEntry[] {
    const rank: Record<PolicyLevel, number> = { blocked: 0, throttled: 1, normal: 2 }
    const out: FlaggedEntry[] = []
    for (const e of this.#policy.entries()) out.push(this.#entry(e))
    return out.sort((a, b) => rank[a.level] - rank[b.level] || b.since - a.since)
  }

  #entry(e: PolicyEntry): FlaggedEntry {
    const colon = e.key.indexOf(':')
    const prefix = e.key.slice(0, colon)
    let id = e.key.slice(colon + 1)
    const kind: FlaggedEntry['kind'] =
      prefix === 'addr'
        ? 'address'
        : prefix === 'net'
          ? 'prefix'
          : prefix === 'peer'
            ? 'peer'
            : prefix === 'pj'
              ? 'peerjs'
              : 'connection'
    const info = this.#keyInfo.get(e.key)
    // PeerJS IDs have no '/': what follows it in the key is the holder's token digest.
    const slash = kind === 'peerjs' ? id.lastIndexOf('/') : -1
    const credential = slash === -1 ? undefined : id.slice(slash + 1)
    if (slash !== -1) id = id.slice(0, slash)
    const entry: FlaggedEntry = {
      kind,
      id,
      level: e.level,
      score: round(e.score),
      peak: round(e.peak),
      since: e.since,
      firstFlagged: e.firstFlagged,
      offenses: round(e.offenses),
      reasons: e.reasons,
    }
    if (credential !== undefined) entry.credential = credential
    const address = kind === 'address' ? id : info?.address
    if (address !== undefined) entry.address = address
    if (e.level === 'blocked') entry.until = e.until
    return entry
  }
}

/** What a refused or closed client is told: the level, the feature that drove it, when to come back. */
function refusal(entry: PolicyEntry | undefined, now: number): string {
  const feature = entry?.reasons[0]?.feature ?? 'abuse'
  if (entry?.level === 'blocked') {
    return `blocked: ${feature}; retry in ${Math.max(1, Math.ceil((entry.until - now) / 1000))} s`.slice(
      0,
      123,
    )
  }
  return `throttled: ${feature}; slow down`.slice(0, 123)
}

function takeToken(addr: AddressRecord, which: 'conn' | 'dht' | 'tell', now: number): boolean {
  const perS =
    which === 'conn'
      ? THROTTLED_CONNECTIONS_PER_S
      : which === 'dht'
        ? THROTTLED_DHT_PER_S
        : TOLD_REFUSALS_PER_S
  const burst = which === 'dht' ? perS * 2 : 2
  const before = which === 'conn' ? addr.connTokens : which === 'dht' ? addr.dhtTokens : addr.tellTokens
  const at =
    which === 'conn' ? addr.connRefilledAt : which === 'dht' ? addr.dhtRefilledAt : addr.tellRefilledAt
  let tokens = Math.min(burst, before + ((now - at) * perS) / 1000)
  const ok = tokens >= 1
  if (ok) tokens -= 1
  if (which === 'conn') {
    addr.connTokens = tokens
    addr.connRefilledAt = now
  } else if (which === 'dht') {
    addr.dhtTokens = tokens
    addr.dhtRefilledAt = now
  } else {
    addr.tellTokens = tokens
    addr.tellRefilledAt = now
  }
  return ok
}

function round(x: number): number {
  return Math.round(x * 100) / 100
}
