import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as awarenessProtocol from 'y-protocols/awareness'
import * as authProtocol from 'y-protocols/auth'
import { WebSocketServer, WebSocket, type RawData } from 'ws'
import { CrdtSyncError, isCrdtSyncError, type CrdtSyncErrorCode } from './errors'
import { SILENT_LOGGER, type Logger } from './logger'
import { SYSTEM_CLOCK, nextTurn, type Clock } from './clock'
import { encodeStateAsUpdateSliced } from './encode-sliced'
import { docNameProblem } from './keys'
import type { DocHandle, DocStore, DocStoreStats } from './doc-store'

// y-websocket message types (y-websocket/src/y-websocket.js) and y-protocols/sync sub-types.
const MESSAGE_SYNC = 0
const MESSAGE_AWARENESS = 1
const MESSAGE_AUTH = 2
const MESSAGE_QUERY_AWARENESS = 3
const SYNC_STEP_1 = 0
const SYNC_STEP_2 = 1
const SYNC_UPDATE = 2

// Close codes. 4400-4499 tell the y-websocket client not to reconnect (its default `shouldReconnect`).
const CLOSE_GOING_AWAY = 1001
const CLOSE_POLICY = 1008
const CLOSE_BAD_DATA = 1007
const CLOSE_INTERNAL = 1011
const CLOSE_TRY_AGAIN_LATER = 1013
const CLOSE_BAD_DOC_NAME = 4400
const CLOSE_DENIED = 4403
const CLOSE_TOO_LARGE = 4413
// Outside 4400-4499, so the y-websocket client reconnects (with back-off): compaction or an operator may free space.
const CLOSE_QUOTA = 4507

// The store's default maxUpdateBytes (4 MiB) plus room for the message framing: an update just over the store's
// limit is refused with 4413 and a reason; a message over this one is cut off by ws with 1009.
const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024 + 64 * 1024
const DEFAULT_WRITE_BYTES_PER_SECOND = 256 * 1024
const DEFAULT_WRITE_BURST_BYTES = DEFAULT_MAX_MESSAGE_BYTES
const DEFAULT_KEEPALIVE_INTERVAL_MS = 10_000 // < the client's 30 s "no message received" watchdog
const DEFAULT_MAX_CLIENTS = 10_000
const DEFAULT_MAX_BAD_MESSAGES = 8
const DEFAULT_MAX_QUEUED_MESSAGES = 1_000
const DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024
const READ_ONLY_REASON = 'read-only: your updates are not accepted'
const CLOSE_GRACE_MS = 2_000 // wait this long for closing handshakes in close(), then terminate

/** What a client may do with a document. */
export type Access = 'read-write' | 'read-only' | 'deny'

/** Decides a client's access to a document from its upgrade request (headers, URL, cookies). */
export type Authorize = (docName: string, request: IncomingMessage) => Access | Promise<Access>

/** Services injected into {@link createSyncServer}. */
export interface SyncServerComponents {
  /** The store documents are loaded from and persisted to; the server never closes it. */
  store: DocStore
  /** @default every client gets 'read-write' */
  authorize?: Authorize
  /** @default a silent logger */
  logger?: Logger
  /** Time and timers of the write-rate limiter. @default the system clock */
  clock?: Clock
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
   * Sustained bytes per second one client may send (every message counts). A client that goes beyond its
   * allowance is not read from (the socket is paused, so TCP holds its sender back) until the allowance has
   * recovered; each such pause is counted as `X_CRDT_RATE_LIMITED`. Nothing is dropped. @default 262_144
   */
  writeBytesPerSecond?: number
  /** Bytes a client may send at once before the rate applies (at least one message of `maxMessageBytes`). @default 4_259_840 */
  writeBurstBytes?: number
  /** Ping period; an idle client also gets an empty awareness message at half this period, so the y-websocket client's 30 s watchdog never fires. @default 10_000 */
  keepaliveIntervalMs?: number
  /** Most connected clients; beyond it new ones are closed with 1013. @default 10_000 */
  maxClients?: number
  /** Malformed messages tolerated per connection before it is closed with 1007. @default 8 */
  maxBadMessages?: number
  /** Messages buffered per client while its document loads. @default 1_000 */
  maxQueuedMessages?: number
  /** Unsent bytes allowed per client before it is dropped as too slow (1013). @default 33_554_432 */
  maxBufferedBytes?: number
}

/** Counters of the server, including its store's. */
export interface SyncServerStats extends DocStoreStats {
  /** WebSocket connections open now. */
  clients: number
  /** Documents with at least one connection. */
  rooms: number
  /** Connections `authorize` denied (or threw for) since the start. */
  deniedClients: number
  /** Updates from read-only clients that were dropped. */
  refusedUpdates: number
  /** Times a client was paused for going beyond `writeBytesPerSecond` (also `errors.X_CRDT_RATE_LIMITED`). */
  throttled: number
}

/** A y-websocket compatible server; see {@link createSyncServer}. */
export interface SyncServer {
  /** Takes over an HTTP upgrade for `docName` (the host routes, e.g. `/crdt/<doc>`). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, docName: string): void
  /** Listens on its own HTTP server; the document name is the URL path after '/'. For tests and standalone use. */
  listen(options: {
    /** TCP port; `0` picks a free one (the result says which). */
    port: number
    /** Interface to bind. @default '127.0.0.1' */
    host?: string
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
  clients: Set<Client>
  closed: boolean
}

class Client {
  readonly ws: WebSocket
  readonly docName: string
  access: Access = 'deny'
  room: Room | undefined
  queue: Uint8Array[] | undefined = []
  bad = 0
  alive = true
  lastSentAt = 0
  closed = false
  /** Whether this read-only client was told (once) that its updates are refused. */
  toldReadOnly = false
  /** Write allowance in bytes (token bucket; negative: in debt, the socket is paused). */
  allowance: number
  allowanceAt: number
  resumeTimer: unknown
  readonly controlledIds = new Set<number>()

  constructor(ws: WebSocket, docName: string, allowance: number, now: number) {
    this.ws = ws
    this.docName = docName
    this.allowance = allowance
    this.allowanceAt = now
  }
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data))
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

function message(write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder()
  write(encoder)
  return encoding.toUint8Array(encoder)
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`'${name}' must be a positive number`)
  return value
}

/** A Yjs v1 update with no structs and an empty delete set (what an empty document sends as sync step 2). */
function isEmptyUpdate(update: Uint8Array): boolean {
  return update.length === 2 && update[0] === 0 && update[1] === 0
}

/** An awareness update listing no clients: a harmless message that resets the client's watchdog. */
const KEEPALIVE_MESSAGE = message((e) => {
  encoding.writeVarUint(e, MESSAGE_AWARENESS)
  encoding.writeVarUint8Array(e, new Uint8Array([0]))
})

class SyncServerImpl implements SyncServer {
  readonly #store: DocStore
  readonly #authorize: Authorize | undefined
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
  readonly #clients = new Set<Client>()
  readonly #rooms = new Map<string, Room>()
  readonly #roomLoading = new Map<string, Promise<Room>>()
  readonly #errors: Partial<Record<CrdtSyncErrorCode, number>> = {}
  #wss: WebSocketServer | undefined
  #http: Server | undefined
  #keepalive: ReturnType<typeof setInterval> | undefined
  #unsubscribe: (() => void)[] = []
  #denied = 0
  #refused = 0
  #throttled = 0
  #closing: Promise<void> | undefined

  constructor(components: SyncServerComponents, init: SyncServerInit) {
    if (components?.store == null || typeof components.store.open !== 'function') {
      throw new TypeError("'components.store' must be a DocStore")
    }
    if (components.authorize !== undefined && typeof components.authorize !== 'function') {
      throw new TypeError("'components.authorize' must be a function")
    }
    this.#store = components.store
    this.#authorize = components.authorize
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
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, docName: string): void {
    if (this.#closing !== undefined) {
      socket.destroy()
      return
    }
    this.#start()
    this.#wss!.handleUpgrade(request, socket, head, (ws) => this.#accept(ws, request, docName))
  }

  async listen(options: { port: number; host?: string }): Promise<{ port: number; host: string }> {
    if (this.#http !== undefined) throw new Error('already listening')
    const host = options.host ?? '127.0.0.1'
    const server = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('upgrade to WebSocket\n')
    })
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      let name: string
      try {
        name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1))
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
      rooms: this.#rooms.size,
      deniedClients: this.#denied,
      refusedUpdates: this.#refused,
      throttled: this.#throttled,
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  // ---- internals --------------------------------------------------------------------------------------------

  #start(): void {
    if (this.#wss !== undefined) return
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: this.#maxMessageBytes })
    this.#unsubscribe.push(
      this.#store.onUpdate((name, update, origin) => this.#relay(name, update, origin)),
      this.#store.onDocumentFailed((name) => {
        const room = this.#rooms.get(name)
        if (room) for (const c of room.clients) this.#closeClient(c, CLOSE_INTERNAL, 'storage failure')
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
    for (const c of this.#clients) this.#closeClient(c, CLOSE_GOING_AWAY, 'server shutting down')
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

  #accept(ws: WebSocket, request: IncomingMessage, docName: string): void {
    const client = new Client(ws, docName, this.#writeBurst, this.#clock.now())
    client.lastSentAt = Date.now()
    ws.on('message', (data: RawData) => {
      if (client.closed) return
      const bytes = toBytes(data)
      this.#charge(client, bytes.length)
      if (client.queue !== undefined) {
        // The document is not loaded yet: nothing is answered before it is (the reference server's race).
        if (client.queue.length >= this.#maxQueued)
          this.#closeClient(client, CLOSE_POLICY, 'too many messages')
        else client.queue.push(bytes)
        return
      }
      this.#onMessage(client, bytes)
    })
    ws.on('pong', () => {
      client.alive = true
    })
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes with 1009 by itself; count it with the updates refused for their size.
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#count('X_CRDT_UPDATE_TOO_LARGE')
      this.#log.debug({ err, doc: docName }, 'client socket error')
    })
    ws.on('close', () => this.#onClose(client))
    this.#clients.add(client)
    if (this.#clients.size > this.#maxClients) {
      this.#count('X_CRDT_TOO_MANY_CLIENTS')
      const err = new CrdtSyncError('X_CRDT_TOO_MANY_CLIENTS', `more than ${this.#maxClients} clients`)
      this.#log.debug({ err, code: err.code, doc: docName }, 'refused a client over the cap')
      this.#closeClient(client, CLOSE_TRY_AGAIN_LATER, 'too many clients')
      return
    }
    const problem = docNameProblem(docName)
    if (problem !== undefined) {
      this.#count('X_CRDT_BAD_DOC_NAME')
      this.#closeClient(client, CLOSE_BAD_DOC_NAME, problem)
      return
    }
    this.#setup(client, request).catch((err: unknown) => {
      this.#log.error({ err, doc: docName }, 'client setup failed')
      this.#closeClient(client, CLOSE_INTERNAL, 'internal error')
    })
  }

  async #setup(client: Client, request: IncomingMessage): Promise<void> {
    let access: Access = 'read-write'
    if (this.#authorize) {
      try {
        access = await this.#authorize(client.docName, request)
      } catch (err) {
        this.#log.warn({ err, doc: client.docName }, 'authorize threw; denying')
        access = 'deny'
      }
    }
    if (client.closed) return
    if (access !== 'read-write' && access !== 'read-only') {
      this.#denied++
      this.#closeClient(client, CLOSE_DENIED, 'access denied')
      return
    }
    client.access = access
    let room: Room
    for (;;) {
      try {
        room = await this.#joinRoom(client.docName)
      } catch (err) {
        const code = isCrdtSyncError(err) ? err.code : undefined
        if (code === 'X_CRDT_TOO_MANY_DOCS')
          this.#closeClient(client, CLOSE_TRY_AGAIN_LATER, 'too many documents')
        else if (code === 'X_CRDT_DOC_TOO_LARGE')
          this.#closeClient(client, CLOSE_TOO_LARGE, 'document too large')
        else if (code === 'X_CRDT_CLOSED') this.#closeClient(client, CLOSE_GOING_AWAY, 'server shutting down')
        else this.#closeClient(client, CLOSE_INTERNAL, 'could not load the document')
        return
      }
      if (!room.closed) break
    }
    if (client.closed) {
      if (room.clients.size === 0) this.#dropRoom(room)
      return
    }
    room.clients.add(client)
    client.room = room
    this.#send(
      client,
      message((e) => {
        encoding.writeVarUint(e, MESSAGE_SYNC)
        encoding.writeVarUint(e, SYNC_STEP_1)
        encoding.writeVarUint8Array(e, Y.encodeStateVector(room.handle.doc))
      }),
    )
    const states = room.awareness.getStates()
    if (states.size > 0) this.#send(client, this.#awarenessMessage(room, [...states.keys()]))
    const queued = client.queue ?? []
    client.queue = undefined
    for (const bytes of queued) {
      if (client.closed) break
      this.#onMessage(client, bytes)
    }
  }

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
            if (origin instanceof Client) {
              for (const id of added) origin.controlledIds.add(id)
              for (const id of removed) origin.controlledIds.delete(id)
            }
            // Echo to everyone, the sender included: its watchdog counts its own awareness renewals.
            const bytes = this.#awarenessMessage(room, [...added, ...updated, ...removed])
            for (const c of room.clients) this.#send(c, bytes)
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

  #awarenessMessage(room: Room, ids: number[]): Uint8Array {
    return message((e) => {
      encoding.writeVarUint(e, MESSAGE_AWARENESS)
      encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(room.awareness, ids))
    })
  }

  #relay(name: string, update: Uint8Array, origin: unknown): void {
    const room = this.#rooms.get(name)
    if (!room || room.clients.size === 0) return
    const bytes = message((e) => {
      encoding.writeVarUint(e, MESSAGE_SYNC)
      encoding.writeVarUint(e, SYNC_UPDATE)
      encoding.writeVarUint8Array(e, update)
    })
    for (const c of room.clients) if (c !== origin) this.#send(c, bytes)
  }

  #onMessage(client: Client, bytes: Uint8Array): void {
    const room = client.room
    if (!room || room.closed) return
    try {
      const decoder = decoding.createDecoder(bytes)
      const type = decoding.readVarUint(decoder)
      switch (type) {
        case MESSAGE_SYNC:
          this.#onSync(client, room, decoder)
          break
        case MESSAGE_AWARENESS:
          awarenessProtocol.applyAwarenessUpdate(room.awareness, decoding.readVarUint8Array(decoder), client)
          break
        case MESSAGE_QUERY_AWARENESS:
          this.#send(client, this.#awarenessMessage(room, [...room.awareness.getStates().keys()]))
          break
        case MESSAGE_AUTH:
          break // server-to-client only; ignored
        default:
          throw new CrdtSyncError('X_CRDT_BAD_MESSAGE', `unknown message type ${type}`)
      }
    } catch (err) {
      this.#onBadMessage(client, err)
    }
  }

  #onSync(client: Client, room: Room, decoder: decoding.Decoder): void {
    const syncType = decoding.readVarUint(decoder)
    if (syncType === SYNC_STEP_1) {
      const stateVector = decoding.readVarUint8Array(decoder)
      try {
        Y.decodeStateVector(stateVector)
      } catch (err) {
        throw new CrdtSyncError('X_CRDT_BAD_MESSAGE', 'malformed state vector', { cause: err })
      }
      // A large document is encoded in steps (the event loop runs between them).
      encodeStateAsUpdateSliced(room.handle.doc, stateVector, nextTurn).then(
        (diff) => {
          if (client.closed || room.closed) return
          const reply = message((e) => {
            encoding.writeVarUint(e, MESSAGE_SYNC)
            encoding.writeVarUint(e, SYNC_STEP_2)
            encoding.writeVarUint8Array(e, diff)
          })
          // The diff may hold changes still being written: send it once they are on disk.
          room.handle.afterDurable(() => this.#send(client, reply))
        },
        (err: unknown) => this.#log.warn({ err, doc: room.name }, 'encoding a sync answer failed'),
      )
    } else if (syncType === SYNC_STEP_2 || syncType === SYNC_UPDATE) {
      const update = decoding.readVarUint8Array(decoder)
      if (client.access !== 'read-write') {
        // Every client answers the server's step 1 with its state: an empty one changes nothing, refuse quietly.
        if (!isEmptyUpdate(update)) this.#refuseReadOnly(client)
        return
      }
      // Small updates are applied before this returns; large ones in slices, after the ones before them.
      room.handle.applyUpdate(update, client).catch((err: unknown) => this.#onBadMessage(client, err, true))
    } else {
      throw new CrdtSyncError('X_CRDT_BAD_MESSAGE', `unknown sync message type ${syncType}`)
    }
  }

  /**
   * Drops a read-only client's update, counts it, and tells the client once with a y-websocket auth
   * "permission denied" message (the stock provider logs it; the connection stays open for reading).
   */
  #refuseReadOnly(client: Client): void {
    this.#refused++
    this.#count('X_CRDT_READ_ONLY')
    if (client.toldReadOnly) return
    client.toldReadOnly = true
    const err = new CrdtSyncError('X_CRDT_READ_ONLY', `read-only access to '${client.docName}'`)
    this.#log.debug({ err, code: err.code, doc: client.docName }, 'refused an update from a read-only client')
    this.#send(
      client,
      message((e) => {
        encoding.writeVarUint(e, MESSAGE_AUTH)
        authProtocol.writePermissionDenied(e, READ_ONLY_REASON)
      }),
    )
  }

  /** `countedByStore`: the store already counted the error it raised. */
  #onBadMessage(client: Client, err: unknown, countedByStore = false): void {
    const code = isCrdtSyncError(err) ? err.code : 'X_CRDT_BAD_MESSAGE'
    if (!countedByStore) this.#count(code)
    this.#log.debug({ err, doc: client.docName, code }, 'refused a client message')
    if (code === 'X_CRDT_UPDATE_TOO_LARGE') {
      this.#closeClient(client, CLOSE_TOO_LARGE, 'update too large')
    } else if (code === 'X_CRDT_DOC_TOO_LARGE') {
      this.#closeClient(client, CLOSE_TOO_LARGE, 'document too large')
    } else if (code === 'X_CRDT_QUOTA_EXCEEDED') {
      this.#closeClient(client, CLOSE_QUOTA, 'storage quota exceeded')
    } else if (code === 'X_CRDT_DOC_FAILED' || code === 'X_CRDT_CLOSED') {
      this.#closeClient(client, CLOSE_INTERNAL, 'document unavailable')
    } else if (++client.bad >= this.#maxBad) {
      this.#closeClient(client, CLOSE_BAD_DATA, 'too many malformed messages')
    }
  }

  #send(client: Client, bytes: Uint8Array): void {
    const ws = client.ws
    if (client.closed || ws.readyState !== WebSocket.OPEN) return
    if (ws.bufferedAmount > this.#maxBuffered) {
      this.#closeClient(client, CLOSE_TRY_AGAIN_LATER, 'client too slow')
      return
    }
    client.lastSentAt = Date.now()
    ws.send(bytes, (err) => {
      if (err) ws.terminate()
    })
  }

  /** Token bucket per client; a client in debt is paused until the debt is paid at `writeBytesPerSecond`. */
  #charge(client: Client, bytes: number): void {
    const now = this.#clock.now()
    client.allowance = Math.min(
      this.#writeBurst,
      client.allowance + ((now - client.allowanceAt) * this.#writeRate) / 1000,
    )
    client.allowanceAt = now
    client.allowance -= bytes
    if (client.allowance >= 0 || client.resumeTimer !== undefined) return
    this.#throttled++
    this.#count('X_CRDT_RATE_LIMITED')
    this.#log.debug({ doc: client.docName, debt: -client.allowance }, 'client over its write rate: paused')
    client.ws.pause()
    this.#scheduleResume(client)
  }

  #scheduleResume(client: Client): void {
    const waitMs = Math.ceil((-client.allowance * 1000) / this.#writeRate)
    client.resumeTimer = this.#clock.setTimeout(() => {
      client.resumeTimer = undefined
      if (client.closed) return
      const now = this.#clock.now()
      client.allowance = Math.min(
        this.#writeBurst,
        client.allowance + ((now - client.allowanceAt) * this.#writeRate) / 1000,
      )
      client.allowanceAt = now
      // Messages ws had already read when it was paused still arrived, and added to the debt.
      if (client.allowance < 0) {
        this.#scheduleResume(client)
        return
      }
      client.alive = true
      client.ws.resume()
    }, waitMs)
  }

  #unpause(client: Client): void {
    if (client.resumeTimer === undefined) return
    this.#clock.clearTimeout(client.resumeTimer)
    client.resumeTimer = undefined
  }

  #tick(): void {
    const now = Date.now()
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
      // Browsers do not surface pings to the page: send a real message before the client's watchdog fires.
      if (c.room && now - c.lastSentAt >= this.#keepaliveMs / 2) this.#send(c, KEEPALIVE_MESSAGE)
    }
  }

  #closeClient(client: Client, code: number, reason: string): void {
    if (client.closed) return
    client.closed = true
    client.queue = undefined
    this.#unpause(client)
    try {
      client.ws.close(code, reason)
    } catch {
      client.ws.terminate()
    }
    this.#leave(client)
  }

  #onClose(client: Client): void {
    client.closed = true
    client.queue = undefined
    this.#unpause(client)
    this.#clients.delete(client)
    this.#leave(client)
  }

  #leave(client: Client): void {
    const room = client.room
    if (!room) return
    client.room = undefined
    room.clients.delete(client)
    if (client.controlledIds.size > 0 && !room.closed) {
      awarenessProtocol.removeAwarenessStates(room.awareness, [...client.controlledIds], null)
    }
    if (room.clients.size === 0) this.#dropRoom(room)
  }
}

/**
 * Creates a y-websocket compatible server over a {@link DocStore}.
 *
 * Speaks the y-websocket protocol (sync step 1/2, update, awareness, query-awareness), so the stock
 * `WebsocketProvider` and the editor bindings built on it work unchanged. A client's messages are held until
 * its document is loaded; sync replies and relayed updates leave only once what they carry is on disk.
 */
export function createSyncServer(components: SyncServerComponents, init: SyncServerInit = {}): SyncServer {
  return new SyncServerImpl(components, init)
}
