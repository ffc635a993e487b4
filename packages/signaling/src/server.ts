import { randomFillSync } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { SignalingError, type WireErrorCode } from './errors'
import {
  MAX_PEER_ID_LENGTH,
  MAX_RID_LENGTH,
  MAX_TOPIC_LENGTH,
  PROTOCOL_VERSION,
  challengeBytes,
} from './protocol'
import {
  SILENT_LOGGER,
  type Clock,
  type GuardEndpoint,
  type GuardSession,
  type Logger,
  type NodeRelay,
  type SignalingGuard,
  type PeerDirectory,
  type PeerIdFromPublicKeyFn,
  type VerifyFn,
} from './types'
import { acceptWebSocket, WsState, type WsConnection, type WsListener } from './websocket'

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
/** Period of the housekeeping sweep (held-signal expiry, auth and liveness deadlines). */
const SWEEP_INTERVAL_MS = 1_000
/** How long a directory answer (peer → node) is reused. */
const ROUTE_TTL_MS = 10_000
/** Bound on cached routes. */
const MAX_ROUTES = 10_000
/** Grace for close handshakes during close() before sockets are destroyed. */
const CLOSE_GRACE_MS = 1_000
/** Frames larger than this many multiples of maxFrameBytes are cut by ws itself (1009). */
const HARD_FRAME_FACTOR = 4

/** WebSocket close codes used by the server. */
export const CLOSE_CODES = {
  GOING_AWAY: 1001,
  POLICY: 1008,
  REPLACED: 4001,
  AUTH_FAILED: 4003,
  AUTH_TIMEOUT: 4004,
  LIVENESS_TIMEOUT: 4008,
  SLOW_CONSUMER: 4009,
  RATE_ABUSE: 4029,
  BLOCKED: 4030,
} as const

/** Shared no-op error listener: a per-connection arrow would keep its whole scope (the upgrade request) alive. */
const NOOP = (): void => {}

const PEERJS_ID_RE = /^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$/
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/
const PEER_ID_RE = /^[\x21-\x7e]+$/

/** Injected services. */
export interface SignalingComponents {
  /** Signature verification for `register` (ML-DSA-87 in the node). */
  verify: VerifyFn
  /** Peer ID derivation from a public key. */
  peerIdFromPublicKey: PeerIdFromPublicKeyFn
  /** Cross-node peer and topic directory; without it the server is standalone. */
  directory?: PeerDirectory
  /** Frame transport to other signaling nodes; without it signals stay local. */
  relay?: NodeRelay
  /** @default silent */
  logger?: Logger
  /** @default Date */
  clock?: Clock
  /** Random bytes (challenges, PeerJS IDs). @default node:crypto randomFillSync */
  random?: (length: number) => Uint8Array
  /** Admission hook (abuse detection) consulted for every connection and frame. @default none */
  guard?: SignalingGuard
}

/** User options. Every field is optional. */
export interface SignalingInit {
  /** This node's ID in directory records. @default relay.nodeId, else a random hex string */
  nodeId?: string
  /** @default { native: '/p2p-signaling', yWebrtc: '/y-webrtc', peerjs: '/peerjs' } */
  paths?: { native?: string; yWebrtc?: string; peerjs?: string }
  /** WebSocket ping period. @default 30_000 */
  pingIntervalMs?: number
  /** Silence after which a connection is terminated and its peer withdrawn. @default 65_000 */
  livenessTimeoutMs?: number
  /** Time a connection may stay unregistered (native endpoint). @default 10_000 */
  authTimeoutMs?: number
  /** Failed `register` attempts before the connection is closed. @default 3 */
  maxAuthFailures?: number
  /** Largest accepted text frame in bytes; larger ones get `TOO_LARGE`. @default 65_536 */
  maxFrameBytes?: number
  /** Token-bucket refill, frames per second per connection. @default 100 */
  rateLimitPerSec?: number
  /** Token-bucket size per connection. @default 200 */
  rateLimitBurst?: number
  /** Open WebSocket connections accepted across all endpoints. @default 20_000 */
  maxConnections?: number
  /** Bytes queued for one socket before it counts as a slow consumer and is closed. @default 1_048_576 */
  maxBufferedBytes?: number
  /** Topics one connection may join. @default 32 */
  maxTopicsPerConnection?: number
  /** Distinct topics on this server. @default 10_000 */
  maxTopics?: number
  /** Peer IDs returned by `discover`. @default 100 */
  maxDiscoverResults?: number
  /** Time signals for an offline peer are held. @default 5_000 */
  holdMs?: number
  /** Signals held per offline peer. @default 32 */
  maxHeldPerPeer?: number
  /** Signals held in total. @default 10_000 */
  maxHeldTotal?: number
  /** Re-announce period for connected peers. @default 60_000 */
  announceIntervalMs?: number
  /** PeerJS API key accepted at `/peerjs`. @default 'peerjs' */
  peerjsKey?: string
}

/** Counters and gauges. */
export interface SignalingStats {
  /** Open WebSocket connections, all endpoints. */
  connections: number
  /** Registered peer IDs on this server (native and PeerJS). */
  peers: number
  /** Registered peers whose socket is open. */
  connectedPeers: number
  /** Topics with at least one local member (native and y-webrtc). */
  topics: number
  /** Frames delivered to a peer or forwarded to another node. */
  relayed: number
  /** Frames refused (bad, unauthenticated, too large, unknown type). */
  rejected: number
  /** Frames dropped by the rate limiter. */
  rateLimited: number
  /** Successful registrations. */
  registrations: number
  /** Failed registrations. */
  authFailures: number
  /** Signals currently held for offline peers. */
  held: number
  /** Held signals answered with an expiry. */
  expired: number
  /** Connections closed for inactivity. */
  timedOut: number
  /** Connections closed as slow consumers. */
  slowConsumers: number
  /** Frames forwarded to other nodes. */
  forwarded: number
  /** From `directory.getStats()`, when provided. */
  dhtNodes?: number
  /** From `directory.getStats()`, when provided. */
  dhtBuckets?: number
}

/** One registered peer, as {@link SignalingServer.listPeers} reports it. */
export interface SignalingPeerInfo {
  /** Registered ID (native peer ID or PeerJS ID). */
  id: string
  /** The endpoint it registered on. */
  protocol: 'native' | 'peerjs'
  /** `open` while its socket is open; `closed` between the socket closing and the registry forgetting it. */
  state: 'open' | 'closed'
  /** Remote `host:port` of its WebSocket, when the socket reported one. */
  address?: string
  /** When its connection opened, in clock milliseconds. */
  since: number
}

/** A running signaling server. */
export interface SignalingServer {
  /** Starts an own HTTP server (REST for PeerJS + WebSocket upgrades). Resolves with the bound address. */
  listen(options: { port: number; host?: string }): Promise<{ port: number; host: string }>
  /**
   * Routes an HTTP upgrade by path. Returns `false` (and leaves the socket untouched) if the path is not one
   * of ours, so the caller can try its other handlers.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean
  /** Answers `GET <peerjs>/id` (PeerJS REST). Returns `false` if the request is not ours. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean
  /** Counters and gauges (cheap, synchronous). */
  getStats(): SignalingStats
  /**
   * Registered peers (native first, then PeerJS), at most `limit` of them (`peers` in {@link getStats} is the
   * full count). Synchronous, O(limit).
   * @param options.limit - most entries returned. @default Infinity
   */
  listPeers(options?: { limit?: number }): SignalingPeerInfo[]
  /** Stops accepting, closes every socket with 1001, clears every timer, withdraws peers. Idempotent. */
  close(): Promise<void>
  /** This node's ID in directory records. */
  readonly nodeId: string
}

const enum Kind {
  Native = 0,
  YWebrtc = 1,
  PeerJS = 2,
}

interface Conn {
  ws: WsConnection<Conn>
  kind: Kind
  /** Registered ID (native peer ID, or PeerJS ID). */
  id: string | undefined
  /** JSON encoding of `id`, computed once for the relay hot path. */
  idJson: string
  token: string | undefined
  nonce: string | undefined
  authBusy: boolean
  authFailures: number
  openedAt: number
  lastSeen: number
  tokens: number
  refilledAt: number
  rateErrorAt: number
  rateDrops: number
  topics: Set<string> | undefined
  closed: boolean
  /** The guard's session for this connection, when a guard is injected. */
  guard: GuardSession | undefined
}

interface Held {
  frames: { frame: string; from: string; kind: Kind; at: number }[]
}

type Rid = string | number | undefined

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

/** Encodes bytes without copying them first. */
function bytesToString(bytes: Uint8Array, encoding: 'hex' | 'base64'): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(encoding)
}

/** `host:port` of a TCP socket, read on demand (not kept per connection: idle memory is a bar). */
function remoteAddressOf(socket: Duplex): string | undefined {
  const { remoteAddress, remotePort } = socket as Partial<Socket>
  if (remoteAddress === undefined) return undefined
  const host = remoteAddress.includes(':') ? `[${remoteAddress}]` : remoteAddress
  return remotePort === undefined ? host : `${host}:${remotePort}`
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '/'
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

function ridOf(msg: Record<string, unknown>): Rid {
  const rid = msg.rid
  if (typeof rid === 'number' && Number.isFinite(rid)) return rid
  if (typeof rid === 'string' && rid.length <= MAX_RID_LENGTH) return rid
  return undefined
}

function validPeerId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_PEER_ID_LENGTH && PEER_ID_RE.test(id)
}

function validTopic(topic: unknown): topic is string {
  return typeof topic === 'string' && topic.length > 0 && topic.length <= MAX_TOPIC_LENGTH
}

function decodeBase64(value: unknown, maxChars: number): Uint8Array | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxChars) return undefined
  if (value.length % 4 !== 0 || !BASE64_RE.test(value)) return undefined
  return new Uint8Array(Buffer.from(value, 'base64'))
}

/**
 * Creates a signaling server. Nothing listens until {@link SignalingServer.listen} is called or upgrades
 * are routed to {@link SignalingServer.handleUpgrade}.
 */
export function createSignalingServer(
  components: SignalingComponents,
  init: SignalingInit = {},
): SignalingServer {
  if (typeof components?.verify !== 'function') throw new TypeError('"components.verify" must be a function')
  if (typeof components.peerIdFromPublicKey !== 'function') {
    throw new TypeError('"components.peerIdFromPublicKey" must be a function')
  }
  return new SignalingServerImpl(components, init)
}

class SignalingServerImpl implements SignalingServer {
  readonly nodeId: string
  readonly #verify: VerifyFn
  readonly #peerIdOf: PeerIdFromPublicKeyFn
  readonly #directory: PeerDirectory | undefined
  readonly #relay: NodeRelay | undefined
  readonly #log: Logger
  readonly #clock: Clock
  readonly #random: (length: number) => Uint8Array
  readonly #guard: SignalingGuard | undefined

  readonly #nativePath: string
  readonly #yPath: string
  readonly #pjPath: string
  readonly #pingIntervalMs: number
  readonly #livenessTimeoutMs: number
  readonly #authTimeoutMs: number
  readonly #maxAuthFailures: number
  readonly #maxFrameBytes: number
  readonly #ratePerMs: number
  readonly #burst: number
  readonly #maxConnections: number
  readonly #maxBufferedBytes: number
  readonly #maxTopicsPerConn: number
  readonly #maxTopics: number
  readonly #maxDiscover: number
  readonly #holdMs: number
  readonly #maxHeldPerPeer: number
  readonly #maxHeldTotal: number
  readonly #announceIntervalMs: number
  readonly #pjKey: string

  /** Frames larger than this close the connection (1009); up to it, larger than maxFrameBytes get TOO_LARGE. */
  readonly #maxPayload: number
  readonly #conns = new Set<Conn>()
  /** Native peers by ID. */
  readonly #peers = new Map<string, Conn>()
  /** PeerJS clients by ID. */
  readonly #pjPeers = new Map<string, Conn>()
  /** Topic members; keys are `n:<topic>` (native) and `y:<topic>` (y-webrtc). */
  readonly #topics = new Map<string, Set<Conn>>()
  /** Signals held for offline peers; keys are `n:<id>` and `p:<id>`. */
  readonly #held = new Map<string, Held>()
  #heldCount = 0
  readonly #routes = new Map<string, { nodeId: string; expiresAt: number }>()
  readonly #lookups = new Map<string, { frame: string; from: string }[]>()
  /** Resolves close() once the last connection is gone. */
  #allClosed: (() => void) | undefined

  #server: Server | undefined
  #pingTimer: ReturnType<typeof setInterval> | undefined
  #sweepTimer: ReturnType<typeof setInterval> | undefined
  #announceTimer: ReturnType<typeof setInterval> | undefined
  #unsubscribeRelay: (() => void) | undefined
  #closing = false
  /** Text of the frame #parse returned last (valid until the handler returns). */
  #text = ''
  /** Whether #text is pure ASCII. */
  #ascii = false
  #closePromise: Promise<void> | undefined
  #started = false

  #relayed = 0
  #rejected = 0
  #rateLimited = 0
  #registrations = 0
  #authFailures = 0
  #expired = 0
  #timedOut = 0
  #slowConsumers = 0
  #forwarded = 0

  constructor(components: SignalingComponents, init: SignalingInit) {
    this.#verify = components.verify
    this.#peerIdOf = components.peerIdFromPublicKey
    this.#directory = components.directory
    this.#relay = components.relay
    this.#log = (components.logger ?? SILENT_LOGGER).child({ component: 'signaling' })
    this.#clock = components.clock ?? Date
    if (components.guard !== undefined && typeof components.guard?.connect !== 'function') {
      throw new TypeError('"components.guard.connect" must be a function')
    }
    this.#guard = components.guard
    // Small pooled buffers (Buffer.allocUnsafe) rather than one malloc'd backing store per challenge.
    this.#random = components.random ?? ((n: number) => randomFillSync(Buffer.allocUnsafe(n)))
    this.nodeId = init.nodeId ?? components.relay?.nodeId ?? bytesToString(this.#random(20), 'hex')
    this.#nativePath = init.paths?.native ?? '/p2p-signaling'
    this.#yPath = init.paths?.yWebrtc ?? '/y-webrtc'
    this.#pjPath = init.paths?.peerjs ?? '/peerjs'
    this.#pingIntervalMs = positive('pingIntervalMs', init.pingIntervalMs, PING_INTERVAL_MS)
    this.#livenessTimeoutMs = positive('livenessTimeoutMs', init.livenessTimeoutMs, LIVENESS_TIMEOUT_MS)
    this.#authTimeoutMs = positive('authTimeoutMs', init.authTimeoutMs, AUTH_TIMEOUT_MS)
    this.#maxAuthFailures = positive('maxAuthFailures', init.maxAuthFailures, 3)
    this.#maxFrameBytes = positive('maxFrameBytes', init.maxFrameBytes, MAX_FRAME_BYTES)
    this.#ratePerMs = positive('rateLimitPerSec', init.rateLimitPerSec, 100) / 1000
    this.#burst = positive('rateLimitBurst', init.rateLimitBurst, 200)
    this.#maxConnections = positive('maxConnections', init.maxConnections, 20_000)
    this.#maxBufferedBytes = positive('maxBufferedBytes', init.maxBufferedBytes, 1024 * 1024)
    this.#maxTopicsPerConn = positive('maxTopicsPerConnection', init.maxTopicsPerConnection, 32)
    this.#maxTopics = positive('maxTopics', init.maxTopics, 10_000)
    this.#maxDiscover = positive('maxDiscoverResults', init.maxDiscoverResults, 100)
    this.#holdMs = nonNegative('holdMs', init.holdMs, HOLD_MS)
    this.#maxHeldPerPeer = nonNegative('maxHeldPerPeer', init.maxHeldPerPeer, 32)
    this.#maxHeldTotal = nonNegative('maxHeldTotal', init.maxHeldTotal, 10_000)
    this.#announceIntervalMs = positive('announceIntervalMs', init.announceIntervalMs, ANNOUNCE_INTERVAL_MS)
    this.#pjKey = init.peerjsKey ?? 'peerjs'
    this.#maxPayload = this.#maxFrameBytes * HARD_FRAME_FACTOR
  }

  // ---------------------------------------------------------------- lifecycle

  #start(): void {
    if (this.#started) return
    this.#started = true
    this.#pingTimer = setInterval(() => this.#pingAll(), this.#pingIntervalMs)
    this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS)
    if (this.#directory !== undefined) {
      this.#announceTimer = setInterval(() => this.#reannounce(), this.#announceIntervalMs)
    }
    if (this.#relay !== undefined) {
      this.#unsubscribeRelay = this.#relay.onFrame((from, frame) => this.#onRelayFrame(from, frame))
    }
  }

  async listen(options: { port: number; host?: string }): Promise<{ port: number; host: string }> {
    if (this.#server !== undefined) throw new SignalingError('X_SIG_ALREADY_LISTENING', 'already listening')
    if (this.#closing) throw new SignalingError('X_SIG_CLOSED', 'server is closed')
    const server = createServer((req, res) => {
      if (!this.handleRequest(req, res)) {
        res.writeHead(404, { 'content-type': 'text/plain' })
        res.end('not found')
      }
    })
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!this.handleUpgrade(req, socket, head)) {
        socket.on('error', NOOP)
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n')
      }
    })
    server.on('clientError', (_err, socket) => socket.destroy())
    this.#server = server
    this.#start()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port, options.host ?? '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    const address = server.address()
    if (address === null || typeof address === 'string')
      throw new SignalingError('X_SIG_INTERNAL', 'no address')
    return { port: address.port, host: address.address }
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = pathOf(req.url)
    let kind: Kind
    if (path === this.#nativePath) kind = Kind.Native
    else if (path === this.#yPath) kind = Kind.YWebrtc
    else if (path === this.#pjPath) kind = Kind.PeerJS
    else return false
    socket.on('error', NOOP)
    if (this.#closing || this.#conns.size >= this.#maxConnections) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n')
      return true
    }
    let guard: GuardSession | undefined
    let guardRef: { conn: Conn | undefined } | undefined
    if (this.#guard !== undefined) {
      const ref: { conn: Conn | undefined } = { conn: undefined }
      const session = this.#guardConnect(socket, kind, (reason) => {
        if (ref.conn !== undefined) ref.conn.ws.close(CLOSE_CODES.BLOCKED, reason.slice(0, 100))
        else socket.destroy()
      })
      if (session === false) {
        this.#rejected++
        socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n\r\n')
        return true
      }
      guard = session
      guardRef = ref
      // An upgrade that never completes (bad handshake, client gone) must still end the guard's session.
      if (session !== undefined) {
        socket.once('close', () => {
          if (ref.conn === undefined) this.#guardCall(session, 'closed')
        })
      }
    }
    this.#start()
    // A refused handshake answers with an HTTP error; the socket's close then ends the guard's session (above).
    const ws = acceptWebSocket<Conn>(req, socket, head, this.#listener, this.#maxPayload)
    if (ws === undefined) return true
    const conn = this.#onConnection(ws, kind, req, guard)
    if (guardRef !== undefined) guardRef.conn = conn
    return true
  }

  /** The guard's session for a new connection; `false` refuses it, `undefined` (guard threw) admits it. */
  #guardConnect(
    socket: Duplex,
    kind: Kind,
    close: (reason: string) => void,
  ): GuardSession | false | undefined {
    const address = (socket as Partial<Socket>).remoteAddress ?? ''
    const endpoint: GuardEndpoint =
      kind === Kind.Native ? 'native' : kind === Kind.YWebrtc ? 'y-webrtc' : 'peerjs'
    try {
      return this.#guard!.connect(address, endpoint, close)
    } catch (err) {
      this.#log.warn({ err: (err as Error)?.message }, 'guard failed; connection admitted')
      return undefined
    }
  }

  /** Calls a guard session method; a guard that throws is logged and ignored (it admits). */
  #guardCall<M extends 'sent' | 'error' | 'registered' | 'closed'>(
    guard: GuardSession | undefined,
    method: M,
    ...args: Parameters<GuardSession[M]>
  ): void {
    if (guard === undefined) return
    try {
      ;(guard[method] as (...a: unknown[]) => void)(...args)
    } catch (err) {
      this.#log.warn({ err: (err as Error)?.message, method }, 'guard failed')
    }
  }

  /** The guard's verdict on a frame; true (admit) without a guard or when it throws. */
  #guardFrame(conn: Conn, type: string, bytes: number, target: string | undefined): boolean {
    const guard = conn.guard
    if (guard === undefined) return true
    try {
      return guard.frame(type, bytes, target) !== false
    } catch (err) {
      this.#log.warn({ err: (err as Error)?.message }, 'guard failed; frame admitted')
      return true
    }
  }

  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const path = pathOf(req.url)
    const base = this.#pjPath.endsWith('/') ? this.#pjPath : this.#pjPath + '/'
    // PeerJS clients with `path: '/'` and `key: K` call `GET /K/id`; with `path: P` they call `P/K/id`.
    if (path !== `/${this.#pjKey}/id` && path !== `${base}${this.#pjKey}/id`) {
      if (path === this.#pjPath || path === base) {
        res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' })
        res.end('{"name":"@x/signaling PeerJS-compatible endpoint"}')
        return true
      }
      return false
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' })
      res.end()
      return true
    }
    let id: string
    do {
      id = bytesToString(this.#random(16), 'hex')
    } while (this.#pjPeers.has(id))
    res.writeHead(200, { 'content-type': 'text/html', 'access-control-allow-origin': '*' })
    res.end(id)
    return true
  }

  close(): Promise<void> {
    this.#closePromise ??= this.#doClose()
    return this.#closePromise
  }

  async #doClose(): Promise<void> {
    this.#closing = true
    clearInterval(this.#pingTimer)
    clearInterval(this.#sweepTimer)
    clearInterval(this.#announceTimer)
    this.#unsubscribeRelay?.()
    const withdrawals: Promise<void>[] = []
    for (const id of this.#peers.keys())
      withdrawals.push(this.#dirCall('withdraw', () => this.#directory?.withdraw(id, this.nodeId)))
    const allClosed = new Promise<void>((resolve) => {
      if (this.#conns.size === 0) resolve()
      else this.#allClosed = resolve
    })
    for (const conn of this.#conns) conn.ws.close(CLOSE_CODES.GOING_AWAY, 'server shutting down')
    let grace: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      allClosed,
      new Promise<void>((resolve) => {
        grace = setTimeout(() => {
          for (const conn of this.#conns) conn.ws.terminate()
          resolve()
        }, CLOSE_GRACE_MS)
      }),
    ])
    clearTimeout(grace)
    await allClosed
    await Promise.all(withdrawals)
    this.#held.clear()
    this.#heldCount = 0
    this.#lookups.clear()
    this.#routes.clear()
    const server = this.#server
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
  }

  listPeers(options: { limit?: number } = {}): SignalingPeerInfo[] {
    const limit = options.limit ?? Infinity
    if (typeof limit !== 'number' || Number.isNaN(limit) || limit < 0) {
      throw new RangeError(`"limit" must be a non-negative number, got ${String(limit)}`)
    }
    const out: SignalingPeerInfo[] = []
    const add = (registry: Map<string, Conn>, protocol: SignalingPeerInfo['protocol']): void => {
      for (const [id, c] of registry) {
        if (out.length >= limit) return
        const info: SignalingPeerInfo = {
          id,
          protocol,
          state: c.closed ? 'closed' : 'open',
          since: c.openedAt,
        }
        const address = remoteAddressOf(c.ws.socket)
        if (address !== undefined) info.address = address
        out.push(info)
      }
    }
    add(this.#peers, 'native')
    add(this.#pjPeers, 'peerjs')
    return out
  }

  getStats(): SignalingStats {
    let connectedPeers = 0
    for (const c of this.#peers.values()) if (!c.closed) connectedPeers++
    for (const c of this.#pjPeers.values()) if (!c.closed) connectedPeers++
    const stats: SignalingStats = {
      connections: this.#conns.size,
      peers: this.#peers.size + this.#pjPeers.size,
      connectedPeers,
      topics: this.#topics.size,
      relayed: this.#relayed,
      rejected: this.#rejected,
      rateLimited: this.#rateLimited,
      registrations: this.#registrations,
      authFailures: this.#authFailures,
      held: this.#heldCount,
      expired: this.#expired,
      timedOut: this.#timedOut,
      slowConsumers: this.#slowConsumers,
      forwarded: this.#forwarded,
    }
    const dht = this.#directory?.getStats?.()
    if (dht !== undefined) {
      stats.dhtNodes = dht.dhtNodes
      stats.dhtBuckets = dht.dhtBuckets
    }
    return stats
  }

  // ---------------------------------------------------------------- connections

  #onConnection(
    ws: WsConnection<Conn>,
    kind: Kind,
    req: IncomingMessage,
    guard: GuardSession | undefined,
  ): Conn {
    const now = this.#clock.now()
    const conn: Conn = {
      ws,
      kind,
      id: undefined,
      idJson: '',
      token: undefined,
      nonce: undefined,
      authBusy: false,
      authFailures: 0,
      openedAt: now,
      lastSeen: now,
      tokens: this.#burst,
      refilledAt: now,
      rateErrorAt: 0,
      rateDrops: 0,
      topics: undefined,
      closed: false,
      guard,
    }
    this.#conns.add(conn)
    ws.owner = conn
    if (kind === Kind.Native) {
      conn.nonce = bytesToString(this.#random(32), 'base64')
      this.#send(
        conn,
        `{"type":"challenge","v":${PROTOCOL_VERSION},"nonce":"${conn.nonce}","node":${JSON.stringify(this.nodeId)}}`,
      )
    } else if (kind === Kind.PeerJS) {
      this.#openPeerJS(conn, req)
    }
    return conn
  }

  /** The connections' listener (one per server, shared by every connection). */
  static #makeListener(server: SignalingServerImpl): WsListener<Conn> {
    return {
      onMessage(ws, data, isBinary) {
        const conn = ws.owner
        if (conn === undefined) return
        if (conn.kind === Kind.Native) server.#onNative(conn, data, isBinary)
        else if (conn.kind === Kind.YWebrtc) server.#onYWebrtc(conn, data, isBinary)
        else server.#onPeerJS(conn, data, isBinary)
      },
      onAlive(ws) {
        const conn = ws.owner
        if (conn !== undefined) conn.lastSeen = server.#clock.now()
      },
      onClose(ws) {
        const conn = ws.owner
        if (conn !== undefined) server.#onClose(conn)
      },
    }
  }

  readonly #listener = SignalingServerImpl.#makeListener(this)

  #onClose(conn: Conn): void {
    if (conn.closed) return
    conn.closed = true
    this.#conns.delete(conn)
    if (this.#conns.size === 0) this.#allClosed?.()
    this.#guardCall(conn.guard, 'closed')
    if (conn.topics !== undefined) {
      for (const key of conn.topics) {
        const members = this.#topics.get(key)
        if (members === undefined) continue
        members.delete(conn)
        if (members.size === 0) this.#topics.delete(key)
        if (conn.kind === Kind.Native && conn.id !== undefined && !this.#closing) {
          const id = conn.id
          void this.#dirCall('leave', () => this.#directory?.leave(key.slice(2), id))
        }
      }
      conn.topics = undefined
    }
    const id = conn.id
    if (id === undefined) return
    if (conn.kind === Kind.Native) {
      if (this.#peers.get(id) === conn) {
        this.#peers.delete(id)
        if (!this.#closing) void this.#dirCall('withdraw', () => this.#directory?.withdraw(id, this.nodeId))
      }
    } else if (conn.kind === Kind.PeerJS) {
      if (this.#pjPeers.get(id) === conn) this.#pjPeers.delete(id)
    }
  }

  /**
   * Sends a text frame; a socket whose queue exceeds the bound is a slow consumer and is dropped. `ascii` promises
   * the frame has no character above U+007F (it skips a scan on the relay hot path).
   */
  #send(conn: Conn, frame: string, ascii = false): boolean {
    const ws = conn.ws
    if (conn.closed || ws.state !== WsState.Open) return false
    if (ws.bufferedAmount > this.#maxBufferedBytes) {
      this.#slowConsumers++
      this.#log.debug({ id: conn.id }, 'slow consumer closed')
      ws.terminate()
      return false
    }
    ws.send(frame, ascii)
    if (conn.guard !== undefined) {
      try {
        conn.guard.sent(frame.length)
      } catch (err) {
        this.#log.warn({ err: (err as Error)?.message }, 'guard failed')
      }
    }
    return true
  }

  #error(conn: Conn, code: WireErrorCode, message: string, rid?: Rid, to?: string): void {
    this.#guardCall(conn.guard, 'error', code)
    let frame = `{"type":"error","code":"${code}","message":${JSON.stringify(message)}`
    if (to !== undefined) frame += `,"to":${JSON.stringify(to)}`
    if (rid !== undefined) frame += `,"rid":${JSON.stringify(rid)}`
    this.#send(conn, frame + '}')
  }

  #reject(conn: Conn, code: WireErrorCode, message: string, rid?: Rid, to?: string): void {
    this.#rejected++
    this.#error(conn, code, message, rid, to)
  }

  /** Token bucket; returns false when the frame must be dropped. */
  #admit(conn: Conn, now: number): boolean {
    let tokens = conn.tokens + (now - conn.refilledAt) * this.#ratePerMs
    if (tokens > this.#burst) tokens = this.#burst
    conn.refilledAt = now
    if (tokens >= 1) {
      conn.tokens = tokens - 1
      return true
    }
    conn.tokens = tokens
    this.#rateLimited++
    conn.rateDrops++
    this.#guardFrame(conn, 'rate-limited', 0, undefined)
    // A client that ignores RATE_LIMITED for long is cut off: 10 bursts' worth of dropped frames.
    if (conn.rateDrops > this.#burst * 10) {
      conn.ws.close(CLOSE_CODES.RATE_ABUSE, 'rate limit abuse')
      return false
    }
    this.#tellRateLimited(conn, now)
    return false
  }

  /** Tells a client its frames are being dropped, at most once a second (y-webrtc has no error frame). */
  #tellRateLimited(conn: Conn, now: number): void {
    if (now - conn.rateErrorAt < 1000) return
    conn.rateErrorAt = now
    if (conn.kind === Kind.Native) this.#error(conn, 'RATE_LIMITED', 'too many frames; slow down')
    else if (conn.kind === Kind.PeerJS) this.#send(conn, '{"type":"ERROR","payload":{"msg":"Rate limited"}}')
  }

  /** Common admission for every endpoint: liveness, size, rate, JSON object shape. */
  #parse(conn: Conn, data: Buffer, isBinary: boolean): Record<string, unknown> | undefined {
    const now = this.#clock.now()
    conn.lastSeen = now
    if (!this.#admit(conn, now)) return undefined
    const buf = data
    if (isBinary) {
      this.#guardFrame(conn, 'invalid', buf.length, undefined)
      this.#rejectFor(conn, 'BAD_MESSAGE', 'binary frames are not accepted')
      return undefined
    }
    if (buf.length > this.#maxFrameBytes) {
      this.#guardFrame(conn, 'invalid', buf.length, undefined)
      this.#rejectFor(conn, 'TOO_LARGE', `frame exceeds ${this.#maxFrameBytes} bytes`)
      return undefined
    }
    const text = buf.toString()
    let msg: unknown
    try {
      msg = JSON.parse(text)
    } catch {
      this.#guardFrame(conn, 'invalid', buf.length, undefined)
      this.#rejectFor(conn, 'BAD_MESSAGE', 'frame is not valid JSON')
      return undefined
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      this.#guardFrame(conn, 'invalid', buf.length, undefined)
      this.#rejectFor(conn, 'BAD_MESSAGE', 'frame must be a JSON object')
      return undefined
    }
    if (
      conn.guard !== undefined &&
      !this.#guardAdmits(conn, msg as Record<string, unknown>, buf.length, now)
    ) {
      return undefined
    }
    // Handed to the caller through a field, not a fresh {msg, text} object per frame: handlers run synchronously.
    this.#text = text
    // Every UTF-8 byte above 0x7f belongs to a multi-byte sequence that decodes to fewer UTF-16 units.
    this.#ascii = text.length === buf.length
    return msg as Record<string, unknown>
  }

  /** Asks the guard about a parsed frame; a refused frame is answered as the rate limiter answers. */
  #guardAdmits(conn: Conn, msg: Record<string, unknown>, bytes: number, now: number): boolean {
    const type = typeof msg.type === 'string' ? msg.type : 'invalid'
    const to = msg.to ?? msg.dst ?? msg.topic
    if (this.#guardFrame(conn, type, bytes, typeof to === 'string' ? to : undefined)) return true
    this.#rateLimited++
    this.#tellRateLimited(conn, now)
    return false
  }

  #rejectFor(conn: Conn, code: WireErrorCode, message: string): void {
    if (conn.kind === Kind.Native) this.#reject(conn, code, message)
    else if (conn.kind === Kind.PeerJS) {
      this.#rejected++
      this.#send(conn, `{"type":"ERROR","payload":{"msg":${JSON.stringify(message)}}}`)
    } else {
      // The y-webrtc protocol has no error frame; count and drop.
      this.#rejected++
    }
  }

  // ---------------------------------------------------------------- native endpoint

  #onNative(conn: Conn, data: Buffer, isBinary: boolean): void {
    const msg = this.#parse(conn, data, isBinary)
    if (msg === undefined) return
    const text = this.#text
    const type = msg.type
    if (typeof type !== 'string')
      return this.#reject(conn, 'BAD_MESSAGE', '"type" must be a string', ridOf(msg))
    if (msg.v !== undefined && msg.v !== PROTOCOL_VERSION) {
      return this.#reject(
        conn,
        'UNSUPPORTED_VERSION',
        `only version ${PROTOCOL_VERSION} is spoken`,
        ridOf(msg),
      )
    }
    switch (type) {
      case 'offer':
      case 'answer':
      case 'candidate':
        return this.#relaySignal(conn, msg, text)
      case 'ping':
        return void this.#send(
          conn,
          ridOf(msg) === undefined
            ? '{"type":"pong"}'
            : `{"type":"pong","rid":${JSON.stringify(ridOf(msg))}}`,
        )
      case 'register':
        return void this.#register(conn, msg)
      case 'join':
        return this.#join(conn, msg)
      case 'leave':
        return this.#leave(conn, msg)
      case 'discover':
        return void this.#discover(conn, msg)
      default:
        return this.#reject(conn, 'UNKNOWN_TYPE', `unknown type "${type.slice(0, 32)}"`, ridOf(msg))
    }
  }

  #relaySignal(conn: Conn, msg: Record<string, unknown>, text: string): void {
    const from = conn.id
    if (from === undefined) return this.#reject(conn, 'UNAUTHENTICATED', 'register first', ridOf(msg))
    const rawTo = msg.to
    // Registered IDs are valid, so a hit needs no further check; only a miss pays for the pattern test.
    const target = typeof rawTo === 'string' ? this.#peers.get(rawTo) : undefined
    if (target === undefined && !validPeerId(rawTo)) {
      return this.#reject(conn, 'BAD_MESSAGE', '"to" must be a peer ID', ridOf(msg))
    }
    const to = rawTo as string
    const payload = msg.data
    if (typeof payload !== 'object' || payload === null) {
      return this.#reject(conn, 'BAD_MESSAGE', '"data" must be an object or array', ridOf(msg), to)
    }
    if (msg.from !== undefined) {
      return this.#reject(conn, 'BAD_MESSAGE', '"from" is set by the server', ridOf(msg), to)
    }
    // The frame was parsed and has no top-level "from" (JSON.parse keeps the last duplicate key, so none exists),
    // so prefixing the server-set sender onto the original text yields valid JSON without re-serialising.
    const frame = `{"from":${conn.idJson},${text.slice(text.indexOf('{') + 1)}`
    if (target !== undefined) {
      // Peer IDs are printable ASCII, so the frame is ASCII when the received text was.
      if (this.#send(target, frame, this.#ascii)) this.#relayed++
      return
    }
    this.#deliverNative(to, frame, from)
  }

  #deliverNative(to: string, frame: string, from: string): void {
    const target = this.#peers.get(to)
    if (target !== undefined) {
      if (this.#send(target, frame)) this.#relayed++
      return
    }
    if (this.#relay !== undefined && this.#directory !== undefined) {
      this.#routeRemote(to, frame, from)
      return
    }
    this.#hold(`n:${to}`, frame, from, Kind.Native)
  }

  #routeRemote(to: string, frame: string, from: string): void {
    const route = this.#routes.get(to)
    if (route !== undefined && route.expiresAt > this.#clock.now()) {
      this.#forward(route.nodeId, to, frame, from)
      return
    }
    const waiting = this.#lookups.get(to)
    if (waiting !== undefined) {
      if (waiting.length < this.#maxHeldPerPeer) waiting.push({ frame, from })
      else this.#replyNotFound(from, to)
      return
    }
    if (this.#lookups.size >= this.#maxHeldTotal) return this.#replyNotFound(from, to)
    const queue = [{ frame, from }]
    this.#lookups.set(to, queue)
    void this.#lookup(to).then((nodeId) => {
      this.#lookups.delete(to)
      if (this.#closing) return
      const local = this.#peers.get(to)
      for (const item of queue) {
        if (local !== undefined) {
          if (this.#send(local, item.frame)) this.#relayed++
        } else if (nodeId !== undefined && nodeId !== this.nodeId) {
          this.#forward(nodeId, to, item.frame, item.from)
        } else {
          this.#hold(`n:${to}`, item.frame, item.from, Kind.Native)
        }
      }
      if (nodeId !== undefined && nodeId !== this.nodeId) {
        if (this.#routes.size >= MAX_ROUTES) this.#routes.clear()
        this.#routes.set(to, { nodeId, expiresAt: this.#clock.now() + ROUTE_TTL_MS })
      }
    })
  }

  async #lookup(peerId: string): Promise<string | undefined> {
    try {
      const nodeId = await this.#directory?.lookup(peerId)
      return typeof nodeId === 'string' ? nodeId : undefined
    } catch (err) {
      this.#log.warn({ err: (err as Error).message, peerId }, 'directory lookup failed')
      return undefined
    }
  }

  #forward(nodeId: string, to: string, frame: string, from: string): void {
    const relay = this.#relay
    if (relay === undefined) return
    const envelope = JSON.stringify({ t: 'deliver', to, from, frame })
    const fail = (err: unknown): void => {
      this.#log.debug({ err: (err as Error)?.message, nodeId }, 'relay send failed')
      this.#routes.delete(to)
      this.#replyNotFound(from, to)
    }
    try {
      const result = relay.send(nodeId, envelope)
      if (result instanceof Promise) result.catch(fail)
      this.#forwarded++
      this.#relayed++
    } catch (err) {
      fail(err)
    }
  }

  #replyNotFound(from: string, to: string): void {
    const conn = this.#peers.get(from)
    if (conn !== undefined) this.#error(conn, 'PEER_NOT_FOUND', 'peer is not connected', undefined, to)
  }

  #onRelayFrame(fromNode: string, raw: string): void {
    if (this.#closing || typeof raw !== 'string' || raw.length > this.#maxFrameBytes * 2) return
    let env: unknown
    try {
      env = JSON.parse(raw)
    } catch {
      return
    }
    if (typeof env !== 'object' || env === null) return
    const { t, to, from, frame, peer } = env as Record<string, unknown>
    if (t === 'deliver' && validPeerId(to) && validPeerId(from) && typeof frame === 'string') {
      const target = this.#peers.get(to)
      if (target !== undefined) {
        if (this.#send(target, frame)) this.#relayed++
      } else {
        this.#sendRelay(fromNode, JSON.stringify({ t: 'gone', to: from, peer: to }))
      }
    } else if (t === 'gone' && validPeerId(to) && validPeerId(peer)) {
      this.#routes.delete(peer)
      this.#replyNotFound(to, peer)
    }
  }

  #sendRelay(nodeId: string, frame: string): void {
    try {
      const result = this.#relay?.send(nodeId, frame)
      if (result instanceof Promise) result.catch(() => {})
    } catch {
      // Best effort: the origin's own hold/expiry covers the loss.
    }
  }

  #hold(key: string, frame: string, from: string, kind: Kind): void {
    const held = this.#held.get(key)
    if (
      this.#holdMs === 0 ||
      this.#heldCount >= this.#maxHeldTotal ||
      (held?.frames.length ?? 0) >= this.#maxHeldPerPeer
    ) {
      const to = key.slice(2)
      if (kind === Kind.Native) this.#replyNotFound(from, to)
      else this.#expireTo(kind, from, to)
      return
    }
    const entry = { frame, from, kind, at: this.#clock.now() }
    if (held === undefined) this.#held.set(key, { frames: [entry] })
    else held.frames.push(entry)
    this.#heldCount++
  }

  #flushHeld(key: string, conn: Conn): void {
    const held = this.#held.get(key)
    if (held === undefined) return
    this.#held.delete(key)
    this.#heldCount -= held.frames.length
    for (const f of held.frames) if (this.#send(conn, f.frame)) this.#relayed++
  }

  #expireTo(kind: Kind, from: string, peer: string): void {
    this.#expired++
    if (kind === Kind.Native) {
      const conn = this.#peers.get(from)
      if (conn !== undefined) this.#send(conn, `{"type":"expire","peer":${JSON.stringify(peer)}}`)
    } else {
      const conn = this.#pjPeers.get(from)
      if (conn !== undefined) {
        this.#send(conn, `{"type":"EXPIRE","src":${JSON.stringify(peer)},"dst":${JSON.stringify(from)}}`)
      }
    }
  }

  async #register(conn: Conn, msg: Record<string, unknown>): Promise<void> {
    const rid = ridOf(msg)
    if (conn.id !== undefined) return this.#reject(conn, 'BAD_MESSAGE', 'already registered', rid)
    if (conn.authBusy) return this.#reject(conn, 'BAD_MESSAGE', 'a registration is in progress', rid)
    const nonce = conn.nonce
    if (nonce === undefined) return
    const publicKey = decodeBase64(msg.publicKey, this.#maxFrameBytes)
    const signature = decodeBase64(msg.signature, this.#maxFrameBytes)
    if (publicKey === undefined || signature === undefined) {
      return this.#reject(conn, 'BAD_MESSAGE', '"publicKey" and "signature" must be base64', rid)
    }
    let id: string
    try {
      id = this.#peerIdOf(publicKey)
    } catch {
      return this.#reject(conn, 'BAD_MESSAGE', 'public key is malformed', rid)
    }
    if (!validPeerId(id)) return this.#reject(conn, 'INTERNAL', 'derived peer ID is invalid', rid)
    if (msg.id !== undefined && msg.id !== id) {
      return this.#reject(conn, 'BAD_MESSAGE', '"id" does not match the public key', rid)
    }
    conn.authBusy = true
    let ok = false
    try {
      ok = (await this.#verify(publicKey, challengeBytes(nonce), signature)) === true
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'verify threw')
      ok = false
    }
    conn.authBusy = false
    if (conn.closed || this.#closing) return
    if (!ok) {
      this.#authFailures++
      conn.authFailures++
      this.#guardCall(conn.guard, 'registered', undefined)
      if (this.#peers.has(id))
        this.#reject(conn, 'ID_TAKEN', 'peer ID is registered and the proof failed', rid)
      else this.#reject(conn, 'UNAUTHENTICATED', 'signature does not verify', rid)
      if (conn.authFailures >= this.#maxAuthFailures)
        conn.ws.close(CLOSE_CODES.AUTH_FAILED, 'authentication failed')
      return
    }
    const previous = this.#peers.get(id)
    if (previous !== undefined && previous !== conn) {
      // The new connection proved the key: it wins. Detach the old one before closing so its close
      // handler does not withdraw the peer we are about to re-announce.
      previous.id = undefined
      this.#dropTopics(previous)
      previous.ws.close(CLOSE_CODES.REPLACED, 'replaced by a newer connection')
    }
    conn.id = id
    conn.idJson = JSON.stringify(id)
    conn.nonce = undefined
    this.#peers.set(id, conn)
    this.#registrations++
    this.#guardCall(conn.guard, 'registered', id)
    this.#send(
      conn,
      `{"type":"registered","id":${conn.idJson},"replaced":${previous !== undefined}${rid === undefined ? '' : `,"rid":${JSON.stringify(rid)}`}}`,
    )
    void this.#dirCall('announce', () => this.#directory?.announce(id, this.nodeId))
    this.#flushHeld(`n:${id}`, conn)
  }

  #dropTopics(conn: Conn): void {
    if (conn.topics === undefined) return
    for (const key of conn.topics) {
      const members = this.#topics.get(key)
      members?.delete(conn)
      if (members?.size === 0) this.#topics.delete(key)
    }
    conn.topics = undefined
  }

  #join(conn: Conn, msg: Record<string, unknown>): void {
    const rid = ridOf(msg)
    const id = conn.id
    if (id === undefined) return this.#reject(conn, 'UNAUTHENTICATED', 'register first', rid)
    const topic = msg.topic
    if (!validTopic(topic))
      return this.#reject(conn, 'BAD_MESSAGE', '"topic" must be a non-empty string', rid)
    if (!this.#addTopic(conn, `n:${topic}`)) {
      return this.#reject(conn, 'TOPIC_LIMIT', 'too many topics', rid)
    }
    this.#send(
      conn,
      `{"type":"joined","topic":${JSON.stringify(topic)}${rid === undefined ? '' : `,"rid":${JSON.stringify(rid)}`}}`,
    )
    void this.#dirCall('join', () => this.#directory?.join(topic, id))
  }

  #addTopic(conn: Conn, key: string): boolean {
    conn.topics ??= new Set()
    if (conn.topics.has(key)) return true
    if (conn.topics.size >= this.#maxTopicsPerConn) return false
    let members = this.#topics.get(key)
    if (members === undefined) {
      if (this.#topics.size >= this.#maxTopics) return false
      members = new Set()
      this.#topics.set(key, members)
    }
    members.add(conn)
    conn.topics.add(key)
    return true
  }

  #removeTopic(conn: Conn, key: string): boolean {
    if (conn.topics?.delete(key) !== true) return false
    const members = this.#topics.get(key)
    members?.delete(conn)
    if (members?.size === 0) this.#topics.delete(key)
    return true
  }

  #leave(conn: Conn, msg: Record<string, unknown>): void {
    const rid = ridOf(msg)
    const id = conn.id
    if (id === undefined) return this.#reject(conn, 'UNAUTHENTICATED', 'register first', rid)
    const topic = msg.topic
    if (!validTopic(topic))
      return this.#reject(conn, 'BAD_MESSAGE', '"topic" must be a non-empty string', rid)
    if (this.#removeTopic(conn, `n:${topic}`))
      void this.#dirCall('leave', () => this.#directory?.leave(topic, id))
    this.#send(
      conn,
      `{"type":"left","topic":${JSON.stringify(topic)}${rid === undefined ? '' : `,"rid":${JSON.stringify(rid)}`}}`,
    )
  }

  async #discover(conn: Conn, msg: Record<string, unknown>): Promise<void> {
    const rid = ridOf(msg)
    const id = conn.id
    if (id === undefined) return this.#reject(conn, 'UNAUTHENTICATED', 'register first', rid)
    const topic = msg.topic
    if (!validTopic(topic))
      return this.#reject(conn, 'BAD_MESSAGE', '"topic" must be a non-empty string', rid)
    const found = new Set<string>()
    const local = this.#topics.get(`n:${topic}`)
    if (local !== undefined) {
      for (const member of local) {
        if (found.size >= this.#maxDiscover) break
        if (member.id !== undefined && member.id !== id) found.add(member.id)
      }
    }
    if (this.#directory !== undefined && found.size < this.#maxDiscover) {
      try {
        const remote = await this.#directory.findTopic(topic, this.#maxDiscover)
        if (Array.isArray(remote)) {
          for (const peer of remote) {
            if (found.size >= this.#maxDiscover) break
            if (validPeerId(peer) && peer !== id) found.add(peer)
          }
        }
      } catch (err) {
        this.#log.warn({ err: (err as Error).message, topic }, 'directory findTopic failed')
      }
    }
    this.#send(conn, JSON.stringify({ type: 'peers', topic, peers: [...found], rid }))
  }

  #dirCall(op: string, fn: () => void | Promise<void> | undefined): Promise<void> {
    if (this.#directory === undefined) return Promise.resolve()
    try {
      const result = fn()
      if (result instanceof Promise) {
        return result.catch((err: unknown) =>
          this.#log.warn({ err: (err as Error)?.message, op }, 'directory call failed'),
        )
      }
    } catch (err) {
      this.#log.warn({ err: (err as Error)?.message, op }, 'directory call failed')
    }
    return Promise.resolve()
  }

  // ---------------------------------------------------------------- y-webrtc endpoint

  #onYWebrtc(conn: Conn, data: Buffer, isBinary: boolean): void {
    const msg = this.#parse(conn, data, isBinary)
    if (msg === undefined) return
    switch (msg.type) {
      case 'subscribe':
      case 'unsubscribe': {
        const topics = msg.topics
        if (!Array.isArray(topics) || topics.length > this.#maxTopicsPerConn) return void this.#rejected++
        for (const topic of topics) {
          if (!validTopic(topic)) continue
          if (msg.type === 'subscribe') {
            if (!this.#addTopic(conn, `y:${topic}`)) this.#rejected++
          } else this.#removeTopic(conn, `y:${topic}`)
        }
        return
      }
      case 'publish': {
        const topic = msg.topic
        // Unlike the reference server, only subscribers may publish to a topic.
        if (!validTopic(topic) || conn.topics?.has(`y:${topic}`) !== true) return void this.#rejected++
        const receivers = this.#topics.get(`y:${topic}`)
        if (receivers === undefined) return
        msg.clients = receivers.size
        const frame = JSON.stringify(msg)
        for (const receiver of receivers) if (this.#send(receiver, frame)) this.#relayed++
        return
      }
      case 'ping':
        this.#send(conn, '{"type":"pong"}')
        return
      default:
        this.#rejected++
    }
  }

  // ---------------------------------------------------------------- PeerJS endpoint

  #openPeerJS(conn: Conn, req: IncomingMessage): void {
    let params: URLSearchParams
    try {
      params = new URL(req.url ?? '', 'http://peerjs').searchParams
    } catch {
      return this.#pjFail(conn, 'No id, token, or key supplied to websocket server')
    }
    const id = params.get('id')
    const token = params.get('token')
    const key = params.get('key')
    if (id === null || token === null || key === null || token.length === 0 || token.length > 64) {
      return this.#pjFail(conn, 'No id, token, or key supplied to websocket server')
    }
    if (key !== this.#pjKey) return this.#pjFail(conn, 'Invalid key provided')
    if (id.length > 64 || !PEERJS_ID_RE.test(id)) return this.#pjFail(conn, 'Invalid id provided')
    const existing = this.#pjPeers.get(id)
    if (existing !== undefined && !existing.closed) {
      if (existing.token !== token) {
        this.#rejected++
        this.#send(conn, '{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}')
        conn.ws.close(CLOSE_CODES.POLICY, 'ID is taken')
        return
      }
      existing.id = undefined
      existing.ws.close(CLOSE_CODES.REPLACED, 'replaced by a newer connection')
    }
    conn.id = id
    conn.idJson = JSON.stringify(id)
    conn.token = token
    this.#pjPeers.set(id, conn)
    this.#registrations++
    this.#guardCall(conn.guard, 'registered', id)
    this.#send(conn, '{"type":"OPEN"}')
    this.#flushHeld(`p:${id}`, conn)
  }

  #pjFail(conn: Conn, msg: string): void {
    this.#rejected++
    this.#send(conn, `{"type":"ERROR","payload":{"msg":${JSON.stringify(msg)}}}`)
    conn.ws.close(CLOSE_CODES.POLICY, msg.slice(0, 100))
  }

  #onPeerJS(conn: Conn, data: Buffer, isBinary: boolean): void {
    const msg = this.#parse(conn, data, isBinary)
    if (msg === undefined) return
    const text = this.#text
    const from = conn.id
    if (from === undefined) return
    const type = msg.type
    switch (type) {
      case 'HEARTBEAT':
        return
      case 'OFFER':
      case 'ANSWER':
      case 'CANDIDATE':
      case 'LEAVE':
      case 'EXPIRE': {
        const dst = msg.dst
        if (typeof dst !== 'string' || dst.length === 0 || dst.length > 64) {
          return this.#rejectFor(conn, 'BAD_MESSAGE', 'dst must be a peer id')
        }
        const frame =
          msg.src === undefined
            ? `{"src":${conn.idJson},${text.slice(text.indexOf('{') + 1)}`
            : JSON.stringify({ type, src: from, dst, payload: msg.payload })
        const target = this.#pjPeers.get(dst)
        if (target !== undefined) {
          if (this.#send(target, frame, msg.src === undefined && this.#ascii)) this.#relayed++
        } else if (type !== 'LEAVE' && type !== 'EXPIRE') {
          this.#hold(`p:${dst}`, frame, from, Kind.PeerJS)
        }
        return
      }
      default:
        this.#rejectFor(conn, 'UNKNOWN_TYPE', 'unknown message type')
    }
  }

  // ---------------------------------------------------------------- timers

  #pingAll(): void {
    for (const conn of this.#conns) {
      if (conn.ws.state !== WsState.Open) continue
      try {
        conn.ws.ping()
      } catch {
        conn.ws.terminate()
      }
    }
  }

  #sweep(): void {
    const now = this.#clock.now()
    for (const conn of this.#conns) {
      if (now - conn.lastSeen > this.#livenessTimeoutMs) {
        this.#timedOut++
        this.#log.debug({ id: conn.id }, 'liveness timeout')
        conn.ws.terminate()
        // terminate() emits 'close' asynchronously; unregister now so lookups stop finding the peer.
        this.#onClose(conn)
      } else if (
        conn.kind === Kind.Native &&
        conn.id === undefined &&
        !conn.authBusy &&
        now - conn.openedAt > this.#authTimeoutMs
      ) {
        conn.ws.close(CLOSE_CODES.AUTH_TIMEOUT, 'registration timeout')
      }
    }
    if (this.#heldCount === 0) return
    for (const [key, held] of this.#held) {
      const frames = held.frames
      let keep = 0
      const seen = new Set<string>()
      for (const f of frames) {
        if (now - f.at < this.#holdMs) frames[keep++] = f
        else {
          this.#heldCount--
          if (!seen.has(f.from)) {
            seen.add(f.from)
            this.#expireTo(f.kind, f.from, key.slice(2))
          }
        }
      }
      frames.length = keep
      if (keep === 0) this.#held.delete(key)
    }
  }

  #reannounce(): void {
    for (const id of this.#peers.keys())
      void this.#dirCall('announce', () => this.#directory?.announce(id, this.nodeId))
  }
}
