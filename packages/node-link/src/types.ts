/** Pino-shaped logger. The default is silent. */
export interface Logger {
  /** Logs `obj` and `msg` at debug level. */
  debug(obj: object, msg?: string): void
  /** Logs at info level. */
  info(obj: object, msg?: string): void
  /** Logs at warn level. */
  warn(obj: object, msg?: string): void
  /** Logs at error level. */
  error(obj: object, msg?: string): void
  /** A logger that adds `bindings` to every line. */
  child(bindings: object): Logger
}

/** Silent logger used when none is injected. */
export const SILENT_LOGGER: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return SILENT_LOGGER
  },
}

/**
 * Time and timers (the same shape as `@x/kademlia`'s and `@x/signaling`'s). Every timer of the link manager goes
 * through it, so a virtual clock (`./testing`) drives retire grace, reconnect back-off, idle eviction, handshake
 * deadlines and rate limits without real sleeps.
 */
export interface Clock {
  /** Wall clock, milliseconds since the epoch (also orders `use` activations across restarts). */
  now(): number
  /** Calls `fn` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown
  /** Cancels a timer; ignores handles that already ran or were cleared. */
  clearTimeout(handle: unknown): void
}

/** The system clock: `Date.now` and the global timers (unref'd, so links never keep a process alive). */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref?.()
    return t
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** Uniform randomness in [0, 1) (reconnect jitter). @default Math.random */
export type RandomFn = () => number

/**
 * A bidirectional message pipe that keeps message boundaries and order (a WebSocket, a memory pipe). What the
 * transport hands the link manager; nothing on it is trusted.
 */
export interface MessagePipe {
  /**
   * Inbound: the remote IP address (no port), used for rate limits and address groups. Outbound: the address
   * dialed.
   */
  readonly remoteAddress: string
  /** Whether `send` still writes. */
  readonly isOpen: boolean
  /** Writes one message; `done` (optional) is called once it is written or failed. Ignored when closed. */
  send(bytes: Uint8Array, done?: (err?: Error) => void): void
  /** The one handler for incoming messages (set once). */
  onMessage(handler: (bytes: Uint8Array) => void): void
  /** Registers a handler called once when the pipe is closed, by either side (several may be registered). */
  onClose(handler: () => void): void
  /** Starts closing; messages already sent by the peer may still arrive until `onClose`. */
  close(code?: number, reason?: string): void
  /** Drops the connection at once (no closing handshake). */
  terminate?(): void
}

/** What a transport's listener is asked and given. */
export interface LinkListener {
  /**
   * Asked before any work is done for a connection from `remoteAddress` (an IP address): `false` refuses it (a
   * WebSocket transport answers 429 before the upgrade). Rate limits and handshake caps live here.
   */
  admit(remoteAddress: string): boolean
  /** An admitted connection. */
  accept(pipe: MessagePipe): void
}

/** Carries message pipes between nodes. `ws` by default; an in-memory one in `@x/node-link/testing`. */
export interface LinkTransport {
  /** Starts delivering inbound connections to `listener`. */
  listen(listener: LinkListener): void | Promise<void>
  /** Opens a pipe to `address` (a canonical link address, see `parseLinkAddress`). */
  dial(address: string, options: { signal: AbortSignal }): Promise<MessagePipe>
  /** Stops accepting and drops connections the manager never took over. */
  close(): void | Promise<void>
}

/** The message pipe `secure` runs its handshake over (the shape of `@x/pqc`'s `HandshakePipe`). */
export interface HandshakePipe {
  /** Sends one handshake message. */
  send(bytes: Uint8Array): void
  /** Registers the handler for handshake messages; the returned function unregisters it (call it when done). */
  onMessage(handler: (bytes: Uint8Array) => void): () => void
}

/** An authenticated, encrypted channel produced by `secure`. */
export interface SecureChannel {
  /** The peer's proven node ID (40 hex characters for `@x/pqc` identities). */
  readonly peerId: string
  /** The peer's public identity key (handed to `hello` listeners, e.g. to check certificates it signed). */
  readonly peerPublicKey: Uint8Array
  /** Encrypts and authenticates one record. */
  seal(plaintext: Uint8Array): Uint8Array
  /** Opens one record; throws on a tampered, replayed or reordered record (the link is then closed). */
  open(record: Uint8Array): Uint8Array
  /** Records that arrived while the last handshake message was still being verified (delivered first). */
  readonly trailing?: readonly Uint8Array[]
}

/** Options `secure` is called with. */
export interface SecureOptions {
  /** `initiator`: this side dialed; `responder`: it accepted. */
  role: 'initiator' | 'responder'
  /** Initiator: the node ID the dialer expects; the handshake must fail unless the peer proves it. */
  expectedPeerId?: string
  /** Bytes both sides mix into the handshake transcript: {@link LINK_PROTOCOL}. */
  prologue: Uint8Array
  /** Aborted when the handshake deadline passes or the manager closes. */
  signal: AbortSignal
}

/**
 * Runs a mutually authenticated handshake over `pipe` and resolves with the secure channel. The package does not
 * import a crypto library: `apps/node` builds this from `@x/pqc` (`createInitiator`/`createResponder`,
 * `handshake` with a worker pool). It must register one handler on `pipe` and unregister it when done.
 */
export type SecureFn = (pipe: HandshakePipe, options: SecureOptions) => Promise<SecureChannel>

/** The verdict of a dial policy. */
export type DialDecision =
  | {
      /** Dial. */
      allow: true
      /** The exact address to dial. */
      address: string
    }
  | {
      /** Do not dial. */
      allow: false
      /** Why not (logged and counted). */
      reason: string
    }

/**
 * Decides whether `address` may be dialed to reach `nodeId`, and the exact address to dial (e.g. with its host
 * name replaced by the checked IP address, so a second DNS answer cannot differ). Every dial goes through it.
 */
export type DialPolicy = (nodeId: string, address: string) => DialDecision | Promise<DialDecision>

/**
 * Whether a node (after its handshake) or an address (before it, `nodeId` undefined) is one this node already
 * has reason to trust as a real node, e.g. it is in the DHT routing table. Preferred nodes get link slots that
 * fresh identities cannot take, and are never evicted as idle.
 */
export type PreferenceFn = (nodeId: string | undefined, remoteAddress: string) => boolean

/** A link as listed by `list()` (a snapshot). */
export interface LinkInfo {
  /** The peer's proven node ID. */
  readonly nodeId: string
  /** `outbound`: this node dialed; `inbound`: the peer did. */
  readonly direction: 'inbound' | 'outbound'
  /** Inbound: the remote IP; outbound: the address dialed. */
  readonly address: string
  /** When the handshake completed (clock ms). */
  readonly since: number
  /** `connecting`: authenticated, not yet activated by the arbiter; `closed`: retired and draining. */
  readonly state: 'connecting' | 'open' | 'closed'
  /** Last application frame in either direction (clock ms). */
  readonly lastActivity: number
}

/** What `hello` listeners get: the peer's own (authenticated) statement on a new link. */
export interface HelloEvent {
  /** The peer's proven node ID. */
  readonly nodeId: string
  /** The peer's public identity key (as proven by the handshake). */
  readonly publicKey: Uint8Array
  /** The address the node says it listens on, canonical; `undefined` when absent or malformed. */
  readonly address: string | undefined
  /** The application's hello data (see `LinkManagerInit.helloData`), at most `MAX_HELLO_DATA_BYTES`. */
  readonly data: Uint8Array | undefined
}

/** Events of a link manager. */
export interface LinkEvents {
  /** A node got an active link after having none. */
  open: {
    /** The node. */
    readonly nodeId: string
  }
  /** A node's last active link closed. */
  close: {
    /** The node. */
    readonly nodeId: string
  }
  /** A node's hello arrived on a link (once per link). */
  hello: HelloEvent
}

/** Counters (a snapshot). */
export interface LinkStats {
  /** Links held (any state). */
  links: number
  /** Distinct nodes with an active link. */
  connectedNodes: number
  /** Handshakes running now. */
  pendingHandshakes: number
  /** Handshakes completed so far. */
  handshakes: number
  /** Handshakes failed so far (bad proof, timeout, closed pipe). */
  handshakeFailures: number
  /** Connections refused before the handshake: rate limits and the cap on concurrent handshakes. */
  handshakesRefused: number
  /** Authenticated links refused for want of a slot. */
  slotsRefused: number
  /** Links evicted (idle, or to make room for a preferred node). */
  evicted: number
  /** Dials the dial policy refused. */
  dialsRefused: number
  /** Records that failed to open (the link was closed). */
  badRecords: number
  /** Application frames received. */
  framesIn: number
  /** Application frames sent. */
  framesOut: number
  /** Links replaced by a newer one to the same node. */
  linksRetired: number
  /** Frames held on a newer link until the older one drained. */
  framesHeld: number
  /** Frames whose write failed (the link was closing or gone). */
  sendErrors: number
}
