/**
 * Features of the AI engine, updated as traffic flows and turned into vectors once per scoring round:
 *
 * - per connection (a signaling or CRDT session, keyed by its peer once registered): what it sends, and to whom;
 * - per connection as a target (a victim's view): what it receives, from whom, asked for or not;
 * - per source address and per address prefix (IPv4 /24, IPv6 /64), normalised by the members in good standing
 *   the address carries, so that a NAT'd office is many peers, not one;
 * - node-wide sums, so that an attack spread over many addresses shows as pressure on the whole node.
 *
 * The hot path only counts (`frame`, `sent`: a few additions, no allocation while a connection keeps talking to
 * the same peer). Who talks to whom is kept per connection as pairs (what went out to a peer, what came back),
 * updated when the peer changes and at every round; from the pairs come replies (to a peer that made contact
 * first), discovered targets (from the connection's own `discover`), one-sided traffic and unanswered targets.
 *
 * Short-term rates use an EWMA normalised so that a constant rate r reads r: `rate ← a·rate + (1 − a)·count/dt`
 * with `a = exp(−dt/τ)`. Budgets over minutes and hours are decayed counts `c ← a·c + count` (τ = 10 min, 1 h):
 * what a key did over that horizon, so that an attacker held under the short-term thresholds still adds up.
 */
import type { FeatureSpec } from './model'

const FRAME_TAU_MS = 1_000
const CONN_TAU_MS = 2_000
const CRDT_TAU_MS = 10_000
/** DHT requests come in bursts (a bootstrap, a record republish): rates over a few seconds. */
const DHT_TAU_MS = 3_000
/** Errors per frame, and new targets, are counted over this horizon. */
const RATIO_TAU_MS = 10_000
const TEN_MIN_MS = 10 * 60_000
const HOUR_MS = 60 * 60_000
/** Distinct values are counted in windows of this length (the previous one fades out). */
export const SOURCE_WINDOW_MS = 10_000
/** Distinct values remembered per window (bounds memory per entity). */
const MAX_DISTINCT = 256
/** A connection open this long without registering (native, PeerJS) or subscribing (y-webrtc) is unproductive. */
export const UNPRODUCTIVE_AFTER_MS = 1_000
/** A connection closed within this time of opening is short-lived. */
export const SHORT_LIVED_MS = 2_000
/** A new identity that left is churn unless it comes back within this time. */
export const CHURN_RETURN_MS = 5_000

/** Peers a connection keeps pair state for; beyond, new peers count as unanswered and one-sided at once. */
export const MAX_PAIRS = 128
/** Pair counts decay with this time constant; a pair idle this long is forgotten. */
const PAIR_TAU_MS = TEN_MIN_MS
/** A target that has not answered within this time is unanswered. */
export const REPLY_GRACE_MS = 1_500
/** Unanswered targets are counted over this window. */
export const UNANSWERED_WINDOW_MS = 60_000
/**
 * Signals a peer may send a target that did not answer within `REPLY_GRACE_MS`, or beyond `ONE_SIDED_RATIO`
 * per signal it answered with, before they count as one-sided. Signals to a new target are judged once it
 * answered or the grace passed: a trickle of ICE candidates sent before the answer arrives is not one-sided.
 */
export const ONE_SIDED_SLACK = 16
export const ONE_SIDED_RATIO = 8
/** The same for what a connection receives from a peer it never signalled (a victim's view). */
export const UNSOLICITED_SLACK = 48
/**
 * Signals to a peer that made contact first, that answered, or that the sender discovered, that never count as
 * initiated: a base (an offer or answer and its candidates), plus this many per signal received from it.
 */
export const REPLY_CREDIT_BASE = 96
export const REPLY_CREDIT_PER_SIGNAL = 4
/** Set-ups (offers sent to one peer, decayed over 10 min) that each add `REPLY_CREDIT_BASE` to its credit. */
export const MAX_CREDITED_SETUPS = 4

/** Session (connection) features; the order is the vector's. */
export const S = {
  SIGNALS: 0,
  SIGNALS_30S: 1,
  ONE_SIDED: 2,
  UNANSWERED: 3,
  NEW_TARGETS: 4,
  TOPIC_OPS: 5,
  TOPICS: 6,
  OTHER: 7,
  DROPPED: 8,
  ERROR_RATIO: 9,
  BYTES_IN: 10,
  FANOUT: 11,
  SIGNALS_10M: 12,
  ONE_SIDED_10M: 13,
  UNANSWERED_1H: 14,
} as const

export const SESSION_FEATURES: readonly FeatureSpec[] = [
  // Signals this connection initiated (not covered by a reply, answer or discovery credit) over 1 s; with y-webrtc
  // publishes over 30 s and 10 min.
  { name: 'signals/s', floor: 30, ceiling: 160, prior: [0.5, 20] },
  { name: 'signals/s (30 s)', floor: 15, ceiling: 40, prior: [0.2, 5] },
  { name: 'one-sided signals/s', floor: 2, ceiling: 6, prior: [0, 1] },
  { name: 'unanswered targets', floor: 2, ceiling: 6, prior: [0, 1] },
  { name: 'new targets', floor: 24, ceiling: 64, prior: [0.2, 4] },
  { name: 'topic ops/s', floor: 3, ceiling: 20, prior: [0.1, 2] },
  { name: 'topics held', floor: 8, ceiling: 24, prior: [1, 4] },
  { name: 'other frames/s', floor: 5, ceiling: 40, prior: [0.2, 2] },
  { name: 'dropped frames/s', floor: 2, ceiling: 20, prior: [0, 0.5] },
  { name: 'error ratio', floor: 0.3, ceiling: 0.9, prior: [0.01, 0.2] },
  // A peer answering a meeting's worth of offers sends 100 KB in a moment.
  { name: 'bytes in/s', floor: 200_000, ceiling: 1_000_000, prior: [200, 10_000] },
  // A y-webrtc room signals by broadcast: a client joining a room of 25 fans out megabytes in seconds.
  { name: 'fan-out bytes/s', floor: 2_000_000, ceiling: 8_000_000, prior: [0, 100_000] },
  { name: 'signals (10 min)', floor: 2_000, ceiling: 6_000, prior: [10, 500] },
  { name: 'one-sided signals (10 min)', floor: 200, ceiling: 900, prior: [0, 50] },
  { name: 'unanswered targets (1 h)', floor: 12, ceiling: 40, prior: [0, 4] },
]

/** Target (victim-side) features of a connection; the order is the vector's. */
export const T = {
  RECEIVED: 0,
  UNSOLICITED: 1,
  UNSOLICITED_SOURCES: 2,
  UNSOLICITED_10M: 3,
} as const

export const TARGET_FEATURES: readonly FeatureSpec[] = [
  { name: 'signals received/s', floor: 80, ceiling: 300, prior: [0.5, 20] },
  // Beyond the slack of each pair, from sources this peer never signalled.
  { name: 'unsolicited signals received/s', floor: 12, ceiling: 40, prior: [0, 4] },
  { name: 'unsolicited sources', floor: 24, ceiling: 48, prior: [0.2, 4] },
  { name: 'unsolicited signals received (10 min)', floor: 1_500, ceiling: 5_000, prior: [0, 100] },
]

/** Address (and prefix) features; the order is the vector's. */
export const A = {
  CONNECTIONS: 0,
  OPEN: 1,
  UNPRODUCTIVE: 2,
  NEW_IDENTITIES: 3,
  AUTH_FAILURES: 4,
  SHORT_LIVED: 5,
  DHT: 6,
  DHT_STORES: 7,
  DHT_BAD: 8,
  FRAMES: 9,
  TOPICS: 10,
  CRDT_BYTES: 11,
  FLAGGED_KEYS: 12,
  CHURN: 13,
  CHURN_1H: 14,
  DHT_10M: 15,
  UNPRODUCTIVE_10M: 16,
} as const

/**
 * Address features. Those marked per member are divided by the members in good standing the address carries
 * (registered peers, subscribed y-webrtc and synchronising CRDT connections, none of them flagged), at least 1;
 * rates of arrival and departure by its established members only (an identity first seen from the address a
 * minute ago or more, a connection open that long): what comes and goes cannot vouch for itself.
 */
export const ADDRESS_FEATURES: readonly FeatureSpec[] = [
  { name: 'connections/s per member', floor: 2, ceiling: 4, prior: [0.05, 1] },
  { name: 'open connections per member', floor: 8, ceiling: 24, prior: [1, 4] },
  { name: 'unproductive connections', floor: 3, ceiling: 10, prior: [0, 1] },
  { name: 'new identities/s', floor: 3, ceiling: 10, prior: [0.02, 0.5] },
  { name: 'failed authentications/s per member', floor: 0.5, ceiling: 3, prior: [0, 0.1] },
  { name: 'short-lived connections/s per member', floor: 1, ceiling: 1.5, prior: [0, 0.3] },
  { name: 'DHT requests/s', floor: 12, ceiling: 40, prior: [1, 6] },
  { name: 'DHT stores/s', floor: 8, ceiling: 25, prior: [0.05, 2] },
  { name: 'bad datagrams/s', floor: 2, ceiling: 10, prior: [0, 0.2] },
  { name: 'frames/s per member', floor: 120, ceiling: 400, prior: [1, 30] },
  { name: 'topics held per member', floor: 16, ceiling: 64, prior: [1, 4] },
  { name: 'CRDT bytes/s per member', floor: 200_000, ceiling: 1_000_000, prior: [100, 20_000] },
  { name: 'flagged connections (10 min)', floor: 2, ceiling: 5, prior: [0, 0.5] },
  // New identities that left within a minute (a crowd arriving stays; throw-away identities go).
  { name: 'identity churn per member (1 min)', floor: 3, ceiling: 8, prior: [0, 0.5] },
  { name: 'identity churn per member (1 h)', floor: 12, ceiling: 30, prior: [0.1, 2] },
  { name: 'DHT requests (10 min)', floor: 2_000, ceiling: 6_000, prior: [100, 1_000] },
  { name: 'unproductive connection-seconds (10 min)', floor: 60, ceiling: 240, prior: [0, 10] },
]

/**
 * How each feature is divided: 0 not at all, 1 by the members, 2 by the established members, 8 by one per 8
 * members (a few connections of a big NAT are always being set up).
 */
export const PER_MEMBER: readonly number[] = ADDRESS_FEATURES.map((_, i) =>
  i === A.UNPRODUCTIVE || i === A.UNPRODUCTIVE_10M
    ? 8
    : i === A.OPEN || i === A.FRAMES || i === A.TOPICS || i === A.CRDT_BYTES
      ? 1
      : i === A.CONNECTIONS ||
          i === A.AUTH_FAILURES ||
          i === A.SHORT_LIVED ||
          i === A.CHURN ||
          i === A.CHURN_1H
        ? 2
        : 0,
)

/**
 * The features a prefix is scored on. Not arrival rates (connections, new identities, short-lived connections)
 * nor frames: clients of one carrier or campus /24 come online together, and every one of them is a member
 * only once it is established. Per-address scores cover those.
 */
export const PREFIX_SCORED: readonly number[] = ADDRESS_FEATURES.map((_, i) =>
  i === A.CONNECTIONS || i === A.NEW_IDENTITIES || i === A.SHORT_LIVED || i === A.FRAMES ? 0 : 1,
)

/** Node-wide features (one vector per round). */
export const N = {
  SIGNALS: 0,
  DHT: 1,
  NEW_DHT_SOURCES: 2,
  CONNECTIONS: 3,
  UNPRODUCTIVE: 4,
  TOPICS: 5,
  CRDT_BYTES: 6,
  NEW_IDENTITIES: 7,
} as const

export const NODE_FEATURES: readonly FeatureSpec[] = [
  { name: 'signals/s (node)', floor: 500, prior: [20, 400] },
  { name: 'DHT requests/s (node)', floor: 100, prior: [5, 60] },
  { name: 'new DHT sources (node, 1 min)', floor: 12, prior: [0.5, 6] },
  { name: 'connections/s (node)', floor: 20, prior: [1, 10] },
  { name: 'unproductive connections (node)', floor: 24, prior: [0.5, 8] },
  { name: 'topics held (node)', floor: 2_000, prior: [50, 1_000] },
  { name: 'CRDT bytes/s (node)', floor: 2_000_000, prior: [1_000, 500_000] },
  { name: 'new identities (node, 1 min)', floor: 60, prior: [2, 30] },
]

/** Address features a node-wide feature puts under pressure. */
export const PRESSES: readonly (readonly number[])[] = [
  [],
  [A.DHT, A.DHT_STORES, A.DHT_10M],
  [],
  [A.CONNECTIONS, A.SHORT_LIVED],
  [A.UNPRODUCTIVE, A.UNPRODUCTIVE_10M, A.OPEN],
  [A.TOPICS],
  [A.CRDT_BYTES],
  [A.NEW_IDENTITIES, A.CHURN, A.CHURN_1H],
]

/** Frame classes. */
export const enum FrameClass {
  Signal = 0,
  Publish = 1,
  Topic = 2,
  Other = 3,
  Dropped = 4,
  /** A signal that opens a set-up (an offer): a `Signal` that also renews a pair's credit. */
  Offer = 5,
}

/** Message types by class (native, y-webrtc and PeerJS names). */
const CLASS_OF: Record<string, FrameClass> = {
  offer: FrameClass.Offer,
  answer: FrameClass.Signal,
  candidate: FrameClass.Signal,
  OFFER: FrameClass.Offer,
  ANSWER: FrameClass.Signal,
  CANDIDATE: FrameClass.Signal,
  publish: FrameClass.Publish,
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

/** The decay factors of one round, computed once for every record. */
export interface Decay {
  dtMs: number
  frame: number
  conn: number
  crdt: number
  dht: number
  ratio: number
  halfMinute: number
  minute: number
  tenMin: number
  hour: number
}

export function decayFor(dtMs: number): Decay {
  return {
    dtMs,
    frame: Math.exp(-dtMs / FRAME_TAU_MS),
    conn: Math.exp(-dtMs / CONN_TAU_MS),
    crdt: Math.exp(-dtMs / CRDT_TAU_MS),
    dht: Math.exp(-dtMs / DHT_TAU_MS),
    ratio: Math.exp(-dtMs / RATIO_TAU_MS),
    halfMinute: Math.exp(-dtMs / 30_000),
    minute: Math.exp(-dtMs / 60_000),
    tenMin: Math.exp(-dtMs / TEN_MIN_MS),
    hour: Math.exp(-dtMs / HOUR_MS),
  }
}

export function ewma(rate: number, count: number, a: number, dtMs: number): number {
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
 * Policy key of a registered peer. PeerJS IDs are chosen by the client, so they live in their own namespace
 * (a PeerJS client cannot take on, or get blocked, a native peer's proven ID), and are keyed with the digest of
 * the token that holds them: whoever misbehaved under an ID bears it, not the ID's owner coming back.
 */
export function peerKey(endpoint: string, peerId: string, credential?: string): string {
  if (endpoint !== 'peerjs') return `peer:${peerId}`
  return credential === undefined ? `pj:${peerId}` : `pj:${peerId}/${credential}`
}

/** The IPv4 /24 or IPv6 /64 an address belongs to (`a.b.c.0/24`, `x:x:x:x::/64`). */
export function prefixOf(address: string): string {
  if (!address.includes(':')) {
    const dot = address.lastIndexOf('.')
    return dot === -1 ? address : `${address.slice(0, dot)}.0/24`
  }
  const [head = '', tail] = address.toLowerCase().split('::', 2) as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, '') || '0')
    .join(':')}::/64`
}

const DISCOVERED = 1
const COUNTED = 2

/** What one connection exchanged with one peer. */
export class Pair {
  /** Signals sent to the peer, and received from it, decayed (τ 10 min). */
  sent = 0
  got = 0
  /** Signals sent that a reply or discovery credit covered. */
  exempt = 0
  /** Set-ups (offers) sent. */
  setups = 0
  /** Signals sent to a new target not yet judged (no answer yet, grace not over). */
  pending = 0
  /** Received recently (τ 2 s): the peer's share of a flood. */
  recentIn = 0
  firstOut = 0
  firstIn = 0
  last: number
  flags = 0

  constructor(now: number) {
    this.last = now
  }

  decayTo(now: number): void {
    const dt = now - this.last
    if (dt <= 0) return
    const a = Math.exp(-dt / PAIR_TAU_MS)
    this.sent *= a
    this.got *= a
    this.exempt *= a
    this.setups *= a
    this.recentIn *= Math.exp(-dt / CONN_TAU_MS)
    this.last = now
  }

  get discovered(): boolean {
    return (this.flags & DISCOVERED) !== 0
  }
}

/** One connection: a signaling session (native, y-webrtc, PeerJS) or a CRDT (y-websocket) connection. */
export class SessionRecord {
  readonly openedAt: number
  /**
   * Policy key: the peer once registered (`peer:<id>`, `pj:<id>/<credential>`), the connection before and on the
   * unauthenticated endpoints (`conn:<n>`).
   */
  key: string
  /** The registered peer ID (native or PeerJS), once registered. */
  peerId: string | undefined
  /** When it registered, and whether its identity was new to its address then. */
  registeredAt = 0
  newIdentity = false
  /** An established member of its address (see the engine). */
  established = false
  /** Registered, subscribed (y-webrtc) or synchronising (CRDT): counted as a member, no longer unproductive. */
  settled = false
  isClosed = false
  /** Counts since the last round, by frame class. */
  readonly counts = new Float64Array(6)
  readonly rates = new Float64Array(6)
  bytesIn = 0
  rateIn = 0
  lastBytes = 0
  fanoutBytes = 0
  rateFanout = 0
  errors = 0
  errorsDecayed = 0
  framesDecayed = 0
  topicsHeld = 0
  /** Frames ever seen. */
  frames = 0
  // Outbound signals: the current run to one target, then per-round totals.
  lastTarget: string | undefined
  targetRun = 0
  offerRun = 0
  initiated = 0
  /** y-webrtc publishes: broadcast signalling, in bursts when a client joins a room; counted over 30 s and 10 min. */
  publishes = 0
  rateInitiated = 0
  rateInitiated30 = 0
  initiated10m = 0
  oneSided = 0
  rateOneSided = 0
  oneSided10m = 0
  newTargets = 0
  newTargetsDecayed = 0
  overflowTargets = 0
  unansweredEvents = 0
  unanswered1h = 0
  unansweredNow = 0
  // Inbound signals (this connection as a target).
  lastFrom: string | undefined
  fromRun = 0
  received = 0
  rateReceived = 0
  unsolicited = 0
  rateUnsolicited = 0
  unsolicited10m = 0
  readonly unsolicitedSources: DistinctCounter
  pairs: Map<string, Pair> | undefined
  #pairsDirty = false
  /** Some pair holds signals not judged yet. */
  #pending = false
  #pairsSweptAt: number
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
    this.#pairsSweptAt = now
    this.key = `conn:${id}`
    this.unsolicitedSources = new DistinctCounter(SOURCE_WINDOW_MS, now)
    address.unsettled++
  }

  /** The connection registered (as `key`), subscribed or synchronised: it is settled. */
  settle(key: string | undefined, peerId?: string): void {
    if (key !== undefined) this.key = key
    if (peerId !== undefined) this.peerId = peerId
    if (!this.settled) {
      this.settled = true
      this.address.unsettled--
    }
  }

  /** The hot path: one inbound frame. */
  noteFrame(cls: FrameClass, bytes: number, target: string | undefined, now: () => number): void {
    this.counts[cls]! += 1
    this.bytesIn += bytes
    this.lastBytes = bytes
    this.frames++
    this.address.frames++
    if ((cls === FrameClass.Signal || cls === FrameClass.Offer) && target !== undefined) {
      if (target === this.lastTarget) this.targetRun++
      else {
        const t = now()
        this.flushOut(t)
        this.lastTarget = target
        this.targetRun = 1
      }
      if (cls === FrameClass.Offer) this.offerRun++
    } else if (cls === FrameClass.Publish) this.publishes++
  }

  /** The hot path: one frame sent to this connection (`from`: the peer a relayed signal comes from). */
  noteSent(from: string | undefined, now: () => number): void {
    if (from === undefined) return
    if (from === this.lastFrom) this.fromRun++
    else {
      const t = now()
      this.flushIn(t)
      this.lastFrom = from
      this.fromRun = 1
    }
  }

  /** The peers a `discover` answered: signals to them are covered by a credit and never unanswered or new. */
  noteDiscovered(peers: readonly string[], now: number): void {
    for (const id of peers) {
      const p = this.#pair(id, now)
      if (p !== undefined) p.flags |= DISCOVERED
    }
  }

  #pair(peer: string, now: number): Pair | undefined {
    const pairs = (this.pairs ??= new Map<string, Pair>())
    let p = pairs.get(peer)
    if (p !== undefined) return p
    if (pairs.size >= MAX_PAIRS) {
      let oldest: [string, Pair] | undefined
      for (const e of pairs) if (oldest === undefined || e[1].last < oldest[1].last) oldest = e
      if (oldest === undefined || now - oldest[1].last < UNANSWERED_WINDOW_MS) return undefined
      pairs.delete(oldest[0])
    }
    p = new Pair(now)
    pairs.set(peer, p)
    return p
  }

  /** Folds the current outbound run into its pair: replies, discovery credit, one-sided excess, new targets. */
  flushOut(now: number): void {
    const n = this.targetRun
    const target = this.lastTarget
    if (n === 0 || target === undefined) return
    const offers = this.offerRun
    this.targetRun = 0
    this.offerRun = 0
    const p = this.#pair(target, now)
    if (p === undefined) {
      // No room to tell: as bad as it gets (a connection talking to more than MAX_PAIRS peers in a minute).
      this.initiated += n
      this.oneSided += n
      this.overflowTargets += 1
      this.newTargets += 1
      return
    }
    p.decayTo(now)
    if (p.firstOut === 0) {
      p.firstOut = now
      if (!p.discovered && p.firstIn === 0) this.newTargets += 1
      this.#pairsDirty = true
    }
    p.sent += n
    p.setups += offers
    if (p.firstIn === 0 && !p.discovered && now - p.firstOut < REPLY_GRACE_MS) {
      p.pending += n
      this.#pending = true
      return
    }
    this.#judge(p, n)
  }

  /** Judges `n` signals just added to `p.sent`: covered by a credit, initiated, one-sided. */
  #judge(p: Pair, n: number): void {
    let exempt = 0
    const base = REPLY_CREDIT_BASE * Math.max(1, Math.min(MAX_CREDITED_SETUPS, p.setups))
    if (p.discovered || p.firstIn !== 0) {
      const credit = base + REPLY_CREDIT_PER_SIGNAL * p.got - p.exempt
      if (credit > 0) exempt = credit < n ? credit : n
      p.exempt += exempt
    }
    this.initiated += n - exempt
    // A peer that answers may be sent a set-up's worth per set-up before its answers catch up (trickle ICE).
    const allowance = (p.firstIn !== 0 ? base : ONE_SIDED_SLACK) + ONE_SIDED_RATIO * p.got
    const after = p.sent - allowance
    if (after > 0) this.oneSided += after - Math.max(0, p.sent - n - allowance)
  }

  /** Folds the current inbound run into its pair: what this connection received, and whether it asked for it. */
  flushIn(now: number): void {
    const n = this.fromRun
    const from = this.lastFrom
    if (n === 0 || from === undefined) return
    this.fromRun = 0
    this.received += n
    const p = this.#pair(from, now)
    if (p === undefined) {
      this.unsolicited += n
      return
    }
    p.decayTo(now)
    // Unsolicited: from a peer this connection never signalled (once it answers, it takes part).
    if (p.firstOut === 0) {
      this.unsolicitedSources.add(from)
      const after = p.got + n - UNSOLICITED_SLACK
      if (after > 0) this.unsolicited += after - Math.max(0, p.got - UNSOLICITED_SLACK)
    }
    p.got += n
    p.recentIn += n
    if (p.firstIn === 0) {
      p.firstIn = now
      this.#pairsDirty = true
      // The target answered in time: what was sent to it is judged as to a peer that answers.
      if (p.pending > 0) {
        const pending = p.pending
        p.pending = 0
        this.#judge(p, pending)
      }
    }
  }

  /**
   * Folds the counts into rates; returns whether the connection did anything lately. `slow` rounds (once a
   * second) also recount unanswered targets and forget idle pairs.
   */
  fold(now: number, d: Decay): boolean {
    this.flushOut(now)
    this.flushIn(now)
    let active = false
    const frames =
      this.counts[0]! + this.counts[1]! + this.counts[2]! + this.counts[3]! + this.counts[FrameClass.Offer]!
    for (let c = 0; c < 6; c++) {
      const n = this.counts[c]!
      if (n > 0) active = true
      this.rates[c] = ewma(this.rates[c]!, n, d.frame, d.dtMs)
      this.counts[c] = 0
    }
    if (this.received > 0 || this.errors > 0) active = true
    this.rateIn = ewma(this.rateIn, this.bytesIn, d.frame, d.dtMs)
    this.rateFanout = ewma(this.rateFanout, this.fanoutBytes, d.frame, d.dtMs)
    this.rateInitiated = ewma(this.rateInitiated, this.initiated, d.frame, d.dtMs)
    this.rateInitiated30 = ewma(this.rateInitiated30, this.initiated + this.publishes, d.halfMinute, d.dtMs)
    this.initiated10m = d.tenMin * this.initiated10m + this.initiated + this.publishes
    this.publishes = 0
    this.rateOneSided = ewma(this.rateOneSided, this.oneSided, d.conn, d.dtMs)
    this.oneSided10m = d.tenMin * this.oneSided10m + this.oneSided
    this.newTargetsDecayed = d.ratio * this.newTargetsDecayed + this.newTargets
    this.rateReceived = ewma(this.rateReceived, this.received, d.conn, d.dtMs)
    this.rateUnsolicited = ewma(this.rateUnsolicited, this.unsolicited, d.conn, d.dtMs)
    this.unsolicited10m = d.tenMin * this.unsolicited10m + this.unsolicited
    this.framesDecayed = d.ratio * this.framesDecayed + frames
    this.errorsDecayed = d.ratio * this.errorsDecayed + this.errors
    this.bytesIn = 0
    this.fanoutBytes = 0
    this.initiated = 0
    this.oneSided = 0
    this.newTargets = 0
    this.received = 0
    this.unsolicited = 0
    this.errors = 0
    if (
      this.pairs !== undefined &&
      (this.#pairsDirty || this.#pending || now - this.#pairsSweptAt >= 1_000)
    ) {
      this.#recount(now)
    }
    this.unanswered1h = d.hour * this.unanswered1h + this.unansweredEvents
    this.unansweredEvents = 0
    this.overflowTargets *= d.minute
    return (
      active ||
      this.unansweredNow > 0 ||
      this.rates[0]! + this.rates[1]! + this.rates[2]! + this.rates[3]! + this.rates[4]! + this.rates[5]! >
        0.05 ||
      this.rateReceived > 0.05 ||
      this.rateOneSided > 0.05 ||
      this.rateInitiated30 > 0.05
    )
  }

  /** Counts unanswered targets (and records each once for the hourly budget); forgets pairs idle 10 min. */
  #recount(now: number): void {
    this.#pairsDirty = false
    const sweep = now - this.#pairsSweptAt >= 10_000
    if (sweep) this.#pairsSweptAt = now
    let n = 0
    let pending = false
    let unjudged = false
    for (const [peer, p] of this.pairs!) {
      if (sweep && now - p.last > PAIR_TAU_MS && p.recentIn < 0.01 && p.pending === 0) {
        this.pairs!.delete(peer)
        continue
      }
      if (p.firstOut === 0 || p.firstIn !== 0 || p.discovered) continue
      const age = now - p.firstOut
      if (p.pending > 0) {
        if (age >= REPLY_GRACE_MS) {
          // No answer in time: what was held back counts now.
          const held = p.pending
          p.pending = 0
          this.#judge(p, held)
        } else unjudged = true
      }
      if (age < REPLY_GRACE_MS) {
        pending = true
        continue
      }
      if ((p.flags & COUNTED) === 0) {
        p.flags |= COUNTED
        this.unansweredEvents++
      }
      if (age <= UNANSWERED_WINDOW_MS) n++
      else if (age <= UNANSWERED_WINDOW_MS + 1_000) pending = true
    }
    this.#pending = unjudged
    this.unansweredNow = n + this.overflowTargets
    // Until every fresh target is past its grace (or out of the window), look again next second.
    if (!pending && !sweep) this.#pairsSweptAt = now
  }

  vector(out: Float64Array): Float64Array {
    out[S.SIGNALS] = this.rateInitiated
    out[S.SIGNALS_30S] = this.rateInitiated30
    out[S.SIGNALS_10M] = this.initiated10m
    out[S.ONE_SIDED] = this.rateOneSided
    out[S.UNANSWERED] = this.unansweredNow
    out[S.NEW_TARGETS] = this.newTargetsDecayed
    out[S.TOPIC_OPS] = this.rates[FrameClass.Topic]!
    out[S.TOPICS] = this.topicsHeld
    out[S.OTHER] = this.rates[FrameClass.Other]!
    out[S.DROPPED] = this.rates[FrameClass.Dropped]!
    // A ratio needs a few frames behind it to mean anything.
    out[S.ERROR_RATIO] = this.framesDecayed >= 10 ? this.errorsDecayed / this.framesDecayed : 0
    out[S.BYTES_IN] = this.rateIn
    out[S.FANOUT] = this.rateFanout
    out[S.ONE_SIDED_10M] = this.oneSided10m
    out[S.UNANSWERED_1H] = this.unanswered1h
    return out
  }

  /** Whether anything came in lately (the target model scores only those). */
  get receiving(): boolean {
    return this.rateReceived > 0.05 || this.unsolicited10m > 1
  }

  targetVector(now: number, out: Float64Array): Float64Array {
    out[T.RECEIVED] = this.rateReceived
    out[T.UNSOLICITED] = this.rateUnsolicited
    out[T.UNSOLICITED_SOURCES] = this.unsolicitedSources.count(now)
    out[T.UNSOLICITED_10M] = this.unsolicited10m
    return out
  }

  /**
   * The peers whose signals flood this connection: those that sent lately and were not asked, largest first,
   * until they make up `share` of what came in lately.
   */
  flooders(now: number, share = 0.9): { peer: string; recent: number }[] {
    if (this.pairs === undefined) return []
    const list: { peer: string; recent: number }[] = []
    let total = 0
    for (const [peer, p] of this.pairs) {
      p.decayTo(now)
      if (p.recentIn < 1) continue
      total += p.recentIn
      // Never answered by this peer (given the time to answer), or sending far more than it was answered.
      if (
        (p.sent < 1 && now - p.firstIn >= REPLY_GRACE_MS) ||
        p.got > UNSOLICITED_SLACK + ONE_SIDED_RATIO * p.sent
      ) {
        list.push({ peer, recent: p.recentIn })
      }
    }
    list.sort((a, b) => b.recent - a.recent)
    const out: { peer: string; recent: number }[] = []
    let covered = 0
    for (const f of list) {
      if (covered >= total * share) break
      out.push(f)
      covered += f.recent
    }
    return out
  }
}

/** One source address (IP). */
export class AddressRecord {
  readonly sessions = new Set<SessionRecord>()
  /** Raw TCP sockets on the WebSocket port not (yet) upgraded, with their open times. */
  readonly pendingSockets = new Map<object, number>()
  /** Identities seen from this address: first and last seen (a returning identity is not a new one). */
  readonly identities = new Map<string, { first: number; last: number; returned: boolean }>()
  connections = 0
  authFailures = 0
  shortLived = 0
  dht = 0
  dhtStores = 0
  dhtBad = 0
  frames = 0
  crdtBytes = 0
  newIdentities = 0
  /** New identities that left within a minute. */
  churned = 0
  flaggedKeys = 0
  /** Sessions not settled yet plus pending sockets: what can turn unproductive with time alone. */
  unsettled = 0
  /** Topics its connections hold. */
  topicsHeld = 0
  /** Members in good standing, and those among them established (computed every round by the engine). */
  members = 0
  established = 0
  /** Score averaged over about a minute (a rising address is not learned). */
  slowScore = 0
  readonly key: string
  readonly prefix: string
  readonly createdAt: number
  readonly rates = new Float64Array(9)
  /** New identities that left, waiting to be counted as churn unless they come back. */
  readonly #departed: { identity: string; at: number }[] = []
  rateNewIdentities = 0
  churn60 = 0
  churn1h = 0
  dht10m = 0
  unproductive10m = 0
  flagged10m = 0
  unproductiveNow = 0
  /** First DHT request from this address (0: none yet). */
  dhtSince = 0
  /** Throttle token buckets (connections, DHT requests, refusal reasons), used only while throttled. */
  connTokens = 0
  connRefilledAt = 0
  dhtTokens = 0
  dhtRefilledAt = 0
  tellTokens = 0
  tellRefilledAt = 0
  lastActive: number

  constructor(
    readonly address: string,
    now: number,
  ) {
    this.lastActive = now
    this.createdAt = now
    this.key = `addr:${address}`
    this.prefix = prefixOf(address)
  }

  /**
   * An identity registered from this address; returns whether it is new (not seen from here within the hour).
   */
  noteIdentity(identity: string, now: number): boolean {
    const seen = this.identities.get(identity)
    const fresh = seen === undefined || now - seen.last > 60 * 60_000
    if (fresh) this.newIdentities++
    this.identities.delete(identity)
    this.identities.set(identity, { first: fresh ? now : seen.first, last: now, returned: !fresh })
    if (this.identities.size > 512) {
      const oldest = this.identities.keys().next().value
      if (oldest !== undefined) this.identities.delete(oldest)
    }
    return fresh
  }

  /**
   * A new identity left soon after it came: churn, unless it is back within `CHURN_RETURN_MS` (a phone that
   * reconnects, a page reload).
   */
  noteDeparture(identity: string, now: number): void {
    if (this.#departed.length >= 256) this.churned++
    else this.#departed.push({ identity, at: now })
  }

  #countDepartures(now: number): void {
    const q = this.#departed
    let i = 0
    while (i < q.length && now - q[i]!.at >= CHURN_RETURN_MS) {
      const { identity, at } = q[i]!
      const seen = this.identities.get(identity)
      if (seen === undefined || seen.last <= at) this.churned++
      i++
    }
    if (i > 0) q.splice(0, i)
  }

  get departing(): number {
    return this.#departed.length
  }

  /**
   * Whether an identity is established at this address: first seen from here `ms` ago or more, or back after
   * leaving (a throw-away identity never comes back; a phone reconnects).
   */
  establishedFor(identity: string, now: number, ms: number): boolean {
    const seen = this.identities.get(identity)
    return seen !== undefined && (now - seen.first >= ms || seen.returned)
  }

  fold(now: number, d: Decay): boolean {
    if (this.#departed.length > 0) this.#countDepartures(now)
    const r = this.rates
    const active =
      this.connections +
        this.authFailures +
        this.shortLived +
        this.dht +
        this.dhtStores +
        this.dhtBad +
        this.frames +
        this.crdtBytes +
        this.newIdentities +
        this.churned >
      0
    r[0] = ewma(r[0]!, this.connections, d.conn, d.dtMs)
    r[1] = ewma(r[1]!, this.authFailures, d.frame, d.dtMs)
    r[2] = ewma(r[2]!, this.shortLived, d.conn, d.dtMs)
    r[3] = ewma(r[3]!, this.dht, d.dht, d.dtMs)
    r[4] = ewma(r[4]!, this.dhtStores, d.dht, d.dtMs)
    r[5] = ewma(r[5]!, this.dhtBad, d.dht, d.dtMs)
    r[6] = ewma(r[6]!, this.frames, d.conn, d.dtMs)
    r[7] = ewma(r[7]!, this.crdtBytes, d.crdt, d.dtMs)
    this.rateNewIdentities = ewma(this.rateNewIdentities, this.newIdentities, d.ratio, d.dtMs)
    this.churn60 = d.minute * this.churn60 + this.churned
    this.churn1h = d.hour * this.churn1h + this.churned
    this.dht10m = d.tenMin * this.dht10m + this.dht
    this.flagged10m = d.tenMin * this.flagged10m + this.flaggedKeys
    this.unproductiveNow = this.unproductive(now)
    this.unproductive10m = d.tenMin * this.unproductive10m + (this.unproductiveNow * d.dtMs) / 1000
    this.connections = 0
    this.authFailures = 0
    this.shortLived = 0
    this.dht = 0
    this.dhtStores = 0
    this.dhtBad = 0
    this.frames = 0
    this.crdtBytes = 0
    this.newIdentities = 0
    this.churned = 0
    this.flaggedKeys = 0
    if (active) this.lastActive = now
    let sum = this.rateNewIdentities + this.churn60 + this.unproductive10m + this.flagged10m
    for (let i = 0; i < 8; i++) sum += r[i]!
    // Settled sessions that stay quiet change nothing here; unsettled ones may turn unproductive.
    return active || sum > 0.05 || this.unsettled > 0 || this.#departed.length > 0
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
    for (const s of this.sessions) if (!s.settled && now - s.openedAt >= UNPRODUCTIVE_AFTER_MS) n++
    for (const at of this.pendingSockets.values()) if (now - at >= UNPRODUCTIVE_AFTER_MS) n++
    return n
  }

  /** The raw (not per-member) vector: what the address did. */
  raw(out: Float64Array): Float64Array {
    out[A.CONNECTIONS] = this.rates[0]!
    out[A.OPEN] = this.sessions.size + this.pendingSockets.size
    out[A.UNPRODUCTIVE] = this.unproductiveNow
    out[A.NEW_IDENTITIES] = this.rateNewIdentities
    out[A.AUTH_FAILURES] = this.rates[1]!
    out[A.SHORT_LIVED] = this.rates[2]!
    out[A.DHT] = this.rates[3]!
    out[A.DHT_STORES] = this.rates[4]!
    out[A.DHT_BAD] = this.rates[5]!
    out[A.FRAMES] = this.rates[6]!
    out[A.TOPICS] = this.topicsHeld
    out[A.CRDT_BYTES] = this.rates[7]!
    out[A.FLAGGED_KEYS] = this.flagged10m
    out[A.CHURN] = this.churn60
    out[A.CHURN_1H] = this.churn1h
    out[A.DHT_10M] = this.dht10m
    out[A.UNPRODUCTIVE_10M] = this.unproductive10m
    return out
  }
}

/** Divides the per-member features of a raw address (or prefix) vector by its members (see `PER_MEMBER`). */
export function perMember(
  raw: Float64Array,
  members: number,
  established: number,
  out: Float64Array,
  only?: readonly number[],
): Float64Array {
  const m = members > 1 ? members : 1
  const e = established > 1 ? established : 1
  for (let i = 0; i < raw.length; i++) {
    const how = PER_MEMBER[i]!
    const v =
      how === 0 ? raw[i]! : how === 1 ? raw[i]! / m : how === 2 ? raw[i]! / e : raw[i]! / Math.max(1, m / how)
    out[i] = only === undefined || only[i] === 1 ? v : 0
  }
  return out
}

/**
 * An address prefix (/24, /64): the sum of its addresses but the largest one per feature (an address on its own
 * is scored as an address: the prefix is for what is spread over several), scored like one address with all
 * their members.
 */
export class PrefixRecord {
  readonly key: string
  readonly sum = new Float64Array(ADDRESS_FEATURES.length)
  readonly #max = new Float64Array(ADDRESS_FEATURES.length)
  members = 0
  established = 0
  addresses = 0
  /** Addresses seen in this round (cleared by the engine when it scores). */
  touched = false

  constructor(readonly prefix: string) {
    this.key = `net:${prefix}`
  }

  add(raw: Float64Array, members: number, established: number): void {
    for (let i = 0; i < raw.length; i++) {
      const v = raw[i]!
      this.sum[i]! += v
      if (v > this.#max[i]!) this.#max[i] = v
    }
    this.members += members
    this.established += established
    this.addresses++
    this.touched = true
  }

  /** The sum without the largest address, per feature. */
  spread(): Float64Array {
    for (let i = 0; i < this.sum.length; i++) this.sum[i]! -= this.#max[i]!
    return this.sum
  }

  reset(): void {
    this.sum.fill(0)
    this.#max.fill(0)
    this.members = 0
    this.established = 0
    this.addresses = 0
    this.touched = false
  }
}
