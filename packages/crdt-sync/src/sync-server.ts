import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as awarenessProtocol from 'y-protocols/awareness'
import { WebSocketServer, WebSocket, type RawData } from 'ws'
import { CrdtSyncError, isCrdtSyncError, type CrdtSyncErrorCode } from './errors'
import { SILENT_LOGGER, type Logger } from './logger'
import { SYSTEM_CLOCK, nextTurn, type Clock } from './clock'
import { encodeStateAsUpdateSliced } from './encode-sliced'
import { docNameProblem } from './keys'
import { isVersionsDocName } from './versions'
import type { DocHandle, DocStore, DocStoreStats } from './doc-store'
import * as yws from './y-websocket'
import * as hp from './hocuspocus'

// Close codes. 4400-4499 tell the y-websocket client not to reconnect (its default `shouldReconnect`).
const CLOSE_GOING_AWAY = 1001
const CLOSE_POLICY = 1008
const CLOSE_BAD_DATA = 1007
const CLOSE_INTERNAL = 1011
const CLOSE_TRY_AGAIN_LATER = 1013
const CLOSE_BAD_DOC_NAME = 4400
const CLOSE_UNAUTHORIZED = 4401
const CLOSE_DENIED = 4403
const CLOSE_TOO_LARGE = 4413
// Outside 4400-4499, so the y-websocket client reconnects (with back-off): compaction or an operator may free space.
const CLOSE_QUOTA = 4507

// The store's default maxUpdateBytes (4 MiB) plus room for the message framing: an update just over the store's
// limit is refused with 4413 and a reason; a message over this one is cut off by ws with 1009.
const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024 + 64 * 1024
const DEFAULT_WRITE_BYTES_PER_SECOND = 256 * 1024
const DEFAULT_WRITE_BURST_BYTES = DEFAULT_MAX_MESSAGE_BYTES
const DEFAULT_KEEPALIVE_INTERVAL_MS = 10_000 // < the clients' 30 s "no message received" watchdogs
const DEFAULT_MAX_CLIENTS = 10_000
const DEFAULT_MAX_BAD_MESSAGES = 8
const DEFAULT_MAX_QUEUED_MESSAGES = 1_000
const DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024
const DEFAULT_MAX_TOKEN_BYTES = 8 * 1024
const DEFAULT_MAX_DOCUMENTS_PER_CONNECTION = 100
const DEFAULT_MAX_SESSIONS_PER_ADDRESS = 1_000
const DEFAULT_AUTH_ATTEMPTS_PER_SECOND = 10
const DEFAULT_AUTH_ATTEMPTS_PER_ADDRESS_PER_SECOND = 100
/** An address's token checks may come in a burst of this many seconds' worth. */
const AUTH_BURST_SECONDS = 10
/** Client addresses with a partly spent token-check allowance kept at once (beyond: the oldest is forgotten). */
const MAX_AUTH_ADDRESSES = 65_536
const TOO_MANY_FROM_ADDRESS = 'too many sessions from one address'
const DEFAULT_TOKEN_REFRESH_MS = 30_000
const DEFAULT_TOKEN_PARAM = 'token'
const READ_ONLY_REASON = 'read-only: your updates are not accepted'
const CLOSE_GRACE_MS = 2_000 // wait this long for closing handshakes in close(), then terminate
/** Addresses a Hocuspocus connection remembers as closed by the server, so their late frames are dropped quietly. */
const MAX_CLOSED_ADDRESSES = 64
/** Longest delay a Node timer takes (2^31 - 1 ms); a later expiry is re-armed on the way. */
const MAX_TIMER_MS = 2_147_483_647

/** What a client may do with a document. */
export type Access = 'read-write' | 'read-only' | 'deny'

/** The outcome of authorizing a client for a document: its access, and what the server needs to end it on time. */
export interface Grant {
  /** What the client may do. */
  access: Access
  /** When the grant ends (a token's `exp`), in the clock's milliseconds; the session is closed then. @default never */
  expiresAt?: number
  /** Who the grant is for (a token's `sub`), for {@link SyncServer.restrict} and logs. */
  subject?: string
  /** The token's ID (`jti`), for {@link SyncServer.restrict}. */
  tokenId?: string
  /** When the token was issued (`iat`), in milliseconds. */
  issuedAt?: number
  /** For a denial: why, in a few words the client is told (e.g. 'token expired'). @default 'access denied' */
  reason?: string
  /** For a denial: the error code it is counted under. @default 'X_CRDT_ACCESS_DENIED' */
  code?: CrdtSyncErrorCode
}

/**
 * Decides a client's access to a document. `token` is what the client presented: the Hocuspocus auth message's
 * token, or the y-websocket URL's `tokenParam` query parameter (`undefined` when there is none). Asked once per
 * document session, and again when a Hocuspocus client sends a fresh token.
 */
export type Authorize = (
  docName: string,
  request: IncomingMessage,
  token: string | undefined,
) => Access | Grant | Promise<Access | Grant>

/** A live session, as {@link SyncServer.restrict} shows it. */
export interface SessionInfo {
  /** The document. */
  readonly docName: string
  /** The protocol of the client. */
  readonly protocol: 'y-websocket' | 'hocuspocus'
  /** Its access now. */
  readonly access: 'read-write' | 'read-only'
  /** The grant it was opened (or last refreshed) with. */
  readonly grant: Readonly<Grant>
}

/** A stateless message from a Hocuspocus client, with ways to answer it. */
export interface StatelessMessage {
  /** The document it was sent on. */
  readonly docName: string
  /** The application's payload (a string, bounded by `maxMessageBytes`). */
  readonly payload: string
  /** The sender's session. */
  readonly session: SessionInfo
  /** Sends a stateless payload back to the sender. */
  reply(payload: string): void
  /** Sends a stateless payload to every other Hocuspocus client of the document on this server. */
  broadcast(payload: string): void
}

/** Services injected into {@link createSyncServer}. */
export interface SyncServerComponents {
  /** The store documents are loaded from and persisted to; the server never closes it. */
  store: DocStore
  /** @default every client gets 'read-write' */
  authorize?: Authorize
  /**
   * Handles a Hocuspocus stateless message (type 5). Throwing drops it.
   * @default relays it to the document's other Hocuspocus clients on this server
   */
  stateless?: (message: StatelessMessage) => void
  /** @default a silent logger */
  logger?: Logger
  /** Time and timers of the write-rate limiter and of grant expiry. @default the system clock */
  clock?: Clock
  /**
   * The client address of an upgrade request, for `maxSessionsPerAddress` (behind a reverse proxy: the address
   * it forwards for). @default the socket's remote address
   */
  clientAddress?: (request: IncomingMessage) => string
}

/** Options of {@link createSyncServer}; plain data. */
export interface SyncServerInit {
  /**
   * Largest WebSocket message accepted (ws `maxPayload`; beyond it ws closes the connection with 1009). Keep it
   * a little above the store's `maxUpdateBytes`, so that a too-large update gets 4413 and a reason.
   * @default 4_259_840 (4 MiB + 64 KiB)
   */
  maxMessageBytes?: number
  /**
   * Sustained bytes per second one connection may send (every message counts). A connection that goes beyond its
   * allowance is not read from (the socket is paused, so TCP holds its sender back) until the allowance has
   * recovered; each such pause is counted as `X_CRDT_RATE_LIMITED`. Nothing is dropped. @default 262_144
   */
  writeBytesPerSecond?: number
  /** Bytes a connection may send at once before the rate applies (at least one message of `maxMessageBytes`). @default 4_259_840 */
  writeBurstBytes?: number
  /** Ping period; an idle client also gets an empty awareness message at half this period, so the clients' 30 s watchdogs never fire. @default 10_000 */
  keepaliveIntervalMs?: number
  /** Most connected WebSockets (both protocols); beyond it new ones are closed with 1013. @default 10_000 */
  maxClients?: number
  /** Malformed messages tolerated per connection before it is closed with 1007. @default 8 */
  maxBadMessages?: number
  /** Messages buffered per document session while it is authorized and its document loads. @default 1_000 */
  maxQueuedMessages?: number
  /** Unsent bytes allowed per connection before it is dropped as too slow (1013). @default 33_554_432 */
  maxBufferedBytes?: number
  /** Longest token accepted (Hocuspocus auth message or y-websocket URL parameter), in bytes. @default 8_192 */
  maxTokenBytes?: number
  /** Documents one Hocuspocus connection may have open or opening at once. @default 100 */
  maxDocumentsPerConnection?: number
  /**
   * Document sessions (both protocols) one client address may have open or opening at once: beyond it a
   * Hocuspocus auth message is refused and a y-websocket client closed with 1013 (`X_CRDT_TOO_MANY_CLIENTS`), so
   * that one address, multiplexing documents over many sockets, cannot hold every document the store may open.
   * @default 1_000
   */
  maxSessionsPerAddress?: number
  /**
   * Tokens one Hocuspocus connection may have checked per second (auth messages and refreshes), after a burst of
   * `maxDocumentsPerConnection`: each costs a signature verification, so beyond it an auth message is refused
   * with "too many auth attempts" (`X_CRDT_RATE_LIMITED`) before `authorize` sees it. @default 10
   */
  authAttemptsPerSecond?: number
  /**
   * Tokens one client address may have checked per second across all its connections, after a burst of ten
   * seconds' worth: without it, an address multiplies the per-connection allowance by its sockets. Beyond it an
   * auth message is refused as above. @default 100
   */
  authAttemptsPerAddressPerSecond?: number
  /** The y-websocket URL query parameter that carries a token (`?token=…`). @default 'token' */
  tokenParam?: string
  /**
   * This long before a Hocuspocus session's grant expires, the server asks the provider for its token again (the
   * provider calls its `token` function); a fresh token that is accepted extends the session. @default 30_000
   */
  tokenRefreshMs?: number
}

/** Counters of the server, including its store's. */
export interface SyncServerStats extends DocStoreStats {
  /** WebSocket connections open now (both protocols). */
  clients: number
  /** Document sessions open now: one per y-websocket connection, one per document of a Hocuspocus connection. */
  sessions: number
  /** Documents with at least one session. */
  rooms: number
  /** Sessions `authorize` denied (or threw for) since the start. */
  deniedClients: number
  /** Updates from read-only clients that were dropped. */
  refusedUpdates: number
  /** Times a connection was paused for going beyond `writeBytesPerSecond` (also `errors.X_CRDT_RATE_LIMITED`). */
  throttled: number
  /** Sessions closed or downgraded by {@link SyncServer.restrict} since the start. */
  restrictedSessions: number
  /** Sessions closed because their grant expired. */
  expiredSessions: number
  /** Hocuspocus frames for a document the connection has no session for (not an auth message), dropped. */
  droppedMessages: number
}

/** A y-websocket and Hocuspocus compatible server; see {@link createSyncServer}. */
export interface SyncServer {
  /** Takes over an HTTP upgrade for a y-websocket client of `docName` (the host routes, e.g. `/crdt/<doc>`). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, docName: string): void
  /** Takes over an HTTP upgrade for a Hocuspocus client (any number of documents over one socket). */
  handleHocuspocusUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void
  /**
   * Lowers the access of live sessions: `decide` sees each authorized session and returns the access it may keep
   * (`'deny'` closes it, `'read-only'` downgrades a read-write one), or `undefined` to leave it. Never raises
   * access. Returns how many sessions changed. Ask `authorize` to refuse the same from now on, before calling this.
   */
  restrict(decide: (session: SessionInfo) => Access | undefined, reason?: string): number
  /**
   * Listens on its own HTTP server: upgrades to `hocuspocusPath` are Hocuspocus clients, any other path is the name
   * of a y-websocket client's document. For tests and standalone use.
   */
  listen(options: {
    /** TCP port; `0` picks a free one (the result says which). */
    port: number
    /** Interface to bind. @default '127.0.0.1' */
    host?: string
    /** The path of the Hocuspocus endpoint. @default none: every path is a y-websocket document */
    hocuspocusPath?: string
  }): Promise<{
    /** The port it listens on. */
    port: number
    /** The interface it listens on. */
    host: string
  }>
  /** The server's counters now, with its store's. */
  getStats(): SyncServerStats
  /** Closes every socket with 1001, flushes the store's pending writes, stops listening. Does not close the store. */
  close(): Promise<void>
}

interface Room {
  name: string
  handle: DocHandle
  awareness: awarenessProtocol.Awareness
  clients: Set<Session>
  closed: boolean
}

/** One WebSocket: one document (y-websocket) or many (Hocuspocus). */
class Conn {
  readonly ws: WebSocket
  readonly request: IncomingMessage
  readonly protocol: 'y-websocket' | 'hocuspocus'
  /** The client's address (`clientAddress`), for the per-address share of sessions. */
  clientAddress = ''
  /** By address (Hocuspocus) or the one document's name (y-websocket). */
  readonly sessions = new Map<string, Session>()
  /** Addresses whose session the server closed (Hocuspocus): their late frames are dropped without counting. */
  readonly closedAddresses = new Set<string>()
  bad = 0
  alive = true
  lastSentAt = 0
  closed = false
  /** Auth messages `authorize` may still see now (token bucket, Hocuspocus). */
  authAllowance = 0
  authAllowanceAt = 0
  /** Write allowance in bytes (token bucket; negative: in debt, the socket is paused). */
  allowance: number
  allowanceAt: number
  resumeTimer: unknown

  constructor(
    ws: WebSocket,
    request: IncomingMessage,
    protocol: Conn['protocol'],
    allowance: number,
    now: number,
  ) {
    this.ws = ws
    this.request = request
    this.protocol = protocol
    this.allowance = allowance
    this.allowanceAt = now
  }
}

/** One document on one connection. */
class Session {
  readonly conn: Conn
  readonly docName: string
  /** The encoded address put in front of every body (Hocuspocus); undefined for y-websocket. */
  readonly prefix: Uint8Array | undefined
  readonly address: string
  access: 'read-write' | 'read-only' = 'read-only'
  grant: Grant = { access: 'deny' }
  authorized = false
  room: Room | undefined
  /** Frames (with their decoders' start) buffered until the document is loaded; undefined once it is. */
  queue: [Uint8Array, number][] | undefined = []
  closed = false
  /** Whether this read-only y-websocket client was told (once) that its updates are refused. */
  toldReadOnly = false
  /** Whether a read-only Hocuspocus client's first sync step 2 was checked for news (done once: it costs O(doc)). */
  checkedStep2 = false
  /** A token refresh (Hocuspocus) under way. */
  refreshing = false
  /** The grant expiry the client was last asked a fresh token for (Hocuspocus): asked once per expiry. */
  askedFor: number | undefined
  expiryTimer: unknown
  refreshTimer: unknown
  readonly controlledIds = new Set<number>()

  constructor(conn: Conn, docName: string, address: string) {
    this.conn = conn
    this.docName = docName
    this.address = address
    this.prefix = conn.protocol === 'hocuspocus' ? hp.encodeAddress(address) : undefined
  }

  info(): SessionInfo {
    return { docName: this.docName, protocol: this.conn.protocol, access: this.access, grant: this.grant }
  }
}

/** A document name a client may not open: malformed, or a companion document of versions (see ./versions.ts). */
function clientDocNameProblem(name: string): string | undefined {
  return docNameProblem(name) ?? (isVersionsDocName(name) ? 'reserved document name' : undefined)
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data))
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`'${name}' must be a positive number`)
  return value
}

function toGrant(result: Access | Grant): Grant {
  if (typeof result === 'string') return { access: result }
  if (typeof result === 'object' && result !== null && typeof result.access === 'string') return result
  return { access: 'deny', reason: 'access denied' }
}

const RANK: Record<Access, number> = { deny: 0, 'read-only': 1, 'read-write': 2 }

class SyncServerImpl implements SyncServer {
  readonly #store: DocStore
  readonly #authorize: Authorize | undefined
  readonly #stateless: ((message: StatelessMessage) => void) | undefined
  readonly #log: Logger
  readonly #clock: Clock
  readonly #maxMessageBytes: number
  readonly #writeRate: number
  readonly #writeBurst: number
  readonly #keepaliveMs: number
  readonly #maxClients: number
  readonly #maxBad: number
  readonly #maxQueued: number
  readonly #maxBuffered: number
  readonly #maxTokenBytes: number
  readonly #maxDocsPerConn: number
  readonly #maxPerAddress: number
  readonly #authRate: number
  readonly #authRatePerAddress: number
  /** Token checks left per client address (refilled lazily; entries leave once full again, in the keepalive sweep). */
  readonly #authByAddress = new Map<string, { allowance: number; at: number }>()
  readonly #clientAddress: (request: IncomingMessage) => string
  /** Sessions open or opening per client address. */
  readonly #perAddress = new Map<string, number>()
  readonly #tokenParam: string
  readonly #tokenRefreshMs: number
  readonly #clients = new Set<Conn>()
  readonly #rooms = new Map<string, Room>()
  readonly #roomLoading = new Map<string, Promise<Room>>()
  readonly #errors: Partial<Record<CrdtSyncErrorCode, number>> = {}
  #wss: WebSocketServer | undefined
  #http: Server | undefined
  #keepalive: ReturnType<typeof setInterval> | undefined
  #unsubscribe: (() => void)[] = []
  #sessions = 0
  #denied = 0
  #refused = 0
  #throttled = 0
  #restricted = 0
  #expired = 0
  #dropped = 0
  #closing: Promise<void> | undefined

  constructor(components: SyncServerComponents, init: SyncServerInit) {
    if (components?.store == null || typeof components.store.open !== 'function') {
      throw new TypeError("'components.store' must be a DocStore")
    }
    if (components.authorize !== undefined && typeof components.authorize !== 'function') {
      throw new TypeError("'components.authorize' must be a function")
    }
    if (components.stateless !== undefined && typeof components.stateless !== 'function') {
      throw new TypeError("'components.stateless' must be a function")
    }
    this.#store = components.store
    this.#authorize = components.authorize
    this.#stateless = components.stateless
    this.#log = components.logger ?? SILENT_LOGGER
    this.#clock = components.clock ?? SYSTEM_CLOCK
    this.#maxMessageBytes = positive('maxMessageBytes', init.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES)
    this.#writeRate = positive(
      'writeBytesPerSecond',
      init.writeBytesPerSecond,
      DEFAULT_WRITE_BYTES_PER_SECOND,
    )
    this.#writeBurst = positive('writeBurstBytes', init.writeBurstBytes, DEFAULT_WRITE_BURST_BYTES)
    this.#keepaliveMs = positive(
      'keepaliveIntervalMs',
      init.keepaliveIntervalMs,
      DEFAULT_KEEPALIVE_INTERVAL_MS,
    )
    this.#maxClients = positive('maxClients', init.maxClients, DEFAULT_MAX_CLIENTS)
    this.#maxBad = positive('maxBadMessages', init.maxBadMessages, DEFAULT_MAX_BAD_MESSAGES)
    this.#maxQueued = positive('maxQueuedMessages', init.maxQueuedMessages, DEFAULT_MAX_QUEUED_MESSAGES)
    this.#maxBuffered = positive('maxBufferedBytes', init.maxBufferedBytes, DEFAULT_MAX_BUFFERED_BYTES)
    this.#maxTokenBytes = positive('maxTokenBytes', init.maxTokenBytes, DEFAULT_MAX_TOKEN_BYTES)
    this.#maxDocsPerConn = positive(
      'maxDocumentsPerConnection',
      init.maxDocumentsPerConnection,
      DEFAULT_MAX_DOCUMENTS_PER_CONNECTION,
    )
    this.#maxPerAddress = positive(
      'maxSessionsPerAddress',
      init.maxSessionsPerAddress,
      DEFAULT_MAX_SESSIONS_PER_ADDRESS,
    )
    this.#authRate = positive(
      'authAttemptsPerSecond',
      init.authAttemptsPerSecond,
      DEFAULT_AUTH_ATTEMPTS_PER_SECOND,
    )
    this.#authRatePerAddress = positive(
      'authAttemptsPerAddressPerSecond',
      init.authAttemptsPerAddressPerSecond,
      DEFAULT_AUTH_ATTEMPTS_PER_ADDRESS_PER_SECOND,
    )
    if (components.clientAddress !== undefined && typeof components.clientAddress !== 'function') {
      throw new TypeError("'components.clientAddress' must be a function")
    }
    this.#clientAddress = components.clientAddress ?? ((request) => request.socket?.remoteAddress ?? '')
    this.#tokenParam = init.tokenParam ?? DEFAULT_TOKEN_PARAM
    if (typeof this.#tokenParam !== 'string' || this.#tokenParam === '') {
      throw new TypeError("'tokenParam' must be a non-empty string")
    }
    this.#tokenRefreshMs = positive('tokenRefreshMs', init.tokenRefreshMs, DEFAULT_TOKEN_REFRESH_MS)
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, docName: string): void {
    if (this.#closing !== undefined) {
      socket.destroy()
      return
    }
    this.#start()
    this.#wss!.handleUpgrade(request, socket, head, (ws) => this.#acceptY(ws, request, docName))
  }

  handleHocuspocusUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closing !== undefined) {
      socket.destroy()
      return
    }
    this.#start()
    this.#wss!.handleUpgrade(request, socket, head, (ws) => {
      this.#accept(ws, request, 'hocuspocus')
    })
  }

  restrict(decide: (session: SessionInfo) => Access | undefined, reason = 'access revoked'): number {
    if (typeof decide !== 'function') throw new TypeError("'decide' must be a function")
    let changed = 0
    for (const conn of [...this.#clients]) {
      for (const session of [...conn.sessions.values()]) {
        if (!session.authorized || session.closed) continue
        let access: Access | undefined
        try {
          access = decide(session.info())
        } catch (err) {
          this.#log.warn({ err, doc: session.docName }, 'restrict decision threw; closing the session')
          access = 'deny'
        }
        if (access === undefined || RANK[access] >= RANK[session.access]) continue
        changed++
        this.#restricted++
        this.#count('X_CRDT_REVOKED')
        if (access === 'deny') this.#endSession(session, CLOSE_DENIED, reason)
        else this.#downgrade(session, reason)
      }
    }
    return changed
  }

  async listen(options: {
    port: number
    host?: string
    hocuspocusPath?: string
  }): Promise<{ port: number; host: string }> {
    if (this.#http !== undefined) throw new Error('already listening')
    const host = options.host ?? '127.0.0.1'
    const server = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('upgrade to WebSocket\n')
    })
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      let path: string
      try {
        path = new URL(req.url ?? '/', 'http://x').pathname
      } catch {
        socket.destroy()
        return
      }
      if (options.hocuspocusPath !== undefined && path === options.hocuspocusPath) {
        this.handleHocuspocusUpgrade(req, socket, head)
        return
      }
      let name: string
      try {
        name = decodeURIComponent(path.slice(1))
      } catch {
        socket.destroy()
        return
      }
      this.handleUpgrade(req, socket, head, name)
    })
    this.#http = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('server has no TCP address')
    return { port: address.port, host }
  }

  getStats(): SyncServerStats {
    const store = this.#store.getStats()
    const errors = { ...store.errors }
    for (const [code, n] of Object.entries(this.#errors) as [CrdtSyncErrorCode, number][]) {
      errors[code] = (errors[code] ?? 0) + n
    }
    return {
      ...store,
      errors,
      clients: this.#clients.size,
      sessions: this.#sessions,
      rooms: this.#rooms.size,
      deniedClients: this.#denied,
      refusedUpdates: this.#refused,
      throttled: this.#throttled,
      restrictedSessions: this.#restricted,
      expiredSessions: this.#expired,
      droppedMessages: this.#dropped,
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  // ---- lifecycle --------------------------------------------------------------------------------------------

  #start(): void {
    if (this.#wss !== undefined) return
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: this.#maxMessageBytes })
    this.#unsubscribe.push(
      this.#store.onUpdate((name, update, origin) => this.#relay(name, update, origin)),
      this.#store.onDocumentFailed((name) => {
        const room = this.#rooms.get(name)
        if (room) for (const s of [...room.clients]) this.#endSession(s, CLOSE_INTERNAL, 'storage failure')
      }),
    )
    this.#keepalive = setInterval(() => this.#tick(), this.#keepaliveMs)
    this.#keepalive.unref?.()
  }

  async #close(): Promise<void> {
    if (this.#keepalive !== undefined) clearInterval(this.#keepalive)
    this.#keepalive = undefined
    const closed = [...this.#clients].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) resolve()
          else c.ws.once('close', () => resolve())
        }),
    )
    for (const c of this.#clients) this.#closeConn(c, CLOSE_GOING_AWAY, 'server shutting down')
    await Promise.allSettled([...this.#roomLoading.values()])
    await this.#store.flush().catch((err: unknown) => this.#log.error({ err }, 'final flush failed'))
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      Promise.all(closed),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_GRACE_MS)
      }),
    ])
    clearTimeout(timer)
    for (const c of this.#clients) c.ws.terminate()
    for (const room of [...this.#rooms.values()]) this.#dropRoom(room)
    for (const off of this.#unsubscribe) off()
    this.#unsubscribe = []
    this.#wss?.close()
    const http = this.#http
    if (http) await new Promise<void>((resolve) => http.close(() => resolve()))
  }

  #count(code: CrdtSyncErrorCode): void {
    this.#errors[code] = (this.#errors[code] ?? 0) + 1
  }

  // ---- connections --------------------------------------------------------------------------------------------

  #accept(ws: WebSocket, request: IncomingMessage, protocol: Conn['protocol']): Conn | undefined {
    const conn = new Conn(ws, request, protocol, this.#writeBurst, this.#clock.now())
    conn.lastSentAt = this.#clock.now()
    conn.authAllowance = this.#maxDocsPerConn
    conn.authAllowanceAt = this.#clock.now()
    try {
      conn.clientAddress = this.#clientAddress(request)
    } catch (err) {
      this.#log.debug({ err }, 'clientAddress threw; using the socket address')
      conn.clientAddress = request.socket?.remoteAddress ?? ''
    }
    ws.on('message', (data: RawData) => {
      if (conn.closed) return
      const bytes = toBytes(data)
      this.#charge(conn, bytes.length)
      if (protocol === 'hocuspocus') this.#onHocuspocusFrame(conn, bytes)
      else this.#onYFrame(conn, bytes)
    })
    ws.on('pong', () => {
      conn.alive = true
    })
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes with 1009 by itself; count it with the updates refused for their size.
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#count('X_CRDT_UPDATE_TOO_LARGE')
      this.#log.debug({ err, protocol }, 'client socket error')
    })
    ws.on('close', () => this.#onClose(conn))
    this.#clients.add(conn)
    if (this.#clients.size > this.#maxClients) {
      this.#count('X_CRDT_TOO_MANY_CLIENTS')
      const err = new CrdtSyncError('X_CRDT_TOO_MANY_CLIENTS', `more than ${this.#maxClients} clients`)
      this.#log.debug({ err, code: err.code }, 'refused a client over the cap')
      this.#closeConn(conn, CLOSE_TRY_AGAIN_LATER, 'too many clients')
      return undefined
    }
    return conn
  }

  #acceptY(ws: WebSocket, request: IncomingMessage, docName: string): void {
    const conn = this.#accept(ws, request, 'y-websocket')
    if (conn === undefined) return
    const problem = clientDocNameProblem(docName)
    if (problem !== undefined) {
      this.#count('X_CRDT_BAD_DOC_NAME')
      this.#closeConn(conn, CLOSE_BAD_DOC_NAME, problem)
      return
    }
    if (this.#addressFull(conn)) {
      this.#count('X_CRDT_TOO_MANY_CLIENTS')
      this.#closeConn(conn, CLOSE_TRY_AGAIN_LATER, TOO_MANY_FROM_ADDRESS)
      return
    }
    let token: string | undefined
    try {
      token = new URL(request.url ?? '/', 'http://x').searchParams.get(this.#tokenParam) ?? undefined
    } catch {
      token = undefined
    }
    const session = this.#addSession(conn, docName, docName)
    if (token !== undefined && Buffer.byteLength(token) > this.#maxTokenBytes) {
      this.#deny(session, { access: 'deny', code: 'X_CRDT_BAD_TOKEN', reason: 'token too large' })
      return
    }
    this.#open(session, token)
  }

  #onYFrame(conn: Conn, bytes: Uint8Array): void {
    const session = conn.sessions.values().next().value
    if (session === undefined) return
    if (session.queue !== undefined) {
      this.#enqueue(session, bytes, 0)
      return
    }
    this.#onMessage(session, decoding.createDecoder(bytes))
  }

  #onHocuspocusFrame(conn: Conn, bytes: Uint8Array): void {
    let frame: hp.HocuspocusFrame
    try {
      frame = hp.readFrame(bytes)
    } catch (err) {
      this.#badFrame(conn, err)
      return
    }
    const session = conn.sessions.get(frame.address)
    if (session !== undefined) {
      if (session.queue !== undefined) this.#enqueue(session, bytes, frame.decoder.pos)
      else this.#onMessage(session, frame.decoder)
      return
    }
    // No session for this address: only an auth message opens one; anything else is dropped (a provider keeps
    // sending for a document whose session the server closed).
    let token: string
    try {
      const d = frame.decoder
      if (decoding.readVarUint(d) !== hp.HP_AUTH || decoding.readVarUint(d) !== hp.HP_AUTH_TOKEN) {
        this.#dropped++
        return
      }
      // Bounded before it is decoded or verified: a token is a few hundred bytes.
      if (bytes.length - d.pos > this.#maxTokenBytes + 64) {
        this.#refuseAuth(conn, frame.address, 'X_CRDT_BAD_TOKEN', 'token too large')
        return
      }
      token = decoding.readVarString(d)
    } catch (err) {
      this.#badFrame(conn, err)
      return
    }
    if (Buffer.byteLength(token) > this.#maxTokenBytes) {
      this.#refuseAuth(conn, frame.address, 'X_CRDT_BAD_TOKEN', 'token too large')
      return
    }
    const problem = clientDocNameProblem(frame.docName)
    if (problem !== undefined) {
      this.#refuseAuth(conn, frame.address, 'X_CRDT_BAD_DOC_NAME', problem)
      return
    }
    if (conn.sessions.size >= this.#maxDocsPerConn) {
      this.#refuseAuth(conn, frame.address, 'X_CRDT_ACCESS_DENIED', 'too many documents on one connection')
      return
    }
    if (this.#addressFull(conn)) {
      this.#refuseAuth(conn, frame.address, 'X_CRDT_TOO_MANY_CLIENTS', TOO_MANY_FROM_ADDRESS)
      return
    }
    if (!this.#takeAuth(conn)) {
      this.#refuseAuth(conn, frame.address, 'X_CRDT_RATE_LIMITED', 'too many auth attempts')
      return
    }
    conn.closedAddresses.delete(frame.address)
    // The provider sends '' when it has no token.
    this.#open(this.#addSession(conn, frame.docName, frame.address), token === '' ? undefined : token)
  }

  /** Refuses an auth message that opens no session: counted, answered with "permission denied". */
  #refuseAuth(conn: Conn, address: string, code: CrdtSyncErrorCode, reason: string): void {
    this.#denied++
    this.#count(code)
    this.#log.debug({ code, reason }, 'refused a Hocuspocus auth message')
    this.#sendRaw(conn, hp.withAddress(hp.encodeAddress(address), hp.permissionDeniedBody(reason)))
  }

  #badFrame(conn: Conn, err: unknown): void {
    this.#count('X_CRDT_BAD_MESSAGE')
    this.#log.debug({ err }, 'refused a malformed frame')
    if (++conn.bad >= this.#maxBad) this.#closeConn(conn, CLOSE_BAD_DATA, 'too many malformed messages')
  }

  #enqueue(session: Session, bytes: Uint8Array, at: number): void {
    // The document is not loaded yet: nothing is answered before it is (the reference server's race).
    if (session.queue!.length >= this.#maxQueued) this.#endSession(session, CLOSE_POLICY, 'too many messages')
    else session.queue!.push([bytes, at])
  }

  /** One token check for `conn`, if its allowance has one: a client guessing tokens gets a few a second. */
  #takeAuth(conn: Conn): boolean {
    const now = this.#clock.now()
    conn.authAllowance = Math.min(
      this.#maxDocsPerConn,
      conn.authAllowance + ((now - conn.authAllowanceAt) * this.#authRate) / 1000,
    )
    conn.authAllowanceAt = now
    if (conn.authAllowance < 1) return false
    // And the address's share, so that more sockets buy no more checks.
    const burst = this.#authRatePerAddress * AUTH_BURST_SECONDS
    let bucket = this.#authByAddress.get(conn.clientAddress)
    if (bucket === undefined) {
      // A flood of addresses evicts the oldest bucket rather than refusing everyone's first token: an evicted
      // address is back to its connections' own allowances, never past them.
      if (this.#authByAddress.size >= MAX_AUTH_ADDRESSES) {
        const oldest = this.#authByAddress.keys().next()
        if (oldest.done !== true) this.#authByAddress.delete(oldest.value)
      }
      bucket = { allowance: burst, at: now }
      this.#authByAddress.set(conn.clientAddress, bucket)
    }
    bucket.allowance = Math.min(
      burst,
      bucket.allowance + ((now - bucket.at) * this.#authRatePerAddress) / 1000,
    )
    bucket.at = now
    if (bucket.allowance < 1) return false
    bucket.allowance--
    conn.authAllowance--
    return true
  }

  #addressFull(conn: Conn): boolean {
    return (this.#perAddress.get(conn.clientAddress) ?? 0) >= this.#maxPerAddress
  }

  #addSession(conn: Conn, docName: string, address: string): Session {
    const session = new Session(conn, docName, address)
    conn.sessions.set(address, session)
    this.#sessions++
    this.#perAddress.set(conn.clientAddress, (this.#perAddress.get(conn.clientAddress) ?? 0) + 1)
    return session
  }

  // ---- sessions ---------------------------------------------------------------------------------------------

  async #decide(session: Session, token: string | undefined): Promise<Grant> {
    if (!this.#authorize) return { access: 'read-write' }
    try {
      return toGrant(await this.#authorize(session.docName, session.conn.request, token))
    } catch (err) {
      this.#log.warn({ err, doc: session.docName }, 'authorize threw; denying')
      return { access: 'deny', reason: 'access denied' }
    }
  }

  #open(session: Session, token: string | undefined): void {
    this.#setup(session, token).catch((err: unknown) => {
      this.#log.error({ err, doc: session.docName }, 'client setup failed')
      this.#endSession(session, CLOSE_INTERNAL, 'internal error')
    })
  }

  async #setup(session: Session, token: string | undefined): Promise<void> {
    const grant = await this.#decide(session, token)
    if (session.closed) return
    if (grant.access === 'deny' || this.#expiredGrant(grant)) {
      this.#deny(
        session,
        grant.access === 'deny'
          ? grant
          : { access: 'deny', code: 'X_CRDT_TOKEN_EXPIRED', reason: 'token expired' },
      )
      return
    }
    this.#grant(session, grant)
    let room: Room
    for (;;) {
      try {
        room = await this.#joinRoom(session.docName)
      } catch (err) {
        const code = isCrdtSyncError(err) ? err.code : undefined
        if (code === 'X_CRDT_TOO_MANY_DOCS')
          this.#endSession(session, CLOSE_TRY_AGAIN_LATER, 'too many documents')
        else if (code === 'X_CRDT_DOC_TOO_LARGE')
          this.#endSession(session, CLOSE_TOO_LARGE, 'document too large')
        else if (code === 'X_CRDT_CLOSED') this.#endSession(session, CLOSE_GOING_AWAY, 'server shutting down')
        else this.#endSession(session, CLOSE_INTERNAL, 'could not load the document')
        return
      }
      if (!room.closed) break
    }
    if (session.closed) {
      if (room.clients.size === 0) this.#dropRoom(room)
      return
    }
    room.clients.add(session)
    session.room = room
    // y-websocket: the server opens the sync. Hocuspocus: the provider does (its step 1 is answered with step 1
    // and step 2 together, so that its "synced" never comes before the content).
    if (session.prefix === undefined) {
      this.#send(session, yws.syncBody(yws.SYNC_STEP_1, Y.encodeStateVector(room.handle.doc)))
    }
    const states = room.awareness.getStates()
    if (states.size > 0) this.#send(session, this.#awarenessBody(room, [...states.keys()]))
    const queued = session.queue ?? []
    session.queue = undefined
    for (const [bytes, at] of queued) {
      if (session.closed) break
      const decoder = decoding.createDecoder(bytes)
      decoder.pos = at
      this.#onMessage(session, decoder)
    }
  }

  #expiredGrant(grant: Grant): boolean {
    return grant.expiresAt !== undefined && grant.expiresAt <= this.#clock.now()
  }

  /** Takes `grant` for an authorized session (first, or refreshed): access, expiry timers, and tells a Hocuspocus client. */
  #grant(session: Session, grant: Grant): void {
    const access = grant.access === 'read-write' ? 'read-write' : 'read-only'
    const changed = !session.authorized || access !== session.access
    session.grant = grant
    session.access = access
    session.authorized = true
    if (access === 'read-write') session.toldReadOnly = false
    if (session.prefix !== undefined && changed) {
      this.#send(session, hp.authenticatedBody(access === 'read-write' ? 'read-write' : 'readonly'))
    }
    this.#armExpiry(session)
  }

  #armExpiry(session: Session): void {
    this.#clearTimers(session)
    const at = session.grant.expiresAt
    if (at === undefined) return
    const arm = (): void => {
      const left = at - this.#clock.now()
      if (left <= 0) {
        this.#expired++
        this.#count('X_CRDT_TOKEN_EXPIRED')
        this.#endSession(session, CLOSE_UNAUTHORIZED, 'token expired')
        return
      }
      session.expiryTimer = this.#clock.setTimeout(arm, Math.min(left, MAX_TIMER_MS))
    }
    arm()
    // A Hocuspocus provider can send a fresh token in band: ask for it a little before the grant ends. Once per
    // expiry: a provider with nothing fresher answers with a token that ends at the same time, and asking again
    // at once would loop (a verification and a round trip each) until the grant ends.
    if (session.prefix !== undefined && session.askedFor !== at) {
      const ask = (): void => {
        session.askedFor = at
        this.#send(session, hp.TOKEN_REQUEST_BODY)
      }
      const askIn = at - this.#tokenRefreshMs - this.#clock.now()
      if (askIn > 0 && askIn <= MAX_TIMER_MS) {
        session.refreshTimer = this.#clock.setTimeout(() => {
          session.refreshTimer = undefined
          ask()
        }, askIn)
      } else if (askIn <= 0) ask()
    }
  }

  #clearTimers(session: Session): void {
    if (session.expiryTimer !== undefined) this.#clock.clearTimeout(session.expiryTimer)
    if (session.refreshTimer !== undefined) this.#clock.clearTimeout(session.refreshTimer)
    session.expiryTimer = undefined
    session.refreshTimer = undefined
  }

  /** A fresh token from a Hocuspocus client on an open session: it replaces the grant, or ends the session. */
  #refreshToken(session: Session, token: string): void {
    if (session.refreshing) return
    if (Buffer.byteLength(token) > this.#maxTokenBytes) {
      this.#count('X_CRDT_BAD_TOKEN')
      this.#endSession(session, CLOSE_UNAUTHORIZED, 'token too large')
      return
    }
    if (!this.#takeAuth(session.conn)) {
      this.#count('X_CRDT_RATE_LIMITED') // dropped unverified: the grant it has stands (until it expires)
      return
    }
    session.refreshing = true
    void this.#decide(session, token === '' ? undefined : token).then((grant) => {
      session.refreshing = false
      if (session.closed) return
      if (grant.access === 'deny' || this.#expiredGrant(grant)) {
        this.#count(grant.access === 'deny' ? (grant.code ?? 'X_CRDT_ACCESS_DENIED') : 'X_CRDT_TOKEN_EXPIRED')
        this.#endSession(session, CLOSE_DENIED, grant.reason ?? 'access denied')
        return
      }
      this.#grant(session, grant)
    })
  }

  /** Refuses a session that was never open: counted; y-websocket closed with 4401/4403, Hocuspocus told. */
  #deny(session: Session, grant: Grant): void {
    this.#denied++
    const code = grant.code ?? 'X_CRDT_ACCESS_DENIED'
    this.#count(code)
    const reason = grant.reason ?? 'access denied'
    this.#log.debug({ doc: session.docName, code, reason }, 'denied a client')
    const closeCode =
      code === 'X_CRDT_BAD_TOKEN' || code === 'X_CRDT_TOKEN_EXPIRED' ? CLOSE_UNAUTHORIZED : CLOSE_DENIED
    this.#endSession(session, closeCode, reason)
  }

  #downgrade(session: Session, reason: string): void {
    session.access = 'read-only'
    session.grant = { ...session.grant, access: 'read-only' }
    this.#log.debug({ doc: session.docName, reason }, 'downgraded a session to read-only')
    if (session.prefix !== undefined) this.#send(session, hp.authenticatedBody('readonly'))
    else {
      session.toldReadOnly = true
      this.#send(session, yws.permissionDeniedBody(`${READ_ONLY_REASON} (${reason})`))
    }
  }

  /**
   * Ends one document session. y-websocket: the connection is the session, closed with `code` and `reason`.
   * Hocuspocus: the socket stays for the other documents; the provider is told "permission denied" (for a
   * refusal, a revocation or an expiry) and "close", both with `reason`.
   */
  #endSession(session: Session, code: number, reason: string): void {
    if (session.closed) return
    if (session.prefix === undefined) {
      this.#closeConn(session.conn, code, reason)
      return
    }
    const { conn } = session
    if (code === CLOSE_DENIED || code === CLOSE_UNAUTHORIZED) {
      this.#send(session, hp.permissionDeniedBody(reason))
    }
    if (session.authorized) this.#send(session, hp.closeBody(reason))
    this.#forget(session)
    conn.closedAddresses.add(session.address)
    if (conn.closedAddresses.size > MAX_CLOSED_ADDRESSES) {
      conn.closedAddresses.delete(conn.closedAddresses.values().next().value!)
    }
  }

  /** Drops a session's state (its connection stays). */
  #forget(session: Session): void {
    if (session.closed) return
    session.closed = true
    session.queue = undefined
    this.#clearTimers(session)
    if (session.conn.sessions.get(session.address) === session) session.conn.sessions.delete(session.address)
    this.#sessions--
    const at = session.conn.clientAddress
    const left = (this.#perAddress.get(at) ?? 1) - 1
    if (left > 0) this.#perAddress.set(at, left)
    else this.#perAddress.delete(at)
    this.#leave(session)
  }

  // ---- rooms --------------------------------------------------------------------------------------------------

  #joinRoom(name: string): Promise<Room> {
    const existing = this.#rooms.get(name)
    if (existing) return Promise.resolve(existing)
    const loading = this.#roomLoading.get(name)
    if (loading) return loading
    const p = this.#store
      .open(name)
      .then((handle) => {
        const awareness = new awarenessProtocol.Awareness(handle.doc)
        awareness.setLocalState(null)
        const room: Room = { name, handle, awareness, clients: new Set(), closed: false }
        awareness.on(
          'update',
          (
            { added, updated, removed }: { added: number[]; updated: number[]; removed: number[] },
            origin: unknown,
          ) => {
            if (origin instanceof Session) {
              for (const id of added) origin.controlledIds.add(id)
              for (const id of removed) origin.controlledIds.delete(id)
            }
            // Echo to everyone, the sender included: its watchdog counts its own awareness renewals.
            const bytes = this.#awarenessBody(room, [...added, ...updated, ...removed])
            for (const s of room.clients) this.#send(s, bytes)
          },
        )
        this.#rooms.set(name, room)
        return room
      })
      .finally(() => this.#roomLoading.delete(name))
    this.#roomLoading.set(name, p)
    return p
  }

  #dropRoom(room: Room): void {
    if (room.closed) return
    room.closed = true
    if (this.#rooms.get(room.name) === room) this.#rooms.delete(room.name)
    room.awareness.destroy()
    room.handle.release()
  }

  #awarenessBody(room: Room, ids: number[]): Uint8Array {
    return yws.awarenessBody(awarenessProtocol.encodeAwarenessUpdate(room.awareness, ids))
  }

  #relay(name: string, update: Uint8Array, origin: unknown): void {
    const room = this.#rooms.get(name)
    if (!room || room.clients.size === 0) return
    const body = yws.syncBody(yws.SYNC_UPDATE, update)
    for (const s of room.clients) if (s !== origin) this.#send(s, body)
  }

  #leave(session: Session): void {
    const room = session.room
    if (!room) return
    session.room = undefined
    room.clients.delete(session)
    if (session.controlledIds.size > 0 && !room.closed) {
      awarenessProtocol.removeAwarenessStates(room.awareness, [...session.controlledIds], null)
    }
    if (room.clients.size === 0) this.#dropRoom(room)
  }

  // ---- messages (the same bodies in both protocols) -----------------------------------------------------------

  #onMessage(session: Session, decoder: decoding.Decoder): void {
    const room = session.room
    if (!room || room.closed || session.closed) return
    const hocuspocus = session.prefix !== undefined
    try {
      const type = decoding.readVarUint(decoder)
      switch (type) {
        case yws.MESSAGE_SYNC:
          this.#onSync(session, room, decoder)
          break
        case yws.MESSAGE_AWARENESS:
          awarenessProtocol.applyAwarenessUpdate(room.awareness, decoding.readVarUint8Array(decoder), session)
          break
        case yws.MESSAGE_QUERY_AWARENESS:
          this.#send(session, this.#awarenessBody(room, [...room.awareness.getStates().keys()]))
          break
        case yws.MESSAGE_AUTH:
          // y-websocket: server-to-client only. Hocuspocus: a fresh token (answering the server's request).
          if (hocuspocus && decoding.readVarUint(decoder) === hp.HP_AUTH_TOKEN) {
            this.#refreshToken(session, decoding.readVarString(decoder))
          }
          break
        case hp.HP_STATELESS:
          if (!hocuspocus) throw new CrdtSyncError('X_CRDT_BAD_MESSAGE', `unknown message type ${type}`)
          this.#onStateless(session, room, decoding.readVarString(decoder))
          break
        case hp.HP_CLOSE:
          if (!hocuspocus) throw new CrdtSyncError('X_CRDT_BAD_MESSAGE', `unknown message type ${type}`)
          this.#forget(session) // the provider detached: nothing to tell it
          break
        default:
          throw new CrdtSyncError('X_CRDT_BAD_MESSAGE', `unknown message type ${type}`)
      }
    } catch (err) {
      this.#onBadMessage(session, err)
    }
  }

  #onSync(session: Session, room: Room, decoder: decoding.Decoder): void {
    const syncType = decoding.readVarUint(decoder)
    if (syncType === yws.SYNC_STEP_1) {
      const stateVector = decoding.readVarUint8Array(decoder)
      try {
        Y.decodeStateVector(stateVector)
      } catch (err) {
        throw new CrdtSyncError('X_CRDT_BAD_MESSAGE', 'malformed state vector', { cause: err })
      }
      // A large document is encoded in steps (the event loop runs between them).
      encodeStateAsUpdateSliced(room.handle.doc, stateVector, nextTurn).then(
        (diff) => {
          if (session.closed || room.closed) return
          const step1 =
            session.prefix === undefined
              ? undefined
              : yws.syncBody(yws.SYNC_STEP_1, Y.encodeStateVector(room.handle.doc))
          const step2 = yws.syncBody(yws.SYNC_STEP_2, diff)
          // The diff may hold changes still being written: send it once they are on disk.
          room.handle.afterDurable(() => {
            if (step1 !== undefined) this.#send(session, step1)
            this.#send(session, step2)
          })
        },
        (err: unknown) => this.#log.warn({ err, doc: room.name }, 'encoding a sync answer failed'),
      )
    } else if (syncType === yws.SYNC_STEP_2 || syncType === yws.SYNC_UPDATE) {
      const update = decoding.readVarUint8Array(decoder)
      if (session.access !== 'read-write') {
        this.#onReadOnlyUpdate(session, room, update, syncType === yws.SYNC_STEP_2)
        return
      }
      // Small updates are applied before this returns; large ones in slices, after the ones before them.
      room.handle.applyUpdate(update, session).then(
        () => {
          // Hocuspocus counts unsynced changes down by one per SyncStatus: sent once the change is on disk.
          if (session.prefix !== undefined) {
            room.handle.afterDurable(() => this.#send(session, hp.SYNC_APPLIED_BODY))
          }
        },
        (err: unknown) => this.#onBadMessage(session, err, true),
      )
    } else {
      throw new CrdtSyncError('X_CRDT_BAD_MESSAGE', `unknown sync message type ${syncType}`)
    }
  }

  /**
   * An update from a read-only client: dropped and answered, never applied. Every client answers the server's
   * step 1 with its state: one that holds nothing new is not a refusal. y-websocket clients are told once with
   * an auth "permission denied" message (the stock provider logs it and stays connected for reading); Hocuspocus
   * clients get a SyncStatus per message, "refused" as `@hocuspocus/server` answers read-only connections.
   */
  #onReadOnlyUpdate(session: Session, room: Room, update: Uint8Array, step2: boolean): void {
    let news = !yws.isEmptyUpdate(update)
    if (news && step2 && session.prefix !== undefined && !session.checkedStep2) {
      // The provider's step 2 carries its whole delete set: check once whether it holds anything new.
      session.checkedStep2 = true
      try {
        news = !Y.snapshotContainsUpdate(Y.snapshot(room.handle.doc), update)
      } catch {
        news = true
      }
    }
    if (session.prefix !== undefined) {
      this.#send(session, news ? hp.SYNC_REFUSED_BODY : hp.SYNC_APPLIED_BODY)
    }
    if (!news) return
    this.#refused++
    this.#count('X_CRDT_READ_ONLY')
    if (session.prefix !== undefined || session.toldReadOnly) return
    session.toldReadOnly = true
    const err = new CrdtSyncError('X_CRDT_READ_ONLY', `read-only access to '${session.docName}'`)
    this.#log.debug(
      { err, code: err.code, doc: session.docName },
      'refused an update from a read-only client',
    )
    this.#send(session, yws.permissionDeniedBody(READ_ONLY_REASON))
  }

  #onStateless(session: Session, room: Room, payload: string): void {
    const reply = (p: string): void => this.#send(session, hp.statelessBody(p))
    const broadcast = (p: string): void => {
      const body = hp.statelessBody(p)
      for (const s of room.clients) if (s !== session && s.prefix !== undefined) this.#send(s, body)
    }
    if (this.#stateless === undefined) {
      broadcast(payload)
      return
    }
    try {
      this.#stateless({ docName: session.docName, payload, session: session.info(), reply, broadcast })
    } catch (err) {
      this.#log.debug({ err, doc: session.docName }, 'stateless handler threw; message dropped')
    }
  }

  /** `countedByStore`: the store already counted the error it raised. */
  #onBadMessage(session: Session, err: unknown, countedByStore = false): void {
    const code = isCrdtSyncError(err) ? err.code : 'X_CRDT_BAD_MESSAGE'
    if (!countedByStore) this.#count(code)
    this.#log.debug({ err, doc: session.docName, code }, 'refused a client message')
    if (code === 'X_CRDT_UPDATE_TOO_LARGE') {
      this.#endSession(session, CLOSE_TOO_LARGE, 'update too large')
    } else if (code === 'X_CRDT_DOC_TOO_LARGE') {
      this.#endSession(session, CLOSE_TOO_LARGE, 'document too large')
    } else if (code === 'X_CRDT_QUOTA_EXCEEDED') {
      this.#endSession(session, CLOSE_QUOTA, 'storage quota exceeded')
    } else if (code === 'X_CRDT_DOC_FAILED' || code === 'X_CRDT_CLOSED') {
      this.#endSession(session, CLOSE_INTERNAL, 'document unavailable')
    } else if (++session.conn.bad >= this.#maxBad) {
      this.#closeConn(session.conn, CLOSE_BAD_DATA, 'too many malformed messages')
    }
  }

  // ---- sending, rates, keepalive, closing ---------------------------------------------------------------------

  #send(session: Session, body: Uint8Array): void {
    if (session.closed) return
    this.#sendRaw(session.conn, session.prefix === undefined ? body : hp.withAddress(session.prefix, body))
  }

  #sendRaw(conn: Conn, bytes: Uint8Array): void {
    const ws = conn.ws
    if (conn.closed || ws.readyState !== WebSocket.OPEN) return
    if (ws.bufferedAmount > this.#maxBuffered) {
      this.#closeConn(conn, CLOSE_TRY_AGAIN_LATER, 'client too slow')
      return
    }
    conn.lastSentAt = this.#clock.now()
    ws.send(bytes, (err) => {
      if (err) ws.terminate()
    })
  }

  /** Token bucket per connection; one in debt is paused until the debt is paid at `writeBytesPerSecond`. */
  #charge(conn: Conn, bytes: number): void {
    const now = this.#clock.now()
    conn.allowance = Math.min(
      this.#writeBurst,
      conn.allowance + ((now - conn.allowanceAt) * this.#writeRate) / 1000,
    )
    conn.allowanceAt = now
    conn.allowance -= bytes
    if (conn.allowance >= 0 || conn.resumeTimer !== undefined) return
    this.#throttled++
    this.#count('X_CRDT_RATE_LIMITED')
    this.#log.debug({ protocol: conn.protocol, debt: -conn.allowance }, 'client over its write rate: paused')
    conn.ws.pause()
    this.#scheduleResume(conn)
  }

  #scheduleResume(conn: Conn): void {
    const waitMs = Math.ceil((-conn.allowance * 1000) / this.#writeRate)
    conn.resumeTimer = this.#clock.setTimeout(() => {
      conn.resumeTimer = undefined
      if (conn.closed) return
      const now = this.#clock.now()
      conn.allowance = Math.min(
        this.#writeBurst,
        conn.allowance + ((now - conn.allowanceAt) * this.#writeRate) / 1000,
      )
      conn.allowanceAt = now
      // Messages ws had already read when it was paused still arrived, and added to the debt.
      if (conn.allowance < 0) {
        this.#scheduleResume(conn)
        return
      }
      conn.alive = true
      conn.ws.resume()
    }, waitMs)
  }

  #unpause(conn: Conn): void {
    if (conn.resumeTimer === undefined) return
    this.#clock.clearTimeout(conn.resumeTimer)
    conn.resumeTimer = undefined
  }

  #tick(): void {
    const now = this.#clock.now()
    // Addresses whose token-check allowance has refilled are forgotten: the table holds the recent ones only.
    const burst = this.#authRatePerAddress * AUTH_BURST_SECONDS
    for (const [address, b] of this.#authByAddress) {
      if (b.allowance + ((now - b.at) * this.#authRatePerAddress) / 1000 >= burst)
        this.#authByAddress.delete(address)
    }
    for (const c of this.#clients) {
      if (c.closed) continue
      // A paused (rate-limited) client's pongs are not read: its liveness is checked once it is resumed.
      if (c.resumeTimer !== undefined) continue
      if (!c.alive) {
        c.ws.terminate()
        continue
      }
      c.alive = false
      try {
        c.ws.ping()
      } catch {
        c.ws.terminate()
        continue
      }
      // Browsers do not surface pings to the page: send a real message before the client's watchdog fires (one
      // per connection: the Hocuspocus provider's watchdog is per socket).
      if (now - c.lastSentAt < this.#keepaliveMs / 2) continue
      for (const s of c.sessions.values()) {
        if (s.room === undefined) continue
        this.#send(s, yws.KEEPALIVE_BODY)
        break
      }
    }
  }

  #closeConn(conn: Conn, code: number, reason: string): void {
    if (conn.closed) return
    conn.closed = true
    this.#unpause(conn)
    try {
      conn.ws.close(code, reason)
    } catch {
      conn.ws.terminate()
    }
    for (const s of [...conn.sessions.values()]) this.#forget(s)
  }

  #onClose(conn: Conn): void {
    conn.closed = true
    this.#unpause(conn)
    this.#clients.delete(conn)
    for (const s of [...conn.sessions.values()]) this.#forget(s)
  }
}

/**
 * Creates a server of Yjs documents over a {@link DocStore} that speaks two protocols on the same documents:
 * y-websocket (one document per connection, `handleUpgrade`) and Hocuspocus v2+ (many documents per connection,
 * each frame prefixed by its document's name, `handleHocuspocusUpgrade`), so the stock `WebsocketProvider`, the
 * `HocuspocusProvider` and the editor bindings built on them work unchanged and see each other's edits and
 * presence. A session's messages are held until it is authorized and its document is loaded; sync replies,
 * relayed updates and Hocuspocus sync acknowledgements leave only once what they carry is on disk.
 */
export function createSyncServer(components: SyncServerComponents, init: SyncServerInit = {}): SyncServer {
  return new SyncServerImpl(components, init)
}
