/**
 * The node's AI engine: adaptive abuse detection. It watches signaling connections (through
 * `@x/signaling`'s guard hook), DHT requests (through `@x/kademlia`'s admit hook) and raw sockets on the
 * WebSocket port, learns what normal traffic looks like on this node (see `model.ts`), scores every peer and
 * address four times a second, and throttles, then blocks, what stands out (see `policy.ts`). The packages
 * do not know it exists: they only call their hooks.
 */
import type { Socket } from 'node:net'
import type { GuardEndpoint, GuardSession, SignalingGuard } from '@x/signaling'
import type { AdmitFn } from '@x/kademlia'
import {
  ADDRESS_FEATURES,
  AddressRecord,
  FrameClass,
  SESSION_FEATURES,
  SessionRecord,
  SHORT_LIVED_MS,
  decayFor,
  frameClass,
  peerKey,
} from './features'
import { RobustBaselineModel, type AnomalyModel } from './model'
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
const LEARN_MAX_SCORE = 1
/** Throttled sessions may send this many frames per second (burst twice as many). */
const THROTTLED_FRAMES_PER_S = 10
/** Throttled addresses may open this many connections per second (burst 2) and send DHT requests at 5/s. */
const THROTTLED_CONNECTIONS_PER_S = 0.5
const THROTTLED_DHT_PER_S = 5
/** Address records kept at most; idle ones are dropped first. */
const MAX_ADDRESSES = 50_000
/** An address record with nothing open and no activity for this long is forgotten. */
const ADDRESS_IDLE_MS = 60_000

interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}

export interface AiEngineComponents {
  logger: Logger
  /** @default Date */
  clock?: { now(): number }
  /** Models to use instead of the default robust baselines (their feature lists must match). */
  sessionModel?: AnomalyModel
  addressModel?: AnomalyModel
}

export interface AiEngineInit {
  /** Off: no hooks are installed and `/api/health` reports `ai` as disabled. @default true */
  enabled?: boolean
  /** IP addresses and peer IDs that are scored but never throttled or blocked. @default [] */
  allowList?: readonly string[]
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
      /** Peers, connections and addresses scored in the last tick, and in all. */
      scored: number
      scoredTotal: number
      throttled: number
      blocked: number
    }

/** One entry of `GET /api/ai/flagged`. */
export interface FlaggedEntry {
  kind: 'peer' | 'peerjs' | 'connection' | 'address'
  id: string
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
  start(): void
  stop(): void
  health(): AiHealth
  /** Currently throttled or blocked keys, then recently released ones, most severe first. */
  flagged(): FlaggedEntry[]
  /** Runs one scoring round now (tests; the timer calls it every `tickMs`). */
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
  start: () => {},
  stop: () => {},
  health: () => ({ status: 'disabled', reason: 'the AI engine is turned off (--ai off)' }),
  flagged: () => [],
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

class Session extends SessionRecord implements GuardSession {
  /** The policy level of this session's key, refreshed every tick and on every transition. */
  level: PolicyLevel = 'normal'
  allowed: boolean

  constructor(
    readonly engine: Engine,
    id: number,
    address: AddressRecord,
    endpoint: GuardEndpoint,
    close: (reason: string) => void,
    now: number,
    allowed: boolean,
  ) {
    super(id, address, endpoint, close, now)
    this.allowed = allowed
  }

  frame(type: string, bytes: number, target: string | undefined): boolean {
    const cls = frameClass(type)
    this.noteFrame(cls, bytes, target)
    if (this.level === 'normal' || cls === FrameClass.Dropped) return true
    return this.engine.admitThrottled(this)
  }

  sent(bytes: number): void {
    this.bytesOut += bytes
  }

  error(): void {
    this.errors++
  }

  registered(peerId: string | undefined): void {
    this.engine.onRegistered(this, peerId)
  }

  closed(): void {
    this.engine.onClosed(this)
  }
}

class Engine implements AiEngine {
  readonly enabled = true
  readonly guard: SignalingGuard
  readonly admitDht: AdmitFn
  readonly #log: Logger
  readonly #clock: { now(): number }
  readonly #tickMs: number
  readonly #allow: ReadonlySet<string>
  readonly #sessionModel: AnomalyModel
  readonly #addressModel: AnomalyModel
  readonly #policy: PolicyBook
  readonly #sessions = new Set<Session>()
  readonly #addresses = new Map<string, AddressRecord>()
  /** Address of flagged peer and connection keys, for the flagged list. */
  readonly #keyAddress = new Map<string, string>()
  #nextId = 1
  #timer: ReturnType<typeof setInterval> | undefined
  #lastTick: number
  #scored = 0
  #scoredTotal = 0
  readonly #sx: Float64Array
  readonly #ss: Float64Array
  readonly #ax: Float64Array
  readonly #as: Float64Array

  constructor(components: AiEngineComponents, init: AiEngineInit) {
    this.#log = components.logger
    this.#clock = components.clock ?? Date
    this.#tickMs = init.tickMs ?? AI_TICK_MS
    if (!Number.isFinite(this.#tickMs) || this.#tickMs <= 0) {
      throw new RangeError(`"tickMs" must be a positive number, got ${String(init.tickMs)}`)
    }
    this.#allow = new Set((init.allowList ?? []).map((a) => normalise(a)))
    this.#sessionModel = components.sessionModel ?? new RobustBaselineModel(SESSION_FEATURES)
    this.#addressModel = components.addressModel ?? new RobustBaselineModel(ADDRESS_FEATURES)
    if (this.#sessionModel.features.length !== SESSION_FEATURES.length) {
      throw new RangeError('"sessionModel" must score the session features')
    }
    if (this.#addressModel.features.length !== ADDRESS_FEATURES.length) {
      throw new RangeError('"addressModel" must score the address features')
    }
    this.#policy = new PolicyBook(init.policy)
    this.#lastTick = this.#clock.now()
    this.#sx = new Float64Array(SESSION_FEATURES.length)
    this.#ss = new Float64Array(SESSION_FEATURES.length)
    this.#ax = new Float64Array(ADDRESS_FEATURES.length)
    this.#as = new Float64Array(ADDRESS_FEATURES.length)
    this.guard = { connect: (address, endpoint, close) => this.#connect(address, endpoint, close) }
    this.admitDht = ({ from, kind }) => this.#admitDht(from, kind)
  }

  start(): void {
    if (this.#timer !== undefined) return
    this.#lastTick = this.#clock.now()
    this.#timer = setInterval(() => this.tick(), this.#tickMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
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

  #connect(ip: string, endpoint: GuardEndpoint, close: (reason: string) => void): GuardSession | false {
    const now = this.#clock.now()
    const addr = this.#address(ip, now)
    addr.connections++
    const allowed = this.#allow.has(addr.address)
    if (!allowed) {
      const level = this.#policy.level(addr.key)
      if (level === 'blocked') return false
      if (level === 'throttled' && !takeToken(addr, 'conn', now)) return false
    }
    const session = new Session(this, this.#nextId++, addr, endpoint, close, now, allowed)
    addr.sessions.add(session)
    this.#sessions.add(session)
    return session
  }

  admitThrottled(s: Session): boolean {
    if (s.level === 'blocked') return false
    const now = this.#clock.now()
    let tokens = s.tokens + ((now - s.refilledAt) * THROTTLED_FRAMES_PER_S) / 1000
    if (tokens > THROTTLED_FRAMES_PER_S * 2) tokens = THROTTLED_FRAMES_PER_S * 2
    s.refilledAt = now
    if (tokens < 1) {
      s.tokens = tokens
      return false
    }
    s.tokens = tokens - 1
    return true
  }

  onRegistered(s: Session, peerId: string | undefined): void {
    const addr = s.address
    if (peerId === undefined) {
      addr.authFailures++
      return
    }
    // A connection flagged before it registered stays flagged as the peer it becomes.
    this.#policy.rekey(s.key, peerKey(s.endpoint, peerId))
    s.settle(peerId)
    s.allowed ||= this.#allow.has(peerId)
    addr.registrations++
    addr.identities.add(peerId)
    if (!s.allowed) {
      s.level = this.#policy.level(s.key)
      if (s.level === 'blocked') s.close('blocked: this peer was flagged as abusive')
    }
  }

  onClosed(s: Session): void {
    if (s.isClosed) return
    s.isClosed = true
    this.#sessions.delete(s)
    s.address.sessions.delete(s)
    if (!s.settled) s.address.unsettled--
    if (this.#clock.now() - s.openedAt < SHORT_LIVED_MS) s.address.shortLived++
  }

  socketOpened(socket: Socket): boolean {
    const ip = socket.remoteAddress
    if (ip === undefined) return true
    const now = this.#clock.now()
    const addr = this.#address(ip, now)
    if (!this.#allow.has(addr.address) && this.#policy.level(addr.key) === 'blocked') return false
    addr.addPending(socket, now)
    socket.once('close', () => addr.removePending(socket))
    return true
  }

  socketUpgraded(socket: Socket): void {
    const ip = socket.remoteAddress
    if (ip !== undefined) this.#addresses.get(normalise(ip))?.removePending(socket)
  }

  #admitDht(from: string, kind: string): boolean {
    const now = this.#clock.now()
    const addr = this.#address(hostOf(from), now)
    if (kind === 'malformed') {
      addr.dhtBad++
      return true
    }
    addr.dht++
    if (kind === 'store') addr.dhtStores++
    if (this.#allow.has(addr.address)) return true
    const level = this.#policy.level(addr.key)
    if (level === 'normal') return true
    if (level === 'blocked') return false
    return takeToken(addr, 'dht', now)
  }

  // ------------------------------------------------------------------ scoring

  tick(): void {
    const now = this.#clock.now()
    const dt = Math.max(1, now - this.#lastTick)
    this.#lastTick = now
    this.#sessionModel.decay(dt)
    this.#addressModel.decay(dt)
    const decay = decayFor(dt)
    let scored = 0
    /** Level changes, with the sessions they concern (found here, not by a scan of every session). */
    const transitions: [Transition, Iterable<Session>][] = []

    for (const s of this.#sessions) {
      const active = s.fold(decay)
      const key = s.key
      const entry = this.#policy.get(key)
      if (!active && entry === undefined) continue
      const x = s.vector(now, this.#sx)
      const score = this.#sessionModel.score(x, this.#ss)
      scored++
      if (!s.allowed) {
        const t = this.#policy.update(key, score, now, () => this.#reasons(this.#sessionModel, x, this.#ss))
        if (t !== undefined) {
          transitions.push([t, [s]])
          this.#keyAddress.set(key, s.address.address)
        }
      }
      s.level = s.allowed ? 'normal' : this.#policy.level(key)
      if (active && score < LEARN_MAX_SCORE && s.level === 'normal') this.#sessionModel.learn(x)
    }

    for (const addr of this.#addresses.values()) {
      const active = addr.fold(now, decay)
      const entry = this.#policy.get(addr.key)
      if (!active && entry === undefined) {
        const idle = addr.sessions.size === 0 && addr.pendingSockets.size === 0
        if (idle && now - addr.lastActive > ADDRESS_IDLE_MS) this.#addresses.delete(addr.address)
        continue
      }
      const x = addr.vector(now, this.#ax)
      const score = this.#addressModel.score(x, this.#as)
      scored++
      const allowed = this.#allow.has(addr.address)
      if (!allowed) {
        const t = this.#policy.update(addr.key, score, now, () =>
          this.#reasons(this.#addressModel, x, this.#as),
        )
        if (t !== undefined) transitions.push([t, addr.sessions as Set<Session>])
      }
      const level = allowed ? 'normal' : this.#policy.level(addr.key)
      if (active && score < LEARN_MAX_SCORE && level === 'normal') this.#addressModel.learn(x)
    }

    for (const t of this.#policy.expire(now)) {
      // A session's key that expires has no open session to update (it was closed when blocked, or its level
      // is read again when it next speaks); an address's sessions are at hand.
      const addr = t.entry.key.startsWith('addr:') ? this.#addresses.get(t.entry.key.slice(5)) : undefined
      transitions.push([t, (addr?.sessions as Set<Session> | undefined) ?? []])
    }
    for (const [t, sessions] of transitions) this.#apply(t, sessions)
    for (const key of this.#keyAddress.keys())
      if (this.#policy.get(key) === undefined) this.#keyAddress.delete(key)
    this.#scored = scored
    this.#scoredTotal += scored
  }

  #reasons(model: AnomalyModel, x: Float64Array, scores: Float64Array): Reason[] {
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

  #apply(t: Transition, sessions: Iterable<Session>): void {
    const e = t.entry
    const fields = {
      key: e.key,
      from: t.from,
      to: t.to,
      score: round(e.score),
      reasons: e.reasons,
      ...(t.to === 'blocked' ? { untilMs: e.until - this.#clock.now() } : {}),
    }
    if (t.to === 'normal' || (t.from === 'blocked' && t.to === 'throttled')) {
      this.#log.info(fields, `ai: ${e.key} ${t.from} -> ${t.to}`)
    } else this.#log.warn(fields, `ai: ${e.key} ${t.to}`)
    // Keep the sessions' cached levels in step at once (not only at the next tick).
    const isAddress = e.key.startsWith('addr:')
    for (const s of [...sessions]) {
      if (!isAddress) s.level = e.level
      if (e.level === 'blocked' && !s.allowed) s.close(`blocked: ${e.reasons[0]?.feature ?? 'abuse'}`)
    }
    if (isAddress && e.level === 'blocked') {
      const addr = this.#addresses.get(e.key.slice(5))
      for (const socket of addr?.pendingSockets.keys() ?? []) (socket as Socket).destroy()
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
      model: this.#sessionModel.name,
      training:
        samples.sessions >= MIN_TRAINING_SAMPLES && samples.addresses >= MIN_TRAINING_SAMPLES
          ? 'trained'
          : 'learning',
      samples,
      scored: this.#scored,
      scoredTotal: this.#scoredTotal,
      throttled: this.#policy.count('throttled'),
      blocked: this.#policy.count('blocked'),
    }
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
    const id = e.key.slice(colon + 1)
    const kind =
      prefix === 'addr' ? 'address' : prefix === 'peer' ? 'peer' : prefix === 'pj' ? 'peerjs' : 'connection'
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
    const address = kind === 'address' ? id : this.#keyAddress.get(e.key)
    if (address !== undefined) entry.address = address
    if (e.level === 'blocked') entry.until = e.until
    return entry
  }
}

function takeToken(addr: AddressRecord, which: 'conn' | 'dht', now: number): boolean {
  const perS = which === 'conn' ? THROTTLED_CONNECTIONS_PER_S : THROTTLED_DHT_PER_S
  const burst = which === 'conn' ? 2 : perS * 2
  const before = which === 'conn' ? addr.connTokens : addr.dhtTokens
  const at = which === 'conn' ? addr.connRefilledAt : addr.dhtRefilledAt
  let tokens = Math.min(burst, before + ((now - at) * perS) / 1000)
  const ok = tokens >= 1
  if (ok) tokens -= 1
  if (which === 'conn') {
    addr.connTokens = tokens
    addr.connRefilledAt = now
  } else {
    addr.dhtTokens = tokens
    addr.dhtRefilledAt = now
  }
  return ok
}

function round(x: number): number {
  return Math.round(x * 100) / 100
}
