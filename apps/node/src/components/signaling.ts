import { getStatus as pqcStatus, idFromPublicKey, verify as mlDsaVerify } from '@x/pqc'
import { createSignalingServer, type SignalingServer } from '@x/signaling'
import type { AiEngine } from '../ai/engine'
import { signalingHosts } from '../config'
import { createNodeRelay } from '../adapters/node-relay'
import { registerSignalingMetrics } from '../metrics'
import type { PeerEntry } from '../schemas'
import type { CheckResult } from '@x/node-monitor'
import type { Component } from '../system'
import type { NodeCore } from './core'
import type { CryptoProduct } from './crypto'
import type { P2pProduct } from './p2p'

export interface SignalingProduct {
  readonly server: SignalingServer
  /** `true` once `close()` was called: the health check reports `down`. */
  closed: boolean
  readonly detach: () => void
}

type Deps = NodeCore & { readonly crypto: CryptoProduct; readonly p2p: P2pProduct; readonly ai: AiEngine }

/**
 * WebRTC signaling on the WebSocket port (`/p2p-signaling`, `/y-webrtc`, `/peerjs`), federated through the DHT
 * directory and the node links.
 */
export const signalingComponent: Component<Deps, SignalingProduct> = {
  start({ crypto, p2p, ai, config, net, peerSources, metrics, log }) {
    // OpenSSL verifies an ML-DSA-87 signature in ~0.3 ms: on the event loop. The pure-JS and WASM backends take
    // ~5 ms: in the worker pool, so a reconnect storm cannot starve the relay.
    const native = pqcStatus().backend === 'node'
    const server = createSignalingServer(
      {
        verify: native
          ? (publicKey, message, signature) => mlDsaVerify(publicKey, message, signature)
          : (publicKey, message, signature) => crypto.pool.verify(publicKey, message, signature),
        peerIdFromPublicKey: (publicKey) => Buffer.from(idFromPublicKey(publicKey)).toString('hex'),
        directory: p2p.directory,
        relay: createNodeRelay(
          p2p.links,
          (nodeId) => p2p.directory.resolveNode(nodeId),
          log.child({ component: 'relay' }),
        ),
        logger: log.child({ component: 'signaling' }),
        guard: ai.guard,
        clientAddress: (req) => net.clientAddress(req),
      },
      {
        nodeId: crypto.identity.idString,
        publicHosts: signalingHosts(config),
        maxConnections: net.budgets.ws,
        maxConnectionsPerAddress: config.maxConnectionsPerAddress,
      },
    )
    registerSignalingMetrics(metrics, () => server.getStats())
    const offRoute = p2p.route({
      upgrade: (req, socket, head) => server.handleUpgrade(req, socket, head),
      request: (req, res) => server.handleRequest(req, res),
    })
    const offPeers = peerSources.add((limit) =>
      server.listPeers({ ...(limit === undefined ? {} : { limit }) }).map((p) => {
        const entry: PeerEntry = { id: p.id, kind: 'signaling-peer', state: p.state, since: p.since }
        if (p.address !== undefined) entry.address = p.address
        return entry
      }),
    )
    return {
      server,
      closed: false,
      detach: () => {
        offRoute()
        offPeers()
      },
    }
  },
  async stop(product) {
    product.closed = true
    await product.server.close()
    product.detach()
  },
  health:
    (product, { p2p }) =>
    () =>
      signalingHealth({
        closed: product.closed,
        listening: p2p.server.listening,
        stats: product.server.getStats(),
      }),
  stats:
    ({ server }) =>
    () =>
      server.getStats(),
}

/** `signaling` in `/api/health`: `down` once closed or when the WebSocket port carrying it is closed. */
export function signalingHealth(s: { closed: boolean; listening: boolean; stats: object }): CheckResult {
  if (s.closed) return { status: 'down', reason: 'closed', ...s.stats }
  if (!s.listening) return { status: 'down', reason: 'the WebSocket port is closed', ...s.stats }
  return { status: 'ok', ...s.stats }
}
