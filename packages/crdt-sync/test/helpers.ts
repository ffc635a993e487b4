import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import type { CrdtBatchOperation, CrdtDatabase } from '../src/index'

export interface TempLevel {
  dir: string
  level: ClassicLevel<string, Uint8Array>
  db: CrdtDatabase
  reopen(): Promise<TempLevel>
  dispose(): Promise<void>
}

/** A real LevelDB in a temporary directory, with the sublevel the node would pass. */
export async function tempLevel(dir?: string): Promise<TempLevel> {
  const path = dir ?? (await mkdtemp(join(tmpdir(), 'crdt-sync-')))
  const level = new ClassicLevel<string, Uint8Array>(path, { valueEncoding: 'view' })
  await level.open()
  const db = level.sublevel<string, Uint8Array>('crdt', { keyEncoding: 'utf8', valueEncoding: 'view' })
  return {
    dir: path,
    level,
    db,
    async reopen() {
      await level.close()
      return tempLevel(path)
    },
    async dispose() {
      await level.close()
      await rm(path, { recursive: true, force: true })
    },
  }
}

/** Wraps a database to count batches and to make writes fail on demand. */
export function instrumented(db: CrdtDatabase): CrdtDatabase & {
  batches: CrdtBatchOperation[][]
  failWrites: boolean
} {
  const wrapper = {
    batches: [] as CrdtBatchOperation[][],
    failWrites: false,
    get: (key: string) => db.get(key),
    iterator: (o: Parameters<CrdtDatabase['iterator']>[0]) => db.iterator(o),
    close: () => db.close(),
    batch: async (ops: CrdtBatchOperation[]) => {
      wrapper.batches.push(ops)
      if (wrapper.failWrites) throw new Error('disk on fire')
      await db.batch(ops)
    },
  }
  return wrapper
}
