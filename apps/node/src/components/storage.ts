import { join } from 'node:path'
import { Level } from 'level'
import type { CrdtDatabase } from '@x/crdt-sync'
import type { Component } from '../system'
import type { NodeCore } from './core'

export type Db = Level<string, Uint8Array>

/** A key-value view (the DHT's routing-table snapshot lives in one). */
export interface KvStore {
  get(key: string): Promise<Uint8Array | undefined>
  put(key: string, value: Uint8Array): Promise<void>
}

export interface StorageProduct {
  readonly db: Db
  /** The DHT's part of the database. */
  readonly dht: KvStore
  /** The CRDT documents' part. */
  readonly crdt: CrdtDatabase
}

/** LevelDB in the data directory. */
export const storageComponent: Component<NodeCore, StorageProduct> = {
  async start({ dataDir, net }) {
    // LevelDB keeps up to 1,000 table files open by default: within the descriptors reserved for it when the
    // process has few (`ulimit -n 256`), so that connections cannot starve the database nor it them.
    const maxOpenFiles =
      net.fdLimit === undefined ? 1_000 : Math.min(1_000, Math.max(16, Math.floor(net.fdLimit / 8)))
    const db = new Level<string, Uint8Array>(join(dataDir, 'db'), { valueEncoding: 'view', maxOpenFiles })
    await db.open()
    return {
      db,
      dht: db.sublevel<string, Uint8Array>('dht', { valueEncoding: 'view' }),
      crdt: db.sublevel<string, Uint8Array>('crdt', { valueEncoding: 'view' }),
    }
  },
  async stop({ db }) {
    await db.close()
  },
  health:
    ({ db }) =>
    async () => {
      if (db.status !== 'open') return { status: 'down', reason: `database ${db.status}` }
      await db.get('health-probe') // a real read: fails when the store is broken
      return { status: 'ok', database: db.status }
    },
}
