/**
 * Simulated clients of the evaluation: native peers (register, set up WebRTC sessions with an offer, an answer
 * and trickled ICE candidates, answer offers automatically as a browser app does), y-webrtc clients, PeerJS
 * clients, y-websocket (CRDT) editors, DHT neighbours and raw sockets. Each knows its address and role, counts
 * what it sent and received, and what the node refused it.
 */
import { createHash } from 'node:crypto'
import { encodeMessage, decodeMessage, MessageType } from '@x/kademlia'
import { CRDT_WRITE_BYTES_PER_S, peerIdOf, registerFor, WsClient, type Role, type World } from './world'

const SDP = 'v=0 o=- 4611731400430051336 2 IN IP4 127.0.0.1 s=- t=0 0 a=group:BUNDLE 0 '.repeat(12)

export function candidateData(i: number): object {
  return {
    candidate: `candidate:${i} 1 udp 2122260223 192.168.1.${i % 250} ${40000 + (i % 20000)} typ host generation 0 ufrag abcd network-id 1`,
    sdpMid: '0',
    sdpMLineIndex: 0,
  }
}

/** What a client saw of the node's refusals. */
export interface Harm {
  /** Upgrades refused (HTTP 429, or opened and closed with 4030 at once). */
  refusals: number
  /** Connections closed by the engine (4030), with their reasons. */
  blockedCloses: string[]
  /** `RATE_LIMITED` errors (the engine dropped frames, or the token bucket did). */
  rateLimited: number
}

function harm(): Harm {
  return { refusals: 0, blockedCloses: [], rateLimited: 0 }
}

export interface NativePeerOptions {
  role: Role
  /** Answer offers as a browser app does (an answer, then trickled candidates). @default true */
  autoAnswer?: boolean
  /** Candidates trickled per set-up (min, max). @default [4, 12] */
  candidates?: readonly [number, number]
  /** Reconnect after a close, after this many ms (jittered). @default none */
  reconnectMs?: number
}

/** A native `/p2p-signaling` peer. */
export class NativePeer {
  readonly publicKey: Uint8Array
  readonly id: string
  client: WsClient | undefined
  registered = false
  stopped = false
  readonly harm = harm()
  /** Signals received, in all and per sender. */
  received = 0
  readonly receivedFrom = new Map<string, number>()
  sent = 0
  registrations = 0
  onReady: (() => void) | undefined
  /** The connection closed (after the peer's own bookkeeping). */
  onClosed: (() => void) | undefined
  onPeers: ((peers: string[]) => void) | undefined
  #candidateSeq = 0

  constructor(
    readonly world: World,
    readonly ip: string,
    readonly options: NativePeerOptions,
    publicKey?: Uint8Array,
  ) {
    this.publicKey = publicKey ?? world.bytes(32)
    this.id = peerIdOf(this.publicKey)
    world.role(ip, options.role)
    world.role(`peer:${this.id}`, options.role)
  }

  get key(): string {
    return `peer:${this.id}`
  }

  connect(): void {
    if (this.stopped) return
    const c = new WsClient(this.world, '/p2p-signaling', this.ip)
    this.client = c
    this.registered = false
    this.#challenged = false
    c.onMessage = (msg) => this.#onMessage(msg)
    c.onClose = (code, reason) => {
      if (this.client !== c) return
      this.registered = false
      if (code === 4030) {
        // Refused with a reason: opened and closed before the challenge.
        if (!this.#challenged) this.harm.refusals++
        else this.harm.blockedCloses.push(reason)
      }
      // A refused upgrade (HTTP 429) ends in a close too (1006): one reconnect per connection.
      if (c.refusedHttp) this.harm.refusals++
      this.#reconnect()
      this.onClosed?.()
    }
  }

  #challenged = false

  #reconnect(): void {
    const ms = this.options.reconnectMs
    if (ms === undefined || this.stopped) return
    this.world.after(ms * (0.5 + this.world.rand()), () => this.connect())
  }

  #onMessage(msg: Record<string, unknown>): void {
    switch (msg.type) {
      case 'challenge':
        this.#challenged = true
        this.client?.send(registerFor(msg, this.publicKey, this.world.clock.now()))
        return
      case 'registered':
        this.registered = true
        this.registrations++
        this.onReady?.()
        return
      case 'offer':
      case 'answer':
      case 'candidate': {
        const from = String(msg.from)
        this.received++
        this.receivedFrom.set(from, (this.receivedFrom.get(from) ?? 0) + 1)
        if (msg.type === 'offer' && this.options.autoAnswer !== false) this.#answer(from)
        return
      }
      case 'peers':
        this.onPeers?.((msg.peers as string[]) ?? [])
        return
      case 'error':
        if (msg.code === 'RATE_LIMITED') this.harm.rateLimited++
        return
    }
  }

  send(msg: unknown): boolean {
    if (!this.registered || this.client === undefined) return false
    const ok = this.client.send(msg)
    if (ok) this.sent++
    return ok
  }

  /** Sets up a session with `to`: an offer, then candidates trickled over `spreadMs`. */
  offer(to: string, spreadMs = 600): void {
    if (!this.send({ type: 'offer', to, data: { type: 'offer', sdp: SDP } })) return
    this.#trickle(to, spreadMs)
  }

  #answer(to: string): void {
    const w = this.world
    w.after(30 + w.rand() * 270, () => {
      if (this.send({ type: 'answer', to, data: { type: 'answer', sdp: SDP } })) this.#trickle(to, 600)
    })
  }

  #trickle(to: string, spreadMs: number): void {
    const [lo, hi] = this.options.candidates ?? [4, 12]
    const n = lo + Math.floor(this.world.rand() * (hi - lo + 1))
    for (let c = 0; c < n; c++) {
      this.world.after(10 + this.world.rand() * spreadMs, () =>
        this.send({ type: 'candidate', to, data: candidateData(this.#candidateSeq++) }),
      )
    }
  }

  candidate(to: string): boolean {
    return this.send({ type: 'candidate', to, data: candidateData(this.#candidateSeq++) })
  }

  stop(): void {
    this.stopped = true
    this.client?.close()
  }
}

/** A y-webrtc client (`WebrtcProvider`'s signaling connection): subscribes to rooms, announces, signals via publish. */
export class YClient {
  readonly peerId: string
  client: WsClient | undefined
  stopped = false
  readonly harm = harm()
  topics: string[] = []
  published = 0
  receivedPublishes = 0

  constructor(
    readonly world: World,
    readonly ip: string,
    readonly role: Role,
    /** Reconnect after a close. @default 2_000 */
    readonly reconnectMs: number | undefined = 2_000,
  ) {
    this.peerId = Buffer.from(world.bytes(8)).toString('hex')
    world.role(ip, role)
  }

  connect(topics: string[], onOpen?: () => void): void {
    if (this.stopped) return
    this.topics = topics
    const c = new WsClient(this.world, '/y-webrtc', this.ip)
    this.client = c
    let opened = false
    c.onOpen = () => {
      opened = true
      if (topics.length > 0) {
        c.send({ type: 'subscribe', topics })
        for (const topic of topics) this.publish(topic, { type: 'announce', from: this.peerId })
      }
      onOpen?.()
    }
    c.onMessage = (msg) => {
      if (msg.type !== 'publish') return
      this.receivedPublishes++
      if (this.role !== 'normal') return
      const data = msg.data as { type?: string; from?: string; to?: string; signal?: { type?: string } }
      const topic = String(msg.topic)
      // A new peer announced: offer it a connection (signals go through the topic, to everyone in it).
      if (data?.type === 'announce' && data.from !== this.peerId && data.from !== undefined) {
        this.#signal(topic, data.from, 'offer')
      } else if (data?.type === 'signal' && data.to === this.peerId && data.signal?.type === 'offer') {
        this.#signal(topic, data.from!, 'answer')
      }
    }
    c.onClose = (code, reason) => {
      if (this.client !== c) return
      if (code === 4030) {
        if (!opened) this.harm.refusals++
        else this.harm.blockedCloses.push(reason)
      }
      if (c.refusedHttp) this.harm.refusals++
      if (this.reconnectMs !== undefined && !this.stopped) {
        this.world.after(this.reconnectMs * (0.5 + this.world.rand()), () => this.connect(this.topics))
      }
    }
  }

  #signal(topic: string, to: string, type: 'offer' | 'answer'): void {
    const w = this.world
    w.after(30 + w.rand() * 200, () => {
      this.publish(topic, { type: 'signal', from: this.peerId, to, signal: { type, sdp: SDP } })
      const n = 3 + Math.floor(w.rand() * 6)
      for (let i = 0; i < n; i++) {
        w.after(20 + w.rand() * 600, () =>
          this.publish(topic, { type: 'signal', from: this.peerId, to, signal: candidateData(i) }),
        )
      }
    })
  }

  publish(topic: string, data: unknown): boolean {
    const ok = this.client?.send({ type: 'publish', topic, data }) === true
    if (ok) this.published++
    return ok
  }

  subscribe(topics: string[]): void {
    this.client?.send({ type: 'subscribe', topics })
  }

  stop(): void {
    this.stopped = true
    this.client?.close()
  }
}

/** A PeerJS client. */
export class PeerJsClient {
  client: WsClient | undefined
  open = false
  stopped = false
  readonly harm = harm()
  received = 0

  constructor(
    readonly world: World,
    readonly ip: string,
    readonly role: Role,
    readonly peerId: string,
    readonly token: string,
    /** Reconnect after a close. */
    readonly reconnectMs?: number,
  ) {
    world.role(ip, role)
    world.role(`pj:${peerId}/${credentialOf(token)}`, role)
  }

  get key(): string {
    return `pj:${this.peerId}/${credentialOf(this.token)}`
  }

  connect(): void {
    if (this.stopped) return
    const c = new WsClient(this.world, `/peerjs?key=peerjs&id=${this.peerId}&token=${this.token}`, this.ip)
    this.client = c
    this.open = false
    c.onMessage = (msg) => {
      if (msg.type === 'OPEN') this.open = true
      else if (msg.type === 'OFFER' || msg.type === 'ANSWER' || msg.type === 'CANDIDATE') {
        this.received++
        if (msg.type === 'OFFER' && this.role === 'normal') this.#answer(String(msg.src))
      } else if (msg.type === 'ERROR' && /Rate limited/.test(JSON.stringify(msg))) this.harm.rateLimited++
    }
    c.onClose = (code, reason) => {
      if (this.client !== c) return
      const wasOpen = this.open
      this.open = false
      if (code === 4030) {
        if (!wasOpen) this.harm.refusals++
        else this.harm.blockedCloses.push(reason)
      }
      if (c.refusedHttp) this.harm.refusals++
      if (this.reconnectMs !== undefined && !this.stopped) {
        this.world.after(this.reconnectMs * (0.5 + this.world.rand()), () => this.connect())
      }
    }
  }

  #answer(dst: string): void {
    const w = this.world
    w.after(30 + w.rand() * 200, () => {
      this.send({ type: 'ANSWER', dst, payload: { sdp: { type: 'answer', sdp: SDP } } })
      const n = 3 + Math.floor(w.rand() * 6)
      for (let i = 0; i < n; i++) {
        w.after(20 + w.rand() * 600, () =>
          this.send({ type: 'CANDIDATE', dst, payload: { candidate: candidateData(i) } }),
        )
      }
    })
  }

  send(msg: unknown): boolean {
    if (!this.open) return false
    return this.client?.send(msg) === true
  }

  offer(dst: string): void {
    if (!this.send({ type: 'OFFER', dst, payload: { sdp: { type: 'offer', sdp: SDP } } })) return
    const n = 3 + Math.floor(this.world.rand() * 6)
    for (let i = 0; i < n; i++) {
      this.world.after(20 + this.world.rand() * 600, () =>
        this.send({ type: 'CANDIDATE', dst, payload: { candidate: candidateData(i) } }),
      )
    }
  }

  stop(): void {
    this.stopped = true
    this.client?.close()
  }
}

/** What the sync server does with a y-websocket connection, as far as the engine sees it. */
export class CrdtClient {
  #session: { data(bytes: number): void; closed(): void } | undefined
  connected = false
  stopped = false
  readonly harm = harm()
  /** Bytes the node accepted (messages within its size limit, at most its write rate). */
  accepted = 0
  connects = 0
  #allowance = 0
  #allowanceAt = 0

  constructor(
    readonly world: World,
    readonly ip: string,
    readonly role: Role,
    readonly maxMessageBytes: number,
    readonly reconnectMs?: number,
  ) {
    world.role(ip, role)
  }

  connect(onOpen?: () => void): boolean {
    if (this.stopped || this.connected) return false
    const v = this.world.engine.crdtConnect(this.ip, (reason) => {
      this.harm.blockedCloses.push(reason)
      this.#closed()
    })
    if (v === false || typeof v === 'string') {
      this.harm.refusals++
      this.world.stats(this.ip).refused++
      this.#retry()
      return false
    }
    this.world.stats(this.ip).connects++
    this.#allowance = this.maxMessageBytes
    this.#allowanceAt = this.world.clock.now()
    this.#session = v
    this.connected = true
    this.connects++
    onOpen?.()
    return true
  }

  /** One y-websocket message of `bytes` (sync step or update). Above the size limit the server closes (1009). */
  message(bytes: number): void {
    if (!this.connected || this.#session === undefined) return
    // The engine counts bytes as they arrive on the socket, before the server sees a whole message.
    this.#session.data(Math.min(bytes, this.maxMessageBytes + 1))
    if (bytes > this.maxMessageBytes) {
      this.#closed()
      return
    }
    // The sync server applies what a client writes at most at its write rate (a burst of one message).
    const now = this.world.clock.now()
    this.#allowance = Math.min(
      this.maxMessageBytes,
      this.#allowance + ((now - this.#allowanceAt) * CRDT_WRITE_BYTES_PER_S) / 1000,
    )
    this.#allowanceAt = now
    const applied = Math.max(0, Math.min(bytes, this.#allowance))
    this.#allowance -= bytes
    this.accepted += applied
    this.world.stats(this.ip).crdtBytes += applied
  }

  #closed(): void {
    if (!this.connected) return
    this.connected = false
    this.#session?.closed()
    this.#session = undefined
    this.#retry()
  }

  #retry(): void {
    if (this.reconnectMs !== undefined && !this.stopped) {
      this.world.after(this.reconnectMs * (0.5 + this.world.rand()), () => this.connect())
    }
  }

  close(): void {
    this.#closed()
  }

  stop(): void {
    this.stopped = true
    this.#closed()
  }
}

/** A DHT node that sends requests to the simulated node and answers its pings and lookups. */
export class DhtActor {
  readonly id: Uint8Array
  readonly address: string
  #requestId = 1
  sent = 0

  constructor(
    readonly world: World,
    readonly ip: string,
    readonly role: Role,
    port = 6881,
    id?: Uint8Array,
  ) {
    this.id = id ?? world.bytes(20)
    this.address = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
    world.role(ip, role)
    world.dhtActors.set(this.address, this)
  }

  receive(bytes: Uint8Array): void {
    if (this.role !== 'normal') return
    const msg = decodeMessage(bytes)
    if (msg === undefined) return
    if (msg.type === MessageType.PING) {
      this.world.dhtSend(
        encodeMessage({ type: MessageType.PONG, requestId: msg.requestId, senderId: this.id }),
        this.address,
      )
    } else if (msg.type === MessageType.FIND_NODE || msg.type === MessageType.FIND_VALUE) {
      this.world.dhtSend(
        encodeMessage({
          type: MessageType.NODES,
          requestId: msg.requestId,
          senderId: this.id,
          token: new Uint8Array(8),
          contacts: [],
        }),
        this.address,
      )
    }
  }

  request(kind: 'ping' | 'find_node' | 'find_value' | 'store', senderId = this.id): void {
    const requestId = this.#requestId++
    const target = this.world.bytes(20)
    const msg =
      kind === 'ping'
        ? encodeMessage({ type: MessageType.PING, requestId, senderId })
        : kind === 'find_node'
          ? encodeMessage({ type: MessageType.FIND_NODE, requestId, senderId, target })
          : kind === 'find_value'
            ? encodeMessage({ type: MessageType.FIND_VALUE, requestId, senderId, key: target })
            : encodeMessage({
                type: MessageType.STORE,
                requestId,
                senderId,
                key: target,
                token: new Uint8Array(8),
                ttlMs: 3_600_000,
                value: new Uint8Array(400).fill(65),
              })
    this.sent++
    this.world.dhtSend(msg, this.address)
  }
}

/** The digest of a PeerJS token, as `@x/signaling` hands it to the guard. */
export function credentialOf(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16)
}
