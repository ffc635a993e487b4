import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import {
  createInitiator,
  createResponder,
  handshake,
  type Identity,
  type SecureSession,
  type StaticKeys,
} from '@x/pqc'
import type { Logger } from 'pino'
import type { PeerEntry } from '../schemas'
import { verifyCertificate } from './dht-records'

/**
 * P2P links: node-to-node WebSockets at `/p2p-node`, secured by an `@x/pqc` session (mutual ML-DSA-87
 * authentication, hybrid KEM forward secrecy, AEAD records). One link carries several channels:
 *
 * | byte | channel                                     |
 * | ---- | ------------------------------------------- |
 * | 0x01 | control (JSON `hello` with the record-key certificate) |
 * | 0x02 | signaling federation (`NodeRelay` text frames) |
 * | 0x03 | CRDT replication (`SyncLink` bytes)           |
 */

export const P2P_PATH = '/p2p-node'
export const PROLOGUE = new TextEncoder().encode('x-node/p2p-node/v1')
export const CHANNEL_CONTROL = 0x01
export const CHANNEL_SIGNALING = 0x02
export const CHANNEL_CRDT = 0x03
export const MAX_LINK_FRAME_BYTES = 1024 * 1024 + 64 // one session record (1 MiB) plus its header
export const HANDSHAKE_TIMEOUT_MS = 10_000
export const RECONNECT_MIN_MS = 1_000
export const RECONNECT_MAX_MS = 30_000
export const MAX_LINKS = 64

export interface Link {
  readonly nodeId: string
  readonly direction: 'inbound' | 'outbound'
  readonly address: string
  readonly since: number
  state: 'connecting' | 'open' | 'closed'
}

interface LinkState extends Link {
  ws: WebSocket
  session?: SecureSession
}

export interface LinkManagerComponents {
  identity: Identity
  staticKeys: StaticKeys
  logger: Logger
  /** Ed25519 record key and its ML-DSA certificate, sent in `hello`. */
  recordKey: { publicKey: Uint8Array; certificate: Uint8Array }
}

export interface LinkManagerInit {
  /** This node's `/p2p-node` base URL (`ws://host:port`), sent in `hello`. */
  address: string
  maxLinks?: number
  handshakeTimeoutMs?: number
}

type ChannelHandler = (fromNodeId: string, payload: Uint8Array) => void

const enc = new TextEncoder()
const dec = new TextDecoder()

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data))
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

export class LinkManager {
  readonly #c: LinkManagerComponents
  readonly #address: string
  readonly #maxLinks: number
  readonly #timeoutMs: number
  readonly #wss: WebSocketServer
  readonly #links = new Set<LinkState>()
  readonly #dialing = new Map<string, Promise<LinkState>>()
  readonly #handlers = new Map<number, Set<ChannelHandler>>()
  readonly #openHandlers = new Set<(nodeId: string) => void>()
  readonly #closeHandlers = new Set<(nodeId: string) => void>()
  /** Verified Ed25519 record keys by node ID (from certificates received over authenticated links). */
  readonly bindings = new Map<string, Uint8Array>()
  /** Last known `/p2p-node` base URL by node ID. */
  readonly addresses = new Map<string, string>()
  readonly #wanted = new Map<string, { attempt: number; timer?: NodeJS.Timeout }>()
  #closed = false
  readonly stats = { handshakes: 0, handshakeFailures: 0, badRecords: 0, framesIn: 0, framesOut: 0 }

  constructor(components: LinkManagerComponents, init: LinkManagerInit) {
    this.#c = components
    this.#address = init.address
    this.#maxLinks = init.maxLinks ?? MAX_LINKS
    this.#timeoutMs = init.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_LINK_FRAME_BYTES })
  }

  get nodeId(): string {
    return this.#c.identity.idString
  }

  /** Accepts an upgrade at `/p2p-node` (responder side of the handshake). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closed || this.#links.size >= this.#maxLinks) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n')
      return
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`
      const machine = createResponder({
        identity: this.#c.identity,
        staticKeys: this.#c.staticKeys,
        prologue: PROLOGUE,
        timeoutMs: this.#timeoutMs,
      })
      void this.#secure(ws, machine, 'inbound', remote).catch(() => undefined)
    })
  }

  /** Opens (or reuses) an authenticated link to `nodeId` at `address`; the handshake must prove `nodeId`. */
  connect(nodeId: string, address: string): Promise<Link> {
    const open = this.#openLink(nodeId)
    if (open) return Promise.resolve(open)
    const pending = this.#dialing.get(nodeId)
    if (pending) return pending
    if (this.#closed) return Promise.reject(new Error('link manager closed'))
    this.addresses.set(nodeId, address)
    const promise = (async () => {
      const ws = new WebSocket(`${address}${P2P_PATH}`, {
        maxPayload: MAX_LINK_FRAME_BYTES,
        handshakeTimeout: 5_000,
      })
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve())
        ws.once('error', reject)
      })
      const machine = createInitiator({
        identity: this.#c.identity,
        staticKeys: this.#c.staticKeys,
        expectedPeerId: nodeId,
        prologue: PROLOGUE,
        timeoutMs: this.#timeoutMs,
      })
      return this.#secure(ws, machine, 'outbound', address)
    })()
    this.#dialing.set(nodeId, promise)
    const cleanup = () => this.#dialing.delete(nodeId)
    promise.then(cleanup, cleanup)
    return promise
  }

  /** Keeps a link to `nodeId` up: reconnects with exponential back-off (1 s … 30 s) until `close()`. */
  want(nodeId: string, address: string): void {
    if (nodeId === this.nodeId || this.#closed) return
    this.addresses.set(nodeId, address)
    if (this.#wanted.has(nodeId)) return
    this.#wanted.set(nodeId, { attempt: 0 })
    this.#dialWanted(nodeId)
  }

  #dialWanted(nodeId: string): void {
    const w = this.#wanted.get(nodeId)
    const address = this.addresses.get(nodeId)
    if (!w || this.#closed || address === undefined) return
    this.connect(nodeId, address).then(
      () => {
        w.attempt = 0
      },
      (err: unknown) => {
        this.#c.logger.debug({ nodeId, address, err: String(err) }, 'p2p link dial failed')
        this.#scheduleRedial(nodeId)
      },
    )
  }

  #scheduleRedial(nodeId: string): void {
    const w = this.#wanted.get(nodeId)
    if (!w || this.#closed || w.timer) return
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** w.attempt) * (0.75 + Math.random() * 0.5)
    w.attempt = Math.min(w.attempt + 1, 10)
    w.timer = setTimeout(() => {
      w.timer = undefined
      if (!this.#openLink(nodeId)) this.#dialWanted(nodeId)
    }, delay)
    w.timer.unref()
  }

  async #secure(
    ws: WebSocket,
    machine: ReturnType<typeof createInitiator>,
    direction: 'inbound' | 'outbound',
    address: string,
  ): Promise<LinkState> {
    ws.binaryType = 'nodebuffer'
    let link: LinkState | undefined
    // One listener for the socket's whole life: handshake messages go to the machine while it is pending;
    // anything after (a record that arrived in the same chunk as the last handshake message) is queued until
    // the record handler is attached, so no record is lost between the two.
    let handshakeHandler: ((bytes: Uint8Array) => void) | undefined
    let recordHandler: ((bytes: Uint8Array) => void) | undefined
    const early: Uint8Array[] = []
    ws.on('message', (data: RawData) => {
      const bytes = toBytes(data)
      if (machine.status === 'pending') handshakeHandler?.(bytes)
      else if (recordHandler) recordHandler(bytes)
      else if (early.length < 64) early.push(bytes)
    })
    try {
      const result = await handshake(
        {
          send: (bytes) => ws.send(bytes),
          onMessage: (handler) => {
            handshakeHandler = handler
            return () => {
              handshakeHandler = undefined
            }
          },
        },
        machine,
        this.#timeoutMs,
      )
      this.stats.handshakes++
      const nodeId = result.peer.idString
      link = {
        nodeId,
        direction,
        address,
        since: Date.now(),
        state: 'open',
        ws,
        session: result.session,
      }
      const state = link
      this.#links.add(state)
      recordHandler = (bytes) => this.#onRecord(state, result.peer.publicKey, bytes)
      ws.on('close', () => this.#onClose(state))
      this.#sendRaw(state, CHANNEL_CONTROL, enc.encode(this.#hello()))
      for (const bytes of early.splice(0)) recordHandler(bytes)
      this.#c.logger.info({ nodeId, direction, address }, 'p2p link open')
      // Both nodes dialed at once: keep the link initiated by the smaller node ID (both sides agree).
      const twin = [...this.#links].find((l) => l !== state && l.nodeId === nodeId && l.state === 'open')
      if (twin) {
        const initiator = (l: LinkState) => (l.direction === 'outbound' ? this.nodeId : nodeId)
        const [keep, drop] = initiator(state) < initiator(twin) ? [state, twin] : [twin, state]
        drop.state = 'closed'
        this.#links.delete(drop)
        drop.ws.close(1000, 'duplicate link')
        if (drop === state) return keep
      }
      const first = twin === undefined
      if (first) for (const h of this.#openHandlers) h(nodeId)
      return state
    } catch (err) {
      this.stats.handshakeFailures++
      this.#c.logger.warn(
        { direction, address, code: (err as { code?: string }).code },
        'p2p handshake failed',
      )
      ws.close(1008, 'handshake failed')
      throw err
    } finally {
      ws.on('error', () => undefined)
      if (!link) ws.once('close', () => undefined)
    }
  }

  #hello(): string {
    return JSON.stringify({
      type: 'hello',
      address: this.#address,
      edPub: Buffer.from(this.#c.recordKey.publicKey).toString('base64'),
      cert: Buffer.from(this.#c.recordKey.certificate).toString('base64'),
    })
  }

  #onRecord(link: LinkState, peerPublicKey: Uint8Array, record: Uint8Array): void {
    let plain: Uint8Array
    try {
      plain = link.session!.open(record)
    } catch {
      // Tampered, replayed or out-of-order record: the session is no longer trustworthy.
      this.stats.badRecords++
      link.ws.close(1008, 'bad record')
      return
    }
    if (plain.length === 0) return
    this.stats.framesIn++
    const channel = plain[0]!
    const payload = plain.subarray(1)
    if (channel === CHANNEL_CONTROL) {
      this.#onControl(link, peerPublicKey, payload)
      return
    }
    const handlers = this.#handlers.get(channel)
    if (!handlers) return
    for (const h of handlers) {
      try {
        h(link.nodeId, payload)
      } catch (err) {
        this.#c.logger.warn({ nodeId: link.nodeId, channel, err: String(err) }, 'p2p channel handler failed')
      }
    }
  }

  #onControl(link: LinkState, peerPublicKey: Uint8Array, payload: Uint8Array): void {
    try {
      const msg = JSON.parse(dec.decode(payload)) as {
        type?: unknown
        address?: unknown
        edPub?: unknown
        cert?: unknown
      }
      if (msg.type !== 'hello' || typeof msg.edPub !== 'string' || typeof msg.cert !== 'string') return
      const edPub = new Uint8Array(Buffer.from(msg.edPub, 'base64'))
      const cert = new Uint8Array(Buffer.from(msg.cert, 'base64'))
      if (!verifyCertificate(peerPublicKey, edPub, cert)) {
        this.#c.logger.warn({ nodeId: link.nodeId }, 'p2p hello with a bad record-key certificate')
        link.ws.close(1008, 'bad certificate')
        return
      }
      this.bindings.set(link.nodeId, edPub)
      if (typeof msg.address === 'string' && /^wss?:\/\/\S{1,250}$/.test(msg.address)) {
        this.addresses.set(link.nodeId, msg.address)
      }
    } catch {
      // malformed control frame: ignored
    }
  }

  #onClose(link: LinkState): void {
    link.state = 'closed'
    this.#links.delete(link)
    this.#c.logger.info({ nodeId: link.nodeId, direction: link.direction }, 'p2p link closed')
    if (!this.#openLink(link.nodeId)) for (const h of this.#closeHandlers) h(link.nodeId)
    if (this.#wanted.has(link.nodeId) && !this.#openLink(link.nodeId)) this.#scheduleRedial(link.nodeId)
  }

  #openLink(nodeId: string): LinkState | undefined {
    for (const l of this.#links) if (l.nodeId === nodeId && l.state === 'open') return l
    return undefined
  }

  #sendRaw(link: LinkState, channel: number, payload: Uint8Array): void {
    const plain = new Uint8Array(payload.length + 1)
    plain[0] = channel
    plain.set(payload, 1)
    link.ws.send(link.session!.seal(plain))
    this.stats.framesOut++
  }

  /** Sends on an open link; `false` when none is open. */
  send(nodeId: string, channel: number, payload: Uint8Array): boolean {
    const link = this.#openLink(nodeId)
    if (!link || link.ws.readyState !== WebSocket.OPEN) return false
    this.#sendRaw(link, channel, payload)
    return true
  }

  /** Sends, dialing first when there is no open link and the address is known. */
  async sendOrDial(nodeId: string, channel: number, payload: Uint8Array): Promise<void> {
    if (this.send(nodeId, channel, payload)) return
    const address = this.addresses.get(nodeId)
    if (address === undefined) throw new Error(`no address known for node ${nodeId}`)
    await this.connect(nodeId, address)
    if (!this.send(nodeId, channel, payload)) throw new Error(`link to ${nodeId} closed`)
  }

  onChannel(channel: number, handler: ChannelHandler): () => void {
    let set = this.#handlers.get(channel)
    if (!set) this.#handlers.set(channel, (set = new Set()))
    set.add(handler)
    return () => set.delete(handler)
  }

  /** Called when the first link to a node opens. */
  onOpen(handler: (nodeId: string) => void): () => void {
    this.#openHandlers.add(handler)
    return () => this.#openHandlers.delete(handler)
  }

  /** Called when the last open link to a node closes. */
  onClosed(handler: (nodeId: string) => void): () => void {
    this.#closeHandlers.add(handler)
    return () => this.#closeHandlers.delete(handler)
  }

  /** Whether an open link to `nodeId` exists. */
  isOpen(nodeId: string): boolean {
    return this.#openLink(nodeId) !== undefined
  }

  /** Node IDs with an open link. */
  connectedNodes(): string[] {
    return [...new Set([...this.#links].filter((l) => l.state === 'open').map((l) => l.nodeId))]
  }

  list(): PeerEntry[] {
    return [...this.#links].map((l) => ({
      id: l.nodeId,
      kind: 'p2p-link' as const,
      state: l.state,
      address: l.address,
      direction: l.direction,
      since: l.since,
    }))
  }

  /** Stops dialing and closes every link with 1001 (going away). */
  async close(): Promise<void> {
    this.#closed = true
    for (const w of this.#wanted.values()) if (w.timer) clearTimeout(w.timer)
    this.#wanted.clear()
    const closing = [...this.#links].map(
      (l) =>
        new Promise<void>((resolve) => {
          if (l.ws.readyState === WebSocket.CLOSED) return resolve()
          const t = setTimeout(() => {
            l.ws.terminate()
            resolve()
          }, 2_000)
          l.ws.once('close', () => {
            clearTimeout(t)
            resolve()
          })
          l.ws.close(1001, 'node shutting down')
        }),
    )
    for (const ws of this.#wss.clients) if (![...this.#links].some((l) => l.ws === ws)) ws.terminate()
    await Promise.all(closing)
    this.#wss.close()
  }
}
