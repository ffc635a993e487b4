import {
  replicate,
  type Clock,
  type DocStore,
  type Replication,
  type ReplicationAuthorize,
  type SyncLink,
} from '@x/crdt-sync'
import { DEFAULT_MAX_RECORD_BYTES } from '@x/pqc'
import type { Logger } from 'pino'
import { CHANNEL_CRDT } from './channels'

/** What replication needs from the node's link layer (`@x/node-link`): frames on one channel, open/close events. */
export interface ReplicationLinks {
  send(nodeId: string, channel: number, payload: Uint8Array): boolean
  onChannel(channel: number, handler: (from: string, payload: Uint8Array) => void): () => void
  on(event: 'open' | 'close', handler: (event: { readonly nodeId: string }) => void): () => void
  isOpen(nodeId: string): boolean
}

export interface NodeReplicationOptions {
  /** Which node may read and write which document; see {@link nodeListAuthorize}. */
  authorize: ReplicationAuthorize
  /** Timers of the periodic resync. @default the system clock */
  clock?: Clock
  /** @default 300_000 */
  resyncIntervalMs?: number
}

export interface NodeReplicationStats {
  /** Nodes with an open link and a replication (state exists for no other node). */
  nodes: number
  sessions: number
  framesIn: number
  framesOut: number
  badFrames: number
  /** Documents subscribed to at other nodes, and documents other nodes subscribed to here (summed over nodes). */
  subscribed: number
  subscribers: number
  /** Subscriptions and updates refused by the trust rule. */
  denied: number
}

export interface NodeReplication {
  getStats(): NodeReplicationStats
  stop(): void
}

/** One @x/pqc session record carries 1 MiB of plaintext, of which the link layer takes one byte for the channel. */
export const LINK_FRAME_MAX_BYTES = DEFAULT_MAX_RECORD_BYTES - 1

/**
 * The node's trust rule for documents: the node IDs in `nodes` may read and write every document this node
 * holds, `'*'` lets every authenticated node do so (a closed network or a testnet), and an empty list
 * replicates with no one. A linked node is authenticated, never trusted by default.
 */
export function nodeListAuthorize(nodes: readonly string[]): ReplicationAuthorize {
  if (nodes.includes('*')) return () => true
  const allowed = new Set(nodes.map((n) => n.toLowerCase()))
  return (nodeId) => allowed.has(nodeId.toLowerCase())
}

/**
 * Replicates documents by interest with every node this node has a P2P link to (channel 0x03), under
 * `options.authorize`. A replication exists only while its node's link is open: a close drops it with its
 * state and timer, and the next open starts a new one that catches up by state vectors.
 */
export function startReplication(
  store: DocStore,
  links: ReplicationLinks,
  log: Logger,
  options: NodeReplicationOptions,
): NodeReplication {
  const perNode = new Map<
    string,
    { replication: Replication; deliver: Set<(bytes: Uint8Array) => void>; close(): void }
  >()
  // Counters of replications already dropped, so totals do not go backwards when a link closes.
  const past = { sessions: 0, framesIn: 0, framesOut: 0, badFrames: 0, denied: 0 }

  const drop = (nodeId: string): void => {
    const entry = perNode.get(nodeId)
    if (!entry) return
    perNode.delete(nodeId)
    const s = entry.replication.getStats()
    past.sessions += s.sessions
    past.framesIn += s.framesIn
    past.framesOut += s.framesOut
    past.badFrames += s.badFrames
    past.denied += s.denied
    entry.close()
  }

  const offFrames = links.onChannel(CHANNEL_CRDT, (from, payload) => {
    const entry = perNode.get(from)
    if (entry) for (const deliver of entry.deliver) deliver(payload)
  })
  const offOpen = links.on('open', ({ nodeId }) => {
    if (perNode.has(nodeId)) return
    const deliver = new Set<(bytes: Uint8Array) => void>()
    const link: SyncLink = {
      maxFrameBytes: LINK_FRAME_MAX_BYTES,
      get isOpen() {
        return links.isOpen(nodeId)
      },
      send(bytes) {
        links.send(nodeId, CHANNEL_CRDT, bytes)
      },
      onMessage(handler) {
        deliver.add(handler)
        return () => deliver.delete(handler)
      },
      // Never called with `false`: a close drops the whole replication instead.
      onStateChange: () => () => undefined,
    }
    const replication = replicate(
      {
        store,
        link,
        authorize: options.authorize,
        clock: options.clock,
        logger: log.child({ peerNode: nodeId }),
      },
      { peerId: nodeId, resyncIntervalMs: options.resyncIntervalMs },
    )
    perNode.set(nodeId, {
      replication,
      deliver,
      close() {
        replication.close()
        deliver.clear()
      },
    })
  })
  const offClosed = links.on('close', ({ nodeId }) => drop(nodeId))

  return {
    getStats() {
      const out: NodeReplicationStats = { nodes: perNode.size, ...past, subscribed: 0, subscribers: 0 }
      for (const { replication } of perNode.values()) {
        const s = replication.getStats()
        out.sessions += s.sessions
        out.framesIn += s.framesIn
        out.framesOut += s.framesOut
        out.badFrames += s.badFrames
        out.denied += s.denied
        out.subscribed += s.subscribed
        out.subscribers += s.subscribers
      }
      return out
    },
    stop() {
      offOpen()
      offClosed()
      offFrames()
      for (const nodeId of [...perNode.keys()]) drop(nodeId)
    },
  }
}
