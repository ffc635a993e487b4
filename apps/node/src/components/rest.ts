import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { getStatus as pqcStatus } from '@x/pqc'
import type { AiEngine } from '../ai/engine'
import { buildApp, type AppNode } from '../app'
import { limitConnections } from '../connection-limits'
import { loadTlsOptions, tlsStatus } from '../tls'
import { NodeError } from '../errors'
import type { DhtNodesReport, PeerEntry, PeersReport } from '../schemas'
import type { Component } from '../system'
import type { NodeCore } from './core'
import type { CryptoProduct } from './crypto'
import type { DhtProduct } from './dht'
import type { P2pProduct } from './p2p'

type Deps = NodeCore & {
  readonly crypto: CryptoProduct
  readonly dht: DhtProduct
  readonly p2p: P2pProduct
  readonly ai: AiEngine
}

/** What `/api/*` shows of the node, over the components started before the REST API (and the registries). */
export function appView(deps: Deps): AppNode {
  const { crypto, dht, p2p, ai, health, stats, metrics, peerSources, version, addresses, config } = deps
  return {
    version,
    wsPort: addresses.ws.port,
    health,
    metricsContentType: metrics.contentType,
    metricsText: () => metrics.metricsText(),
    cryptoStatus: () => ({
      ...pqcStatus(),
      nodeId: crypto.identity.idString,
      keyFileEncrypted: crypto.keyFileEncrypted,
      tls: tlsStatus(config.tlsCert !== ''),
    }),
    dhtNodes(): DhtNodesReport {
      if (!dht.node.started) throw new NodeError('X_NODE_NOT_READY', 'the DHT is not running')
      const table = dht.node.table
      const nodes: DhtNodesReport['nodes'] = []
      for (const entry of table) {
        nodes.push({
          id: Buffer.from(entry.id).toString('hex'),
          address: entry.address,
          lastSeen: entry.lastSeen,
          bucket: table.bucketIndex(entry.id),
        })
      }
      const s = dht.node.getStats()
      return {
        nodes,
        stats: { totalNodes: s.totalNodes, bucketsUsed: s.bucketsUsed, bootstrapNodes: s.bootstrapNodes },
      }
    },
    aiFlagged: () => ({ enabled: ai.enabled, flagged: ai.flagged() }),
    async peers(options: { limit?: number; addresses?: boolean } = {}): Promise<PeersReport> {
      const snap = await stats.collect()
      const sig = (snap.signaling ?? {}) as Partial<PeersReport['signaling']>
      const d = (snap.dht ?? {}) as Partial<PeersReport['dht']>
      const linkList = p2p.listLinks()
      const openLinks = linkList.filter((l) => l.state === 'open').length
      const connectedPeers = sig.connectedPeers ?? 0
      let list: PeerEntry[] = [...linkList, ...peerSources.list(options.limit)]
      // Who is connected from where is the admin's business only.
      if (options.addresses !== true) list = list.map(({ address: _address, ...entry }) => entry)
      return {
        connected: openLinks + connectedPeers,
        total: linkList.length + (sig.peers ?? 0),
        list,
        signaling: {
          connections: sig.connections ?? 0,
          peers: sig.peers ?? 0,
          connectedPeers,
          dhtNodes: sig.dhtNodes ?? d.totalNodes ?? 0,
          dhtBuckets: sig.dhtBuckets ?? d.bucketsUsed ?? 0,
        },
        dht: {
          totalNodes: d.totalNodes ?? 0,
          bucketsUsed: d.bucketsUsed ?? 0,
          bootstrapNodes: d.bootstrapNodes ?? 0,
        },
      }
    },
  }
}

/** The REST API (Fastify) on its own port. */
export const restComponent: Component<Deps, FastifyInstance> = {
  async start(deps) {
    const { config, net } = deps
    const app = await buildApp(appView(deps), {
      logger: deps.log.child({ component: 'rest' }),
      adminToken: config.adminToken,
      trustProxy: config.trustProxy,
      ...(config.tlsCert === '' ? {} : { https: loadTlsOptions(config) }),
    })
    limitConnections(app.server, {
      maxConnections: net.budgets.rest,
      maxPerAddress: config.maxConnectionsPerAddress,
      isTrustedProxy: (address) => net.clientAddress.isTrustedProxy(address),
    })
    await app.listen({ port: config.restPort, host: config.host })
    deps.addresses.rest.port = (app.server.address() as AddressInfo).port
    return app
  },
  async stop(app) {
    await app.close()
  },
}
