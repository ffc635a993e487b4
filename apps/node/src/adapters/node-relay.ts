import type { NodeRelay } from '@x/signaling'
import type { Logger } from 'pino'
import { CHANNEL_SIGNALING, type LinkManager } from './p2p-links'
import type { DhtPeerDirectory } from './peer-directory'

const MAX_RELAY_FRAME_BYTES = 64 * 1024
const dec = new TextDecoder('utf-8', { fatal: true })
const enc = new TextEncoder()

/**
 * `@x/signaling`'s `NodeRelay` over the P2P links (channel 0x02). A frame for a node without an open link dials
 * it, resolving its address from the DHT's node record when the address book has none.
 */
export function createNodeRelay(
  links: LinkManager,
  directory: () => DhtPeerDirectory | undefined,
  log: Logger,
): NodeRelay {
  return {
    nodeId: links.nodeId,
    async send(nodeId: string, frame: string): Promise<void> {
      const bytes = enc.encode(frame)
      if (bytes.length > MAX_RELAY_FRAME_BYTES) throw new RangeError('relay frame too large')
      if (!links.addresses.has(nodeId) && !links.connectedNodes().includes(nodeId)) {
        const address = await directory()?.resolveNode(nodeId)
        if (address !== undefined) links.addresses.set(nodeId, address)
      }
      await links.sendOrDial(nodeId, CHANNEL_SIGNALING, bytes)
    },
    onFrame(handler: (fromNodeId: string, frame: string) => void): () => void {
      return links.onChannel(CHANNEL_SIGNALING, (from, payload) => {
        if (payload.length > MAX_RELAY_FRAME_BYTES) return
        let frame: string
        try {
          frame = dec.decode(payload)
        } catch {
          log.debug({ from }, 'relay frame is not UTF-8')
          return
        }
        handler(from, frame)
      })
    },
  }
}
