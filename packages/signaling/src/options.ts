/** User options of the signaling server, their defaults and their validation. */

/** Default interval between WebSocket-level pings. */
export const PING_INTERVAL_MS = 30_000
/** Default silence after which a connection is terminated. */
export const LIVENESS_TIMEOUT_MS = 65_000
/** Default time a signal for an offline peer is held before an `expire` answer. */
export const HOLD_MS = 5_000
/** Default maximum text frame, in bytes. */
export const MAX_FRAME_BYTES = 64 * 1024
/** Default time a connection may stay unregistered, in ms. */
export const AUTH_TIMEOUT_MS = 10_000
/** Default interval between re-announcements of connected peers. */
export const ANNOUNCE_INTERVAL_MS = 60_000
/** Default time a closing connection has to finish the closing handshake before it is destroyed. */
export const CLOSE_TIMEOUT_MS = 5_000
/** Default largest difference between a registration statement's time and the server's clock. */
export const MAX_CLOCK_SKEW_MS = 120_000

/** User options. Every field is optional. */
export interface SignalingInit {
  /** This node's ID in directory records and registration statements. @default relay.nodeId, else random hex */
  nodeId?: string
  /**
   * Hosts (`name` or `name:port`, as in a URL) clients may have dialed to reach this server. A registration
   * statement naming another host is refused, so a peer's signature cannot be relayed by a node it connected to.
   * An entry without a port matches any port. Without this option, the `Host` header of the connection's own
   * upgrade request is the only accepted host: that still refuses a statement made for another host, but a
   * relaying node can choose the header it sends, so set this in production.
   * @default undefined (the request's `Host` header)
   */
  publicHosts?: readonly string[]
  /** Largest accepted difference between a statement's time and the server clock. @default 120_000 */
  maxClockSkewMs?: number
  /** @default { native: '/p2p-signaling', yWebrtc: '/y-webrtc', peerjs: '/peerjs' } */
  paths?: {
    /** The native protocol. */
    native?: string
    /** y-webrtc's signaling protocol. */
    yWebrtc?: string
    /** PeerJS's server protocol. */
    peerjs?: string
  }
  /** WebSocket ping period. @default 30_000 */
  pingIntervalMs?: number
  /** Silence after which a connection is terminated and its peer withdrawn. @default 65_000 */
  livenessTimeoutMs?: number
  /** Time a connection may stay unregistered (native endpoint). @default 10_000 */
  authTimeoutMs?: number
  /** Time a closing connection has to complete the closing handshake before it is destroyed. @default 5_000 */
  closeTimeoutMs?: number
  /** Failed `register` attempts before the connection is closed. @default 3 */
  maxAuthFailures?: number
  /** Largest accepted text frame in bytes; larger ones get `TOO_LARGE` (4× closes the connection). @default 65_536 */
  maxFrameBytes?: number
  /** Token-bucket refill, frames per second per connection (WebSocket pings and pongs included). @default 100 */
  rateLimitPerSec?: number
  /** Token-bucket size per connection. @default 200 */
  rateLimitBurst?: number
  /** Open WebSocket connections accepted across all endpoints. @default 20_000 */
  maxConnections?: number
  /** Open WebSocket connections from one address (an IPv4 address, an IPv6 /64). @default 256 */
  maxConnectionsPerAddress?: number
  /** Bytes queued for one socket before it counts as a slow consumer and is closed. @default 1_048_576 */
  maxBufferedBytes?: number
  /** Topics one connection may join. @default 32 */
  maxTopicsPerConnection?: number
  /** Topic memberships held by the connections of one address. @default 1_024 */
  maxTopicsPerAddress?: number
  /** Distinct topics on this server. @default 10_000 */
  maxTopics?: number
  /** Peer IDs returned by `discover`. @default 100 */
  maxDiscoverResults?: number
  /** Time signals for an offline peer are held. @default 5_000 */
  holdMs?: number
  /** Signals held per offline peer (and waiting per directory lookup). @default 32 */
  maxHeldPerPeer?: number
  /**
   * Signals held or waiting for a directory lookup from the connections of one address (an IPv4 address, an
   * IPv6 /64), so that one address cannot fill the tables below; with federation, also the signals from one
   * other node waiting for their origin check. @default 1_024
   */
  maxHeldPerAddress?: number
  /**
   * Signals held in total; with federation, also the bound on signals waiting for a directory lookup in each
   * direction (to a remote peer, and from another node for its origin check). @default 10_000
   */
  maxHeldTotal?: number
  /** Re-announce period for connected peers. @default 60_000 */
  announceIntervalMs?: number
  /** PeerJS API key accepted at `/peerjs`. @default 'peerjs' */
  peerjsKey?: string
}

/** {@link SignalingInit} with every default applied and every value checked. */
export interface SignalingOptions {
  readonly nodeId: string | undefined
  /** Lower-case hosts; `undefined` accepts the upgrade request's own `Host`. */
  readonly publicHosts: ReadonlySet<string> | undefined
  readonly maxClockSkewMs: number
  readonly paths: { readonly native: string; readonly yWebrtc: string; readonly peerjs: string }
  readonly pingIntervalMs: number
  readonly livenessTimeoutMs: number
  readonly authTimeoutMs: number
  readonly closeTimeoutMs: number
  readonly maxAuthFailures: number
  readonly maxFrameBytes: number
  /** Frames above this close the connection (1009) before their payload is read. */
  readonly maxPayloadBytes: number
  readonly ratePerMs: number
  readonly rateLimitBurst: number
  readonly maxConnections: number
  readonly maxConnectionsPerAddress: number
  readonly maxBufferedBytes: number
  readonly maxTopicsPerConnection: number
  readonly maxTopicsPerAddress: number
  readonly maxTopics: number
  readonly maxDiscoverResults: number
  readonly holdMs: number
  readonly maxHeldPerPeer: number
  readonly maxHeldPerAddress: number
  readonly maxHeldTotal: number
  readonly announceIntervalMs: number
  readonly peerjsKey: string
}

/** Frames up to this many multiples of `maxFrameBytes` are read and answered `TOO_LARGE`; larger ones close. */
const HARD_FRAME_FACTOR = 4

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`"${name}" must be a positive finite number, got ${String(value)}`)
  }
  return value
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`"${name}" must be a non-negative finite number, got ${String(value)}`)
  }
  return value
}

function path(name: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw new TypeError(`"${name}" must be a path starting with "/", got ${String(value)}`)
  }
  return value
}

/** Applies defaults and checks every value; throws `TypeError`/`RangeError` naming the bad option. */
export function resolveOptions(init: SignalingInit = {}): SignalingOptions {
  if (typeof init !== 'object' || init === null) throw new TypeError('"init" must be an object')
  let publicHosts: Set<string> | undefined
  if (init.publicHosts !== undefined) {
    if (!Array.isArray(init.publicHosts) || init.publicHosts.length === 0) {
      throw new TypeError('"publicHosts" must be a non-empty array of hosts')
    }
    publicHosts = new Set()
    for (const host of init.publicHosts as unknown[]) {
      if (typeof host !== 'string' || host.length === 0 || /[\s/]/.test(host)) {
        throw new TypeError(
          `"publicHosts" entries must be hosts like "example.org:3001", got ${String(host)}`,
        )
      }
      publicHosts.add(host.toLowerCase())
    }
  }
  if (init.nodeId !== undefined && (typeof init.nodeId !== 'string' || init.nodeId.length === 0)) {
    throw new TypeError('"nodeId" must be a non-empty string')
  }
  if (init.peerjsKey !== undefined && (typeof init.peerjsKey !== 'string' || init.peerjsKey.length === 0)) {
    throw new TypeError('"peerjsKey" must be a non-empty string')
  }
  const maxFrameBytes = positive('maxFrameBytes', init.maxFrameBytes, MAX_FRAME_BYTES)
  return {
    nodeId: init.nodeId,
    publicHosts,
    maxClockSkewMs: positive('maxClockSkewMs', init.maxClockSkewMs, MAX_CLOCK_SKEW_MS),
    paths: {
      native: path('paths.native', init.paths?.native, '/p2p-signaling'),
      yWebrtc: path('paths.yWebrtc', init.paths?.yWebrtc, '/y-webrtc'),
      peerjs: path('paths.peerjs', init.paths?.peerjs, '/peerjs'),
    },
    pingIntervalMs: positive('pingIntervalMs', init.pingIntervalMs, PING_INTERVAL_MS),
    livenessTimeoutMs: positive('livenessTimeoutMs', init.livenessTimeoutMs, LIVENESS_TIMEOUT_MS),
    authTimeoutMs: positive('authTimeoutMs', init.authTimeoutMs, AUTH_TIMEOUT_MS),
    closeTimeoutMs: positive('closeTimeoutMs', init.closeTimeoutMs, CLOSE_TIMEOUT_MS),
    maxAuthFailures: positive('maxAuthFailures', init.maxAuthFailures, 3),
    maxFrameBytes,
    maxPayloadBytes: maxFrameBytes * HARD_FRAME_FACTOR,
    ratePerMs: positive('rateLimitPerSec', init.rateLimitPerSec, 100) / 1000,
    rateLimitBurst: positive('rateLimitBurst', init.rateLimitBurst, 200),
    maxConnections: positive('maxConnections', init.maxConnections, 20_000),
    maxConnectionsPerAddress: positive('maxConnectionsPerAddress', init.maxConnectionsPerAddress, 256),
    maxBufferedBytes: positive('maxBufferedBytes', init.maxBufferedBytes, 1024 * 1024),
    maxTopicsPerConnection: positive('maxTopicsPerConnection', init.maxTopicsPerConnection, 32),
    maxTopicsPerAddress: positive('maxTopicsPerAddress', init.maxTopicsPerAddress, 1024),
    maxTopics: positive('maxTopics', init.maxTopics, 10_000),
    maxDiscoverResults: positive('maxDiscoverResults', init.maxDiscoverResults, 100),
    holdMs: nonNegative('holdMs', init.holdMs, HOLD_MS),
    maxHeldPerPeer: nonNegative('maxHeldPerPeer', init.maxHeldPerPeer, 32),
    maxHeldPerAddress: positive('maxHeldPerAddress', init.maxHeldPerAddress, 1024),
    maxHeldTotal: nonNegative('maxHeldTotal', init.maxHeldTotal, 10_000),
    announceIntervalMs: positive('announceIntervalMs', init.announceIntervalMs, ANNOUNCE_INTERVAL_MS),
    peerjsKey: init.peerjsKey ?? 'peerjs',
  }
}
