import { resolve } from 'node:path'
import { pino, type Logger } from 'pino'
import { createHealthRegistry, createPrometheusMetrics, createStatsRegistry } from '@x/node-monitor'
import { createClientAddress, createOriginCheck } from './client-address'
import { redactConfig, signalingHosts, type NodeConfig } from './config'
import { connectionBudgets, openFileLimit } from './connection-limits'
import { reloadTls } from './tls'
import type { Server as TlsServer } from 'node:tls'
import { aiComponent } from './components/ai'
import { Guards, PeerSources, type NodeAddresses, type NodeCore, type NodeState } from './components/core'
import { crdtComponent } from './components/crdt'
import { cryptoComponent } from './components/crypto'
import { dhtComponent } from './components/dht'
import { monitorComponent } from './components/monitor'
import { p2pComponent } from './components/p2p'
import { restComponent } from './components/rest'
import { signalingComponent } from './components/signaling'
import { storageComponent } from './components/storage'
import { System, type Component } from './system'

export const VERSION = '0.1.0'
export type { NodeAddresses } from './components/core'

/** The configuration step: logs what the node runs with (secrets redacted). */
const configComponent: Component<NodeCore, NodeConfig> = {
  start({ config, dataDir, log }) {
    log.info({ config: redactConfig(config), dataDir }, 'configuration')
    return config
  },
}

/**
 * The node, in the seed's order: config → crypto → storage → CRDT → DHT → P2P links → AI engine → monitor →
 * REST API → signaling. Each component gets the products of those before it; they stop in reverse.
 */
export function nodeSystem() {
  return System.create<NodeCore>()
    .with('config', configComponent)
    .with('crypto', cryptoComponent)
    .with('storage', storageComponent)
    .with('crdt', crdtComponent)
    .with('dht', dhtComponent)
    .with('p2p', p2pComponent)
    .with('ai', aiComponent)
    .with('monitor', monitorComponent)
    .with('rest', restComponent)
    .with('signaling', signalingComponent)
}

/** What every component produced, by name (available once the node started). */
export type NodeProducts = Awaited<ReturnType<ReturnType<typeof nodeSystem>['start']>>

export interface XNode {
  readonly config: NodeConfig
  readonly logger: Logger
  /** Set once the crypto component started. */
  readonly nodeId: string
  readonly addresses: NodeAddresses
  /** Runs the seed's start-up order. Rejects with the failing step's error (everything started is stopped). */
  start(): Promise<void>
  /** Graceful shutdown in reverse order; idempotent. */
  stop(): Promise<void>
  /** The products of the components started so far (for tests and tools). */
  readonly internals: Readonly<Partial<NodeProducts>>
  /**
   * Reads `tlsCert`/`tlsKey` again and serves new connections with them on both ports (SIGHUP). Returns false when
   * TLS is off; throws a `ConfigError` naming the setting when the files are not usable (the old ones stay).
   */
  reloadTls(): boolean
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
  const startedAt = Date.now()
  let state: NodeState = 'new'
  let stopPromise: Promise<void> | undefined
  const system = nodeSystem()
  const addresses: NodeAddresses = {
    rest: { host: config.host, port: config.restPort },
    ws: { host: config.host, port: config.wsPort },
    dht: { host: config.host, port: config.dhtPort },
  }
  const fdLimit = openFileLimit()
  const core: NodeCore = {
    config,
    net: {
      clientAddress: createClientAddress(config.trustProxy),
      originAllowed: createOriginCheck(config.allowedOrigins, signalingHosts(config)),
      budgets: connectionBudgets(fdLimit, config.maxConnections),
      fdLimit,
    },
    log,
    dataDir: resolve(config.dataDir),
    addresses,
    version: VERSION,
    startedAt,
    metrics: createPrometheusMetrics(),
    health: createHealthRegistry(
      { logger: log.child({ component: 'health' }) },
      { cacheTtlMs: config.healthCacheMs, version: VERSION, startedAtMs: startedAt },
    ),
    stats: createStatsRegistry({ logger: log.child({ component: 'stats' }) }, { cacheTtlMs: 1_000 }),
    guards: new Guards(),
    peerSources: new PeerSources(),
    state: () => state,
  }
  const node = {
    config,
    logger: log,
    nodeId: '',
    addresses,
    internals: system.products as Partial<NodeProducts>,

    async start(): Promise<void> {
      if (state !== 'new') throw new Error(`start() called in state ${state}`)
      state = 'starting'
      try {
        const products = await system.start(core)
        node.nodeId = products.crypto.identity.idString
        state = 'running'
      } catch (err) {
        state = 'stopped'
        throw err
      }
    },

    reloadTls(): boolean {
      if (config.tlsCert === '') return false
      const products = system.products as Partial<NodeProducts>
      const servers = [products.p2p?.server, products.rest?.server].filter((s) => s !== undefined)
      reloadTls(servers as unknown as TlsServer[], config)
      return true
    },

    stop(): Promise<void> {
      stopPromise ??= (async () => {
        if (state === 'new' || state === 'stopped') {
          state = 'stopped'
          return
        }
        state = 'stopping'
        const t0 = performance.now()
        await system.stop(log)
        state = 'stopped'
        log.info({ durationMs: Math.round(performance.now() - t0) }, 'node stopped')
      })()
      return stopPromise
    },
  }
  return node
}
