/**
 * Client for the native `/p2p-signaling` protocol, for browsers and Node: connects, answers the challenge,
 * relays signals, joins topics, reconnects with exponential back-off and jitter, and wires an
 * `RTCPeerConnection` with the perfect-negotiation pattern (W3C WebRTC §10.7 example, MDN "Perfect negotiation").
 *
 * @example
 * ```ts
 * import WebSocket from 'ws' // browsers: omit, the global WebSocket is used
 * import { createSignalingClient, attachPerfectNegotiation } from '@x/signaling/client'
 *
 * const client = createSignalingClient(
 *   { publicKey, sign: (message) => ml_dsa87.sign(message, secretKey), WebSocket },
 *   { url: 'ws://127.0.0.1:3001/p2p-signaling' },
 * )
 * const myId = await client.connect()
 * const pc = new RTCPeerConnection()
 * const negotiation = attachPerfectNegotiation(pc, {
 *   polite: myId < remoteId,
 *   send: (type, data) => client.signal(type, remoteId, data),
 * })
 * client.on('signal', (s) => { if (s.from === remoteId) void negotiation.handle(s.type, s.data) })
 * pc.createDataChannel('chat')
 * ```
 *
 * @packageDocumentation
 */
import { SignalingError, type SignalingErrorCode } from './errors'
import { registerFrame, statementBytes, type RelayType } from './protocol'
import { SILENT_LOGGER, type Logger } from './types'

/** Default first reconnect delay. */
export const MIN_RECONNECT_DELAY_MS = 500
/** Default longest reconnect delay. */
export const MAX_RECONNECT_DELAY_MS = 30_000
/** Default timeout for connect/register and for join/leave/discover replies. */
export const REQUEST_TIMEOUT_MS = 10_000
/** Default period of application-level pings (keeps NATs and the server's liveness check happy). */
export const CLIENT_PING_INTERVAL_MS = 25_000

/** The subset of the WHATWG WebSocket the client uses (browser global or `ws`). */
export interface WebSocketLike {
  /** `0` connecting, `1` open, `2` closing, `3` closed (the WebSocket standard's values). */
  readonly readyState: number
  /** Sends one text frame. */
  send(data: string): void
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void
  /** Set by the client: called once the connection is open. */
  onopen: ((ev: unknown) => void) | null
  /** Set by the client: called once the connection is closed, with the close code and reason. */
  onclose: ((ev: { code: number; reason: string }) => void) | null
  /** Set by the client: called on a connection error (a close follows). */
  onerror: ((ev: unknown) => void) | null
  /** Set by the client: called for each message; `data` is a string for text frames. */
  onmessage: ((ev: { data: unknown }) => void) | null
}

/** A WebSocket constructor (`globalThis.WebSocket`, or `ws`'s default export in Node). */
export type WebSocketConstructor = new (url: string) => WebSocketLike

/** Injected services of the client. */
export interface SignalingClientComponents {
  /** The peer's public key (ML-DSA-87 in the node). */
  publicKey: Uint8Array
  /** Signs the challenge bytes with the matching secret key. */
  sign(message: Uint8Array): Uint8Array | Promise<Uint8Array>
  /** @default globalThis.WebSocket */
  WebSocket?: WebSocketConstructor
  /** @default silent */
  logger?: Logger
  /** Uniform [0, 1) for back-off jitter. @default Math.random */
  random?: () => number
  /** Wall clock for the registration statement's time. @default Date */
  clock?: {
    /** Milliseconds since the epoch. */
    now(): number
  }
}

/** Client options. */
export interface SignalingClientInit {
  /** `ws://host:port/p2p-signaling`; its host is what the registration statement names. */
  url: string
  /** The node the client expects; a challenge from another node is refused. @default any node */
  nodeId?: string
  /** Reconnect after an unexpected close. @default true */
  reconnect?: boolean
  /** @default 500 */
  minReconnectDelayMs?: number
  /** @default 30_000 */
  maxReconnectDelayMs?: number
  /** @default 10_000 */
  requestTimeoutMs?: number
  /** Application-level ping period; 0 disables it. @default 25_000 */
  pingIntervalMs?: number
}

/** A signal received from another peer. */
export interface IncomingSignal {
  /** `offer`, `answer` or `candidate`. */
  type: RelayType
  /** The sender's peer ID, set by the server (never by the sender). */
  from: string
  /** What the sender passed to `signal()`: an SDP description or an ICE candidate. */
  data: unknown
}

/** Events emitted by the client. */
export interface SignalingClientEvents {
  /** Registered (also after each reconnect). */
  open: {
    /** The peer ID the server registered. */
    id: string
  }
  /** A signal from another peer. */
  signal: IncomingSignal
  /** A signal sent to `peer` was held and expired: the peer did not come online. */
  expire: {
    /** The peer the signal was for. */
    peer: string
  }
  /** An error frame not tied to a request (e.g. `PEER_NOT_FOUND` for a signal, `RATE_LIMITED`). */
  error: SignalingError & {
    /** The peer a failed signal was for, when the error is about one. */
    to?: string
  }
  /** The connection closed (a reconnect may follow). */
  close: {
    /** The WebSocket close code (see `CLOSE_CODES`). */
    code: number
    /** The close reason the server sent. */
    reason: string
  }
  /** A reconnect is scheduled after an unexpected close. */
  reconnecting: {
    /** Attempts since the connection was last open, this one included. */
    attempt: number
    /** Back-off before this attempt, in milliseconds. */
    delayMs: number
  }
}

/** A native-protocol signaling client. */
export interface SignalingClient {
  /** The registered peer ID, once known. */
  readonly id: string | undefined
  /** `'idle' | 'connecting' | 'open' | 'closed'` */
  readonly state: 'idle' | 'connecting' | 'open' | 'closed'
  /** Connects and registers; resolves with the peer ID. Rejects with `X_SIG_*` codes. */
  connect(): Promise<string>
  /** Sends an offer, answer or candidate to `to`. Throws `X_SIG_CLOSED` when not registered. */
  signal(type: RelayType, to: string, data: object): void
  /** Joins a topic (re-joined automatically after reconnects). */
  join(topic: string): Promise<void>
  /** Leaves a topic. */
  leave(topic: string): Promise<void>
  /** Peer IDs in a topic (local server and directory). */
  discover(topic: string): Promise<string[]>
  /** Listens to `event`; returns the function that stops listening. */
  on<K extends keyof SignalingClientEvents>(
    event: K,
    handler: (value: SignalingClientEvents[K]) => void,
  ): () => void
  /** Closes for good: no reconnect; pending requests reject with `X_SIG_CLOSED`. */
  close(): void
}

interface Pending {
  resolve(value: Record<string, unknown>): void
  reject(err: Error): void
  timer: ReturnType<typeof setTimeout>
}

/** Creates a client. Nothing connects until {@link SignalingClient.connect}. */
export function createSignalingClient(
  components: SignalingClientComponents,
  init: SignalingClientInit,
): SignalingClient {
  if (!(components?.publicKey instanceof Uint8Array)) {
    throw new TypeError('"components.publicKey" must be a Uint8Array')
  }
  if (typeof components.sign !== 'function') throw new TypeError('"components.sign" must be a function')
  if (typeof init?.url !== 'string') throw new TypeError('"init.url" must be a string')
  try {
    new URL(init.url)
  } catch {
    throw new TypeError(`"init.url" must be a WebSocket URL, got ${init.url}`)
  }
  const WS = components.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (WS === undefined)
    throw new TypeError('"components.WebSocket" is required where no global WebSocket exists')
  return new Client(components, init, WS)
}

class Client implements SignalingClient {
  readonly #c: SignalingClientComponents
  readonly #url: string
  /** The host the statement names: the URL's `host`, as the client dialed it. */
  readonly #host: string
  readonly #nodeId: string | undefined
  readonly #clock: { now(): number }
  readonly #WS: WebSocketConstructor
  readonly #log: Logger
  readonly #random: () => number
  readonly #reconnect: boolean
  readonly #minDelay: number
  readonly #maxDelay: number
  readonly #timeout: number
  readonly #pingMs: number
  readonly #handlers = new Map<string, Set<(v: never) => void>>()
  readonly #pending = new Map<number, Pending>()
  readonly #topics = new Set<string>()
  #ws: WebSocketLike | undefined
  #id: string | undefined
  #state: 'idle' | 'connecting' | 'open' | 'closed' = 'idle'
  #rid = 0
  #attempt = 0
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #pingTimer: ReturnType<typeof setInterval> | undefined
  #connectWaiters: { resolve(id: string): void; reject(err: Error): void }[] = []

  constructor(components: SignalingClientComponents, init: SignalingClientInit, WS: WebSocketConstructor) {
    this.#c = components
    this.#url = init.url
    this.#host = new URL(init.url).host
    this.#nodeId = init.nodeId
    this.#clock = components.clock ?? Date
    this.#WS = WS
    this.#log = (components.logger ?? SILENT_LOGGER).child({ component: 'signaling-client' })
    this.#random = components.random ?? Math.random
    this.#reconnect = init.reconnect ?? true
    this.#minDelay = init.minReconnectDelayMs ?? MIN_RECONNECT_DELAY_MS
    this.#maxDelay = init.maxReconnectDelayMs ?? MAX_RECONNECT_DELAY_MS
    this.#timeout = init.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
    this.#pingMs = init.pingIntervalMs ?? CLIENT_PING_INTERVAL_MS
  }

  get id(): string | undefined {
    return this.#id
  }

  get state(): 'idle' | 'connecting' | 'open' | 'closed' {
    return this.#state
  }

  connect(): Promise<string> {
    if (this.#state === 'closed')
      return Promise.reject(new SignalingError('X_SIG_CLOSED', 'client is closed'))
    if (this.#state === 'open' && this.#id !== undefined) return Promise.resolve(this.#id)
    const promise = new Promise<string>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }))
    if (this.#state === 'idle') this.#open()
    return promise
  }

  on<K extends keyof SignalingClientEvents>(
    event: K,
    handler: (value: SignalingClientEvents[K]) => void,
  ): () => void {
    let set = this.#handlers.get(event)
    if (set === undefined) this.#handlers.set(event, (set = new Set()))
    set.add(handler)
    return () => set.delete(handler)
  }

  #emit<K extends keyof SignalingClientEvents>(event: K, value: SignalingClientEvents[K]): void {
    const set = this.#handlers.get(event)
    if (set === undefined) return
    for (const handler of set) {
      try {
        ;(handler as (v: SignalingClientEvents[K]) => void)(value)
      } catch (err) {
        this.#log.error({ err: (err as Error).message, event }, 'event handler threw')
      }
    }
  }

  signal(type: RelayType, to: string, data: object): void {
    if (this.#state !== 'open' || this.#ws === undefined) {
      throw new SignalingError('X_SIG_CLOSED', 'not connected')
    }
    if (typeof to !== 'string' || to.length === 0) throw new TypeError('"to" must be a peer ID')
    this.#ws.send(JSON.stringify({ type, to, data }))
  }

  async join(topic: string): Promise<void> {
    this.#topics.add(topic)
    await this.#request({ type: 'join', topic })
  }

  async leave(topic: string): Promise<void> {
    this.#topics.delete(topic)
    await this.#request({ type: 'leave', topic })
  }

  async discover(topic: string): Promise<string[]> {
    const reply = await this.#request({ type: 'discover', topic })
    return Array.isArray(reply.peers) ? reply.peers.filter((p): p is string => typeof p === 'string') : []
  }

  close(): void {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    clearTimeout(this.#retryTimer)
    clearInterval(this.#pingTimer)
    const err = new SignalingError('X_SIG_CLOSED', 'client closed')
    this.#failAll(err)
    for (const w of this.#connectWaiters.splice(0)) w.reject(err)
    const ws = this.#ws
    this.#ws = undefined
    if (ws !== undefined) {
      ws.onclose = null
      ws.onmessage = null
      ws.onerror = () => {}
      ws.close(1000, 'client closed')
    }
  }

  /** Ends the client for good with `err` (a refusal a retry cannot fix). */
  #fail(err: SignalingError): void {
    for (const w of this.#connectWaiters.splice(0)) w.reject(err)
    this.close()
  }

  #request(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    const ws = this.#ws
    if (this.#state !== 'open' || ws === undefined) {
      return Promise.reject(new SignalingError('X_SIG_CLOSED', 'not connected'))
    }
    const rid = ++this.#rid
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(rid)
        reject(new SignalingError('X_SIG_TIMEOUT', `no reply to ${String(msg.type)}`))
      }, this.#timeout)
      this.#pending.set(rid, { resolve, reject, timer })
      ws.send(JSON.stringify({ ...msg, rid }))
    })
  }

  #failAll(err: Error): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    this.#pending.clear()
  }

  #open(): void {
    this.#state = 'connecting'
    let ws: WebSocketLike
    try {
      ws = new this.#WS(this.#url)
    } catch (err) {
      this.#onDown(1006, (err as Error).message)
      return
    }
    this.#ws = ws
    ws.onerror = () => {}
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return
      this.#ws = undefined
      this.#onDown(ev.code, ev.reason)
    }
    ws.onmessage = (ev) => {
      if (this.#ws !== ws || typeof ev.data !== 'string') return
      let msg: unknown
      try {
        msg = JSON.parse(ev.data)
      } catch {
        return
      }
      if (typeof msg === 'object' && msg !== null) void this.#onMessage(ws, msg as Record<string, unknown>)
    }
  }

  #onDown(code: number, reason: string): void {
    clearInterval(this.#pingTimer)
    this.#failAll(new SignalingError('X_SIG_CLOSED', `connection closed (${code})`))
    if (this.#state === 'closed') return
    const wasOpen = this.#state === 'open'
    this.#emit('close', { code, reason })
    // Refusals that a retry cannot fix end the client: failed authentication.
    if (!this.#reconnect || code === 4003) {
      this.#state = 'closed'
      const err = new SignalingError('X_SIG_CONNECT_FAILED', `connection closed (${code} ${reason})`)
      for (const w of this.#connectWaiters.splice(0)) w.reject(err)
      return
    }
    if (wasOpen) this.#attempt = 0
    this.#state = 'connecting'
    const base = Math.min(this.#maxDelay, this.#minDelay * 2 ** this.#attempt)
    const delayMs = Math.round(base / 2 + (this.#random() * base) / 2)
    this.#attempt++
    this.#emit('reconnecting', { attempt: this.#attempt, delayMs })
    this.#retryTimer = setTimeout(() => this.#open(), delayMs)
  }

  async #onMessage(ws: WebSocketLike, msg: Record<string, unknown>): Promise<void> {
    switch (msg.type) {
      case 'challenge': {
        const { nonce, node } = msg
        if (typeof nonce !== 'string' || typeof node !== 'string') return
        if (this.#nodeId !== undefined && node !== this.#nodeId) {
          this.#log.warn({ node }, 'challenge from an unexpected node')
          this.#fail(new SignalingError('X_SIG_CONNECT_FAILED', `expected node ${this.#nodeId}, got ${node}`))
          return
        }
        const statement = { node, host: this.#host, time: Math.floor(this.#clock.now()), nonce }
        let signature: Uint8Array
        try {
          signature = await this.#c.sign(statementBytes(statement))
        } catch (err) {
          this.#log.error({ err: (err as Error).message }, 'signing the registration statement failed')
          ws.close(1000, 'sign failed')
          return
        }
        if (this.#ws !== ws) return
        ws.send(registerFrame(statement, this.#c.publicKey, signature))
        return
      }
      case 'registered': {
        if (typeof msg.id !== 'string') return
        this.#id = msg.id
        this.#state = 'open'
        this.#attempt = 0
        if (this.#pingMs > 0) {
          clearInterval(this.#pingTimer)
          this.#pingTimer = setInterval(() => ws.send('{"type":"ping"}'), this.#pingMs)
        }
        for (const w of this.#connectWaiters.splice(0)) w.resolve(msg.id)
        this.#emit('open', { id: msg.id })
        for (const topic of this.#topics) {
          this.#request({ type: 'join', topic }).catch((err: unknown) =>
            this.#log.warn({ err: (err as Error).message, topic }, 're-join failed'),
          )
        }
        return
      }
      case 'offer':
      case 'answer':
      case 'candidate':
        if (typeof msg.from === 'string')
          this.#emit('signal', { type: msg.type, from: msg.from, data: msg.data })
        return
      case 'expire':
        if (typeof msg.peer === 'string') this.#emit('expire', { peer: msg.peer })
        return
      case 'error': {
        const code = `X_SIG_${typeof msg.code === 'string' ? msg.code : 'INTERNAL'}` as SignalingErrorCode
        const err = Object.assign(
          new SignalingError(code, typeof msg.message === 'string' ? msg.message : code),
          {
            to: typeof msg.to === 'string' ? msg.to : undefined,
          },
        )
        if (typeof msg.rid === 'number' && this.#settle(msg.rid, undefined, err)) return
        if (
          this.#state === 'connecting' &&
          (msg.code === 'UNAUTHENTICATED' || msg.code === 'ID_TAKEN' || msg.code === 'UNSUPPORTED_VERSION')
        ) {
          for (const w of this.#connectWaiters.splice(0)) w.reject(err)
        }
        this.#emit('error', err)
        return
      }
      default:
        if (typeof msg.rid === 'number') this.#settle(msg.rid, msg)
    }
  }

  #settle(rid: number, value: Record<string, unknown> | undefined, err?: Error): boolean {
    const pending = this.#pending.get(rid)
    if (pending === undefined) return false
    this.#pending.delete(rid)
    clearTimeout(pending.timer)
    if (err !== undefined) pending.reject(err)
    else pending.resolve(value ?? {})
    return true
  }
}

export {
  attachPerfectNegotiation,
  type PeerConnectionLike,
  type PerfectNegotiation,
  type PerfectNegotiationOptions,
} from './negotiation'
export { SignalingError, type SignalingErrorCode } from './errors'
export {
  PROTOCOL_VERSION,
  statementBytes,
  statementText,
  type RelayType,
  type RegistrationStatement,
} from './protocol'
