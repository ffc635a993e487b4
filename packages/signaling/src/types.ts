/** Pino-shaped logger. The default is silent. */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  child(bindings: object): Logger
}

/** Wall clock in milliseconds (injected for tests). */
export interface Clock {
  now(): number
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
  /** Records that `peerId` is reachable through signaling node `nodeId`. Called again periodically. */
  announce(peerId: string, nodeId: string): void | Promise<void>
  /** Removes the record, but only if it still points at `nodeId`. */
  withdraw(peerId: string, nodeId: string): void | Promise<void>
  /** The node a peer is reachable through, or `undefined`. */
  lookup(peerId: string): string | undefined | Promise<string | undefined>
  /** Adds `peerId` to the members of `topic`. */
  join(topic: string, peerId: string): void | Promise<void>
  /** Removes `peerId` from the members of `topic`. */
  leave(topic: string, peerId: string): void | Promise<void>
  /** Up to `limit` member peer IDs of `topic`. */
  findTopic(topic: string, limit: number): string[] | Promise<string[]>
  /** Optional figures surfaced in `getStats()`. */
  getStats?(): { dhtNodes: number; dhtBuckets: number }
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
