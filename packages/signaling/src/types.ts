import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

/** Pino-shaped logger. The default is silent. */
export interface Logger {
  /** Detail useful when diagnosing. */
  debug(obj: object, msg?: string): void
  /** A normal event worth a line. */
  info(obj: object, msg?: string): void
  /** Something an operator should look at, such as a handler that failed. */
  warn(obj: object, msg?: string): void
  /** A failure this package could not handle itself. */
  error(obj: object, msg?: string): void
  /** A logger that adds `bindings` to every line. */
  child(bindings: object): Logger
}

/**
 * Time and timers (injected for tests; the same shape as `@x/kademlia`'s). Every timer of the server goes
 * through it, so a virtual clock drives liveness, hold expiry and auth timeouts without real sleeps.
 */
export interface Clock {
  /** Wall clock, milliseconds since the epoch. */
  now(): number
  /** Calls `fn` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown
  /** Cancels a pending `setTimeout`; ignores a handle that already fired. */
  clearTimeout(handle: unknown): void
}

/** The system clock: `Date.now` and the global timers. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/**
 * A peer's proof that it registered at a node: its public key, the statement it signed (protocol version 2,
 * see `statementText`) and the signature. Kept by the server for as long as the peer is registered.
 */
export interface Registration {
  /** The peer ID derived from `publicKey`. */
  peerId: string
  /** The peer's public key (ML-DSA-87 in the node). */
  publicKey: Uint8Array
  /** The exact signed text (`x-signaling/2` …). */
  statement: string
  /** The peer's signature over `statement`. */
  signature: Uint8Array
  /** The node ID the statement names: this server's. */
  node: string
  /** The host the peer says it dialed (checked against `publicHosts`). */
  host: string
  /** When the peer signed, in milliseconds since the epoch (checked within `maxClockSkewMs`). */
  time: number
}

/** Verifies `signature` over `message` with `publicKey` (the node passes ML-DSA-87 from `@x/pqc`). */
export type VerifyFn = (
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
) => boolean | Promise<boolean>

/** Derives the peer ID bound to a public key. May throw on a malformed key. */
export type PeerIdFromPublicKeyFn = (publicKey: Uint8Array) => string

/**
 * Where peers and topic members are found across nodes (the node passes a DHT-backed one).
 * Every method may be synchronous or return a promise; failures are logged and never reach peers.
 */
export interface PeerDirectory {
  /**
   * Records that `peerId` is reachable through signaling node `nodeId`. Called again periodically.
   * `registration` is the peer's own signed statement that it registered at `nodeId`, so that a directory can
   * publish a claim no other node can make.
   */
  announce(peerId: string, nodeId: string, registration: Registration): void | Promise<void>
  /** Removes the record, but only if it still points at `nodeId`. */
  withdraw(peerId: string, nodeId: string): void | Promise<void>
  /**
   * The node a peer is reachable through, or `undefined`. The server also uses it to check that a frame another
   * node relays "from" a peer comes from the node that hosts that peer, so its answer must not be something a
   * third node can forge.
   */
  lookup(peerId: string): string | undefined | Promise<string | undefined>
  /** Adds `peerId` to the members of `topic`. */
  join(topic: string, peerId: string): void | Promise<void>
  /** Removes `peerId` from the members of `topic`. */
  leave(topic: string, peerId: string): void | Promise<void>
  /** Up to `limit` member peer IDs of `topic`. */
  findTopic(topic: string, limit: number): string[] | Promise<string[]>
  /** Optional figures surfaced in `getStats()`. */
  getStats?(): {
    /** Contacts in the DHT routing table behind the directory. */
    dhtNodes: number
    /** Buckets of that table holding at least one contact. */
    dhtBuckets: number
  }
}

/** Carries frames between signaling nodes (the node passes its authenticated /p2p-node links). */
export interface NodeRelay {
  /** This node's ID, as announced in the directory. */
  readonly nodeId: string
  /** Sends an opaque text frame to node `nodeId`. May throw or reject if unreachable. */
  send(nodeId: string, frame: string): void | Promise<void>
  /** Registers the handler for frames from other nodes; returns a function that unregisters it. */
  onFrame(handler: (fromNodeId: string, frame: string) => void): () => void
}

/** The endpoint a connection came in on. */
export type GuardEndpoint = 'native' | 'y-webrtc' | 'peerjs'

/**
 * The client address of an upgrade request (an IP address, no port). The default is the socket's remote
 * address; behind a reverse proxy the app passes one that reads `Forwarded`/`X-Forwarded-For` from trusted
 * proxies. Used for per-address shares, the guard and `listPeers()`.
 */
export type ClientAddressFn = (req: IncomingMessage, socket: Duplex) => string

/**
 * Admission hook asked before work is admitted (an abuse detector, a deny list). Optional: the built-in token
 * bucket and limits apply either way. Its methods run on the hot path, so keep them cheap and synchronous; a
 * guard that throws admits (it must not take signaling down).
 */
export interface SignalingGuard {
  /**
   * A WebSocket upgrade from `address` (client IP, no port) on `endpoint`. Return a session that follows the
   * connection; `false` to refuse it with HTTP 429 (cheap: for floods); or a reason (a string) to refuse it so
   * that the client learns why: the WebSocket opens and is closed at once with 4030 and that reason (at most
   * 123 bytes), since a browser sees nothing of an HTTP refusal but close code 1006. `close(reason)` ends the
   * connection later (4030 with `reason`), e.g. when its source gets blocked; it may be called at any time after
   * `connect` returned, also from a session method called while the connection opens.
   */
  connect(
    address: string,
    endpoint: GuardEndpoint,
    close: (reason: string) => void,
  ): GuardSession | false | string
}

/** The guard's view of one connection. The optional methods tell a detector who talks to whom. */
export interface GuardSession {
  /**
   * Every inbound frame: the message `type` (`'rate-limited'` when the token bucket dropped it, `'invalid'`
   * when it is not a JSON object with a string `type`), its size in bytes, and what it is addressed to (`to`
   * or `dst`: a peer; `topic`: a topic) if anything. Return false to drop it (answered as the rate limiter
   * answers); ignored for rate-limited and invalid frames, which are dropped anyway.
   */
  frame(type: string, bytes: number, target: string | undefined): boolean
  /**
   * A frame of `bytes` bytes was sent to this connection. `from` is the sender's ID when the frame is a signal
   * relayed from a peer (native or PeerJS, from this node or another), so a guard can tell a reply to a peer
   * that made contact first from a peer reaching out; `undefined` for everything else.
   */
  sent(bytes: number, from?: string): void
  /**
   * An error with this code was sent to this connection (native endpoint: `PEER_NOT_FOUND`, …; y-webrtc, which
   * has no error frame: `BAD_MESSAGE` and `TOPIC_LIMIT` for frames it drops), or `'EXPIRED'` when a signal this
   * connection sent was held for an offline peer and expired undelivered (native `expire`, PeerJS `EXPIRE`).
   */
  error(code: string): void
  /**
   * A registration: the peer ID when its proof verified (or PeerJS opened), `undefined` when it failed. For
   * PeerJS, whose IDs anyone may claim, `credential` is a digest of the client's token (16 hex digits of its
   * SHA-256, never the token): a guard can key on whoever holds an ID, not on the ID alone.
   */
  registered(peerId: string | undefined, credential?: string): void
  /** The peer IDs a native `discover` answered this connection with (a peer may then signal them). */
  discovered?(peers: readonly string[]): void
  /** The number of topics this connection is a member of changed to `held` (native join/leave, y-webrtc). */
  topics?(held: number): void
  /** A y-webrtc `publish` from this connection went to `receivers` subscribers of `topic` (itself included). */
  published?(topic: string, receivers: number): void
  /** The connection closed. Called once. */
  closed(): void
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
