import { createKademlia, createUdpTransport, type KademliaNode } from '@x/kademlia'
import { idFromPublicKey } from '@x/pqc'
import { CERT_CONTEXT } from '../records/format'
import { RecordKeyBook } from '../records/key-book'
import { PeerProofs } from '../records/proofs'
import { createRecordValidator, type RecordValidator } from '../records/validator'
import { SYSTEM_CLOCK } from '../records/util'
import { METRICS_PREFIX, registerDhtMetrics } from '../metrics'
import type { Component } from '../system'
import type { NodeCore } from './core'
import type { CryptoProduct } from './crypto'
import type { StorageProduct } from './storage'

export const ROUTING_TABLE_KEY = 'routing-table'
/** How long restoring the routing-table snapshot (pings, record checks) may take, in the background. */
export const RESTORE_TIMEOUT_MS = 30_000
/** Routing table snapshots are written this often while running (and at shutdown). */
export const ROUTING_PERSIST_INTERVAL_MS = 60_000

export interface DhtProduct {
  readonly node: KademliaNode
  /** Record keys of other nodes (learnt from link hellos; the P2P component attaches its links). */
  readonly keys: RecordKeyBook
  /** Peer statements: hosted ones served, others' verified (the P2P component attaches its links). */
  readonly proofs: PeerProofs
  readonly validator: RecordValidator
  /** Writes the routing table to the database. */
  readonly persist: () => Promise<void>
  /** Settles once the start-up join (snapshot restore, first bootstrap) is over, whatever its outcome. */
  readonly joined: Promise<void>
  /** Aborts that join (at stop). */
  readonly stopping: AbortController
  readonly timer: ReturnType<typeof setInterval>
}

type Deps = NodeCore & { readonly crypto: CryptoProduct; readonly storage: StorageProduct }

/**
 * The Kademlia DHT on UDP with this node's record validation: a value is stored or believed only when it is a
 * fresh record signed by its publisher's certified record key (and, for a peer, backed by the peer's own
 * statement). The routing table survives restarts in the database.
 */
export const dhtComponent: Component<Deps, DhtProduct> = {
  async start({ config, crypto, storage, guards, addresses, metrics, log }) {
    const keys = new RecordKeyBook({
      verifyCertificate: (identityPublicKey, recordPublicKey, certificate) =>
        crypto.pool.verify(identityPublicKey, recordPublicKey, certificate, CERT_CONTEXT),
      clock: SYSTEM_CLOCK,
      logger: log.child({ component: 'record-keys' }),
    })
    const proofs = new PeerProofs({
      verify: (publicKey, message, signature) => crypto.pool.verify(publicKey, message, signature),
      peerIdFromPublicKey: (publicKey) => Buffer.from(idFromPublicKey(publicKey)).toString('hex'),
      clock: SYSTEM_CLOCK,
      logger: log.child({ component: 'peer-proofs' }),
    })
    const validator = createRecordValidator({
      keys,
      proofs,
      verifier: crypto.pool,
      self: { nodeId: crypto.identity.idString, recordPublicKey: crypto.signer.publicKey },
      clock: SYSTEM_CLOCK,
      logger: log.child({ component: 'dht-records' }),
    })
    const transport = await createUdpTransport({ host: config.host, port: config.dhtPort })
    addresses.dht = { host: config.host, port: transport.port }
    const node = createKademlia(
      {
        transport,
        logger: log.child({ component: 'dht' }),
        validate: (key, value) => validator.validate(key, value),
        select: (key, values) => validator.select(key, values),
        admit: guards.admitDht,
        metrics,
      },
      {
        id: crypto.identity.id,
        bootstrap: config.seedNodes,
        refreshIntervalMs: config.bootstrapIntervalMs,
        maxValueBytes: 4096,
        metricsPrefix: METRICS_PREFIX,
      },
    )
    await node.start()
    registerDhtMetrics(metrics, () => node.getStats())
    // Joining goes on in the background (the seed's order is kept: the DHT is up before the links and the API),
    // so that the REST port opens at once whatever the seeds do; `/api/health` shows `dht` degraded until a
    // contact answered, and `@x/kademlia` keeps retrying with back-off.
    const stopping = new AbortController()
    const within = (ms: number) => AbortSignal.any([stopping.signal, AbortSignal.timeout(ms)])
    const joined = (async () => {
      const saved = await storage.dht.get(ROUTING_TABLE_KEY)
      if (saved !== undefined) {
        try {
          // Contacts are pinged and records validated (which may wait for a link to learn a record key): in the
          // background, so it may take its time.
          const restored = await node.importState(JSON.parse(new TextDecoder().decode(saved)), {
            signal: within(RESTORE_TIMEOUT_MS),
          })
          log.info(restored, 'routing table restored')
        } catch (err) {
          log.warn({ err: String(err) }, 'routing table snapshot rejected')
        }
      }
      if (config.seedNodes.length > 0) {
        try {
          await node.bootstrap(config.seedNodes, { signal: within(3_000) })
        } catch (err) {
          log.warn(
            { seedNodes: config.seedNodes, retryMs: config.bootstrapIntervalMs, err: String(err) },
            'no bootstrap node answered; running alone and retrying',
          )
        }
      }
    })().catch((err: unknown) => log.warn({ err: String(err) }, 'joining the DHT failed; retrying'))
    const persist = async (): Promise<void> => {
      await storage.dht.put(ROUTING_TABLE_KEY, new TextEncoder().encode(JSON.stringify(node.exportState())))
    }
    const timer = setInterval(() => void persist().catch(() => undefined), ROUTING_PERSIST_INTERVAL_MS)
    timer.unref()
    return { node, keys, proofs, validator, persist, timer, joined, stopping }
  },
  async stop({ node, persist, timer, joined, stopping }) {
    clearInterval(timer)
    stopping.abort()
    await joined
    await persist().catch(() => undefined)
    await node.stop()
  },
  health:
    ({ node }, { config, addresses }) =>
    () => {
      const s = node.getStats()
      const alone = config.seedNodes.length === 0
      return {
        status: !node.started ? 'down' : s.totalNodes > 0 || alone ? 'ok' : 'degraded',
        totalNodes: s.totalNodes,
        bucketsUsed: s.bucketsUsed,
        port: addresses.dht.port,
        ...(s.totalNodes === 0 && !alone ? { reason: 'no contacts yet; bootstrap retrying' } : {}),
      }
    },
  stats:
    ({ node }) =>
    () =>
      node.getStats(),
}
