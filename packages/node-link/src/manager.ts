/**
 * The link manager: authenticated node-to-node links over an injected transport, one active link per node pair
 * (arbitrated), several channels per link, a switch-over between links that neither loses nor reorders frames,
 * reconnects, and the trust rules of PROTOCOL.md §5 (link slots, handshake limits, one dial policy).
 */
import { HandshakeAdmission, addressGroup } from './admission'
import { createDialPolicy } from './dial-policy'
import { LinkError, isLinkError } from './errors'
import {
  IDLE_SWEEP_MS,
  LINK_PROTOCOL,
  MAX_EARLY_MESSAGES,
  MAX_KNOWN_ADDRESSES,
  MAX_RECORD_BYTES,
  resolveInit,
  type ResolvedInit,
} from './options'
import {
  SILENT_LOGGER,
  SYSTEM_CLOCK,
  type Clock,
  type DialPolicy,
  type HandshakePipe,
  type LinkEvents,
  type LinkInfo,
  type LinkStats,
  type LinkTransport,
  type Logger,
  type MessagePipe,
  type PreferenceFn,
  type RandomFn,
  type SecureChannel,
  type SecureFn,
} from './types'
import {
  CONTROL_CHANNEL,
  MAX_APP_CHANNEL,
  MIN_APP_CHANNEL,
  encodeControl,
  encodeFrame,
  parseControl,
  type ControlMessage,
} from './wire'

/** Services the link manager uses (see the README for each default). */
export interface LinkManagerComponents {
  /** Carries message pipes: `createWsTransport()` or the memory transport of `./testing`. */
  transport: LinkTransport
  /** Authenticates a pipe and returns the secure channel (the app builds it from `@x/pqc`). */
  secure: SecureFn
  /** @default SYSTEM_CLOCK */
  clock?: Clock
  /** @default Math.random */
  random?: RandomFn
  /** @default silent */
  logger?: Logger
  /**
   * Asked before every dial. @default `createDialPolicy()`: canonical `ws:`/`wss:` addresses of public unicast
   * hosts only
   */
  dialPolicy?: DialPolicy
  /** Nodes and addresses this node trusts as real (its routing table). @default none */
  isPreferred?: PreferenceFn
}

/** Plain settings; every field has a default except `nodeId`. */
export interface LinkManagerInit {
  /** This node's ID, exactly as `secure` proves it to peers (the arbiter of a pair is the smaller ID). */
  nodeId: string
  /** The address this node accepts links on, announced in `hello`. @default undefined (not announced) */
  address?: string
  /** Application data sent in every `hello` (e.g. a certificate), at most 16 KiB. @default none */
  helloData?: Uint8Array
  /** Most links held at once (distinct nodes). @default MAX_LINKS (64) */
  maxLinks?: number
  /** Most links of nodes that are not preferred (nor wanted, nor dialed by us). @default min(32, maxLinks / 2) */
  maxUnpreferredLinks?: number
  /** Most inbound links of not-preferred nodes per address group (IPv4 /24, IPv6 /48). @default 4 */
  maxLinksPerGroup?: number
  /** Most links to one node at once (the active one and those being replaced). @default 4 */
  maxLinksPerNode?: number
  /** Idle links (no application frame) of not-preferred, not-wanted nodes are closed after this. @default 300_000 */
  idleTimeoutMs?: number
  /** Deadline of a handshake, and of the activation after it. @default 10_000 */
  handshakeTimeoutMs?: number
  /** Handshakes running at once. @default 32 */
  maxPendingHandshakes?: number
  /** Inbound handshakes per second from one address. @default 1 */
  handshakesPerAddressPerSecond?: number
  /** Burst of inbound handshakes from one address. @default 8 */
  handshakeBurstPerAddress?: number
  /** Inbound handshakes per second in all. @default 20 */
  handshakesPerSecond?: number
  /** Burst of inbound handshakes in all. @default 64 */
  handshakeBurst?: number
  /** A further burst only preferred addresses may use once the global one is spent. @default 32 */
  preferredHandshakeBurst?: number
  /** First reconnect delay of a wanted link. @default 1_000 */
  reconnectMinMs?: number
  /** Longest reconnect delay. @default 30_000 */
  reconnectMaxMs?: number
  /** How long a retired link waits for the peer's `retire`. @default 5_000 */
  retireGraceMs?: number
  /** Frames held while an older link drains. @default 4_096 */
  maxHeldFrames?: number
}

/** Options of `connect`. */
export interface ConnectOptions {
  /** Aborts the dial and the handshake. */
  signal?: AbortSignal
}

/** Options of `sendOrDial`. */
export interface SendOrDialOptions {
  /** Where to dial when there is no link. @default the address the node announced in its last `hello` */
  address?: string
  /** Aborts the dial and the send. */
  signal?: AbortSignal
}

/** Handles the payloads of one channel. */
export type ChannelHandler = (fromNodeId: string, payload: Uint8Array) => void

/** The link manager. */
export interface LinkManager {
  /** This node's ID (`init.nodeId`). */
  readonly nodeId: string
  /** Starts accepting links (calls `transport.listen`) and the idle sweep. */
  start(): Promise<void>
  /**
   * Opens (or reuses) an authenticated link to `nodeId`, dialing `address` (or the one its `hello` announced)
   * after the dial policy allowed it; the handshake must prove `nodeId`. Resolves once the link is active.
   * Rejects with `X_LINK_DIAL_REFUSED`, `X_LINK_DIAL_FAILED`, `X_LINK_HANDSHAKE_FAILED`, `X_LINK_TIMEOUT`,
   * `X_LINK_NOT_OPEN`, `X_LINK_NO_ADDRESS` or `X_LINK_CLOSED`.
   */
  connect(nodeId: string, address?: string, options?: ConnectOptions): Promise<LinkInfo>
  /** Keeps a link to `nodeId` up: reconnects with jittered exponential back-off until `unwant` or `close`. */
  want(nodeId: string, address?: string): void
  /** Stops keeping a link to `nodeId` up (an open link stays until idle). */
  unwant(nodeId: string): void
  /** Sends on the active link; `false` (nothing written) when there is none. */
  send(nodeId: string, channel: number, payload: Uint8Array): boolean
  /**
   * Sends, dialing first when there is no active link. Resolves once the frame is written; rejects as
   * `connect` does, or with `X_LINK_SEND_FAILED`.
   */
  sendOrDial(nodeId: string, channel: number, payload: Uint8Array, options?: SendOrDialOptions): Promise<void>
  /** Registers a handler for an application channel (0x02–0xff). */
  onChannel(channel: number, handler: ChannelHandler): () => void
  /** Subscribes to `open`, `close` or `hello`. */
  on<E extends keyof LinkEvents>(event: E, handler: (event: LinkEvents[E]) => void): () => void
  /** Closes every link to `nodeId` (e.g. its hello carried a bad certificate). */
  disconnect(nodeId: string, reason?: string): void
  /** Whether an active link to `nodeId` exists. */
  isOpen(nodeId: string): boolean
  /** Node IDs with an active link. */
  connectedNodes(): string[]
  /** The address `nodeId` announced in its last `hello` (canonical), if any. */
  addressOf(nodeId: string): string | undefined
  /** Every link held (snapshots). */
  list(): LinkInfo[]
  /** Counters and gauges (a snapshot). */
  getStats(): LinkStats
  /** Stops dialing and accepting, and closes every link (1001). */
  close(): Promise<void>
}

interface Deferred {
  promise: Promise<void>
  settled: boolean
  resolve(): void
  reject(err: Error): void
}

function deferred(): Deferred {
  let res!: () => void
  let rej!: (err: Error) => void
  const promise = new Promise<void>((a, b) => {
    res = a
    rej = b
  })
  promise.catch(() => undefined)
  const d: Deferred = {
    promise,
    settled: false,
    resolve() {
      d.settled = true
      res()
    },
    reject(err) {
      d.settled = true
      rej(err)
    },
  }
  return d
}

interface LinkState {
  readonly nodeId: string
  readonly direction: 'inbound' | 'outbound'
  readonly address: string
  readonly group: string
  readonly since: number
  state: 'connecting' | 'open' | 'closed'
  lastActivity: number
  readonly pipe: MessagePipe
  readonly channel: SecureChannel
  /** The arbiter's activation number of this link (from its `use`; increases across restarts); 0 = none yet. */
  useN: number
  /** The activation number of the link this one replaced (0: none was active); its frames come first. */
  after: number
  /** This side sends on this link (its one current link to the node). */
  active: boolean
  /** The peer sent its last frame on this link (`retire`) or the pipe closed. */
  drained: boolean
  /** The node's `hello` arrived on this link. */
  helloSeen: boolean
  /** Application frames that arrived while an older link to the node was still draining. */
  held: { channel: number; payload: Uint8Array }[]
  readonly activation: Deferred
  retireTimer?: unknown
  /** Write callback of frames nobody waits for: counts failures. */
  readonly writeDone: (err?: Error) => void
}

interface Wanted {
  address: string | undefined
  attempt: number
  timer?: unknown
}

/** A `Map` bounded to `max` entries; `set` refreshes an entry, the least recently set is evicted. */
class BoundedMap<K, V> extends Map<K, V> {
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

const PROLOGUE = new TextEncoder().encode(LINK_PROTOCOL)

/**
 * Creates a link manager. Nothing listens or dials before `start()` / `connect()`.
 *
 * Which link carries a node pair's frames is decided by one side only, the node with the smaller ID (the
 * "arbiter"), so both sides always agree (PROTOCOL.md §3):
 *
 * - A link is usable for application frames only once it is *active*. The arbiter activates every link as soon
 *   as its handshake completes and says so with a control `use` before any application frame; the other side
 *   activates a link when it receives `use`, and sends nothing but control frames on it before.
 * - The newest activated link wins. The link it replaces is *retired*: each side sends a control `retire` as its
 *   last frame on it and stops sending there, but keeps delivering what arrives on it; the link closes once both
 *   sides retired it (or after `retireGraceMs`).
 * - Frames that arrive on a newer link while an older one is still draining are held and delivered after the
 *   older link's last frame, so a switch neither loses nor reorders frames.
 */
export function createLinkManager(components: LinkManagerComponents, init: LinkManagerInit): LinkManager {
  if (typeof components !== 'object' || components === null)
    throw new TypeError('"components" must be an object')
  if (typeof components.transport?.dial !== 'function' || typeof components.transport.listen !== 'function') {
    throw new TypeError('"transport" must have listen() and dial()')
  }
  if (typeof components.secure !== 'function') throw new TypeError('"secure" must be a function')
  return new Manager(components, resolveInit(init))
}

class Manager implements LinkManager {
  readonly #o: ResolvedInit
  readonly #transport: LinkTransport
  readonly #secureFn: SecureFn
  readonly #clock: Clock
  readonly #random: RandomFn
  readonly #log: Logger
  readonly #policy: DialPolicy
  readonly #preferred: PreferenceFn
  readonly #admission: HandshakeAdmission
  /** Links by node (in creation order). */
  readonly #byNode = new Map<string, LinkState[]>()
  readonly #dialing = new Map<string, Promise<LinkInfo>>()
  readonly #handshaking = new Set<{ pipe: MessagePipe; abort: AbortController }>()
  readonly #handlers = new Map<number, Set<ChannelHandler>>()
  readonly #events: { [E in keyof LinkEvents]: Set<(e: LinkEvents[E]) => void> } = {
    open: new Set(),
    close: new Set(),
    hello: new Set(),
  }
  readonly #addresses = new BoundedMap<string, string>(MAX_KNOWN_ADDRESSES)
  readonly #wanted = new Map<string, Wanted>()
  #closed = false
  #started = false
  #idleTimer: unknown
  #lastUseN = 0
  readonly #stats = {
    handshakes: 0,
    handshakeFailures: 0,
    handshakesRefused: 0,
    slotsRefused: 0,
    evicted: 0,
    dialsRefused: 0,
    badRecords: 0,
    framesIn: 0,
    framesOut: 0,
    linksRetired: 0,
    framesHeld: 0,
    sendErrors: 0,
  }

  constructor(c: LinkManagerComponents, o: ResolvedInit) {
    this.#o = o
    this.#transport = c.transport
    this.#secureFn = c.secure
    this.#clock = c.clock ?? SYSTEM_CLOCK
    this.#random = c.random ?? Math.random
    this.#log = c.logger ?? SILENT_LOGGER
    this.#policy = c.dialPolicy ?? createDialPolicy()
    this.#preferred = c.isPreferred ?? (() => false)
    this.#admission = new HandshakeAdmission(this.#clock, {
      perAddressPerSecond: o.handshakesPerAddressPerSecond,
      burstPerAddress: o.handshakeBurstPerAddress,
      perSecond: o.handshakesPerSecond,
      burst: o.handshakeBurst,
      preferredBurst: o.preferredHandshakeBurst,
    })
  }

  get nodeId(): string {
    return this.#o.nodeId
  }

  async start(): Promise<void> {
    if (this.#closed) throw new LinkError('X_LINK_CLOSED', 'link manager closed')
    if (this.#started) return
    this.#started = true
    await this.#transport.listen({
      admit: (remote) => this.#admit(remote),
      accept: (pipe) => {
        void this.#secure(pipe, 'inbound', pipe.remoteAddress, undefined).catch(() => undefined)
      },
    })
    this.#scheduleIdleSweep()
  }

  // ------------------------------------------------------------------ admission and slots

  #admit(remote: string): boolean {
    if (this.#closed || this.#handshaking.size >= this.#o.maxPendingHandshakes) {
      this.#stats.handshakesRefused++
      return false
    }
    let preferred = false
    try {
      preferred = this.#preferred(undefined, remote)
    } catch {
      // a failing hook prefers nobody
    }
    if (!this.#admission.admit(remote, preferred)) {
      this.#stats.handshakesRefused++
      return false
    }
    return true
  }

  /** Trusted as a real node: preferred by the hook (routing table) or wanted by this node. */
  #isPreferredNode(nodeId: string, address: string): boolean {
    if (this.#wanted.has(nodeId)) return true
    try {
      return this.#preferred(nodeId, address)
    } catch {
      return false
    }
  }

  /** Whether an authenticated link of `nodeId` may be kept; evicts another link when the rules say so. */
  #admitLink(nodeId: string, direction: 'inbound' | 'outbound', address: string, group: string): boolean {
    const existing = this.#byNode.get(nodeId)
    if (existing !== undefined) return existing.length < this.#o.maxLinksPerNode
    // Links this node dialed itself are its own choice; an inbound link earns a slot by being preferred.
    const privileged = direction === 'outbound' || this.#isPreferredNode(nodeId, address)
    if (!privileged) {
      let unpreferred = 0
      let inGroup = 0
      for (const [id, links] of this.#byNode) {
        const first = links[0]!
        if (this.#isProtected(id, first)) continue
        unpreferred++
        if (first.direction === 'inbound' && first.group === group) inGroup++
      }
      if (inGroup >= this.#o.maxLinksPerGroup) return false
      if (unpreferred >= this.#o.maxUnpreferredLinks) return false
    }
    if (this.#byNode.size < this.#o.maxLinks) return true
    // Full: a privileged newcomer takes the slot of the least recently active unprotected node.
    return privileged && this.#evictOne()
  }

  /** Never evicted for a newcomer nor as idle: preferred or wanted nodes, and links dialed for a wanted node. */
  #isProtected(nodeId: string, link: LinkState): boolean {
    return this.#isPreferredNode(nodeId, link.address)
  }

  #evictOne(): boolean {
    let victim: string | undefined
    let oldest = Infinity
    for (const [id, links] of this.#byNode) {
      if (this.#isProtected(id, links[0]!)) continue
      const last = Math.max(...links.map((l) => l.lastActivity))
      if (last < oldest) {
        oldest = last
        victim = id
      }
    }
    if (victim === undefined) return false
    this.#stats.evicted++
    this.#log.info({ nodeId: victim }, 'link evicted for a preferred node')
    this.#dropNode(victim, 'evicted')
    return true
  }

  #scheduleIdleSweep(): void {
    if (this.#closed) return
    const every = Math.min(IDLE_SWEEP_MS, Math.max(1, Math.floor(this.#o.idleTimeoutMs / 2)))
    this.#idleTimer = this.#clock.setTimeout(() => {
      this.#sweepIdle()
      this.#scheduleIdleSweep()
    }, every)
  }

  #sweepIdle(): void {
    const cutoff = this.#clock.now() - this.#o.idleTimeoutMs
    for (const [id, links] of [...this.#byNode]) {
      if (this.#isProtected(id, links[0]!)) continue
      if (links.every((l) => l.lastActivity <= cutoff)) {
        this.#stats.evicted++
        this.#log.debug({ nodeId: id }, 'idle link closed')
        this.#dropNode(id, 'idle')
      }
    }
  }

  /** Closes and forgets every link of `nodeId` at once (its slot is free now, not when the pipes close). */
  #dropNode(nodeId: string, reason: string): void {
    for (const link of [...(this.#byNode.get(nodeId) ?? [])]) {
      clearTimeoutSafe(this.#clock, link.retireTimer)
      link.pipe.close(1000, reason)
      this.#onClose(link)
    }
  }

  // ------------------------------------------------------------------ dialing

  connect(nodeId: string, address?: string, options: ConnectOptions = {}): Promise<LinkInfo> {
    if (typeof nodeId !== 'string' || nodeId.length === 0)
      throw new TypeError('"nodeId" must be a non-empty string')
    if (address !== undefined && typeof address !== 'string')
      throw new TypeError('"address" must be a string')
    if (this.#closed) return Promise.reject(new LinkError('X_LINK_CLOSED', 'link manager closed'))
    if (nodeId === this.nodeId)
      return Promise.reject(new LinkError('X_LINK_DIAL_REFUSED', 'a node does not link to itself'))
    const open = this.#openLink(nodeId)
    if (open) return Promise.resolve(info(open))
    const pending = this.#dialing.get(nodeId)
    if (pending) return pending
    // A link from the other side already past its handshake: wait for the arbiter's decision on it.
    const authenticated = this.#byNode.get(nodeId)?.find((l) => l.state === 'connecting')
    const target = address ?? this.#wanted.get(nodeId)?.address ?? this.#addresses.get(nodeId)
    const promise = authenticated
      ? this.#whenActive(authenticated)
      : target === undefined
        ? Promise.reject(new LinkError('X_LINK_NO_ADDRESS', `no address known for node ${nodeId}`))
        : this.#dial(nodeId, target, options.signal)
    this.#dialing.set(nodeId, promise)
    const cleanup = (): void => {
      if (this.#dialing.get(nodeId) === promise) this.#dialing.delete(nodeId)
    }
    promise.then(cleanup, cleanup)
    return promise
  }

  async #dial(nodeId: string, address: string, signal: AbortSignal | undefined): Promise<LinkInfo> {
    let decision
    try {
      decision = await this.#policy(nodeId, address)
    } catch (err) {
      decision = { allow: false as const, reason: `dial policy failed: ${String(err)}` }
    }
    if (!decision.allow) {
      this.#stats.dialsRefused++
      this.#log.debug({ nodeId, address, reason: decision.reason }, 'dial refused by policy')
      throw new LinkError('X_LINK_DIAL_REFUSED', `dial to ${nodeId} refused: ${decision.reason}`)
    }
    if (this.#closed) throw new LinkError('X_LINK_CLOSED', 'link manager closed')
    const already = this.#openLink(nodeId)
    if (already) return info(already)
    const ac = new AbortController()
    const timer = this.#clock.setTimeout(() => ac.abort(), this.#o.handshakeTimeoutMs)
    const onAbort = (): void => ac.abort()
    signal?.addEventListener('abort', onAbort)
    let pipe: MessagePipe
    try {
      pipe = await this.#transport.dial(decision.address, { signal: ac.signal })
    } catch (err) {
      throw new LinkError('X_LINK_DIAL_FAILED', `cannot reach ${decision.address}: ${String(err)}`, {
        cause: err,
      })
    } finally {
      this.#clock.clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    if (this.#closed) {
      pipe.close(1001, 'node shutting down')
      throw new LinkError('X_LINK_CLOSED', 'link manager closed')
    }
    return this.#whenActive(await this.#secure(pipe, 'outbound', decision.address, nodeId))
  }

  async #whenActive(link: LinkState): Promise<LinkInfo> {
    let timer: unknown
    try {
      await Promise.race([
        link.activation.promise,
        new Promise<never>((_, reject) => {
          timer = this.#clock.setTimeout(
            () => reject(new LinkError('X_LINK_TIMEOUT', `link to ${link.nodeId} not activated in time`)),
            this.#o.handshakeTimeoutMs,
          )
        }),
      ])
    } catch (err) {
      // Replaced before its activation (the other node's dial won): any active link will do.
      const other = this.#openLink(link.nodeId)
      if (other) return info(other)
      if (link.pipe.isOpen && !link.active) link.pipe.close(1000, 'not activated')
      throw err
    } finally {
      this.#clock.clearTimeout(timer)
    }
    return info(this.#openLink(link.nodeId) ?? link)
  }

  want(nodeId: string, address?: string): void {
    if (typeof nodeId !== 'string' || nodeId.length === 0)
      throw new TypeError('"nodeId" must be a non-empty string')
    if (nodeId === this.nodeId || this.#closed) return
    const w = this.#wanted.get(nodeId)
    if (w) {
      if (address !== undefined) w.address = address
      return
    }
    this.#wanted.set(nodeId, { address, attempt: 0 })
    this.#dialWanted(nodeId)
  }

  unwant(nodeId: string): void {
    const w = this.#wanted.get(nodeId)
    if (!w) return
    clearTimeoutSafe(this.#clock, w.timer)
    this.#wanted.delete(nodeId)
  }

  #dialWanted(nodeId: string): void {
    const w = this.#wanted.get(nodeId)
    if (!w || this.#closed) return
    this.connect(nodeId, w.address).then(
      () => {
        w.attempt = 0
      },
      (err: unknown) => {
        this.#log.debug(
          { nodeId, code: (err as { code?: string }).code, err: String(err) },
          'link dial failed',
        )
        this.#scheduleRedial(nodeId)
      },
    )
  }

  #scheduleRedial(nodeId: string): void {
    const w = this.#wanted.get(nodeId)
    if (!w || this.#closed || w.timer !== undefined) return
    const base = Math.min(this.#o.reconnectMaxMs, this.#o.reconnectMinMs * 2 ** w.attempt)
    const delay = base * (0.75 + this.#random() * 0.5)
    w.attempt = Math.min(w.attempt + 1, 16)
    w.timer = this.#clock.setTimeout(() => {
      w.timer = undefined
      if (this.#wanted.get(nodeId) === w && !this.#openLink(nodeId)) this.#dialWanted(nodeId)
    }, delay)
  }

  // ------------------------------------------------------------------ handshake

  async #secure(
    pipe: MessagePipe,
    direction: 'inbound' | 'outbound',
    address: string,
    expectedPeerId: string | undefined,
  ): Promise<LinkState> {
    // Set once the link exists: the close handler registered below needs it.
    const ref: { link?: LinkState; records?: (bytes: Uint8Array) => void } = {}
    // One listener for the pipe's whole life. Messages are routed by phase: before `secure` registers its
    // handler they wait in `pre`; while it is registered they go to it; once it unregistered (the handshake is
    // over) they are records, queued in `early` until the record handler exists, so none is lost between the two.
    let phase: 'pre' | 'handshake' | 'records' = 'pre'
    let handshakeHandler: ((bytes: Uint8Array) => void) | undefined
    const pre: Uint8Array[] = []
    const early: Uint8Array[] = []
    let overflow = false
    pipe.onMessage((bytes) => {
      if (bytes.length > MAX_RECORD_BYTES) {
        pipe.close(1009, 'message too large')
        return
      }
      if (ref.records) ref.records(bytes)
      else if (phase === 'handshake' && handshakeHandler) handshakeHandler(bytes)
      else if ((phase === 'pre' ? pre : early).length < MAX_EARLY_MESSAGES)
        (phase === 'pre' ? pre : early).push(bytes)
      else if (!overflow) {
        overflow = true
        pipe.close(1008, 'too many messages')
      }
    })
    const hsPipe: HandshakePipe = {
      send: (bytes) => pipe.send(bytes),
      onMessage: (handler) => {
        phase = 'handshake'
        handshakeHandler = handler
        for (const bytes of pre.splice(0)) if (handshakeHandler === handler) handler(bytes)
        return () => {
          if (handshakeHandler !== handler) return
          handshakeHandler = undefined
          phase = 'records'
        }
      },
    }
    const abort = new AbortController()
    const pending = { pipe, abort }
    this.#handshaking.add(pending)
    let timedOut = false
    const timer = this.#clock.setTimeout(() => {
      timedOut = true
      abort.abort(new LinkError('X_LINK_TIMEOUT', 'handshake timed out'))
    }, this.#o.handshakeTimeoutMs)
    pipe.onClose(() => {
      if (ref.link) this.#onClose(ref.link)
      else abort.abort(new LinkError('X_LINK_NOT_OPEN', 'connection closed during the handshake'))
    })
    let channel: SecureChannel
    try {
      channel = await Promise.race([
        this.#secureFn(hsPipe, {
          role: direction === 'outbound' ? 'initiator' : 'responder',
          ...(expectedPeerId === undefined ? {} : { expectedPeerId }),
          prologue: PROLOGUE,
          signal: abort.signal,
        }),
        new Promise<never>((_, reject) => {
          const fail = (): void => reject(asError(abort.signal.reason))
          if (abort.signal.aborted) fail()
          abort.signal.addEventListener('abort', fail, { once: true })
        }),
      ])
      if (typeof channel?.peerId !== 'string' || typeof channel.seal !== 'function') {
        throw new TypeError('secure() did not return a secure channel')
      }
      if (expectedPeerId !== undefined && channel.peerId !== expectedPeerId) {
        throw new LinkError(
          'X_LINK_HANDSHAKE_FAILED',
          `peer is ${channel.peerId}, expected ${expectedPeerId}`,
        )
      }
      if (channel.peerId === this.nodeId)
        throw new LinkError('X_LINK_HANDSHAKE_FAILED', 'the peer is this node')
    } catch (err) {
      this.#stats.handshakeFailures++
      const code = (err as { code?: string }).code
      this.#log.debug({ direction, address, code }, 'link handshake failed')
      abort.abort()
      pipe.close(1008, 'handshake failed')
      if (timedOut) throw new LinkError('X_LINK_TIMEOUT', 'handshake timed out', { cause: err })
      if (isLinkError(err)) throw err
      throw new LinkError('X_LINK_HANDSHAKE_FAILED', `handshake failed: ${String(err)}`, { cause: err })
    } finally {
      this.#clock.clearTimeout(timer)
      this.#handshaking.delete(pending)
    }
    this.#stats.handshakes++
    const nodeId = channel.peerId
    if (this.#closed || !pipe.isOpen) {
      pipe.close(1001, 'closed')
      throw new LinkError(this.#closed ? 'X_LINK_CLOSED' : 'X_LINK_NOT_OPEN', `link to ${nodeId} closed`)
    }
    // Address groups cap inbound links only (a node chooses whom it dials).
    const group = direction === 'inbound' ? addressGroup(pipe.remoteAddress) : ''
    if (!this.#admitLink(nodeId, direction, address, group)) {
      this.#stats.slotsRefused++
      this.#log.debug({ nodeId, direction, address }, 'link refused: no slot')
      pipe.close(1013, 'no link slot')
      throw new LinkError('X_LINK_NOT_OPEN', `no link slot for ${nodeId}`)
    }
    const now = this.#clock.now()
    const state: LinkState = {
      nodeId,
      direction,
      address,
      group,
      since: now,
      state: 'connecting',
      lastActivity: now,
      pipe,
      channel,
      useN: 0,
      after: 0,
      active: false,
      drained: false,
      helloSeen: false,
      held: [],
      activation: deferred(),
      writeDone: (err) => {
        if (!err) return
        this.#stats.sendErrors++
        this.#log.debug({ nodeId, err: String(err) }, 'link write failed')
      },
    }
    ref.link = state
    let list = this.#byNode.get(nodeId)
    if (!list) this.#byNode.set(nodeId, (list = []))
    list.push(state)
    ref.records = (bytes) => this.#onRecord(state, bytes)
    this.#control(state, { type: 'hello', address: this.#o.address, data: this.#o.helloData })
    this.#log.info({ nodeId, direction, address }, 'link authenticated')
    if (this.#isArbiter(nodeId)) this.#activate(state)
    for (const bytes of [...(channel.trailing ?? []), ...early.splice(0)]) {
      if (this.#byNode.get(nodeId)?.includes(state) !== true) break
      this.#onRecord(state, bytes)
    }
    return state
  }

  // ------------------------------------------------------------------ arbitration

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
      // `use` frames of two links travel on different pipes: one older than the active link's is stale (the
      // arbiter retired that link already); its frames are still delivered, in order, before the newer's.
      if (current && current.useN >= useN) {
        this.#flush(peer)
        return
      }
    } else {
      // Clock based so that it still increases after this node restarts; strictly increasing here.
      link.useN = this.#lastUseN = Math.max(Math.floor(this.#clock.now()), this.#lastUseN + 1)
      link.after = current?.useN ?? 0
    }
    const wasOpen = current !== undefined
    for (const other of this.#byNode.get(peer) ?? []) if (other !== link && other.active) this.#retire(other)
    link.active = true
    link.state = 'open'
    if (this.#isArbiter(peer)) this.#control(link, { type: 'use', n: link.useN, after: link.after })
    this.#log.info({ nodeId: peer, direction: link.direction, address: link.address }, 'link open')
    link.activation.resolve()
    this.#flush(peer)
    if (!wasOpen) this.#emit('open', { nodeId: peer })
  }

  /** This side sends nothing more on `link` (after a `retire`); it closes once the peer retired it too. */
  #retire(link: LinkState): void {
    link.active = false
    link.state = 'closed'
    this.#stats.linksRetired++
    this.#control(link, { type: 'retire' })
    if (link.drained) link.pipe.close(1000, 'duplicate link')
    else {
      link.retireTimer = this.#clock.setTimeout(
        () => link.pipe.close(1000, 'duplicate link'),
        this.#o.retireGraceMs,
      )
    }
  }

  #control(link: LinkState, msg: ControlMessage): void {
    if (link.pipe.isOpen) this.#sendRaw(link, CONTROL_CHANNEL, encodeControl(msg))
  }

  #onRecord(link: LinkState, record: Uint8Array): void {
    let plain: Uint8Array
    try {
      plain = link.channel.open(record)
    } catch {
      // Tampered, replayed or out-of-order record: the channel is no longer trustworthy.
      this.#stats.badRecords++
      link.pipe.close(1008, 'bad record')
      this.#onClose(link)
      return
    }
    if (plain.length === 0) return
    this.#stats.framesIn++
    const channel = plain[0]!
    const payload = plain.subarray(1)
    if (channel === CONTROL_CHANNEL) {
      this.#onControl(link, payload)
      return
    }
    link.lastActivity = this.#clock.now()
    if (this.#mustHold(link)) {
      if (link.held.length >= this.#o.maxHeldFrames) {
        // The older link does not drain: cut it, then deliver in order what this one holds.
        for (const o of this.#older(link)) this.#drained(o, true)
      }
      if (this.#mustHold(link)) {
        this.#stats.framesHeld++
        link.held.push({ channel, payload })
        return
      }
    }
    this.#dispatch(link.nodeId, channel, payload)
  }

  /**
   * Links to the same node whose frames come before `link`'s and may still arrive: activated earlier by the
   * arbiter and not drained, or — while the link `link` replaced is not identified yet (its `use` may still be on
   * its way) — any other undrained link without an activation number.
   */
  #older(link: LinkState): LinkState[] {
    const same = (this.#byNode.get(link.nodeId) ?? []).filter((o) => o !== link)
    if (same.length === 0) return same
    const predecessorKnown = link.after === 0 || same.some((o) => o.useN === link.after)
    return same.filter((o) => !o.drained && (o.useN > 0 ? o.useN < link.useN : !predecessorKnown))
  }

  #mustHold(link: LinkState): boolean {
    if (link.useN === 0 || link.held.length > 0) return true
    // The common case: the node's only link has nothing before it.
    return (this.#byNode.get(link.nodeId)?.length ?? 0) > 1 && this.#older(link).length > 0
  }

  #flush(peer: string, extra?: LinkState): void {
    const links = [...(this.#byNode.get(peer) ?? []), ...(extra ? [extra] : [])]
      .filter((l) => l.useN > 0 && l.held.length > 0)
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
        this.#log.warn({ nodeId, channel, err: String(err) }, 'link channel handler failed')
      }
    }
  }

  /** The peer sends nothing more on `link`. */
  #drained(link: LinkState, cut = false): void {
    if (link.drained) return
    link.drained = true
    if (!link.active || cut) {
      clearTimeoutSafe(this.#clock, link.retireTimer)
      link.pipe.close(1000, 'duplicate link')
    }
    this.#flush(link.nodeId)
  }

  #onControl(link: LinkState, payload: Uint8Array): void {
    const msg = parseControl(payload)
    if (msg === undefined) return // malformed control frame: ignored
    if (msg.type === 'use') {
      // Only the arbiter chooses; a `use` from the other side is ignored.
      if (!this.#isArbiter(link.nodeId)) this.#activate(link, msg.n, msg.after)
      return
    }
    if (msg.type === 'retire') {
      this.#drained(link)
      return
    }
    if (link.helloSeen) return
    link.helloSeen = true
    if (msg.address !== undefined) this.#addresses.set(link.nodeId, msg.address)
    this.#emit('hello', {
      nodeId: link.nodeId,
      publicKey: link.channel.peerPublicKey,
      address: msg.address,
      data: msg.data,
    })
  }

  #onClose(link: LinkState): void {
    const list = this.#byNode.get(link.nodeId)
    const i = list?.indexOf(link) ?? -1
    if (!list || i < 0) return
    const wasActive = link.active
    link.state = 'closed'
    link.active = false
    link.drained = true
    clearTimeoutSafe(this.#clock, link.retireTimer)
    list.splice(i, 1)
    if (list.length === 0) this.#byNode.delete(link.nodeId)
    if (!link.activation.settled) {
      link.activation.reject(new LinkError('X_LINK_NOT_OPEN', `link to ${link.nodeId} closed`))
    }
    this.#flush(link.nodeId, link)
    this.#log.info({ nodeId: link.nodeId, direction: link.direction }, 'link closed')
    const open = this.#openLink(link.nodeId)
    if (wasActive && !open) this.#emit('close', { nodeId: link.nodeId })
    if (this.#wanted.has(link.nodeId) && !open) this.#scheduleRedial(link.nodeId)
  }

  #openLink(nodeId: string): LinkState | undefined {
    const list = this.#byNode.get(nodeId)
    if (!list) return undefined
    for (const l of list) if (l.active && l.pipe.isOpen) return l
    return undefined
  }

  #sendRaw(link: LinkState, channel: number, payload: Uint8Array, cb?: (err?: Error) => void): void {
    let record: Uint8Array
    try {
      record = link.channel.seal(encodeFrame(channel, payload))
    } catch (err) {
      this.#stats.sendErrors++
      cb?.(err as Error)
      return
    }
    link.pipe.send(
      record,
      cb === undefined
        ? link.writeDone
        : (err) => {
            link.writeDone(err)
            cb(err)
          },
    )
    this.#stats.framesOut++
    if (channel !== CONTROL_CHANNEL) link.lastActivity = this.#clock.now()
  }

  // ------------------------------------------------------------------ public sending API

  send(nodeId: string, channel: number, payload: Uint8Array): boolean {
    checkAppChannel(channel)
    if (!(payload instanceof Uint8Array)) throw new TypeError('"payload" must be a Uint8Array')
    const link = this.#openLink(nodeId)
    if (!link) return false
    this.#sendRaw(link, channel, payload)
    return true
  }

  async sendOrDial(
    nodeId: string,
    channel: number,
    payload: Uint8Array,
    options: SendOrDialOptions = {},
  ): Promise<void> {
    checkAppChannel(channel)
    if (!(payload instanceof Uint8Array)) throw new TypeError('"payload" must be a Uint8Array')
    let link = this.#openLink(nodeId)
    if (!link) {
      await this.connect(nodeId, options.address, options.signal ? { signal: options.signal } : {})
      link = this.#openLink(nodeId)
      if (!link) throw new LinkError('X_LINK_NOT_OPEN', `link to ${nodeId} closed`)
    }
    const target = link
    await new Promise<void>((resolve, reject) =>
      this.#sendRaw(target, channel, payload, (err) =>
        err
          ? reject(new LinkError('X_LINK_SEND_FAILED', `write to ${nodeId} failed`, { cause: err }))
          : resolve(),
      ),
    )
  }

  onChannel(channel: number, handler: ChannelHandler): () => void {
    checkAppChannel(channel)
    if (typeof handler !== 'function') throw new TypeError('"handler" must be a function')
    let set = this.#handlers.get(channel)
    if (!set) this.#handlers.set(channel, (set = new Set()))
    set.add(handler)
    return () => set.delete(handler)
  }

  on<E extends keyof LinkEvents>(event: E, handler: (event: LinkEvents[E]) => void): () => void {
    const set = this.#events[event] as Set<(e: LinkEvents[E]) => void> | undefined
    if (set === undefined) throw new TypeError(`unknown event "${String(event)}"`)
    if (typeof handler !== 'function') throw new TypeError('"handler" must be a function')
    set.add(handler)
    return () => set.delete(handler)
  }

  #emit<E extends keyof LinkEvents>(event: E, payload: LinkEvents[E]): void {
    for (const h of this.#events[event] as Set<(e: LinkEvents[E]) => void>) {
      try {
        h(payload)
      } catch (err) {
        this.#log.warn({ event, err: String(err) }, 'link event handler failed')
      }
    }
  }

  disconnect(nodeId: string, reason = 'disconnected'): void {
    this.#dropNode(nodeId, reason)
  }

  isOpen(nodeId: string): boolean {
    return this.#openLink(nodeId) !== undefined
  }

  connectedNodes(): string[] {
    const out: string[] = []
    for (const [id, list] of this.#byNode) if (list.some((l) => l.active)) out.push(id)
    return out
  }

  addressOf(nodeId: string): string | undefined {
    return this.#addresses.get(nodeId)
  }

  list(): LinkInfo[] {
    const out: LinkInfo[] = []
    for (const list of this.#byNode.values()) for (const l of list) out.push(info(l))
    return out
  }

  getStats(): LinkStats {
    let links = 0
    for (const list of this.#byNode.values()) links += list.length
    return {
      links,
      connectedNodes: this.connectedNodes().length,
      pendingHandshakes: this.#handshaking.size,
      ...this.#stats,
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#clock.clearTimeout(this.#idleTimer)
    for (const w of this.#wanted.values()) clearTimeoutSafe(this.#clock, w.timer)
    this.#wanted.clear()
    for (const h of this.#handshaking) {
      h.abort.abort(new LinkError('X_LINK_CLOSED', 'link manager closed'))
      h.pipe.close(1001, 'node shutting down')
    }
    const closing: Promise<void>[] = []
    for (const list of [...this.#byNode.values()]) {
      for (const l of [...list]) {
        clearTimeoutSafe(this.#clock, l.retireTimer)
        closing.push(
          new Promise<void>((resolve) => {
            if (!l.pipe.isOpen) {
              this.#onClose(l)
              resolve()
              return
            }
            const t = this.#clock.setTimeout(() => {
              l.pipe.terminate?.()
              this.#onClose(l)
              resolve()
            }, 2_000)
            l.pipe.onClose(() => {
              this.#clock.clearTimeout(t)
              resolve()
            })
            l.pipe.close(1001, 'node shutting down')
          }),
        )
      }
    }
    await Promise.all(closing)
    await this.#transport.close()
  }
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new LinkError('X_LINK_HANDSHAKE_FAILED', String(reason))
}

function clearTimeoutSafe(clock: Clock, handle: unknown): void {
  if (handle !== undefined) clock.clearTimeout(handle)
}

function checkAppChannel(channel: number): void {
  if (!Number.isInteger(channel) || channel < MIN_APP_CHANNEL || channel > MAX_APP_CHANNEL) {
    throw new RangeError(`"channel" must be an integer from ${MIN_APP_CHANNEL} to ${MAX_APP_CHANNEL}`)
  }
}

function info(l: LinkState): LinkInfo {
  return {
    nodeId: l.nodeId,
    direction: l.direction,
    address: l.address,
    since: l.since,
    state: l.state,
    lastActivity: l.lastActivity,
  }
}
