/**
 * Local record store: one value per key (the injected `select` decides between an incoming value and the
 * stored one), each with an expiry. Bounded by record count and total value bytes; when full, cached
 * records (stored because a lookup passed by) are evicted first, soonest-expiring first, and records this
 * node was asked to store are never evicted for new ones — a full store refuses instead.
 */
import { toHex } from './id'

export interface StoredRecord {
  key: Uint8Array
  value: Uint8Array
  expiresAt: number
  cached: boolean
}

export type PutOutcome = 'stored' | 'full'

export class RecordStore {
  readonly #maxRecords: number
  readonly #maxBytes: number
  readonly #records = new Map<string, StoredRecord>()
  #bytes = 0

  constructor(maxRecords: number, maxBytes: number) {
    this.#maxRecords = maxRecords
    this.#maxBytes = maxBytes
  }

  get size(): number {
    return this.#records.size
  }

  get bytes(): number {
    return this.#bytes
  }

  get(key: Uint8Array, now: number): StoredRecord | undefined {
    const k = toHex(key)
    const r = this.#records.get(k)
    if (r === undefined) return undefined
    if (r.expiresAt <= now) {
      this.#delete(k, r)
      return undefined
    }
    return r
  }

  put(record: StoredRecord, now: number): PutOutcome {
    const k = toHex(record.key)
    const existing = this.#records.get(k)
    const freed = existing?.value.length ?? 0
    const needRecords = existing === undefined ? 1 : 0
    if (!this.#makeRoom(needRecords, record.value.length - freed, now, k, record.cached)) return 'full'
    if (existing !== undefined) this.#delete(k, existing)
    this.#records.set(k, record)
    this.#bytes += record.value.length
    return 'stored'
  }

  #makeRoom(records: number, bytes: number, now: number, keep: string, incomingCached: boolean): boolean {
    const fits = (): boolean =>
      this.#records.size + records <= this.#maxRecords && this.#bytes + bytes <= this.#maxBytes
    if (fits()) return true
    this.sweep(now)
    if (fits()) return true
    if (incomingCached) return false
    const cached = [...this.#records.entries()]
      .filter(([k, r]) => r.cached && k !== keep)
      .sort((a, b) => a[1].expiresAt - b[1].expiresAt)
    for (const [k, r] of cached) {
      this.#delete(k, r)
      if (fits()) return true
    }
    return fits()
  }

  #delete(k: string, r: StoredRecord): void {
    this.#records.delete(k)
    this.#bytes -= r.value.length
  }

  delete(key: Uint8Array): boolean {
    const k = toHex(key)
    const r = this.#records.get(k)
    if (r === undefined) return false
    this.#delete(k, r)
    return true
  }

  /** Drops expired records; returns how many. */
  sweep(now: number): number {
    let n = 0
    for (const [k, r] of this.#records) {
      if (r.expiresAt <= now) {
        this.#delete(k, r)
        n++
      }
    }
    return n
  }

  values(): IterableIterator<StoredRecord> {
    return this.#records.values()
  }
}
