import type { DocStore } from '@x/crdt-sync'
import type { Logger } from 'pino'
import { CHANNEL_CRDT, type LinkManager } from './p2p-links'

/** A byte link to one other node over its P2P link (channel 0x03), shaped as `@x/crdt-sync`'s `SyncLink`. */
export interface NodeSyncLink {
  readonly remoteNodeId: string
  send(bytes: Uint8Array): void
  onMessage(handler: (bytes: Uint8Array) => void): () => void
  onClose(handler: () => void): () => void
}

export interface Replication {
  stop(): void
}

/** Creates the `SyncLink` for `nodeId` over the link manager. */
export function createNodeSyncLink(links: LinkManager, nodeId: string): NodeSyncLink {
  const closeHandlers = new Set<() => void>()
  return {
    remoteNodeId: nodeId,
    send(bytes) {
      links.send(nodeId, CHANNEL_CRDT, bytes)
    },
    onMessage(handler) {
      return links.onChannel(CHANNEL_CRDT, (from, payload) => {
        if (from === nodeId) handler(payload)
      })
    },
    onClose(handler) {
      closeHandlers.add(handler)
      return () => closeHandlers.delete(handler)
    },
  }
}

/**
 * CRDT replication between nodes: every open P2P link gets a `SyncLink` on channel 0x03 and is handed to the
 * store's replicator. Wired to `@x/crdt-sync`'s replication as soon as the package exports it.
 */
export function startReplication(_store: DocStore, _links: LinkManager, log: Logger): Replication {
  log.warn(
    {},
    'CRDT replication between nodes is not wired yet (waiting for @x/crdt-sync SyncLink replication)',
  )
  return { stop() {} }
}
