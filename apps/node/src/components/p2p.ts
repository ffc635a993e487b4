import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import {
  LINK_PATH,
  createDialPolicy,
  createLinkManager,
  createWsTransport,
  type LinkManager,
} from '@x/node-link'
import { CHANNEL_RECORDS } from '../adapters/channels'
import { nodeListAuthorize, startReplication, type NodeReplication } from '../adapters/crdt-replication'
import { createPqcSecure } from '../adapters/pqc-secure'
import { routingTableTrust } from '../adapters/routing-table'
import { DhtPeerDirectory } from '../records/directory'
import { SYSTEM_CLOCK } from '../records/util'
import type { PeerEntry } from '../schemas'
import type { CheckResult } from '@x/node-monitor'
import { limitConnections, type ConnectionLimiter } from '../connection-limits'
import { loadTlsOptions } from '../tls'
import { registerLinkMetrics } from '../metrics'
import type { Component } from '../system'
import type { NodeCore } from './core'
import type { CrdtProduct } from './crdt'
import type { CryptoProduct } from './crypto'
import type { DhtProduct } from './dht'

const CRDT_PATH_PREFIX = '/crdt/'
/** The Hocuspocus endpoint (many documents over one socket, as `@hocuspocus/provider` 2+ speaks it). */
export const HOCUSPOCUS_PATH = '/hocuspocus'
/** How often the routing table's nodes are (re)linked. */
export const LINK_TABLE_INTERVAL_MS = 5_000
/** Routing-table nodes dialed per round. */
export const LINK_TABLE_BUDGET = 8
/** Least time between two re-publications of the node record when links open. */
export const NODE_REANNOUNCE_MS = 5_000
/** Deadline of a link handshake. */
export const LINK_HANDSHAKE_TIMEOUT_MS = 10_000

/** Something else served on the WebSocket port (the signaling server registers itself when it starts). */
export interface WsRoute {
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean
  request?(req: IncomingMessage, res: ServerResponse): boolean
}

export interface P2pProduct {
  readonly links: LinkManager
  readonly directory: DhtPeerDirectory
  readonly replication: NodeReplication
  /** The WebSocket port's HTTP(S) server (links, CRDT clients, and whatever registers a route). */
  readonly server: Server
  /** Its connection caps. */
  readonly limiter: ConnectionLimiter
  /** Adds a route on the WebSocket port; returns its removal. */
  route(route: WsRoute): () => void
  /** This node's link address as other nodes dial it. */
  readonly address: string
  /** The P2P links in `/api/peers` form. */
  listLinks(): PeerEntry[]
  readonly timer: ReturnType<typeof setInterval>
  /** Takes the links away from the DHT's record keys and proofs (at stop). */
  readonly detach: () => void
}

type Deps = NodeCore & {
  readonly crypto: CryptoProduct
  readonly crdt: CrdtProduct
  readonly dht: DhtProduct
}

/**
 * The WebSocket port and the node links on it: `@x/node-link` secured by `@x/pqc` (handshakes through the worker
 * pool), trusting the DHT routing table (dial policy, preferred slots), the directory of signed records, and CRDT
 * replication over the links.
 */
export const p2pComponent: Component<Deps, P2pProduct> = {
  async start(deps) {
    const { config, crypto, crdt, dht, guards, addresses, net, metrics, log } = deps
    const routes = new Set<WsRoute>()
    const tls = config.tlsCert !== ''
    const transport = createWsTransport({
      clientAddress: (req) => net.clientAddress(req),
      // A link is authenticated by the @x/pqc handshake (the peer proves its node ID) and encrypted by its
      // session: the TLS around it (when a node serves wss) adds nothing a link relies on, so a peer's certificate
      // is not checked (another node's may come from an internal CA).
      verifyTlsCertificate: false,
    })
    const onRequest: RequestListener = (req, res) => {
      for (const r of routes) if (r.request?.(req, res)) return
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}')
    }
    // wss when TLS is configured (X25519MLKEM768 first where OpenSSL has it); the certificate reloads on SIGHUP.
    const server: Server = tls
      ? createHttpsServer(loadTlsOptions(config), onRequest)
      : createServer(onRequest)
    // Time to send the upgrade request (slow-loris on the headers).
    server.headersTimeout = 10_000
    server.requestTimeout = 10_000
    const limiter = limitConnections(server, {
      maxConnections: net.budgets.ws,
      maxPerAddress: config.maxConnectionsPerAddress,
      isTrustedProxy: (address) => net.clientAddress.isTrustedProxy(address),
    })
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy())
      guards.socketUpgraded(socket as Socket)
      let path: string
      try {
        path = new URL(req.url ?? '/', 'http://x').pathname
      } catch {
        socket.destroy()
        return
      }
      const state = deps.state()
      if (state !== 'running' && state !== 'starting') {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n')
        return
      }
      if (path === LINK_PATH) return transport.handleUpgrade(req, socket, head)
      // Every other path is a browser path: a page from another origin may not use it (the default allows the
      // node's own hosts only), or any site a user visits could read and write a node bound to localhost.
      if (!net.originAllowed(req)) {
        socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
        ;(socket as Socket).destroySoon()
        return
      }
      if (path.startsWith(CRDT_PATH_PREFIX)) {
        let doc: string
        try {
          doc = decodeURIComponent(path.slice(CRDT_PATH_PREFIX.length))
        } catch {
          socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
          return
        }
        if (doc.length === 0 || doc.length > 256) {
          socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
          return
        }
        if (!guards.crdtUpgrade(req, socket, head)) return
        return crdt.sync.handleUpgrade(req, socket, head, doc)
      }
      if (path === HOCUSPOCUS_PATH) {
        // The same documents as /crdt/<doc>: an address the engine refuses there is refused here too.
        if (!guards.crdtUpgrade(req, socket, head)) return
        return crdt.sync.handleHocuspocusUpgrade(req, socket, head)
      }
      for (const r of routes) if (r.upgrade(req, socket, head)) return
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n')
    })
    server.on('clientError', (_err, socket) => socket.destroy())
    server.on('connection', (socket: Socket) => {
      // Connections from a trusted reverse proxy carry many clients: the engine sees them at upgrade time.
      if (net.clientAddress.isTrustedProxy(socket.remoteAddress ?? '')) return
      if (!guards.socketOpened(socket)) socket.destroy()
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.wsPort, config.host, () => resolve())
    })
    addresses.ws.port = (server.address() as AddressInfo).port
    const host = config.publicHost.includes(':') ? `[${config.publicHost}]` : config.publicHost
    const address = `${tls ? 'wss' : 'ws'}://${host}:${addresses.ws.port}`

    const trust = routingTableTrust(dht.node)
    const testnet = config.allowPrivateAddresses
    const links = createLinkManager(
      {
        transport,
        secure: createPqcSecure({
          identity: crypto.identity,
          staticKeys: crypto.staticKeys,
          crypto: crypto.pool,
          timeoutMs: LINK_HANDSHAKE_TIMEOUT_MS,
        }),
        logger: log.child({ component: 'p2p' }),
        dialPolicy: createDialPolicy({ allowPrivate: testnet, hostOf: trust.hostOf }),
        isPreferred: trust.isPreferred,
      },
      {
        nodeId: crypto.identity.idString,
        address,
        helloData: crypto.signer.helloData(),
        handshakeTimeoutMs: LINK_HANDSHAKE_TIMEOUT_MS,
        // On a testnet every node shares one address (127.0.0.1): per-address and per-group limits would count
        // the whole network as one attacker.
        ...(testnet
          ? { maxLinksPerGroup: 64, handshakeBurstPerAddress: 64, handshakesPerAddressPerSecond: 20 }
          : {}),
      },
    )
    links.on('hello', (hello) => {
      dht.keys.acceptHello(hello.nodeId, hello.publicKey, hello.data).then(
        (ok) => {
          if (!ok) links.disconnect(hello.nodeId, 'bad record-key certificate')
        },
        // The verification could not run (the worker pool closes while the node stops): nothing to decide.
        (err: unknown) => log.debug({ err, nodeId: hello.nodeId }, 'record-key certificate not checked'),
      )
    })
    links.onChannel(CHANNEL_RECORDS, (from, payload) => dht.proofs.handle(from, payload))
    dht.keys.attach({ connect: (nodeId, a) => links.connect(nodeId, a) })
    dht.proofs.attach({
      sendOrDial: (nodeId, payload) => links.sendOrDial(nodeId, CHANNEL_RECORDS, payload),
      send: (nodeId, payload) => links.send(nodeId, CHANNEL_RECORDS, payload),
    })
    await links.start()
    registerLinkMetrics(metrics, () => links.getStats())

    const directory = new DhtPeerDirectory(
      {
        store: dht.node,
        signer: { sign: (body) => crypto.signer.signWith(crypto.pool, body) },
        proofs: dht.proofs,
        clock: SYSTEM_CLOCK,
        logger: log.child({ component: 'directory' }),
      },
      { nodeId: crypto.identity.idString, address },
    )
    directory.start(Math.min(config.bootstrapIntervalMs, 60_000))
    // The node record published at start-up is refused by nodes that cannot check it yet (no link, so no record
    // key): publish it again as links come up, at most every NODE_REANNOUNCE_MS.
    let reannouncedAt = 0
    links.on('open', () => {
      const now = Date.now()
      if (now - reannouncedAt < NODE_REANNOUNCE_MS) return
      reannouncedAt = now
      void directory.announceNode()
    })
    const replicationLog = log.child({ component: 'replication' })
    const replication: NodeReplication = startReplication(crdt.store, links, replicationLog, {
      authorize: nodeListAuthorize(config.crdtNodes),
      // Another node may only lower access (a node trusted to write a document could do worse); a new one is
      // passed on to the other nodes, once (by its ID), so it reaches every node hosting the document.
      onRevoke(revocation, fromNode) {
        let result: { applied: boolean; sessions: number }
        try {
          result = crdt.revoke(revocation, fromNode)
        } catch (err) {
          replicationLog.warn({ err, fromNode, doc: revocation.docName }, 'refused a revocation')
          return
        }
        if (!result.applied) return
        replicationLog.info(
          { fromNode, doc: revocation.docName, id: revocation.id, sessions: result.sessions },
          'revocation from another node applied',
        )
        replication
          .revoke(revocation, fromNode)
          .catch((err: unknown) =>
            replicationLog.warn({ err, doc: revocation.docName }, 'could not pass a revocation on'),
          )
      },
    })

    // Keep links to the nodes of the routing table (a full mesh in small networks, bounded by the link slots).
    const wanted = new Set<string>()
    let linking = false
    const linkRoutingTable = async (): Promise<void> => {
      const state = deps.state()
      if (linking || (state !== 'running' && state !== 'starting')) return
      linking = true
      try {
        const inTable = new Set<string>()
        let budget = LINK_TABLE_BUDGET
        for (const entry of dht.node.table) {
          const id = Buffer.from(entry.id).toString('hex')
          inTable.add(id)
          if (wanted.has(id) || links.isOpen(id) || budget-- <= 0) continue
          const a = links.addressOf(id) ?? (await directory.resolveNode(id))
          if (a === undefined) continue
          wanted.add(id)
          links.want(id, a)
        }
        for (const id of wanted) {
          if (inTable.has(id)) continue
          wanted.delete(id)
          links.unwant(id)
        }
      } finally {
        linking = false
      }
    }
    const timer = setInterval(() => void linkRoutingTable(), LINK_TABLE_INTERVAL_MS)
    timer.unref()
    void linkRoutingTable()

    return {
      links,
      directory,
      replication,
      server,
      limiter,
      address,
      timer,
      detach: () => {
        dht.keys.attach(undefined)
        dht.proofs.attach(undefined)
      },
      route(route) {
        routes.add(route)
        return () => routes.delete(route)
      },
      listLinks: () =>
        links.list().map((l) => ({
          id: l.nodeId,
          kind: 'p2p-link' as const,
          state: l.state,
          address: l.address,
          direction: l.direction,
          since: l.since,
        })),
    }
  },
  async stop({ links, directory, replication, server, timer, detach }) {
    clearInterval(timer)
    server.close()
    await Promise.race([directory.withdrawAll(), new Promise((r) => setTimeout(r, 2_000).unref())])
    replication.stop()
    detach()
    await links.close()
    server.closeAllConnections()
  },
  health:
    ({ links, server }, { config, dht }) =>
    () =>
      p2pHealth({
        listening: server.listening,
        seedNodes: config.seedNodes.length,
        knownNodes: dht.node.getStats().totalNodes,
        openLinks: links.connectedNodes().length,
        stats: links.getStats(),
      }),
  stats:
    ({ links, replication, limiter }) =>
    () => ({
      ...links.getStats(),
      replication: replication.getStats(),
      wsPort: { open: limiter.open, refused: { ...limiter.refused } },
    }),
}

/**
 * `p2p` in `/api/health`: `down` when the WebSocket port is closed; `degraded` when this node should have links
 * (seed nodes are configured, or the routing table knows nodes) and has none; `ok` otherwise.
 */
export function p2pHealth(s: {
  listening: boolean
  seedNodes: number
  knownNodes: number
  openLinks: number
  stats: object
}): CheckResult {
  const details = { ...s.stats, links: s.openLinks }
  if (!s.listening) return { status: 'down', reason: 'the WebSocket port is closed', ...details }
  if ((s.seedNodes > 0 || s.knownNodes > 0) && s.openLinks === 0) {
    return {
      status: 'degraded',
      reason: s.seedNodes > 0 ? 'no link although seed nodes are configured' : 'no link to any known node',
      ...details,
    }
  }
  return { status: 'ok', ...details }
}
