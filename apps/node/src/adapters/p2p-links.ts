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
 * | 0x01 | control (JSON `hello` with the record-key certificate, `use`, `retire`) |
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
/** How long a retired link stays open for the peer's last frames when the peer does not retire it too. */
export const RETIRE_GRACE_MS = 5_000
/** Frames held on a newer link while an older link to the same node drains (then the older one is cut). */
export const MAX_HELD_FRAMES = 4_096
/** Verified record keys and addresses kept (least recently used evicted). */
export const MAX_KNOWN_NODES = 4_096

export interface Link {
  readonly nodeId: string
  readonly direction: 'inbound' | 'outbound'
  readonly address: string
  readonly since: number
  state: 'connecting' | 'open' | 'closed'
}

interface LinkState extends Link {
  ws: WebSocket
  session: SecureSession
  peerPublicKey: Uint8Array
  /** The arbiter's activation number of this link (from its `use`; increases across restarts); 0 = none yet. */
  useN: number
  /** The activation number of the link this one replaced (0: none was active); its frames come first. */
  after: number
  /** This side sends on this link (its one current link to the node). */
  active: boolean
  /** The peer sent its last frame on this link (`retire`) or the socket closed. */
  drained: boolean
  /** Application frames that arrived while an older link to the node was still draining. */
  held: { channel: number; payload: Uint8Array }[]
  activation: { promise: Promise<void>; resolve(): void; reject(err: Error): void }
  retireTimer?: NodeJS.Timeout
}

/** A `Map` bounded to `max` entries; `set` refreshes an entry, the least recently set is evicted. */
export class BoundedMap<K, V> extends Map<K, V> {
  readonly #max: number
  constructor(max: number) {
    super()
    this.#max = max
  }
  override set(key: K, value: V): this {
    if (this.has(key)) this.delete(key)
    super.set(key, value)
    if (this.size > this.#max) {
      const oldest = this.keys().next()
      if (oldest.done !== true) this.delete(oldest.value)
    }
    return this
  }
}

function deferred(): LinkState['activation'] {
  let resolve!: () => void
  let reject!: (err: Error) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  promise.catch(() => undefined)
  return { promise, resolve, reject }
}

export interface LinkManagerComponents {
  identity: Identity
  staticKeys: StaticKeys
  logger: Logger
  /** ML-DSA-44 record key and its ML-DSA-87 certificate, sent in `hello` (see `dht-records.ts`). */
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

/**
 * Which link carries a node pair's frames is decided by one side only, the node with the smaller ID (the
 * "arbiter"), so both sides always agree:
 *
 * - A link is usable for application frames only once it is *active*. The arbiter activates every link as soon
 *   as its handshake completes and says so with a control `use` before any application frame; the other side
 *   activates a link when it receives `use`, and sends nothing but control frames on it before.
 * - The newest activated link wins (a node that restarted, or a half-open socket, is replaced at once). The
 *   link it replaces is *retired*: each side sends a control `retire` as its last frame on it and stops sending
 *   there, but keeps delivering what arrives on it; the link closes once both sides retired it (or after
 *   `RETIRE_GRACE_MS`).
 * - Frames that arrive on a newer link while an older one is still draining are held and delivered after the
 *   older link's last frame, so a switch neither loses nor reorders frames.
 * - A frame is only ever written to an active, open socket; when none exists `send` returns `false` and
 *   `sendOrDial` rejects (the caller reports the failure).
 */
export class LinkManager {
  readonly #c: LinkManagerComponents
  readonly #address: string
  readonly #maxLinks: number
  readonly #timeoutMs: number
  readonly #wss: WebSocketServer
  readonly #links = new Set<LinkState>()
  readonly #dialing = new Map<string, Promise<Link>>()
  readonly #handlers = new Map<number, Set<ChannelHandler>>()
  readonly #openHandlers = new Set<(nodeId: string) => void>()
  readonly #closeHandlers = new Set<(nodeId: string) => void>()
  /** Verified ML-DSA-44 record keys by node ID (from certificates received over authenticated links). */
  readonly bindings = new BoundedMap<string, Uint8Array>(MAX_KNOWN_NODES)
  /** Last known `/p2p-node` base URL by node ID. */
  readonly addresses = new BoundedMap<string, string>(MAX_KNOWN_NODES)
  readonly #wanted = new Map<string, { attempt: number; timer?: NodeJS.Timeout }>()
  #closed = false
  #lastUseN = 0
  readonly stats = {
    handshakes: 0,
    handshakeFailures: 0,
    badRecords: 0,
    framesIn: 0,
    framesOut: 0,
    /** Links replaced by a newer one to the same node (duplicate dials, reconnects over a half-open socket). */
    linksRetired: 0,
    /** Frames held on a newer link until the older one drained. */
    framesHeld: 0,
    /** Writes the socket reported as failed. */
    sendErrors: 0,
  }

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

  /** This node's own ML-DSA-44 record key. */
  get recordPublicKey(): Uint8Array {
    return this.#c.recordKey.publicKey
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

  /**
   * Opens (or reuses) an authenticated link to `nodeId` at `address`; the handshake must prove `nodeId`.
   * Resolves once the link is active (usable for application frames).
   */
  connect(nodeId: string, address: string): Promise<Link> {
    const open = this.#openLink(nodeId)
    if (open) return Promise.resolve(open)
    const pending = this.#dialing.get(nodeId)
    if (pending) return pending
    if (this.#closed) return Promise.reject(new Error('link manager closed'))
    this.addresses.set(nodeId, address)
    // A link from the other side already past its handshake: wait for the arbiter's decision on it.
    const authenticated = [...this.#links].find((l) => l.nodeId === nodeId && l.state === 'connecting')
    const promise = authenticated
      ? this.#whenActive(authenticated)
      : (async () => {
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
          return this.#whenActive(await this.#secure(ws, machine, 'outbound', address))
        })()
    this.#dialing.set(nodeId, promise)
    const cleanup = () => this.#dialing.delete(nodeId)
    promise.then(cleanup, cleanup)
    return promise
  }

  async #whenActive(link: LinkState): Promise<Link> {
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        link.activation.promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('link not activated in time')), this.#timeoutMs)
          timer.unref()
        }),
      ])
    } catch (err) {
      // Replaced before its activation (the other node's dial won): any active link will do.
      const other = this.#openLink(link.nodeId)
      if (other) return other
      if (link.ws.readyState === WebSocket.OPEN) link.ws.close(1000, 'not activated')
      throw err
    } finally {
      clearTimeout(timer)
    }
    return this.#openLink(link.nodeId) ?? link
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
        state: 'connecting',
        ws,
        session: result.session,
        peerPublicKey: result.peer.publicKey,
        useN: 0,
        after: 0,
        active: false,
        drained: false,
        held: [],
        activation: deferred(),
      }
      const state = link
      this.#links.add(state)
      recordHandler = (bytes) => this.#onRecord(state, bytes)
      ws.on('close', () => this.#onClose(state))
      if (ws.readyState !== WebSocket.OPEN) {
        this.#onClose(state)
        return state
      }
      this.#control(state, this.#hello())
      this.#c.logger.info({ nodeId, direction, address }, 'p2p link authenticated')
      if (this.#isArbiter(nodeId)) this.#activate(state)
      for (const bytes of early.splice(0)) recordHandler(bytes)
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

  /** The node with the smaller ID decides which link of a pair is active. */
  #isArbiter(peerId: string): boolean {
    return this.nodeId < peerId
  }

  /** Makes `link` this side's one active link to its node, retiring any other. */
  #activate(link: LinkState, useN?: number, after = 0): void {
    if (link.active || link.state === 'closed') return
    const peer = link.nodeId
    const current = this.#openLink(peer)
    if (useN !== undefined) {
      link.useN = useN
      link.after = after
      // `use` frames of two links travel on different sockets: one older than the active link's is stale
      // (the arbiter retired that link already); its frames are still delivered, in order, before the newer's.
      if (current && current.useN >= useN) {
        this.#flush(peer)
        return
      }
    } else {
      // Wall-clock based so that it still increases after this node restarts; strictly increasing here.
      link.useN = this.#lastUseN = Math.max(Date.now(), this.#lastUseN + 1)
      link.after = current?.useN ?? 0
    }
    const wasOpen = current !== undefined
    for (const other of this.#links)
      if (other !== link && other.nodeId === peer && other.active) this.#retire(other)
    link.active = true
    link.state = 'open'
    if (this.#isArbiter(peer)) this.#control(link, { type: 'use', n: link.useN, after: link.after })
    this.#c.logger.info({ nodeId: peer, direction: link.direction, address: link.address }, 'p2p link open')
    link.activation.resolve()
    this.#flush(peer)
    if (!wasOpen) for (const h of this.#openHandlers) h(peer)
  }

  /** This side sends nothing more on `link` (after a `retire`); it closes once the peer retired it too. */
  #retire(link: LinkState): void {
    link.active = false
    link.state = 'closed'
    this.stats.linksRetired++
    this.#control(link, { type: 'retire' })
    if (link.drained) link.ws.close(1000, 'duplicate link')
    else {
      link.retireTimer = setTimeout(() => link.ws.close(1000, 'duplicate link'), RETIRE_GRACE_MS)
      link.retireTimer.unref()
    }
  }

  #hello(): Record<string, unknown> {
    return {
      type: 'hello',
      address: this.#address,
      recordPub: Buffer.from(this.#c.recordKey.publicKey).toString('base64'),
      cert: Buffer.from(this.#c.recordKey.certificate).toString('base64'),
    }
  }

  #control(link: LinkState, msg: Record<string, unknown>): void {
    if (link.ws.readyState === WebSocket.OPEN)
      this.#sendRaw(link, CHANNEL_CONTROL, enc.encode(JSON.stringify(msg)))
  }

  #onRecord(link: LinkState, record: Uint8Array): void {
    let plain: Uint8Array
    try {
      plain = link.session.open(record)
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
      this.#onControl(link, payload)
      return
    }
    if (this.#mustHold(link)) {
      if (link.held.length >= MAX_HELD_FRAMES) {
        // The older link does not drain: cut it, then deliver in order what this one holds.
        for (const o of this.#older(link)) this.#drained(o, true)
      }
      if (this.#mustHold(link)) {
        this.stats.framesHeld++
        link.held.push({ channel, payload })
        return
      }
    }
    this.#dispatch(link.nodeId, channel, payload)
  }

  /**
   * Links to the same node whose frames come before `link`'s and may still arrive: activated earlier by the
   * arbiter and not drained, or — while the link `link` replaced is not identified yet (its `use` may still be
   * on its way) — any other undrained link without an activation number.
   */
  #older(link: LinkState): LinkState[] {
    const same = [...this.#links].filter((o) => o !== link && o.nodeId === link.nodeId)
    const predecessorKnown = link.after === 0 || same.some((o) => o.useN === link.after)
    return same.filter((o) => !o.drained && (o.useN > 0 ? o.useN < link.useN : !predecessorKnown))
  }

  #mustHold(link: LinkState): boolean {
    return link.useN === 0 || link.held.length > 0 || this.#older(link).length > 0
  }

  #flush(peer: string, extra?: LinkState): void {
    const links = [...this.#links, ...(extra ? [extra] : [])]
      .filter((l) => l.nodeId === peer && l.useN > 0 && l.held.length > 0)
      .sort((x, y) => x.useN - y.useN)
    for (const l of links) {
      if (this.#older(l).length > 0) return
      for (const f of l.held.splice(0)) this.#dispatch(peer, f.channel, f.payload)
    }
  }

  #dispatch(nodeId: string, channel: number, payload: Uint8Array): void {
    const handlers = this.#handlers.get(channel)
    if (!handlers) return
    for (const h of handlers) {
      try {
        h(nodeId, payload)
      } catch (err) {
        this.#c.logger.warn({ nodeId, channel, err: String(err) }, 'p2p channel handler failed')
      }
    }
  }

  /** The peer sends nothing more on `link`. */
  #drained(link: LinkState, cut = false): void {
    if (link.drained) return
    link.drained = true
    if (!link.active || cut) {
      clearTimeout(link.retireTimer)
      link.ws.close(1000, 'duplicate link')
    }
    this.#flush(link.nodeId)
  }

  #onControl(link: LinkState, payload: Uint8Array): void {
    let msg: {
      type?: unknown
      n?: unknown
      after?: unknown
      address?: unknown
      recordPub?: unknown
      cert?: unknown
    }
    try {
      msg = JSON.parse(dec.decode(payload)) as typeof msg
    } catch {
      return // malformed control frame: ignored
    }
    if (typeof msg !== 'object' || msg === null) return
    if (msg.type === 'use') {
      // Only the arbiter chooses; a `use` from the other side is ignored.
      const n = msg.n
      const after = msg.after ?? 0
      if (
        !this.#isArbiter(link.nodeId) &&
        typeof n === 'number' &&
        Number.isSafeInteger(n) &&
        n > 0 &&
        typeof after === 'number' &&
        Number.isSafeInteger(after) &&
        after >= 0 &&
        after < n
      ) {
        this.#activate(link, n, after)
      }
      return
    }
    if (msg.type === 'retire') {
      this.#drained(link)
      return
    }
    if (msg.type !== 'hello' || typeof msg.recordPub !== 'string' || typeof msg.cert !== 'string') return
    // The link is authenticated (ML-DSA-87 handshake), so `link.peerPublicKey` is the node's identity key:
    // the certificate binds the ML-DSA-44 record key to this node ID.
    const recordPub = new Uint8Array(Buffer.from(msg.recordPub, 'base64'))
    const cert = new Uint8Array(Buffer.from(msg.cert, 'base64'))
    if (!verifyCertificate(link.peerPublicKey, recordPub, cert)) {
      this.#c.logger.warn({ nodeId: link.nodeId }, 'p2p hello with a bad record-key certificate')
      link.ws.close(1008, 'bad certificate')
      return
    }
    this.bindings.set(link.nodeId, recordPub)
    if (typeof msg.address === 'string' && /^wss?:\/\/\S{1,250}$/.test(msg.address)) {
      this.addresses.set(link.nodeId, msg.address)
    }
  }

  #onClose(link: LinkState): void {
    if (!this.#links.has(link)) return
    const wasActive = link.active
    link.state = 'closed'
    link.active = false
    link.drained = true
    clearTimeout(link.retireTimer)
    this.#links.delete(link)
    link.activation.reject(new Error(`link to ${link.nodeId} closed`))
    this.#flush(link.nodeId, link)
    this.#c.logger.info({ nodeId: link.nodeId, direction: link.direction }, 'p2p link closed')
    const open = this.#openLink(link.nodeId)
    if (wasActive && !open) for (const h of this.#closeHandlers) h(link.nodeId)
    if (this.#wanted.has(link.nodeId) && !open) this.#scheduleRedial(link.nodeId)
  }

  #openLink(nodeId: string): LinkState | undefined {
    for (const l of this.#links) {
      if (l.nodeId === nodeId && l.active && l.ws.readyState === WebSocket.OPEN) return l
    }
    return undefined
  }

  #sendRaw(link: LinkState, channel: number, payload: Uint8Array, cb?: (err?: Error) => void): void {
    const plain = new Uint8Array(payload.length + 1)
    plain[0] = channel
    plain.set(payload, 1)
    link.ws.send(link.session.seal(plain), (err) => {
      if (err) {
        this.stats.sendErrors++
        this.#c.logger.debug({ nodeId: link.nodeId, channel, err: String(err) }, 'p2p write failed')
      }
      cb?.(err)
    })
    this.stats.framesOut++
  }

  /** Sends on the active link; `false` (nothing written) when there is none. */
  send(nodeId: string, channel: number, payload: Uint8Array): boolean {
    const link = this.#openLink(nodeId)
    if (!link) return false
    this.#sendRaw(link, channel, payload)
    return true
  }

  /**
   * Sends, dialing first when there is no active link and the address is known. Resolves once the frame is
   * written to the socket; rejects when no link can be opened or the write fails.
   */
  async sendOrDial(nodeId: string, channel: number, payload: Uint8Array): Promise<void> {
    let link = this.#openLink(nodeId)
    if (!link) {
      const address = this.addresses.get(nodeId)
      if (address === undefined) throw new Error(`no address known for node ${nodeId}`)
      await this.connect(nodeId, address)
      link = this.#openLink(nodeId)
      if (!link) throw new Error(`link to ${nodeId} closed`)
    }
    const target = link
    await new Promise<void>((resolve, reject) =>
      this.#sendRaw(target, channel, payload, (err) => (err ? reject(err) : resolve())),
    )
  }

  onChannel(channel: number, handler: ChannelHandler): () => void {
    let set = this.#handlers.get(channel)
    if (!set) this.#handlers.set(channel, (set = new Set()))
    set.add(handler)
    return () => set.delete(handler)
  }

  /** Called when a node gets an active link after having none. */
  onOpen(handler: (nodeId: string) => void): () => void {
    this.#openHandlers.add(handler)
    return () => this.#openHandlers.delete(handler)
  }

  /** Called when a node's active link closes and no other is active. */
  onClosed(handler: (nodeId: string) => void): () => void {
    this.#closeHandlers.add(handler)
    return () => this.#closeHandlers.delete(handler)
  }

  /** Whether an active link to `nodeId` exists. */
  isOpen(nodeId: string): boolean {
    return this.#openLink(nodeId) !== undefined
  }

  /** Node IDs with an active link. */
  connectedNodes(): string[] {
    return [...new Set([...this.#links].filter((l) => l.active).map((l) => l.nodeId))]
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
          clearTimeout(l.retireTimer)
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
