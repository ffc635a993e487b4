/** The public shapes of the signaling server: what it is given, what it reports, and what it offers. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type {
  ClientAddressFn,
  Clock,
  Logger,
  NodeRelay,
  PeerDirectory,
  PeerIdFromPublicKeyFn,
  Registration,
  SignalingGuard,
  VerifyFn,
} from './types'

/** Injected services. */
export interface SignalingComponents {
  /** Signature verification for `register` (ML-DSA-87 in the node). */
  verify: VerifyFn
  /** Peer ID derivation from a public key. */
  peerIdFromPublicKey: PeerIdFromPublicKeyFn
  /** Cross-node peer and topic directory; without it the server is standalone. */
  directory?: PeerDirectory
  /** Frame transport to other signaling nodes; with a directory, signals reach peers on other nodes. */
  relay?: NodeRelay
  /** @default silent */
  logger?: Logger
  /** Time and timers. @default the system clock */
  clock?: Clock
  /** Random bytes (challenges, PeerJS IDs). @default node:crypto randomFillSync */
  random?: (length: number) => Uint8Array
  /** Admission hook (abuse detection) consulted for every connection and frame. @default none */
  guard?: SignalingGuard
  /** The client address of an upgrade (behind a proxy: from trusted forwarding headers). @default socket address */
  clientAddress?: ClientAddressFn
}

/** Counters and gauges. */
export interface SignalingStats {
  /** Open WebSocket connections, all endpoints. */
  connections: number
  /** Registered peer IDs on this server (native and PeerJS). */
  peers: number
  /** Registered peers whose socket is open (every registered peer: a closed socket unregisters at once). */
  connectedPeers: number
  /** Topics with at least one local member (native and y-webrtc). */
  topics: number
  /** Address groups (IPv4 addresses, IPv6 /64s) with an open connection, a topic membership or held signals. */
  addresses: number
  /** Frames delivered to a peer or forwarded to another node. */
  relayed: number
  /** Frames refused (bad, unauthenticated, too large, unknown type). */
  rejected: number
  /** Frames dropped by the rate limiter or the guard. */
  rateLimited: number
  /** Successful registrations. */
  registrations: number
  /** Failed registrations. */
  authFailures: number
  /** Signals currently held for offline peers. */
  held: number
  /** Held signals answered with an expiry. */
  expired: number
  /** Connections closed for inactivity. */
  timedOut: number
  /** Connections closed as slow consumers. */
  slowConsumers: number
  /** Frames forwarded to other nodes. */
  forwarded: number
  /** Envelopes from other nodes dropped: malformed, not a signal, or from a peer the sending node does not host. */
  relayRejected: number
  /** Upgrades refused: server closing, connection caps, guard. */
  refusedConnections: number
  /** From `directory.getStats()`, when provided. */
  dhtNodes?: number
  /** From `directory.getStats()`, when provided. */
  dhtBuckets?: number
}

/** One registered peer, as {@link SignalingServer.listPeers} reports it. */
export interface SignalingPeerInfo {
  /** Registered ID (native peer ID or PeerJS ID). */
  id: string
  /** The endpoint it registered on. */
  protocol: 'native' | 'peerjs'
  /** `open`, or `closing` once the server began closing its connection. */
  state: 'open' | 'closing'
  /** The client's IP address (from `clientAddress`). */
  address: string
  /** When its connection opened, in clock milliseconds. */
  since: number
}

/** A running signaling server. */
export interface SignalingServer {
  /** Starts an own HTTP server (REST for PeerJS + WebSocket upgrades). Resolves with the bound address. */
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
  /**
   * Routes an HTTP upgrade by path. Returns `false` (and leaves the socket untouched) if the path is not one
   * of ours, so the caller can try its other handlers.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean
  /** Answers `GET <peerjs>/id` (PeerJS REST). Returns `false` if the request is not ours. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean
  /** Counters and gauges (cheap, synchronous). */
  getStats(): SignalingStats
  /**
   * Registered peers (native first, then PeerJS), at most `limit` of them (`peers` in {@link getStats} is the
   * full count). Synchronous, O(limit).
   * @param options.limit - most entries returned. @default Infinity
   */
  listPeers(options?: { limit?: number }): SignalingPeerInfo[]
  /** The signed registration statement of a native peer registered here, or `undefined`. */
  getRegistration(peerId: string): Registration | undefined
  /** Stops accepting, closes every socket with 1001, clears every timer, withdraws peers. Idempotent. */
  close(): Promise<void>
  /** This node's ID in directory records. */
  readonly nodeId: string
}
