/**
 * Request/response over an unreliable datagram transport. Requests carry a random 32-bit ID; a response is
 * accepted only from the address the request went to, with the matching ID and type, and (when the contact
 * is known) the expected sender ID. Timeouts adapt per address from an RTT estimate (RFC 6298: SRTT + 4·RTTVAR,
 * Karn's rule: no samples from retransmitted requests). Inbound requests pass a per-host token bucket;
 * malformed datagrams are dropped and counted.
 */
import {
  decodeMessage,
  encodeMessage,
  isRequest,
  MAX_DATAGRAM_BYTES,
  type Message,
  MessageType,
} from './codec'
import { KademliaError } from './errors'
import { idEquals } from './id'
import { RateLimiter, sourceHost } from './rate-limit'
import { isLoopback } from './routing-table'
import type { Clock, Logger, MetricLabels, RandomSource, Transport } from './types'

/** Request bodies (header fields are filled in by the RPC layer). */
export type RequestBody =
  | { type: typeof MessageType.PING }
  | { type: typeof MessageType.FIND_NODE; target: Uint8Array }
  | { type: typeof MessageType.FIND_VALUE; key: Uint8Array }
  | { type: typeof MessageType.STORE; key: Uint8Array; token: Uint8Array; ttlMs: number; value: Uint8Array }

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never
/** A response body. */
export type ResponseBody = DistributiveOmit<Extract<Message, { type: 2 | 6 | 7 }>, 'requestId' | 'senderId'>

export interface RpcInit {
  initialTimeoutMs: number
  minTimeoutMs: number
  maxTimeoutMs: number
  retries: number
  rateLimitPerSecond: number
  rateLimitBurst: number
  maxRateLimitEntries: number
  maxRttEntries: number
  maxPendingRequests: number
}

/** Counters of the RPC layer, in {@link KademliaStats.rpc}. */
export interface RpcStats {
  /** Datagrams sent: requests (retransmissions included) and replies. */
  sent: number
  /** Datagrams received, before any check. */
  received: number
  /** Requests from other nodes that were answered (or handed to the handler). */
  requestsHandled: number
  /** Responses that matched a request of ours. */
  responses: number
  /** Requests of ours that got no answer after every retry. */
  timeouts: number
  /** Retransmissions of requests of ours after a timeout. */
  retries: number
  /** Datagrams dropped as oversized, undecodable, or claiming our own ID. */
  malformed: number
  /** Requests dropped by the per-source rate limit. */
  rateLimited: number
  /** Requests the injected `admit` hook turned away. */
  refused: number
  /** Responses to no request of ours (late, duplicated, from another address, or of the wrong type). */
  unexpected: number
  /** Responses from a node with another ID than the one asked (the request fails with `X_KAD_BAD_RESPONSE`). */
  idMismatch: number
  /** Requests whose handler threw or rejected, or whose answer could not be encoded (no answer sent). */
  handlerErrors: number
  /** Requests of ours refused at once because too many were in flight (`maxPendingRequests`). */
  overloaded: number
}

interface Pending {
  /** Request type, for metrics. */
  type: string
  requestId: number
  signal: AbortSignal | undefined
  address: string
  expectedId: Uint8Array | undefined
  responseType: number
  bytes: Uint8Array
  attemptsLeft: number
  retransmitted: boolean
  sentAt: number
  timeoutMs: number
  timer: unknown
  resolve: (msg: Message) => void
  reject: (err: unknown) => void
}

const REQUEST_ID_POOL_BYTES = 1024

const RESPONSE_TYPE: Record<number, number> = {
  [MessageType.PING]: MessageType.PONG,
  [MessageType.FIND_NODE]: MessageType.NODES,
  [MessageType.FIND_VALUE]: MessageType.NODES,
  [MessageType.STORE]: MessageType.STORED,
}

/** Counters the RPC layer adds to when a metrics registry is injected. */
export interface RpcMetrics {
  /** Requests this node sent, by `type` and `outcome` (`ok`, `timeout`, `bad_response`, `aborted`, `overloaded`). */
  sent: { inc(labels?: MetricLabels, value?: number): void }
  /** Requests this node received, by `type` and `outcome` (`answered`, `rate_limited`, `refused`, `malformed`). */
  received: { inc(labels?: MetricLabels, value?: number): void }
}

const TYPE_NAME: Record<number, string> = {
  [MessageType.PING]: 'ping',
  [MessageType.FIND_NODE]: 'find_node',
  [MessageType.FIND_VALUE]: 'find_value',
  [MessageType.STORE]: 'store',
}

/** Request kinds as the admission hook sees them; `malformed` is reported for information only. */
export type InboundKind = 'ping' | 'find_node' | 'find_value' | 'store' | 'malformed'

/** See `KademliaComponents.admit`. */
export type AdmitFn = (request: { from: string; kind: InboundKind; bytes: number }) => boolean

const KIND_OF: Record<number, InboundKind> = {
  [MessageType.PING]: 'ping',
  [MessageType.FIND_NODE]: 'find_node',
  [MessageType.FIND_VALUE]: 'find_value',
  [MessageType.STORE]: 'store',
}

export type RequestHandler = (
  msg: Message,
  from: string,
) => ResponseBody | undefined | Promise<ResponseBody | undefined>

export class Rpc {
  readonly stats: RpcStats = {
    sent: 0,
    received: 0,
    requestsHandled: 0,
    responses: 0,
    timeouts: 0,
    retries: 0,
    malformed: 0,
    rateLimited: 0,
    refused: 0,
    unexpected: 0,
    idMismatch: 0,
    handlerErrors: 0,
    overloaded: 0,
  }

  readonly #selfId: Uint8Array
  readonly #transport: Transport
  readonly #clock: Clock
  readonly #random: RandomSource
  readonly #logger: Logger
  readonly #init: RpcInit
  readonly #limiter: RateLimiter
  readonly #pending = new Map<number, Pending>()
  readonly #rtt = new Map<string, { srtt: number; rttvar: number }>()
  /** Requests waiting on each caller signal: one abort listener per signal, not one per request. */
  readonly #bySignal = new WeakMap<AbortSignal, Set<Pending>>()
  #idPool: Uint8Array = new Uint8Array(0)
  #idPoolAt = 0
  #handler: RequestHandler = () => undefined
  readonly #admit: AdmitFn | undefined
  readonly #metrics: RpcMetrics | undefined
  #closed = false

  constructor(
    selfId: Uint8Array,
    transport: Transport,
    clock: Clock,
    random: RandomSource,
    logger: Logger,
    init: RpcInit,
    admit?: AdmitFn,
    metrics?: RpcMetrics,
  ) {
    this.#admit = admit
    this.#metrics = metrics
    this.#selfId = selfId
    this.#transport = transport
    this.#clock = clock
    this.#random = random
    this.#logger = logger
    this.#init = init
    this.#limiter = new RateLimiter(init.rateLimitPerSecond, init.rateLimitBurst, init.maxRateLimitEntries)
  }

  setHandler(handler: RequestHandler): void {
    this.#handler = handler
  }

  open(): void {
    this.#closed = false
    this.#transport.onMessage((bytes, from) => this.handle(bytes, from))
  }

  /** Rejects every pending request and stops answering. */
  close(): void {
    this.#closed = true
    for (const p of [...this.#pending.values()]) {
      this.#cleanup(p)
      p.reject(new KademliaError('X_KAD_STOPPED', 'node stopped'))
    }
    this.#pending.clear()
  }

  get pendingCount(): number {
    return this.#pending.size
  }

  /** Current retransmission timeout for an address. */
  timeoutFor(address: string): number {
    const r = this.#rtt.get(address)
    if (r === undefined) return this.#init.initialTimeoutMs
    return Math.min(this.#init.maxTimeoutMs, Math.max(this.#init.minTimeoutMs, r.srtt + 4 * r.rttvar))
  }

  #sample(address: string, rttMs: number): void {
    const r = this.#rtt.get(address)
    if (r === undefined) {
      if (this.#rtt.size >= this.#init.maxRttEntries) {
        const oldest = this.#rtt.keys().next()
        if (oldest.done !== true) this.#rtt.delete(oldest.value)
      }
      this.#rtt.set(address, { srtt: rttMs, rttvar: rttMs / 2 })
      return
    }
    r.rttvar = 0.75 * r.rttvar + 0.25 * Math.abs(r.srtt - rttMs)
    r.srtt = 0.875 * r.srtt + 0.125 * rttMs
    // Refresh recency so the bounded map keeps active peers.
    this.#rtt.delete(address)
    this.#rtt.set(address, r)
  }

  #newRequestId(): number {
    // Random bytes are drawn 1 KiB at a time: one call into the random source per 256 requests.
    if (this.#idPoolAt + 4 > this.#idPool.length) {
      this.#idPool = this.#random(REQUEST_ID_POOL_BYTES)
      this.#idPoolAt = 0
    }
    const b = this.#idPool
    const o = this.#idPoolAt
    this.#idPoolAt += 4
    let id = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0
    while (this.#pending.has(id)) id = (id + 1) >>> 0
    return id
  }

  /** Sends a request and resolves with the response message. */
  request(
    address: string,
    body: RequestBody,
    options: { signal?: AbortSignal | undefined; expectedId?: Uint8Array | undefined } = {},
  ): Promise<Message> {
    if (this.#closed) return Promise.reject(new KademliaError('X_KAD_STOPPED', 'node stopped'))
    const { signal } = options
    if (signal?.aborted === true) return Promise.reject(new KademliaError('X_KAD_ABORTED', 'request aborted'))
    if (this.#pending.size >= this.#init.maxPendingRequests) {
      this.stats.overloaded++
      this.#metrics?.sent.inc({ type: TYPE_NAME[body.type] ?? 'unknown', outcome: 'overloaded' })
      return Promise.reject(new KademliaError('X_KAD_TIMEOUT', 'too many requests in flight'))
    }
    const requestId = this.#newRequestId()
    let bytes: Uint8Array
    try {
      bytes = encodeMessage(withHeader(body, requestId, this.#selfId))
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new TypeError(String(err)))
    }
    return new Promise<Message>((resolve, reject) => {
      const type = TYPE_NAME[body.type] ?? 'unknown'
      const pending: Pending = {
        type,
        requestId,
        signal,
        address,
        expectedId: options.expectedId,
        responseType: RESPONSE_TYPE[body.type]!,
        bytes,
        attemptsLeft: this.#init.retries,
        retransmitted: false,
        sentAt: this.#clock.now(),
        timeoutMs: this.timeoutFor(address),
        timer: undefined,
        resolve,
        reject,
      }
      this.#pending.set(requestId, pending)
      if (signal !== undefined) {
        let waiting = this.#bySignal.get(signal)
        if (waiting === undefined) {
          const set = new Set<Pending>()
          waiting = set
          this.#bySignal.set(signal, set)
          signal.addEventListener(
            'abort',
            () => {
              this.#bySignal.delete(signal)
              for (const p of [...set]) {
                this.#cleanup(p)
                this.#metrics?.sent.inc({ type: p.type, outcome: 'aborted' })
                p.reject(new KademliaError('X_KAD_ABORTED', 'request aborted'))
              }
            },
            { once: true },
          )
        }
        waiting.add(pending)
      }
      this.#transmit(requestId, pending)
    })
  }

  #cleanup(p: Pending): void {
    this.#clock.clearTimeout(p.timer)
    this.#pending.delete(p.requestId)
    if (p.signal !== undefined) this.#bySignal.get(p.signal)?.delete(p)
  }

  #transmit(requestId: number, p: Pending): void {
    p.timer = this.#clock.setTimeout(() => this.#onTimeout(requestId, p), p.timeoutMs)
    this.stats.sent++
    try {
      this.#transport.send(p.bytes, p.address)
    } catch (err) {
      this.#logger.debug({ err, address: p.address }, 'send failed')
    }
  }

  #onTimeout(requestId: number, p: Pending): void {
    if (this.#pending.get(requestId) !== p) return
    if (p.attemptsLeft > 0) {
      p.attemptsLeft--
      p.retransmitted = true
      p.timeoutMs = Math.min(this.#init.maxTimeoutMs, p.timeoutMs * 2)
      this.stats.retries++
      this.#transmit(requestId, p)
      return
    }
    this.stats.timeouts++
    this.#metrics?.sent.inc({ type: p.type, outcome: 'timeout' })
    this.#cleanup(p)
    // Back the estimate off so the next request to this address waits longer (RFC 6298 §5.5).
    const r = this.#rtt.get(p.address)
    if (r !== undefined) r.srtt = Math.min(this.#init.maxTimeoutMs, r.srtt * 2)
    p.reject(new KademliaError('X_KAD_TIMEOUT', `no response from ${p.address}`))
  }

  /** Entry point for inbound datagrams. Never throws. */
  handle(bytes: Uint8Array, from: string): void {
    if (this.#closed) return
    this.stats.received++
    if (!(bytes instanceof Uint8Array) || bytes.length > MAX_DATAGRAM_BYTES || typeof from !== 'string') {
      this.stats.malformed++
      return
    }
    const msg = decodeMessage(bytes)
    if (msg === undefined || idEquals(msg.senderId, this.#selfId)) {
      this.stats.malformed++
      this.#metrics?.received.inc({ type: 'unknown', outcome: 'malformed' })
      this.#ask(from, 'malformed', bytes.length)
      return
    }
    if (isRequest(msg.type)) {
      // Loopback peers are told apart by port (local test networks); others share one bucket per host.
      const source = isLoopback(from) ? from : sourceHost(from)
      const type = KIND_OF[msg.type]!
      if (!this.#limiter.take(source, this.#clock.now())) {
        this.stats.rateLimited++
        this.#metrics?.received.inc({ type, outcome: 'rate_limited' })
        return
      }
      if (!this.#ask(from, type, bytes.length)) {
        this.stats.refused++
        this.#metrics?.received.inc({ type, outcome: 'refused' })
        return
      }
      this.stats.requestsHandled++
      this.#metrics?.received.inc({ type, outcome: 'answered' })
      let result: ResponseBody | undefined | Promise<ResponseBody | undefined>
      try {
        result = this.#handler(msg, from)
      } catch (err) {
        this.stats.handlerErrors++
        this.#logger.warn({ err }, 'request handler failed')
        return
      }
      if (result instanceof Promise) {
        result.then(
          (r) => this.#reply(r, msg.requestId, from),
          (err: unknown) => {
            this.stats.handlerErrors++
            this.#logger.warn({ err }, 'request handler failed')
          },
        )
      } else {
        this.#reply(result, msg.requestId, from)
      }
      return
    }
    const p = this.#pending.get(msg.requestId)
    if (p === undefined || p.address !== from || p.responseType !== msg.type) {
      this.stats.unexpected++
      return
    }
    if (p.expectedId !== undefined && !idEquals(p.expectedId, msg.senderId)) {
      this.stats.idMismatch++
      this.#metrics?.sent.inc({ type: p.type, outcome: 'bad_response' })
      this.#cleanup(p)
      p.reject(new KademliaError('X_KAD_BAD_RESPONSE', `${from} answered with another node ID`))
      return
    }
    this.stats.responses++
    this.#metrics?.sent.inc({ type: p.type, outcome: 'ok' })
    if (!p.retransmitted) this.#sample(from, Math.max(0, this.#clock.now() - p.sentAt))
    this.#cleanup(p)
    p.resolve(msg)
  }

  /** The admission hook's verdict; a hook that throws admits (it must not take the DHT down). */
  #ask(from: string, kind: InboundKind, bytes: number): boolean {
    const admit = this.#admit
    if (admit === undefined) return true
    try {
      return admit({ from, kind, bytes }) !== false
    } catch (err) {
      this.#logger.warn({ err }, 'admission hook failed')
      return true
    }
  }

  #reply(body: ResponseBody | undefined, requestId: number, to: string): void {
    if (body === undefined || this.#closed) return
    let bytes: Uint8Array
    try {
      bytes = encodeMessage(withHeader(body, requestId, this.#selfId))
    } catch (err) {
      this.stats.handlerErrors++
      this.#logger.warn({ err }, 'could not encode response')
      return
    }
    this.stats.sent++
    try {
      this.#transport.send(bytes, to)
    } catch (err) {
      this.#logger.debug({ err, address: to }, 'send failed')
    }
  }
}

/** The message to encode: the body's fields plus the header, without copying the body's contents. */
function withHeader(body: RequestBody | ResponseBody, requestId: number, senderId: Uint8Array): Message {
  switch (body.type) {
    case MessageType.PING:
    case MessageType.PONG:
      return { type: body.type, requestId, senderId }
    case MessageType.FIND_NODE:
      return { type: body.type, requestId, senderId, target: body.target }
    case MessageType.FIND_VALUE:
      return { type: body.type, requestId, senderId, key: body.key }
    case MessageType.STORE:
      return {
        type: body.type,
        requestId,
        senderId,
        key: body.key,
        token: body.token,
        ttlMs: body.ttlMs,
        value: body.value,
      }
    case MessageType.NODES:
      return {
        type: body.type,
        requestId,
        senderId,
        token: body.token,
        contacts: body.contacts,
        record: body.record,
      }
    case MessageType.STORED:
      return { type: body.type, requestId, senderId, status: body.status }
  }
}
