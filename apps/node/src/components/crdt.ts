import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import {
  createDocStore,
  createSyncServer,
  createTokenAuthority,
  createVersionHistory,
  decodeRevocation,
  encodeRevocation,
  MAX_REVOCATION_TTL_MS,
  type DocStore,
  type VersionHistory,
  type Revocation,
  type SyncServer,
  type TokenAuthority,
  type TokenAuthorityInit,
} from '@x/crdt-sync'
import { ConfigError, type NodeConfig } from '../config'
import { registerCrdtMetrics } from '../metrics'
import type { Component } from '../system'
import type { NodeCore } from './core'
import type { StorageProduct } from './storage'

export interface CrdtProduct {
  readonly store: DocStore
  readonly sync: SyncServer
  /** Verifies document tokens and holds revocations. */
  readonly tokens: TokenAuthority
  /** Named and periodic versions of the documents. */
  readonly versions: VersionHistory
  /**
   * Applies a revocation here: held (so new sessions are refused or read-only), and live sessions of the
   * document closed or downgraded. `applied` is false for one already held (a forwarded copy). `fromNode`: the
   * node that sent it (it counts against that node's share of the table).
   */
  revoke(revocation: Revocation, fromNode?: string): { applied: boolean; sessions: number }
}

/** Random revocation IDs (the default implementation of the injected randomness). */
export function randomRevocationId(): string {
  return randomBytes(16).toString('hex')
}

function readSetting(config: NodeConfig, key: 'crdtTokenSecretFile' | 'crdtTokenKeysFile'): string {
  try {
    return readFileSync(config[key], 'utf8')
  } catch (err) {
    throw new ConfigError(
      `cannot read setting '${key}' (${config[key]}): ${(err as Error).message}`,
      key,
      'the combined settings',
    )
  }
}

/** The token settings as `createTokenAuthority` options; throws a `ConfigError` naming the bad setting. */
export function tokenInit(config: NodeConfig): TokenAuthorityInit {
  const init: TokenAuthorityInit = {}
  if (config.crdtTokenSecretFile !== '') {
    init.secret = new TextEncoder().encode(readSetting(config, 'crdtTokenSecretFile').replace(/\r?\n$/, ''))
    if (init.secret.length < 32) {
      throw new ConfigError(
        `the secret in '${config.crdtTokenSecretFile}' is shorter than 32 bytes`,
        'crdtTokenSecretFile',
        'the combined settings',
      )
    }
  }
  if (config.crdtTokenKeysFile !== '') {
    const text = readSetting(config, 'crdtTokenKeysFile').trim()
    if (text.startsWith('{')) {
      try {
        init.publicKeys = JSON.parse(text) as TokenAuthorityInit['publicKeys']
      } catch {
        throw new ConfigError(
          `'${config.crdtTokenKeysFile}' is neither a JWKS nor a PEM public key`,
          'crdtTokenKeysFile',
          'the combined settings',
        )
      }
    } else init.publicKeys = text
  }
  if (config.crdtAnonymous !== 'auto') {
    init.anonymous = config.crdtAnonymous === 'off' ? 'deny' : config.crdtAnonymous
  }
  return init
}

/**
 * Yjs documents persisted in LevelDB, served to y-websocket clients (`/crdt/<doc>`) and Hocuspocus clients
 * (`/hocuspocus`), both routed by the P2P server, under document tokens.
 */
export const crdtComponent: Component<NodeCore & { readonly storage: StorageProduct }, CrdtProduct> = {
  async start({ storage, metrics, log, config, net }) {
    let tokens: TokenAuthority
    try {
      tokens = createTokenAuthority({}, tokenInit(config))
    } catch (err) {
      if (err instanceof ConfigError) throw err
      const key = config.crdtTokenKeysFile !== '' ? 'crdtTokenKeysFile' : 'crdtTokenSecretFile'
      throw new ConfigError(`unusable token key: ${(err as Error).message}`, key, 'the combined settings')
    }
    // Revocations outlive a restart (until their `until`): a revoked token must not come back with the node.
    const revocationsDb = storage.db.sublevel<string, Uint8Array>('crdt-revocations', {
      valueEncoding: 'view',
    })
    // What is on disk, by key, with the `until` it is held to: it leaves the disk once that has passed.
    const onDisk = new Map<string, number>()
    const expired: string[] = []
    // Keyed `<id>` (made here) or `<id>@<node>` (sent by that node: it counts against its share again).
    for await (const [key, bytes] of revocationsDb.iterator()) {
      const at = key.indexOf('@')
      try {
        const r = decodeRevocation(bytes)
        if (r.until <= Date.now()) expired.push(key)
        else {
          tokens.revoke(r, at === -1 ? undefined : key.slice(at + 1))
          onDisk.set(key, r.until)
        }
      } catch (err) {
        log.warn({ err, key }, 'dropping an unreadable stored revocation')
        expired.push(key)
      }
    }
    if (expired.length > 0) await revocationsDb.batch(expired.map((key) => ({ type: 'del' as const, key })))
    const store = createDocStore({ db: storage.crdt, logger: log.child({ component: 'crdt' }) }, {})
    const sync = createSyncServer(
      {
        store,
        logger: log.child({ component: 'crdt-sync' }),
        authorize: (docName, _request, token) => tokens.authorize(docName, token),
        // Behind trusted proxies, the real client: each gets its share of the sessions, not the proxy.
        clientAddress: net.clientAddress,
      },
      {},
    )
    const versions = createVersionHistory({ store, logger: log.child({ component: 'crdt-versions' }) }, {})
    registerCrdtMetrics(metrics, () => sync.getStats())
    log.info(
      { tokens: tokens.keyed, anonymous: tokens.anonymous },
      tokens.keyed ? 'document tokens required unless anonymous access is on' : 'document tokens off',
    )
    return {
      store,
      sync,
      tokens,
      versions,
      revoke(revocation, fromNode) {
        if (!tokens.revoke(revocation, fromNode)) return { applied: false, sessions: 0 }
        // Stored as held: no longer than 30 days, and deleted once expired (or another node sending short-lived
        // revocations would fill the disk while the table in memory stays small).
        const now = Date.now()
        const held = { ...revocation, until: Math.min(revocation.until, now + MAX_REVOCATION_TTL_MS) }
        const key = fromNode === undefined ? revocation.id : `${revocation.id}@${fromNode}`
        const gone: string[] = []
        for (const [k, until] of onDisk) if (until <= now) gone.push(k)
        for (const k of gone) onDisk.delete(k)
        onDisk.set(key, held.until)
        revocationsDb
          .batch([
            ...gone.map((k) => ({ type: 'del' as const, key: k })),
            { type: 'put' as const, key, value: encodeRevocation(held) },
          ])
          .catch((err: unknown) => log.warn({ err, id: revocation.id }, 'could not store a revocation'))
        return { applied: true, sessions: sync.restrict(tokens.restriction(revocation), 'access revoked') }
      },
    }
  },
  async stop({ store, sync, versions }) {
    versions.close()
    await sync.close()
    await store.close()
  },
  health:
    ({ store }) =>
    () => {
      const h = store.health
      return { status: h.status === 'degraded' ? 'degraded' : 'ok' }
    },
  stats:
    ({ sync }) =>
    () =>
      sync.getStats(),
}
