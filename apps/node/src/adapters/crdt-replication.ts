import { replicate, type DocStore, type SyncLink } from '@x/crdt-sync'
import type { Logger } from 'pino'
import type { LinkManager } from '@x/node-link'
import { CHANNEL_CRDT } from './channels'

export interface NodeReplication {
  getStats(): { nodes: number; sessions: number; framesIn: number; framesOut: number; badFrames: number }
  stop(): void
}

/**
 * `@x/crdt-sync`'s `SyncLink` for one remote node over the P2P links (channel 0x03). It outlives individual
 * WebSockets: it is open while any authenticated link to the node is open, so replication catches up by state
 * vectors after every reconnect.
 */
function createNodeSyncLink(links: LinkManager, nodeId: string): SyncLink & { setOpen(open: boolean): void } {
  const stateHandlers = new Set<(open: boolean) => void>()
  let open = links.isOpen(nodeId)
  return {
    get isOpen() {
      return open
    },
    send(bytes) {
      links.send(nodeId, CHANNEL_CRDT, bytes)
    },
    onMessage(handler) {
      return links.onChannel(CHANNEL_CRDT, (from, payload) => {
        if (from === nodeId) handler(payload)
      })
    },
    onStateChange(handler) {
      stateHandlers.add(handler)
      return () => stateHandlers.delete(handler)
    },
    setOpen(next) {
      if (next === open) return
      open = next
      for (const h of stateHandlers) h(open)
    },
  }
}

/** Replicates every document with every node this node has a P2P link to. */
export function startReplication(store: DocStore, links: LinkManager, log: Logger): NodeReplication {
  const perNode = new Map<
    string,
    { link: ReturnType<typeof createNodeSyncLink>; replication: ReturnType<typeof replicate> }
  >()
  const offOpen = links.on('open', ({ nodeId }) => {
    let entry = perNode.get(nodeId)
    if (!entry) {
      const link = createNodeSyncLink(links, nodeId)
      entry = { link, replication: replicate(store, link, { logger: log.child({ peerNode: nodeId }) }) }
      perNode.set(nodeId, entry)
    }
    entry.link.setOpen(true)
  })
  const offClosed = links.on('close', ({ nodeId }) => perNode.get(nodeId)?.link.setOpen(false))
  return {
    getStats() {
      const out = { nodes: perNode.size, sessions: 0, framesIn: 0, framesOut: 0, badFrames: 0 }
      for (const { replication } of perNode.values()) {
        const s = replication.getStats()
        out.sessions += s.sessions
        out.framesIn += s.framesIn
        out.framesOut += s.framesOut
        out.badFrames += s.badFrames
      }
      return out
    },
    stop() {
      offOpen()
      offClosed()
      for (const { replication } of perNode.values()) replication.close()
      perNode.clear()
    },
  }
}
