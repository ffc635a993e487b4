/**
 * Yjs documents that never lose an edit: LevelDB persistence with a durability rule (on disk before anyone
 * else sees it), a y-websocket compatible server, and replication between stores over any byte link.
 *
 * @example
 * ```ts
 * import { ClassicLevel } from 'classic-level'
 * import { createDocStore, createSyncServer } from '@x/crdt-sync'
 *
 * const level = new ClassicLevel<string, Uint8Array>('./data', { valueEncoding: 'view' })
 * const db = level.sublevel<string, Uint8Array>('crdt', { keyEncoding: 'utf8', valueEncoding: 'view' })
 * const store = createDocStore({ db }, { idleTimeoutMs: 30_000 })
 * const server = createSyncServer({ store }, {})
 * const { port } = await server.listen({ port: 1234, host: '127.0.0.1' })
 * // new WebsocketProvider(`ws://127.0.0.1:${port}`, 'my-doc', new Y.Doc()) now syncs and persists.
 * await server.close()
 * await store.close()
 * await level.close()
 * ```
 *
 * @packageDocumentation
 */
export { CrdtSyncError, isCrdtSyncError, type CrdtSyncErrorCode } from './errors'
export type { Logger } from './logger'
export type { Clock } from './clock'
export {
  createDocStore,
  type CompactionInfo,
  type CrdtBatchOperation,
  type CrdtDatabase,
  type DocHandle,
  type DocStore,
  type DocStoreComponents,
  type DocStoreHealth,
  type DocStoreInit,
  type DocStoreStats,
  type UpdateListener,
} from './doc-store'
export {
  createSyncServer,
  type Access,
  type Authorize,
  type Grant,
  type SessionInfo,
  type StatelessMessage,
  type SyncServer,
  type SyncServerComponents,
  type SyncServerInit,
  type SyncServerStats,
} from './sync-server'
export {
  createTokenAuthority,
  decodeRevocation,
  encodeRevocation,
  MAX_REVOCATION_TTL_MS,
  revocationFrom,
  type Revocation,
  type RevocationRequest,
  type TokenAccess,
  type TokenAuthority,
  type TokenAuthorityComponents,
  type TokenAuthorityInit,
} from './tokens'
export {
  createVersionHistory,
  docToJson,
  isVersionsDocName,
  VERSIONS_PREFIX,
  type VersionHistory,
  type VersionHistoryComponents,
  type VersionHistoryInit,
  type VersionContent,
  type VersionInfo,
  type VersionRestore,
} from './versions'
export {
  replicate,
  type Replication,
  type ReplicationAccess,
  type ReplicationAuthorize,
  type ReplicationComponents,
  type ReplicationInit,
  type ReplicationStats,
  type SyncLink,
} from './replicate'
