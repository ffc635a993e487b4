/**
 * Features of the AI engine: per connection (a signaling session, keyed by its peer ID once registered) and
 * per source address (IP), updated as traffic flows. The hot path only counts (`note*` methods: a few
 * additions, no allocation); once per tick the counts are folded into exponentially weighted rates and
 * turned into a feature vector.
 *
 * Rates use an EWMA normalised so that a constant rate r reads r: `rate ← a·rate + (1 − a)·count/dt` with
 * `a = exp(−dt/τ)`. τ = 1 s for frames (a flood shows within a tick or two) and 2 s for connections.
 */
import type { FeatureSpec } from './model'

const FRAME_TAU_MS = 1_000
const CONN_TAU_MS = 2_000
/** Errors per frame are counted over this horizon. */
const RATIO_TAU_MS = 10_000
/** Distinct targets / identities are counted in windows of this length (the previous one fades out). */
export const TARGET_WINDOW_MS = 10_000
export const IDENTITY_WINDOW_MS = 60_000
/** Distinct values remembered per window (bounds memory per entity). */
const MAX_DISTINCT = 256
/** A connection open this long without doing anything useful is unproductive (slow-loris). */
export const UNPRODUCTIVE_AFTER_MS = 1_000
/** A connection closed within this time of opening is short-lived. */
export const SHORT_LIVED_MS = 2_000

/** Session features; the order is the vector's. */
export const SESSION_FEATURES: readonly FeatureSpec[] = [
  { name: 'signals/s', floor: 10, prior: [0.5, 20] },
  { name: 'topic ops/s', floor: 3, prior: [0.1, 2] },
  { name: 'other frames/s', floor: 5, prior: [0.2, 2] },
  { name: 'dropped frames/s', floor: 1, prior: [0, 0.5] },
  { name: 'error ratio', floor: 0.3, prior: [0.01, 0.2] },
  { name: 'distinct targets', floor: 8, prior: [1, 5] },
  { name: 'bytes in/s', floor: 20_000, prior: [200, 10_000] },
  // What the node sends a peer is mostly what others send it: a high floor, so a flooded victim is not flagged.
  { name: 'bytes out/s', floor: 1_000_000, prior: [500, 20_000] },
]

/** Address features; the order is the vector's. */
export const ADDRESS_FEATURES: readonly FeatureSpec[] = [
  { name: 'connections/s', floor: 2, prior: [0.05, 1] },
  { name: 'open connections', floor: 8, prior: [1, 4] },
  { name: 'unproductive connections', floor: 3, prior: [0, 1] },
  { name: 'registrations/s', floor: 1, prior: [0.05, 0.5] },
  { name: 'distinct identities', floor: 5, prior: [1, 3] },
  { name: 'failed authentications/s', floor: 0.5, prior: [0, 0.1] },
  { name: 'short-lived connections/s', floor: 1, prior: [0, 0.3] },
  { name: 'DHT requests/s', floor: 20, prior: [1, 10] },
  { name: 'DHT stores/s', floor: 5, prior: [0.05, 1] },
  { name: 'bad datagrams/s', floor: 2, prior: [0, 0.2] },
  { name: 'frames/s', floor: 50, prior: [1, 30] },
]

/** Frame classes. */
export const enum FrameClass {
  Signal = 0,
  Topic = 1,
  Other = 2,
  Dropped = 3,
}

/** Message types by class (native, y-webrtc and PeerJS names). */
const CLASS_OF: Record<string, FrameClass> = {
  offer: FrameClass.Signal,
  answer: FrameClass.Signal,
  candidate: FrameClass.Signal,
  publish: FrameClass.Signal,
  OFFER: FrameClass.Signal,
  ANSWER: FrameClass.Signal,
  CANDIDATE: FrameClass.Signal,
  join: FrameClass.Topic,
  leave: FrameClass.Topic,
  discover: FrameClass.Topic,
  subscribe: FrameClass.Topic,
  unsubscribe: FrameClass.Topic,
  'rate-limited': FrameClass.Dropped,
  invalid: FrameClass.Dropped,
}

export function frameClass(type: string): FrameClass {
  return CLASS_OF[type] ?? FrameClass.Other
}

/** The decay factors of one tick, computed once for every record. */
export interface Decay {
  dtMs: number
  frame: number
  conn: number
  ratio: number
}

export function decayFor(dtMs: number): Decay {
  return {
    dtMs,
    frame: Math.exp(-dtMs / FRAME_TAU_MS),
    conn: Math.exp(-dtMs / CONN_TAU_MS),
    ratio: Math.exp(-dtMs / RATIO_TAU_MS),
  }
}

function ewma(rate: number, count: number, a: number, dtMs: number): number {
  return a * rate + ((1 - a) * count * 1000) / dtMs
}

/** Distinct values in a sliding window: the current window's set plus the fading count of the last one. */
export class DistinctCounter {
  #current: Set<string> | undefined
  #previous = 0
  #windowStart: number
  #last: string | undefined

  constructor(
    readonly windowMs: number,
    now: number,
  ) {
    this.#windowStart = now
  }

  add(value: string): void {
    if (value === this.#last) return // the common case: the same peer again
    this.#last = value
    const set = (this.#current ??= new Set())
    if (set.size < MAX_DISTINCT) set.add(value)
  }

  count(now: number): number {
    let elapsed = now - this.#windowStart
    if (elapsed >= this.windowMs) {
      this.#previous = elapsed >= 2 * this.windowMs ? 0 : (this.#current?.size ?? 0)
      this.#current = undefined
      this.#last = undefined
      this.#windowStart = now
      elapsed = 0
    }
    return (this.#current?.size ?? 0) + this.#previous * (1 - elapsed / this.windowMs)
  }
}

/**
 * Policy key of a registered peer. PeerJS IDs are chosen by the client, so they live in their own namespace:
 * a PeerJS client cannot take on (or get blocked) a native peer's proven ID.
 */
export function peerKey(endpoint: string, peerId: string): string {
  return endpoint === 'peerjs' ? `pj:${peerId}` : `peer:${peerId}`
}

/** One signaling connection. */
export class SessionRecord {
  readonly openedAt: number
  /** Policy key: the peer once registered (`peer:<id>`, `pj:<id>`), the connection before (`conn:<n>`). */
  key: string
  /** Counted in its address's `unsettled` until it registers (native) or sends a frame (others). */
  settled = false
  isClosed = false
  /** Counts since the last tick. */
  readonly counts = new Float64Array(4)
  bytesIn = 0
  bytesOut = 0
  errors = 0
  /** Rates per second. */
  readonly rates = new Float64Array(4)
  rateIn = 0
  rateOut = 0
  errorsDecayed = 0
  framesDecayed = 0
  readonly targets: DistinctCounter
  /** Frames ever seen (slow-loris: a connection that never sends one is unproductive). */
  frames = 0
  /** Throttle token bucket (used only while throttled). */
  tokens = 0
  refilledAt = 0

  constructor(
    readonly id: number,
    readonly address: AddressRecord,
    readonly endpoint: string,
    readonly close: (reason: string) => void,
    now: number,
  ) {
    this.openedAt = now
    this.key = `conn:${id}`
    this.targets = new DistinctCounter(TARGET_WINDOW_MS, now)
    address.unsettled++
  }

  /** The connection registered as `peerId` (or, on the other endpoints, spoke): it is settled. */
  settle(peerId: string | undefined): void {
    if (peerId !== undefined) this.key = peerKey(this.endpoint, peerId)
    if (!this.settled) {
      this.settled = true
      this.address.unsettled--
    }
  }

  noteFrame(cls: FrameClass, bytes: number, target: string | undefined): void {
    this.counts[cls]! += 1
    this.bytesIn += bytes
    if (this.frames++ === 0 && this.endpoint !== 'native') this.settle(undefined)
    this.address.frames++
    if (target !== undefined && cls !== FrameClass.Dropped) this.targets.add(target)
  }

  /** Folds the counts into rates; returns whether the session did anything lately. */
  fold(d: Decay): boolean {
    let active = false
    const frames = this.counts[0]! + this.counts[1]! + this.counts[2]!
    for (let c = 0; c < 4; c++) {
      const n = this.counts[c]!
      if (n > 0) active = true
      this.rates[c] = ewma(this.rates[c]!, n, d.frame, d.dtMs)
      this.counts[c] = 0
    }
    this.rateIn = ewma(this.rateIn, this.bytesIn, d.frame, d.dtMs)
    this.rateOut = ewma(this.rateOut, this.bytesOut, d.frame, d.dtMs)
    this.framesDecayed = d.ratio * this.framesDecayed + frames
    this.errorsDecayed = d.ratio * this.errorsDecayed + this.errors
    if (this.bytesOut > 0 || this.errors > 0) active = true
    this.bytesIn = 0
    this.bytesOut = 0
    this.errors = 0
    return active || this.rates[0]! + this.rates[1]! + this.rates[2]! + this.rates[3]! > 0.05
  }

  vector(now: number, out: Float64Array): Float64Array {
    out[0] = this.rates[FrameClass.Signal]!
    out[1] = this.rates[FrameClass.Topic]!
    out[2] = this.rates[FrameClass.Other]!
    out[3] = this.rates[FrameClass.Dropped]!
    // A ratio needs a few frames behind it to mean anything.
    out[4] = this.framesDecayed >= 10 ? this.errorsDecayed / this.framesDecayed : 0
    out[5] = this.targets.count(now)
    out[6] = this.rateIn
    out[7] = this.rateOut
    return out
  }
}

/** One source address (IP). */
export class AddressRecord {
  readonly sessions = new Set<SessionRecord>()
  /** Raw TCP sockets on the WebSocket port not (yet) upgraded, with their open times. */
  readonly pendingSockets = new Map<object, number>()
  connections = 0
  registrations = 0
  authFailures = 0
  shortLived = 0
  dht = 0
  dhtStores = 0
  dhtBad = 0
  frames = 0
  /** Sessions not settled yet plus pending sockets: what can turn unproductive with time alone. */
  unsettled = 0
  readonly key: string
  readonly rates = new Float64Array(8)
  readonly identities: DistinctCounter
  /** Throttle token buckets (connections, DHT requests), used only while throttled. */
  connTokens = 0
  connRefilledAt = 0
  dhtTokens = 0
  dhtRefilledAt = 0
  lastActive: number

  constructor(
    readonly address: string,
    now: number,
  ) {
    this.lastActive = now
    this.key = `addr:${address}`
    this.identities = new DistinctCounter(IDENTITY_WINDOW_MS, now)
  }

  fold(now: number, d: Decay): boolean {
    const r = this.rates
    const active =
      this.connections +
        this.registrations +
        this.authFailures +
        this.shortLived +
        this.dht +
        this.dhtStores +
        this.dhtBad +
        this.frames >
      0
    r[0] = ewma(r[0]!, this.connections, d.conn, d.dtMs)
    r[1] = ewma(r[1]!, this.registrations, d.frame, d.dtMs)
    r[2] = ewma(r[2]!, this.authFailures, d.frame, d.dtMs)
    r[3] = ewma(r[3]!, this.shortLived, d.conn, d.dtMs)
    r[4] = ewma(r[4]!, this.dht, d.frame, d.dtMs)
    r[5] = ewma(r[5]!, this.dhtStores, d.frame, d.dtMs)
    r[6] = ewma(r[6]!, this.dhtBad, d.frame, d.dtMs)
    r[7] = ewma(r[7]!, this.frames, d.frame, d.dtMs)
    this.connections = 0
    this.registrations = 0
    this.authFailures = 0
    this.shortLived = 0
    this.dht = 0
    this.dhtStores = 0
    this.dhtBad = 0
    this.frames = 0
    if (active) this.lastActive = now
    let sum = 0
    for (let i = 0; i < r.length; i++) sum += r[i]!
    // Settled sessions that stay quiet change nothing here; unsettled ones may turn unproductive.
    return active || sum > 0.05 || this.unsettled > 0
  }

  addPending(socket: object, now: number): void {
    if (this.pendingSockets.has(socket)) return
    this.pendingSockets.set(socket, now)
    this.unsettled++
  }

  removePending(socket: object): void {
    if (this.pendingSockets.delete(socket)) this.unsettled--
  }

  unproductive(now: number): number {
    if (this.unsettled === 0) return 0
    let n = 0
    for (const s of this.sessions) {
      // Native peers must register; y-webrtc and PeerJS connections must at least speak.
      if (!s.settled && now - s.openedAt >= UNPRODUCTIVE_AFTER_MS) n++
    }
    for (const at of this.pendingSockets.values()) if (now - at >= UNPRODUCTIVE_AFTER_MS) n++
    return n
  }

  vector(now: number, out: Float64Array): Float64Array {
    out[0] = this.rates[0]!
    out[1] = this.sessions.size + this.pendingSockets.size
    out[2] = this.unproductive(now)
    out[3] = this.rates[1]!
    out[4] = this.identities.count(now)
    out[5] = this.rates[2]!
    out[6] = this.rates[3]!
    out[7] = this.rates[4]!
    out[8] = this.rates[5]!
    out[9] = this.rates[6]!
    out[10] = this.rates[7]!
    return out
  }
}
