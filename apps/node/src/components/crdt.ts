import { createDocStore, createSyncServer, type DocStore, type SyncServer } from '@x/crdt-sync'
import { registerCrdtMetrics } from '../metrics'
import type { Component } from '../system'
import type { NodeCore } from './core'
import type { StorageProduct } from './storage'

export interface CrdtProduct {
  readonly store: DocStore
  readonly sync: SyncServer
}

/** Yjs documents persisted in LevelDB, and the y-websocket endpoint (`/crdt/<doc>`, routed by the P2P server). */
export const crdtComponent: Component<NodeCore & { readonly storage: StorageProduct }, CrdtProduct> = {
  start({ storage, metrics, log }) {
    const store = createDocStore({ db: storage.crdt, logger: log.child({ component: 'crdt' }) }, {})
    const sync = createSyncServer({ store, logger: log.child({ component: 'crdt-sync' }) }, {})
    registerCrdtMetrics(metrics, () => sync.getStats())
    return { store, sync }
  },
  async stop({ store, sync }) {
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
