import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { AddressShare } from './admission'
import type { Endpoint } from './endpoints/endpoint'
import type { GuardSession } from './types'

/** One WebSocket connection, on whichever endpoint. `S` is the endpoint's own per-connection state. */
export interface Conn<S = unknown> {
  readonly ws: WebSocket
  /** The upgraded socket (corked while a batch of frames is written to it). */
  readonly socket: Duplex
  readonly endpoint: Endpoint<S>
  /** Client IP address (from the injected `clientAddress`). */
  readonly address: string
  /** This connection's address share (connections and topic memberships of its address group). */
  readonly share: AddressShare
  /** Registered ID (native peer ID, or PeerJS ID). */
  id: string | undefined
  /** JSON encoding of `id`, computed once for the relay hot path. */
  idJson: string
  readonly openedAt: number
  lastSeen: number
  /** Clock time the server started closing this connection; `undefined` while open. */
  closingAt: number | undefined
  /** Token bucket. */
  tokens: number
  refilledAt: number
  rateErrorAt: number
  rateDrops: number
  /** Topic keys (`<namespace>:<topic>`) this connection is a member of. */
  topics: Set<string> | undefined
  /** Set once the close was handled; nothing is sent or handled after that. */
  closed: boolean
  /** Whether the socket is corked until the inbound chunk being handled is done. */
  corked: boolean
  /** The guard's session for this connection, when a guard is injected. */
  readonly guard: GuardSession | undefined
  /** The endpoint's state. */
  state: S
}

/** A new connection's record: open, unregistered, with a full token bucket of `tokens`. */
export function createConn<S>(
  ws: WebSocket,
  socket: Duplex,
  endpoint: Endpoint<S>,
  address: string,
  share: AddressShare,
  guard: GuardSession | undefined,
  now: number,
  tokens: number,
): Conn<S> {
  return {
    ws,
    socket,
    endpoint,
    address,
    share,
    id: undefined,
    idJson: '',
    openedAt: now,
    lastSeen: now,
    closingAt: undefined,
    tokens,
    refilledAt: now,
    rateErrorAt: 0,
    rateDrops: 0,
    topics: undefined,
    closed: false,
    corked: false,
    guard,
    state: endpoint.initialState(),
  }
}
