/**
 * What an endpoint (one wire protocol on one path) is, and what the server core offers it. The core owns
 * sockets, the connection registry, sending, timers and the topic table; an endpoint owns its protocol: how a
 * connection opens, what each message means, how the client is told about errors, and its own registry.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Admission, AddressShare } from '../admission'
import type { Conn } from '../connection'
import type { WireErrorCode } from '../errors'
import type { HoldQueue } from '../hold-queue'
import type { SignalingOptions } from '../options'
import type { Clock, GuardEndpoint, Logger, NodeRelay, PeerDirectory, Registration } from '../types'

/** Counters every part of the server adds to (reported by `getStats()`). */
export interface Counters {
  relayed: number
  rejected: number
  rateLimited: number
  registrations: number
  authFailures: number
  expired: number
  timedOut: number
  slowConsumers: number
  forwarded: number
  relayRejected: number
  refusedConnections: number
}

/** One registered peer, as `listPeers()` reports it (without its address, which the core adds). */
export interface RegisteredPeer {
  id: string
  protocol: 'native' | 'peerjs'
  conn: Conn
}

/** The server core, as endpoints see it. */
export interface ServerCore {
  readonly nodeId: string
  readonly options: SignalingOptions
  readonly log: Logger
  readonly clock: Clock
  readonly random: (length: number) => Uint8Array
  readonly counters: Counters
  readonly admission: Admission
  readonly hold: HoldQueue
  readonly directory: PeerDirectory | undefined
  readonly relay: NodeRelay | undefined
  /** True once `close()` began. */
  readonly closing: boolean
  /**
   * Queues a text frame for `conn` (written at the end of the current tick, batched with the other frames
   * produced meanwhile). A socket whose queue exceeds `maxBufferedBytes` is a slow consumer and is terminated.
   * Returns false when nothing was sent. `from` names the peer a relayed signal comes from (for the guard).
   */
  send(conn: Conn, frame: string, from?: string): boolean
  /** Starts the closing handshake; the connection is destroyed if it does not finish in `closeTimeoutMs`. */
  close(conn: Conn, code: number, reason: string): void
  /** Adds `conn` to topic `key` within the per-connection, per-address and global caps. */
  joinTopic(conn: Conn, key: string): boolean
  /** Removes `conn` from topic `key`; false if it was not a member. */
  leaveTopic(conn: Conn, key: string): boolean
  /** Removes `conn` from every topic (when its registration passes to another connection). */
  dropTopics(conn: Conn): void
  /** Forgets `share` if nothing counts against it any more (after its `held` count fell). */
  releaseShare(share: AddressShare): void
  /** The local members of topic `key`. */
  topicMembers(key: string): ReadonlySet<Conn> | undefined
  /** Runs a directory call; failures are logged, never thrown. */
  directoryCall(op: string, fn: (directory: PeerDirectory) => void | Promise<void>): Promise<void>
}

/** One wire protocol served on one path. */
export interface Endpoint<S = unknown> {
  /** Name reported to the guard and in logs. */
  readonly name: GuardEndpoint
  /** Upgrade path (and, for `request`, the REST prefix). */
  readonly path: string
  /** The state of a new connection. */
  initialState(): S
  /** The WebSocket opened (say hello, or register from the URL). */
  open(conn: Conn<S>, req: IncomingMessage): void
  /** An admitted frame: a JSON object, and the text it was parsed from. A rejection is logged, never thrown. */
  message(conn: Conn<S>, msg: Record<string, unknown>, text: string): void | Promise<void>
  /** Tells the client a frame was refused (already counted). */
  refuse(conn: Conn<S>, code: WireErrorCode, message: string): void
  /** Tells the client its frames are dropped by the rate limiter (at most once a second). */
  rateLimited(conn: Conn<S>): void
  /** The connection closed: forget its registration. Its topics are still listed and dropped after. */
  closed(conn: Conn<S>): void
  /** Once a second, for every open connection (registration deadlines). */
  sweep?(conn: Conn<S>, now: number): void
  /** A plain HTTP request (PeerJS's REST call); false if it is not this endpoint's. */
  request?(req: IncomingMessage, res: ServerResponse): boolean
  /** Registered peers, at most `limit`. */
  peers?(limit: number): RegisteredPeer[]
  /** Registered IDs (open or closing). */
  readonly registered?: number
  /** The signed registration of a peer registered here. */
  registration?(id: string): Registration | undefined
  /** Called once when the server starts (timers, subscriptions). */
  start?(): void
  /** Called once when `close()` begins; awaited after every connection is gone. */
  stop?(): Promise<void>
}

/** Builds an endpoint for a server. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each endpoint has its own connection state
export type EndpointFactory = (core: ServerCore) => Endpoint<any>
