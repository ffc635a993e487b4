import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { AdmitFn } from '@x/kademlia'
import type { PrometheusMetrics } from '@x/node-monitor'
import type { IncomingMessage } from 'node:http'
import type { ClientAddressResolver } from '../client-address'
import type { NodeConfig } from '../config'
import type { PeerEntry } from '../schemas'
import type { Core } from '../system'

export interface NodeAddresses {
  rest: { host: string; port: number }
  ws: { host: string; port: number }
  dht: { host: string; port: number }
}

/** Where the node is in its life; WebSocket upgrades are refused unless it is starting or running. */
export type NodeState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped'

/** The hooks the AI engine offers (see `ai/engine.ts`). */
export interface AiHooks {
  readonly admitDht: AdmitFn | undefined
  socketOpened(socket: Socket): boolean
  socketUpgraded(socket: Socket): void
  crdtUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean
}

/**
 * Admission hooks the AI engine installs when it starts (it starts after the DHT and the WebSocket server, in
 * the seed's order). Until then, and when it is off, everything is admitted.
 */
export class Guards {
  #ai: AiHooks | undefined

  install(ai: AiHooks | undefined): void {
    this.#ai = ai
  }

  readonly admitDht: AdmitFn = (request) => this.#ai?.admitDht?.(request) ?? true

  socketOpened(socket: Socket): boolean {
    return this.#ai?.socketOpened(socket) ?? true
  }

  socketUpgraded(socket: Socket): void {
    this.#ai?.socketUpgraded(socket)
  }

  /** A CRDT upgrade (y-websocket or Hocuspocus): false when the engine refused it (it answered the client). */
  crdtUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    return this.#ai?.crdtUpgrade(req, socket, head) ?? true
  }
}

/** Lists of peers `/api/peers` merges; signaling registers its own when it starts (after the REST API). */
export class PeerSources {
  readonly #sources = new Set<(limit: number | undefined) => PeerEntry[]>()
  add(source: (limit: number | undefined) => PeerEntry[]): () => void {
    this.#sources.add(source)
    return () => this.#sources.delete(source)
  }
  list(limit: number | undefined): PeerEntry[] {
    return [...this.#sources].flatMap((s) => s(limit))
  }
}

/** How the node meets the network, from its settings: who a client is, which pages may connect, how many. */
export interface NetPolicy {
  /** The client address of a request (behind trusted proxies: from their forwarding headers). */
  readonly clientAddress: ClientAddressResolver
  /** Whether a browser request's `Origin` may open the browser WebSocket paths. */
  readonly originAllowed: (req: IncomingMessage) => boolean
  /** Open connections per port (from `maxConnections`, else the file-descriptor limit). */
  readonly budgets: { readonly ws: number; readonly rest: number }
  /** The soft file-descriptor limit, when it could be read. */
  readonly fdLimit: number | undefined
}

/** What every component of the node can use. */
export interface NodeCore extends Core {
  readonly net: NetPolicy
  readonly config: NodeConfig
  readonly dataDir: string
  readonly addresses: NodeAddresses
  readonly metrics: PrometheusMetrics
  readonly guards: Guards
  readonly peerSources: PeerSources
  readonly version: string
  readonly startedAt: number
  /** The node's state, read by the WebSocket server's upgrade router. */
  state(): NodeState
}
