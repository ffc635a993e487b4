import type { LinkManager } from '@x/node-link'
import type { NodeRelay } from '@x/signaling'
import type { Logger } from 'pino'
import { CHANNEL_SIGNALING } from './channels'

const MAX_RELAY_FRAME_BYTES = 64 * 1024
const dec = new TextDecoder('utf-8', { fatal: true })
const enc = new TextEncoder()

/**
 * `@x/signaling`'s `NodeRelay` over the node links (channel 0x02). A frame for a node without an open link dials
 * it at the address its hello announced or, failing that, its DHT node record; either way the link manager's dial
 * policy decides whether that address may be dialed.
 */
export function createNodeRelay(
  links: LinkManager,
  resolveNode: (nodeId: string) => Promise<string | undefined>,
  log: Logger,
): NodeRelay {
  return {
    nodeId: links.nodeId,
    async send(nodeId: string, frame: string): Promise<void> {
      const bytes = enc.encode(frame)
      if (bytes.length > MAX_RELAY_FRAME_BYTES) throw new RangeError('relay frame too large')
      if (links.send(nodeId, CHANNEL_SIGNALING, bytes)) return
      const address = links.addressOf(nodeId) ?? (await resolveNode(nodeId))
      await links.sendOrDial(nodeId, CHANNEL_SIGNALING, bytes, address === undefined ? {} : { address })
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
