import { mkdir, access } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { join, resolve } from 'node:path'
import type { Duplex } from 'node:stream'
import type { AddressInfo, Socket } from 'node:net'
import { Level } from 'level'
import { pino, type Logger } from 'pino'
import type { FastifyInstance } from 'fastify'
import {
  Identity,
  createStaticKeys,
  getStatus as pqcStatus,
  idFromPublicKey,
  initPqc,
  readKeyFile,
  verify as mlDsaVerify,
  writeKeyFile,
  type StaticKeys,
} from '@x/pqc'
import { createKademlia, createUdpTransport, type KademliaNode } from '@x/kademlia'
import { createSignalingServer, type SignalingServer } from '@x/signaling'
import { createDocStore, createSyncServer, type DocStore, type SyncServer } from '@x/crdt-sync'
import {
  createHealthRegistry,
  createPrometheusMetrics,
  createStatsRegistry,
  createSystemMonitor,
  type HealthRegistry,
  type PrometheusMetrics,
  type StatsRegistry,
  type SystemMonitor,
} from '@x/node-monitor'
import { buildApp, type AppNode } from './app'
import { redactConfig, signalingHosts, type NodeConfig } from './config'
import { NodeError } from './errors'
import type { AiFlaggedReport, CryptoStatusReport, DhtNodesReport, PeerEntry, PeersReport } from './schemas'
import { RecordSigner } from './adapters/dht-records'
import { LinkManager, P2P_PATH } from './adapters/p2p-links'
import { DhtPeerDirectory, createRecordValidator, onContactHost } from './adapters/peer-directory'
import { createNodeRelay } from './adapters/node-relay'
import { startReplication, type NodeReplication } from './adapters/crdt-replication'
import { createAiEngine, type AiEngine } from './ai/engine'
import { createClientAddress } from './client-address'

export const VERSION = '0.1.0'
export const KEY_FILE = 'identity.key'
export const ROUTING_TABLE_KEY = 'routing-table'
/** Routing table snapshots are written this often while running (and at shutdown). */
export const ROUTING_PERSIST_INTERVAL_MS = 60_000
const CRDT_PATH_PREFIX = '/crdt/'

type Db = Level<string, Uint8Array>
interface KvStore {
  get(key: string): Promise<Uint8Array | undefined>
  put(key: string, value: Uint8Array): Promise<void>
}

export interface NodeAddresses {
  rest: { host: string; port: number }
  ws: { host: string; port: number }
  dht: { host: string; port: number }
}

export interface XNode extends AppNode {
  readonly config: NodeConfig
  readonly logger: Logger
  /** Set once `start()` ran the crypto step. */
  readonly nodeId: string
  readonly addresses: NodeAddresses
  /** Runs the seed's start-up order. Rejects with the failing step's error (everything started is stopped). */
  start(): Promise<void>
  /** Graceful shutdown in reverse order; idempotent. */
  stop(): Promise<void>
  /** Internals for tests and tools. */
  readonly internals: {
    db?: Db
    dht?: KademliaNode
    links?: LinkManager
    store?: DocStore
    directory?: DhtPeerDirectory
    app?: FastifyInstance
    signaling?: SignalingServer
    ai?: AiEngine
  }
}

export interface CreateNodeOptions {
  /** Root logger. @default pino at `config.logLevel` to stdout, with secrets redacted */
  logger?: Logger
}

/** Log fields that may hold secrets; pino replaces them with `<redacted>`. */
export const LOG_REDACT_PATHS = [
  'passphrase',
  '*.passphrase',
  'adminToken',
  '*.adminToken',
  'seed',
  '*.seed',
  'secretKey',
  '*.secretKey',
] as const

function createLogger(config: NodeConfig): Logger {
  return pino({
    level: config.logLevel,
    base: { pid: process.pid },
    redact: { paths: [...LOG_REDACT_PATHS], censor: '<redacted>' },
  })
}

/** Creates a node from a validated configuration. Nothing starts before `start()`. */
export function createNode(config: NodeConfig, options: CreateNodeOptions = {}): XNode {
  const log = options.logger ?? createLogger(config)
  const dataDir = resolve(config.dataDir)
  const startedAt = Date.now()

  let identity: Identity | undefined
  let staticKeys: StaticKeys | undefined
  let keyFileEncrypted = false
  let db: Db | undefined
  let dhtDb: KvStore | undefined
  let store: DocStore | undefined
  let syncServer: SyncServer | undefined
  let dht: KademliaNode | undefined
  let links: LinkManager | undefined
  let directory: DhtPeerDirectory | undefined
  let replication: NodeReplication | undefined
  let signaling: SignalingServer | undefined
  let ai: AiEngine | undefined
  let wsServer: Server | undefined
  let app: FastifyInstance | undefined
  let system: SystemMonitor | undefined
  let persistTimer: NodeJS.Timeout | undefined
  let state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  let stopPromise: Promise<void> | undefined
  const addresses: NodeAddresses = {
    rest: { host: config.host, port: config.restPort },
    ws: { host: config.host, port: config.wsPort },
    dht: { host: config.host, port: config.dhtPort },
  }

  const metrics: PrometheusMetrics = createPrometheusMetrics()
  const health: HealthRegistry = createHealthRegistry(
    { logger: log.child({ component: 'health' }) },
    { cacheTtlMs: config.healthCacheMs, version: VERSION, startedAtMs: startedAt },
  )
  const stats: StatsRegistry = createStatsRegistry(
    { logger: log.child({ component: 'stats' }) },
    { cacheTtlMs: 1_000 },
  )

  const wsPublic = (): string =>
    `ws://${config.publicHost.includes(':') ? `[${config.publicHost}]` : config.publicHost}:${addresses.ws.port}`

  async function persistRoutingTable(): Promise<void> {
    if (!dht || !dhtDb) return
    const snapshot = JSON.stringify(dht.exportState())
    await dhtDb.put(ROUTING_TABLE_KEY, new TextEncoder().encode(snapshot))
  }

  async function step<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now()
    try {
      const out = await fn()
      log.info({ step: name, durationMs: Math.round((performance.now() - t0) * 10) / 10 }, `started ${name}`)
      return out
    } catch (err) {
      log.error({ step: name, err }, `start-up failed at ${name}`)
      throw new NodeError('X_NODE_START_FAILED', `start-up failed at ${name}: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }

  function onWsRequest(req: IncomingMessage, res: ServerResponse): void {
    if (signaling?.handleRequest(req, res)) return
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}')
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy())
    ai?.socketUpgraded(socket as Socket)
    let path: string
    try {
      path = new URL(req.url ?? '/', 'http://x').pathname
    } catch {
      socket.destroy()
      return
    }
    if (state !== 'running' && state !== 'starting') {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n')
      return
    }
    if (path === P2P_PATH && links) return links.handleUpgrade(req, socket, head)
    if (path.startsWith(CRDT_PATH_PREFIX) && syncServer) {
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
      if (ai !== undefined && !ai.crdtUpgrade(req, socket, head)) return
      return syncServer.handleUpgrade(req, socket, head, doc)
    }
    if (signaling?.handleUpgrade(req, socket, head)) return
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n')
  }

  const node: XNode = {
    config,
    logger: log,
    version: VERSION,
    health,
    metricsContentType: metrics.contentType,
    addresses,
    get nodeId() {
      return identity?.idString ?? ''
    },
    internals: {
      get db() {
        return db
      },
      get dht() {
        return dht
      },
      get links() {
        return links
      },
      get store() {
        return store
      },
      get directory() {
        return directory
      },
      get app() {
        return app
      },
      get signaling() {
        return signaling
      },
      get ai() {
        return ai
      },
    },

    metricsText: () => metrics.metricsText(),

    cryptoStatus(): CryptoStatusReport {
      const s = pqcStatus()
      return { ...s, nodeId: identity?.idString ?? '', keyFileEncrypted }
    },

    dhtNodes(): DhtNodesReport {
      if (!dht) throw new NodeError('X_NODE_NOT_READY', 'the DHT is not running')
      const table = dht.table
      const nodes: DhtNodesReport['nodes'] = []
      for (const entry of table) {
        nodes.push({
          id: Buffer.from(entry.id).toString('hex'),
          address: entry.address,
          lastSeen: entry.lastSeen,
          bucket: table.bucketIndex(entry.id),
        })
      }
      const s = dht.getStats()
      return {
        nodes,
        stats: { totalNodes: s.totalNodes, bucketsUsed: s.bucketsUsed, bootstrapNodes: s.bootstrapNodes },
      }
    },

    aiFlagged(): AiFlaggedReport {
      return { enabled: ai?.enabled ?? false, flagged: ai?.flagged() ?? [] }
    },

    async peers(options: { limit?: number } = {}): Promise<PeersReport> {
      const snap = await stats.collect()
      const sig = (snap.signaling ?? {}) as Partial<PeersReport['signaling']>
      const d = (snap.dht ?? {}) as Partial<PeersReport['dht']>
      const linkList = links?.list() ?? []
      const openLinks = linkList.filter((l) => l.state === 'open').length
      const connectedPeers = sig.connectedPeers ?? 0
      const list: PeerEntry[] = [...linkList]
      for (const p of signaling?.listPeers({ limit: options.limit }) ?? []) {
        const entry: PeerEntry = { id: p.id, kind: 'signaling-peer', state: p.state, since: p.since }
        if (p.address !== undefined) entry.address = p.address
        list.push(entry)
      }
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

    async start(): Promise<void> {
      if (state !== 'new') throw new Error(`start() called in state ${state}`)
      state = 'starting'
      try {
        await startSteps()
        state = 'running'
      } catch (err) {
        await node.stop().catch(() => undefined)
        throw err
      }
    },

    stop(): Promise<void> {
      stopPromise ??= stopSteps()
      return stopPromise
    },
  }

  async function startSteps(): Promise<void> {
    await step('config', () => {
      log.info({ config: redactConfig(config), dataDir }, 'configuration')
    })

    await step('crypto', async () => {
      await mkdir(dataDir, { recursive: true, mode: 0o700 })
      await initPqc({ logger: log.child({ component: 'crypto' }) })
      const keyPath = join(dataDir, KEY_FILE)
      const passphrase = config.passphrase === '' ? undefined : config.passphrase
      const exists = await access(keyPath).then(
        () => true,
        () => false,
      )
      if (exists) {
        const decoded = await readKeyFile(keyPath, passphrase === undefined ? {} : { passphrase })
        identity = decoded.identity
        staticKeys = decoded.staticKeys
        keyFileEncrypted = decoded.encrypted
        log.info({ nodeId: identity.idString, encrypted: keyFileEncrypted }, 'identity loaded')
      } else {
        identity = Identity.generate()
        staticKeys = createStaticKeys(identity)
        await writeKeyFile(keyPath, { identity, staticKeys }, passphrase === undefined ? {} : { passphrase })
        keyFileEncrypted = passphrase !== undefined
        log.info({ nodeId: identity.idString, encrypted: keyFileEncrypted, keyPath }, 'identity created')
      }
      health.register('crypto', () => {
        const s = pqcStatus()
        return {
          status: s.initialized ? 'ok' : 'down',
          backend: s.backend,
          production: s.production,
          nodeId: identity?.idString ?? '',
        }
      })
    })

    await step('storage', async () => {
      db = new Level<string, Uint8Array>(join(dataDir, 'db'), { valueEncoding: 'view' })
      await db.open()
      dhtDb = db.sublevel<string, Uint8Array>('dht', { valueEncoding: 'view' })
      health.register('storage', async () => {
        if (!db || db.status !== 'open')
          return { status: 'down', reason: `database ${db?.status ?? 'missing'}` }
        await db.get('health-probe') // a real read: fails when the store is broken
        const crdt = store?.health
        return { status: crdt && crdt.status === 'degraded' ? 'degraded' : 'ok', database: db.status }
      })
    })

    await step('crdt', () => {
      const crdtDb = db!.sublevel<string, Uint8Array>('crdt', { valueEncoding: 'view' })
      store = createDocStore({ db: crdtDb, logger: log.child({ component: 'crdt' }) }, {})
      syncServer = createSyncServer({ store, logger: log.child({ component: 'crdt-sync' }) }, {})
      stats.register('crdt', () => syncServer!.getStats())
    })

    const validator = createRecordValidator(
      () => links,
      () => dht,
      log.child({ component: 'dht-records' }),
    )
    await step('dht', async () => {
      const transport = await createUdpTransport({ host: config.host, port: config.dhtPort })
      addresses.dht = { host: config.host, port: transport.port }
      dht = createKademlia(
        {
          transport,
          logger: log.child({ component: 'dht' }),
          validate: (key, value) => validator.validate(key, value),
          select: (key, values) => validator.select(key, values),
          // The AI engine starts after the DHT (the seed's order); until then every request is admitted.
          admit: (request) => ai?.admitDht?.(request) ?? true,
        },
        {
          id: identity!.id,
          bootstrap: config.seedNodes,
          refreshIntervalMs: config.bootstrapIntervalMs,
          maxValueBytes: 4096,
        },
      )
      await dht.start()
      const saved = await dhtDb!.get(ROUTING_TABLE_KEY)
      if (saved !== undefined) {
        try {
          const restored = await dht.importState(JSON.parse(new TextDecoder().decode(saved)), {
            signal: AbortSignal.timeout(3_000),
          })
          log.info(restored, 'routing table restored')
        } catch (err) {
          log.warn({ err: String(err) }, 'routing table snapshot rejected')
        }
      }
      if (config.seedNodes.length > 0) {
        try {
          await dht.bootstrap(config.seedNodes, { signal: AbortSignal.timeout(3_000) })
        } catch (err) {
          log.warn(
            { seedNodes: config.seedNodes, retryMs: config.bootstrapIntervalMs, err: String(err) },
            'no bootstrap node answered; running alone and retrying',
          )
        }
      }
      persistTimer = setInterval(
        () => void persistRoutingTable().catch(() => undefined),
        ROUTING_PERSIST_INTERVAL_MS,
      )
      persistTimer.unref()
      health.register('dht', () => {
        const s = dht!.getStats()
        const alone = config.seedNodes.length === 0
        return {
          status: !dht!.started ? 'down' : s.totalNodes > 0 || alone ? 'ok' : 'degraded',
          totalNodes: s.totalNodes,
          bucketsUsed: s.bucketsUsed,
          port: addresses.dht.port,
          ...(s.totalNodes === 0 && !alone ? { reason: 'no contacts yet; bootstrap retrying' } : {}),
        }
      })
      stats.register('dht', () => dht!.getStats())
    })

    await step('p2p', async () => {
      const signer = new RecordSigner(identity!)
      wsServer = createServer(onWsRequest)
      wsServer.on('upgrade', onUpgrade)
      wsServer.on('clientError', (_err, socket) => socket.destroy())
      wsServer.on('connection', (socket: Socket) => {
        if (ai !== undefined && !ai.socketOpened(socket)) socket.destroy()
      })
      await new Promise<void>((resolveListen, reject) => {
        wsServer!.once('error', reject)
        wsServer!.listen(config.wsPort, config.host, () => resolveListen())
      })
      addresses.ws.port = (wsServer.address() as AddressInfo).port
      links = new LinkManager(
        {
          identity: identity!,
          staticKeys: staticKeys!,
          logger: log.child({ component: 'p2p' }),
          recordKey: signer,
        },
        { address: wsPublic() },
      )
      directory = new DhtPeerDirectory(
        { dht: dht!, signer, links, logger: log.child({ component: 'directory' }) },
        { nodeId: identity!.idString, address: wsPublic() },
      )
      replication = startReplication(store!, links, log.child({ component: 'replication' }))
      directory.start(Math.min(config.bootstrapIntervalMs, 60_000))
      cleanups.push(() => directory?.stop())
      // Keep links to the nodes of the routing table (full mesh in small networks, bounded by MAX_LINKS).
      const linkTimer = setInterval(() => void linkRoutingTable(), 5_000)
      linkTimer.unref()
      const stopLinkTimer = () => clearInterval(linkTimer)
      cleanups.push(stopLinkTimer)
      void linkRoutingTable()
      health.register('p2p', () => ({
        status: 'ok',
        links: links!.connectedNodes().length,
        ...links!.stats,
      }))
      stats.register('p2p', () => ({ links: links!.list().length, ...links!.stats }))
      stats.register('replication', () => replication!.getStats())
    })

    await step('ai', async () => {
      ai = createAiEngine(
        {
          logger: log.child({ component: 'ai' }),
          // The learned baselines survive restarts: a restart does not reopen the learning window.
          store: db!.sublevel<string, Uint8Array>('ai', { valueEncoding: 'view' }),
          clientAddress: createClientAddress(config.trustProxy),
        },
        { enabled: config.ai, allowList: config.aiAllowList },
      )
      await ai.restore()
      ai.start()
      health.register('ai', () => ai!.health(), { required: false })
    })

    await step('monitor', () => {
      system = createSystemMonitor({ metrics, logger: log.child({ component: 'system' }) }, {})
      system.start()
      stats.register('system', () => system!.getStats())
    })

    await step('rest', async () => {
      app = await buildApp(node, { logger: log.child({ component: 'rest' }) })
      await app.listen({ port: config.restPort, host: config.host })
      const a = app.server.address() as AddressInfo
      addresses.rest.port = a.port
    })

    await step('signaling', () => {
      signaling = createSignalingServer(
        {
          verify: (publicKey, message, signature) => mlDsaVerify(publicKey, message, signature),
          peerIdFromPublicKey: (publicKey) => Buffer.from(idFromPublicKey(publicKey)).toString('hex'),
          directory,
          relay: createNodeRelay(links!, () => directory, log.child({ component: 'relay' })),
          logger: log.child({ component: 'signaling' }),
          guard: ai?.guard,
        },
        { nodeId: identity!.idString, publicHosts: signalingHosts(config) },
      )
      health.register('signaling', () => ({ status: 'ok', ...signaling!.getStats() }))
      stats.register('signaling', () => signaling!.getStats())
    })
  }

  const cleanups: (() => void)[] = []

  async function linkRoutingTable(): Promise<void> {
    if (!dht || !links || !directory || state === 'stopping' || state === 'stopped') return
    const connected = new Set(links.connectedNodes())
    let budget = 8
    for (const entry of dht.table) {
      const id = Buffer.from(entry.id).toString('hex')
      if (connected.has(id) || budget-- <= 0) continue
      const address = links.addresses.get(id) ?? (await directory.resolveNode(id))
      // Only where the node answered over UDP: a node record cannot point this node at another host.
      if (address !== undefined && (await onContactHost(address, entry.address))) links.want(id, address)
      else if (address !== undefined) log.debug({ nodeId: id, address }, 'node address not on its DHT host')
    }
  }

  async function stopSteps(): Promise<void> {
    if (state === 'new') {
      state = 'stopped'
      return
    }
    state = 'stopping'
    const t0 = performance.now()
    const run = async (name: string, fn: () => unknown) => {
      const s = performance.now()
      try {
        await fn()
        log.info({ step: name, durationMs: Math.round((performance.now() - s) * 10) / 10 }, `stopped ${name}`)
      } catch (err) {
        log.warn({ step: name, err: String(err) }, `shutdown step ${name} failed`)
      }
    }
    for (const c of cleanups) c()
    if (persistTimer) clearInterval(persistTimer)
    await run('stop accepting', async () => {
      wsServer?.close()
      await app?.close()
    })
    await run('withdraw dht records', () =>
      Promise.race([directory?.withdrawAll(), new Promise((r) => setTimeout(r, 2_000).unref())]),
    )
    await run('signaling (close sockets 1001)', () => signaling?.close())
    await run('crdt sockets (1001)', () => syncServer?.close())
    await run('p2p links (1001)', async () => {
      replication?.stop()
      await links?.close()
    })
    await run('monitor', () => system?.stop())
    await run('ai', () => ai?.stop())
    await run('persist routing table', () => persistRoutingTable())
    await run('dht', () => dht?.stop())
    await run('flush crdt', () => store?.close())
    await run('database', () => db?.close())
    wsServer?.closeAllConnections()
    state = 'stopped'
    log.info({ durationMs: Math.round(performance.now() - t0) }, 'node stopped')
  }

  return node
}
