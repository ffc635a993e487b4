/**
 * The signaling server core: lifecycle, upgrade routing to the endpoint table, the connection registry, sending
 * with back-pressure, the topic table, and timers. WebSocket (RFC 6455) is `ws`, with its limits set explicitly.
 * The wire protocols live in `endpoints/`, admission in `admission.ts`, held signals in `hold-queue.ts` and
 * node-to-node signals in `federation.ts`.
 */
import { randomFillSync } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { Admission, AddressShares } from './admission'
import type { SignalingComponents, SignalingPeerInfo, SignalingServer, SignalingStats } from './api'
import { createConn, type Conn } from './connection'
import type { Counters, Endpoint, EndpointFactory, ServerCore } from './endpoints/endpoint'
import { defaultEndpoints } from './endpoints/index'
import { SignalingError } from './errors'
import { HoldQueue } from './hold-queue'
import { TopicTable } from './topics'
import { resolveOptions, type SignalingInit, type SignalingOptions } from './options'
import { CLOSE_CODES } from './protocol'
import {
  SILENT_LOGGER,
  SYSTEM_CLOCK,
  type ClientAddressFn,
  type Clock,
  type GuardSession,
  type Logger,
  type NodeRelay,
  type PeerDirectory,
  type Registration,
} from './types'

/** Period of the housekeeping sweep (liveness, close and auth deadlines, held-signal expiry). */
const SWEEP_INTERVAL_MS = 1_000
/** Grace for closing handshakes during close() before sockets are destroyed. */
const CLOSE_GRACE_MS = 1_000
/** Fragments one message may arrive in (`ws` closes with 1008 beyond; empty fragments are not free). */
const MAX_FRAGMENTS = 128
/** Received chunks `ws` may buffer for one incomplete frame (each costs a Buffer object, whatever its size). */
const MAX_BUFFERED_CHUNKS = 4_096
/** Time a client has to send its HTTP upgrade request on the server's own listener. */
const HANDSHAKE_TIMEOUT_MS = 10_000

/** Shared no-op error listener: a per-connection arrow would keep its whole scope (the upgrade request) alive. */
const NOOP = (): void => {}
const CONN = Symbol('conn')
type OwnedWebSocket = WebSocket & { [CONN]?: Conn }

function pathOf(url: string | undefined): string {
  if (url === undefined) return '/'
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/** A close reason within the 123 bytes a close frame carries. */
function closeReason(reason: string): string {
  let out = reason.slice(0, 123)
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1)
  return out
}

function refuseUpgrade(socket: Duplex, status: string): void {
  // Released once the answer is written (as `ws` does): `end()` alone leaves it open until the client closes its
  // side, and a refused socket counts against no cap.
  socket.once('finish', () => socket.destroy())
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
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
  return createServerWithEndpoints(components, init, defaultEndpoints(components))
}

/** @internal A server with another endpoint table (tests add a protocol this way). */
export function createServerWithEndpoints(
  components: SignalingComponents,
  init: SignalingInit,
  endpoints: readonly EndpointFactory[],
): SignalingServer {
  if (components.guard !== undefined && typeof components.guard?.connect !== 'function') {
    throw new TypeError('"components.guard.connect" must be a function')
  }
  if (components.clientAddress !== undefined && typeof components.clientAddress !== 'function') {
    throw new TypeError('"components.clientAddress" must be a function')
  }
  const core = new Core(components, resolveOptions(init))
  core.mount(endpoints)
  return {
    get nodeId() {
      return core.nodeId
    },
    listen: (options) => core.listen(options),
    handleUpgrade: (req, socket, head) => core.handleUpgrade(req, socket, head),
    handleRequest: (req, res) => core.handleRequest(req, res),
    getStats: () => core.getStats(),
    listPeers: (options) => core.listPeers(options),
    getRegistration: (peerId) => core.getRegistration(peerId),
    close: () => core.shutdown(),
  }
}

class Core implements ServerCore {
  readonly nodeId: string
  readonly options: SignalingOptions
  readonly log: Logger
  readonly clock: Clock
  readonly random: (length: number) => Uint8Array
  readonly directory: PeerDirectory | undefined
  readonly relay: NodeRelay | undefined
  readonly counters: Counters = {
    relayed: 0,
    rejected: 0,
    rateLimited: 0,
    registrations: 0,
    authFailures: 0,
    expired: 0,
    timedOut: 0,
    slowConsumers: 0,
    forwarded: 0,
    relayRejected: 0,
    refusedConnections: 0,
  }
  readonly admission: Admission
  readonly hold: HoldQueue
  readonly #clientAddress: ClientAddressFn | undefined
  readonly #wss: WebSocketServer
  #endpoints: Endpoint[] = []
  readonly #byPath = new Map<string, Endpoint>()
  readonly #conns = new Set<Conn>()
  readonly #shares = new AddressShares()
  readonly #topics: TopicTable
  /**
   * Send batching. Every frame produced while one inbound chunk is handled (a burst of signals arrives in one
   * TCP read, and `ws` emits its messages synchronously) is gathered per receiving socket: the socket is corked
   * at its first frame and uncorked in a microtask, which runs once the chunk's handlers return, so the frames
   * leave together in one `writev`. A single frame costs what it would uncorked: `ws` writes its header and
   * payload in one `writev` either way.
   */
  readonly #corked: Conn[] = []
  readonly #flush = (): void => {
    const corked = this.#corked
    for (const conn of corked) {
      conn.corked = false
      conn.socket.uncork()
    }
    corked.length = 0
  }
  /** Resolves close() once the last connection is gone. */
  #allClosed: (() => void) | undefined
  #server: Server | undefined
  #pingTimer: unknown
  #sweepTimer: unknown
  #closing = false
  #closePromise: Promise<void> | undefined
  #started = false
  #stops: Promise<void>[] = []

  // Event listeners shared by every connection (`this` is the WebSocket): no closure per connection.
  readonly #onMessage: (this: OwnedWebSocket, data: Buffer, isBinary: boolean) => void
  readonly #onPing: (this: OwnedWebSocket, data: Buffer) => void
  readonly #onPong: (this: OwnedWebSocket) => void
  readonly #onClose: (this: OwnedWebSocket) => void

  constructor(components: SignalingComponents, options: SignalingOptions) {
    this.options = options
    this.#topics = new TopicTable(options, this.#shares)
    this.directory = components.directory
    this.relay = components.relay
    this.log = (components.logger ?? SILENT_LOGGER).child({ component: 'signaling' })
    this.clock = components.clock ?? SYSTEM_CLOCK
    // Small pooled buffers (Buffer.allocUnsafe) rather than one malloc'd backing store per challenge.
    this.random = components.random ?? ((n: number) => randomFillSync(Buffer.allocUnsafe(n)))
    this.nodeId = options.nodeId ?? components.relay?.nodeId ?? Buffer.from(this.random(20)).toString('hex')
    this.#clientAddress = components.clientAddress
    this.admission = new Admission(options, this.counters, this.log, components.guard, (conn, code, reason) =>
      this.close(conn, code, reason),
    )
    this.hold = new HoldQueue(options, this.counters, (share) => this.#shares.release(share))
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxPayloadBytes,
      maxFragments: MAX_FRAGMENTS,
      maxBufferedChunks: MAX_BUFFERED_CHUNKS,
      // Pings are answered below, within the slow-consumer bound and the token bucket.
      autoPong: false,
      closeTimeout: options.closeTimeoutMs,
    } as ConstructorParameters<typeof WebSocketServer>[0])
    const listeners = Core.#listeners(this)
    /* eslint-disable @typescript-eslint/unbound-method -- `ws` calls them with the WebSocket as `this` */
    this.#onMessage = listeners.message
    this.#onPing = listeners.ping
    this.#onPong = listeners.pong
    this.#onClose = listeners.close
    /* eslint-enable @typescript-eslint/unbound-method */
  }

  /** The listeners every connection shares (`this` is the WebSocket): no closure per connection. */
  static #listeners(core: Core) {
    return {
      message: function (this: OwnedWebSocket, data: Buffer, isBinary: boolean): void {
        const conn = this[CONN]
        if (conn !== undefined) core.#message(conn, data, isBinary)
      },
      ping: function (this: OwnedWebSocket, data: Buffer): void {
        const conn = this[CONN]
        if (conn !== undefined) core.#ping(conn, data)
      },
      pong: function (this: OwnedWebSocket): void {
        const conn = this[CONN]
        if (conn === undefined || conn.closed) return
        if (conn.closingAt !== undefined) return core.#whileClosing(conn)
        const now = core.clock.now()
        conn.lastSeen = now
        // Unsolicited pongs are frames like any other: without a token each, a flood is never cut off.
        core.admission.take(conn, now)
      },
      close: function (this: OwnedWebSocket): void {
        const conn = this[CONN]
        if (conn !== undefined) core.#closed(conn)
      },
    }
  }

  mount(factories: readonly EndpointFactory[]): void {
    for (const factory of factories) {
      const endpoint = factory(this) as Endpoint
      if (this.#byPath.has(endpoint.path)) throw new TypeError(`two endpoints on path "${endpoint.path}"`)
      this.#byPath.set(endpoint.path, endpoint)
      this.#endpoints.push(endpoint)
    }
  }

  get closing(): boolean {
    return this.#closing
  }

  // ---------------------------------------------------------------- lifecycle

  #start(): void {
    if (this.#started) return
    this.#started = true
    this.#schedulePing()
    this.#scheduleSweep()
    for (const endpoint of this.#endpoints) endpoint.start?.()
  }

  #schedulePing(): void {
    this.#pingTimer = this.clock.setTimeout(() => {
      this.#pingAll()
      this.#schedulePing()
    }, this.options.pingIntervalMs)
  }

  #scheduleSweep(): void {
    this.#sweepTimer = this.clock.setTimeout(() => {
      this.#sweep()
      this.#scheduleSweep()
    }, SWEEP_INTERVAL_MS)
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
    server.headersTimeout = HANDSHAKE_TIMEOUT_MS
    server.requestTimeout = HANDSHAKE_TIMEOUT_MS
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!this.handleUpgrade(req, socket, head)) {
        socket.on('error', NOOP)
        refuseUpgrade(socket, '404 Not Found')
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
    if (address === null || typeof address === 'string') {
      throw new SignalingError('X_SIG_INTERNAL', 'no address')
    }
    return { port: address.port, host: address.address }
  }

  #addressOf(req: IncomingMessage, socket: Duplex): string {
    if (this.#clientAddress !== undefined) {
      try {
        const address = this.#clientAddress(req, socket)
        if (typeof address === 'string' && address.length > 0) return address
      } catch (err) {
        this.log.warn({ err: (err as Error)?.message }, 'clientAddress failed; using the socket address')
      }
    }
    return (socket as Partial<Socket>).remoteAddress ?? ''
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const endpoint = this.#byPath.get(pathOf(req.url))
    if (endpoint === undefined) return false
    socket.on('error', NOOP)
    if (this.#closing || this.#conns.size >= this.options.maxConnections) {
      this.counters.refusedConnections++
      refuseUpgrade(socket, '503 Service Unavailable')
      return true
    }
    const address = this.#addressOf(req, socket)
    const share = this.#shares.of(address)
    if (share.connections >= this.options.maxConnectionsPerAddress) {
      this.#shares.release(share)
      this.counters.refusedConnections++
      refuseUpgrade(socket, '429 Too Many Requests')
      return true
    }
    const ref: { conn: Conn | undefined } = { conn: undefined }
    const guard = this.admission.connect(address, endpoint.name, (reason) => {
      if (ref.conn !== undefined) this.close(ref.conn, CLOSE_CODES.BLOCKED, closeReason(reason))
      else socket.destroy()
    })
    if (guard === false || typeof guard === 'string') {
      this.#shares.release(share)
      this.counters.refusedConnections++
      if (guard === false) refuseUpgrade(socket, '429 Too Many Requests')
      else {
        // A browser learns nothing from an HTTP refusal but 1006: open the WebSocket to say why, then close it.
        this.#wss.handleUpgrade(req, socket, head, (ws) => {
          ws.on('error', NOOP)
          ws.close(CLOSE_CODES.BLOCKED, closeReason(guard))
        })
      }
      return true
    }
    this.#start()
    // `ws` completes (or refuses with an HTTP error) the handshake synchronously, calling back only on success.
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#open(ws, socket, endpoint, address, share, guard, req, ref)
    })
    if (ref.conn === undefined) {
      this.#shares.release(share)
      this.admission.call(guard, 'closed')
    }
    return true
  }

  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    for (const endpoint of this.#endpoints) if (endpoint.request?.(req, res) === true) return true
    return false
  }

  shutdown(): Promise<void> {
    this.#closePromise ??= this.#shutdown()
    return this.#closePromise
  }

  async #shutdown(): Promise<void> {
    this.#closing = true
    this.clock.clearTimeout(this.#pingTimer)
    this.clock.clearTimeout(this.#sweepTimer)
    this.#stops = this.#endpoints.map((e) => e.stop?.() ?? Promise.resolve())
    const allClosed = new Promise<void>((resolve) => {
      if (this.#conns.size === 0) resolve()
      else this.#allClosed = resolve
    })
    for (const conn of this.#conns) this.close(conn, CLOSE_CODES.GOING_AWAY, 'server shutting down')
    let grace: unknown
    await Promise.race([
      allClosed,
      new Promise<void>((resolve) => {
        grace = this.clock.setTimeout(() => {
          for (const conn of [...this.#conns]) this.#terminate(conn)
          resolve()
        }, CLOSE_GRACE_MS)
      }),
    ])
    this.clock.clearTimeout(grace)
    await allClosed
    await Promise.all(this.#stops)
    this.hold.clear()
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
    for (const endpoint of this.#endpoints) {
      if (out.length >= limit || endpoint.peers === undefined) continue
      for (const p of endpoint.peers(limit - out.length)) {
        out.push({
          id: p.id,
          protocol: p.protocol,
          state: p.conn.closingAt === undefined ? 'open' : 'closing',
          address: p.conn.address,
          since: p.conn.openedAt,
        })
      }
    }
    return out
  }

  getRegistration(peerId: string): Registration | undefined {
    for (const endpoint of this.#endpoints) {
      const registration = endpoint.registration?.(peerId)
      if (registration !== undefined) return registration
    }
    return undefined
  }

  getStats(): SignalingStats {
    let peers = 0
    for (const endpoint of this.#endpoints) peers += endpoint.registered ?? 0
    const stats: SignalingStats = {
      connections: this.#conns.size,
      peers,
      connectedPeers: peers,
      topics: this.#topics.size,
      addresses: this.#shares.size,
      held: this.hold.size,
      ...this.counters,
    }
    const dht = this.directory?.getStats?.()
    if (dht !== undefined) {
      stats.dhtNodes = dht.dhtNodes
      stats.dhtBuckets = dht.dhtBuckets
    }
    return stats
  }

  // ---------------------------------------------------------------- connections

  #open(
    ws: OwnedWebSocket,
    socket: Duplex,
    endpoint: Endpoint,
    address: string,
    share: Conn['share'],
    guard: GuardSession | undefined,
    req: IncomingMessage,
    ref: { conn: Conn | undefined },
  ): void {
    const conn = createConn(
      ws,
      socket,
      endpoint,
      address,
      share,
      guard,
      this.clock.now(),
      this.options.rateLimitBurst,
    )
    share.connections++
    this.#conns.add(conn)
    ws[CONN] = conn
    ws.on('message', this.#onMessage)
    ws.on('ping', this.#onPing)
    ws.on('pong', this.#onPong)
    ws.on('close', this.#onClose)
    ws.on('error', NOOP)
    // Set before the endpoint opens: a guard may close the connection from a call made during `open`.
    ref.conn = conn
    this.#run(conn, () => endpoint.open(conn, req))
  }

  /** Runs endpoint code for `conn`: whatever it throws or rejects is logged, never thrown into the event loop. */
  #run(conn: Conn, fn: () => void | Promise<void>): void {
    try {
      const result = fn()
      if (result instanceof Promise) result.catch((err: unknown) => this.#handlerFailed(conn, err))
    } catch (err) {
      this.#handlerFailed(conn, err)
    }
  }

  #message(conn: Conn, data: Buffer, isBinary: boolean): void {
    if (conn.closed) return
    if (conn.closingAt !== undefined) return this.#whileClosing(conn)
    const admitted = this.admission.parse(conn, data, isBinary, this.clock.now())
    if (admitted === undefined) return
    // The hot path: what #run does, without a closure per frame.
    try {
      const result = conn.endpoint.message(conn, admitted.msg, admitted.text)
      if (result instanceof Promise) result.catch((err: unknown) => this.#handlerFailed(conn, err))
    } catch (err) {
      this.#handlerFailed(conn, err)
    }
  }

  #handlerFailed(conn: Conn, err: unknown): void {
    this.counters.rejected++
    this.log.error({ err: (err as Error)?.message, endpoint: conn.endpoint.name }, 'endpoint handler failed')
  }

  /**
   * A frame from a client the server is closing: not handled, but paid for. `ws` reads until the client's close
   * frame or `closeTimeoutMs`; without this, a client cut off for flooding (4029) floods on for free meanwhile.
   * Once its bucket is empty nothing more is read (the close timeout still ends it; terminating here would
   * discard the close frame queued for it).
   */
  #whileClosing(conn: Conn): void {
    if (!this.admission.take(conn, this.clock.now())) conn.ws.pause()
  }

  #ping(conn: Conn, data: Buffer): void {
    if (conn.closed) return
    if (conn.closingAt !== undefined) return this.#whileClosing(conn)
    const now = this.clock.now()
    conn.lastSeen = now
    if (!this.admission.take(conn, now)) return
    if (conn.ws.bufferedAmount > this.options.maxBufferedBytes) return this.#slowConsumer(conn)
    this.#batch(conn)
    conn.ws.pong(data)
  }

  #closed(conn: Conn): void {
    if (conn.closed) return
    conn.closed = true
    this.#conns.delete(conn)
    this.admission.call(conn.guard, 'closed')
    this.#run(conn, () => conn.endpoint.closed(conn))
    this.dropTopics(conn)
    conn.share.connections--
    this.#shares.release(conn.share)
    if (this.#conns.size === 0) this.#allClosed?.()
  }

  /** Corks `conn` until the current chunk's handlers are done (see `#corked`). */
  #batch(conn: Conn): void {
    if (conn.corked) return
    conn.corked = true
    conn.socket.cork()
    if (this.#corked.push(conn) === 1) queueMicrotask(this.#flush)
  }

  send(conn: Conn, frame: string, from?: string): boolean {
    if (conn.closed || conn.closingAt !== undefined) return false
    const ws = conn.ws
    if (ws.readyState !== 1) return false
    if (ws.bufferedAmount > this.options.maxBufferedBytes) {
      this.#slowConsumer(conn)
      return false
    }
    this.#batch(conn)
    ws.send(frame)
    if (conn.guard !== undefined) this.admission.call(conn.guard, 'sent', frame.length, from)
    return true
  }

  close(conn: Conn, code: number, reason: string): void {
    if (conn.closed || conn.closingAt !== undefined) return
    conn.closingAt = this.clock.now()
    try {
      conn.ws.close(code, reason)
    } catch {
      this.#terminate(conn)
    }
  }

  /** Destroys the socket and unregisters at once (`ws` reports the close asynchronously). */
  #terminate(conn: Conn): void {
    conn.ws.terminate()
    this.#closed(conn)
  }

  #slowConsumer(conn: Conn): void {
    this.counters.slowConsumers++
    this.log.debug({ id: conn.id }, 'slow consumer closed')
    this.#terminate(conn)
  }

  // ---------------------------------------------------------------- topics

  joinTopic(conn: Conn, key: string): boolean {
    if (conn.topics?.has(key) === true) return true
    if (!this.#topics.join(conn, key)) return false
    if (conn.guard !== undefined) this.admission.call(conn.guard, 'topics', conn.topics?.size ?? 0)
    return true
  }

  leaveTopic(conn: Conn, key: string): boolean {
    if (!this.#topics.leave(conn, key)) return false
    if (conn.guard !== undefined && !conn.closed)
      this.admission.call(conn.guard, 'topics', conn.topics?.size ?? 0)
    return true
  }

  releaseShare(share: Conn['share']): void {
    this.#shares.release(share)
  }

  dropTopics(conn: Conn): void {
    this.#topics.drop(conn)
  }

  topicMembers(key: string): ReadonlySet<Conn> | undefined {
    return this.#topics.members(key)
  }

  directoryCall(op: string, fn: (directory: PeerDirectory) => void | Promise<void>): Promise<void> {
    const directory = this.directory
    if (directory === undefined) return Promise.resolve()
    const fail = (err: unknown): void => {
      this.log.warn({ err: (err as Error)?.message, op }, 'directory call failed')
    }
    try {
      const result = fn(directory)
      if (result instanceof Promise) return result.catch(fail)
    } catch (err) {
      fail(err)
    }
    return Promise.resolve()
  }

  // ---------------------------------------------------------------- timers

  #pingAll(): void {
    for (const conn of this.#conns) {
      if (conn.closingAt !== undefined || conn.ws.readyState !== 1) continue
      if (conn.ws.bufferedAmount > this.options.maxBufferedBytes) {
        this.#slowConsumer(conn)
        continue
      }
      try {
        conn.ws.ping()
      } catch {
        this.#terminate(conn)
      }
    }
  }

  #sweep(): void {
    const now = this.clock.now()
    for (const conn of [...this.#conns]) {
      if (conn.closingAt !== undefined) {
        // A closing connection is destroyed once the close timeout passes, whatever the client keeps sending.
        if (now - conn.closingAt >= this.options.closeTimeoutMs) this.#terminate(conn)
      } else if (now - conn.lastSeen > this.options.livenessTimeoutMs) {
        this.counters.timedOut++
        this.log.debug({ id: conn.id }, 'liveness timeout')
        this.#terminate(conn)
      } else if (conn.endpoint.sweep !== undefined) {
        this.#run(conn, () => conn.endpoint.sweep?.(conn, now))
      }
    }
    this.hold.sweep(now)
  }
}
