/**
 * The routing table: 160 k-buckets indexed by the length of the prefix an ID shares with our own
 * (Kademlia §2.2). Buckets keep least-recently-seen contacts first; a full bucket never drops a live
 * contact for a new one (the caller pings the oldest and evicts it only if that ping fails), and keeps the
 * newcomers in a bounded replacement cache (§4.1). Per-IP-group limits stop one /24 (IPv4) or /64 (IPv6)
 * from filling a bucket or the table.
 */
import { ipGroup, parseAddress } from './address'
import { assertId, commonPrefixLength, ID_LENGTH_BITS, ID_LENGTH_BYTES, idEquals } from './id'

/** A node of the DHT: its 160-bit ID and the transport address it answers on. */
export interface Contact {
  /** The 20-byte node ID. */
  readonly id: Uint8Array
  /** Where it answers, in its transport's form (`1.2.3.4:5`, `[::1]:5`). */
  readonly address: string
}

/** A contact as held by the table. */
export interface TableEntry extends Contact {
  /** Last time (clock ms) the contact answered or sent us a valid message. */
  lastSeen: number
  /** RPC failures since it was last seen. */
  failures: number
  /** @internal */
  group: string
}

/** Options of {@link RoutingTable}. */
export interface RoutingTableInit {
  /** Bucket size. @default 20 */
  k?: number
  /** Contacts of one IP group (/24, /64) allowed in one bucket. @default 2 */
  maxPerIpGroupPerBucket?: number
  /** Contacts of one IP group allowed in the whole table. @default 10 */
  maxPerIpGroupPerTable?: number
  /** Replacement-cache size per bucket. @default k */
  replacementCacheSize?: number
  /** Addresses exempt from IP-group limits. @default loopback addresses (127.0.0.0/8, ::1) */
  isLimitExempt?: (address: string) => boolean
}

/** Outcome of {@link RoutingTable.add}. */
export type AddResult =
  | {
      /**
       * `added`: new in the table. `updated`: known, marked as just seen. `self`: our own ID, never added.
       * `rejected`: its IP group has as many contacts as the limits allow. `conflict`: its ID is known at
       * another address, which keeps it until that stops answering.
       */
      status: 'added' | 'updated' | 'self' | 'rejected' | 'conflict'
    }
  | {
      /** The bucket is full: the newcomer waits in the replacement cache. */
      status: 'full'
      /** The bucket's least recently seen contact: ping it, and evict it only if it does not answer. */
      oldest: Contact
    }

/** Default exemption from IP-group limits: loopback addresses, so local test networks work. */
export function isLoopback(address: string): boolean {
  // Fast exit: a loopback literal starts with `127.` or `[::1]` (the full parse below still decides).
  const c = address.charCodeAt(0)
  if (c !== 0x31 && c !== 0x5b) return false
  if (c === 0x31 ? !address.startsWith('127.') : !address.startsWith('[::1]:')) return false
  const p = parseAddress(address)
  if (p === undefined) return false
  return p.family === 4 ? p.host.startsWith('127.') : p.host === '::1'
}

interface Bucket {
  entries: TableEntry[]
  /**
   * The entries' IDs packed back to back (entry i at i × 20), kept in step with `entries`: scans and
   * XOR sorts read these contiguous bytes instead of chasing one object per contact (cache misses
   * dominate at 10,000 nodes in one process). Allocated on first use.
   */
  ids: Uint8Array | undefined
  replacements: Contact[] | undefined
}

/** Stands for every bucket never written to (most of the 160): read-only, never mutated. */
const EMPTY_BUCKET: Bucket = Object.freeze({
  entries: Object.freeze([]) as unknown as TableEntry[],
  ids: undefined,
  replacements: undefined,
})

/** Exact XOR-ordered Kademlia routing table. */
export class RoutingTable {
  /** The ID distances are measured from: the node's own. */
  readonly selfId: Uint8Array
  /** Bucket size: contacts kept per bucket. */
  readonly k: number
  readonly #perBucket: number
  readonly #perTable: number
  readonly #replacementCacheSize: number
  readonly #exempt: (address: string) => boolean
  /** Buckets are created on first add; until then {@link EMPTY_BUCKET} stands in. */
  readonly #buckets: Bucket[] = []
  /** Last time (clock ms) a lookup touched each bucket's range or a contact was added to it. */
  readonly #refreshedAt = new Float64Array(ID_LENGTH_BITS)
  readonly #groupCounts = new Map<string, number>()
  readonly #now: () => number
  /** Scratch for sorting one bucket in `closest()`. */
  readonly #order: number[] = []
  #size = 0

  constructor(selfId: Uint8Array, init: RoutingTableInit = {}, now: () => number = Date.now) {
    assertId(selfId, 'selfId')
    this.selfId = selfId
    this.k = init.k ?? 20
    if (!Number.isInteger(this.k) || this.k < 1) throw new RangeError("'k' must be a positive integer")
    this.#perBucket = init.maxPerIpGroupPerBucket ?? 2
    this.#perTable = init.maxPerIpGroupPerTable ?? 10
    if (!(this.#perBucket >= 1) || !(this.#perTable >= 1)) {
      throw new RangeError("'maxPerIpGroupPerBucket' and 'maxPerIpGroupPerTable' must be >= 1")
    }
    this.#replacementCacheSize = init.replacementCacheSize ?? this.k
    this.#exempt = init.isLimitExempt ?? isLoopback
    this.#now = now
    for (let i = 0; i < ID_LENGTH_BITS; i++) this.#buckets.push(EMPTY_BUCKET)
  }

  /** Number of contacts in the table. */
  get size(): number {
    return this.#size
  }

  /** Number of non-empty buckets. */
  get bucketsUsed(): number {
    let n = 0
    for (const b of this.#buckets) if (b.entries.length > 0) n++
    return n
  }

  /** Bucket index (common prefix length with our ID) of `id`; 160 for our own ID. */
  bucketIndex(id: Uint8Array): number {
    return commonPrefixLength(this.selfId, id)
  }

  /**
   * Adds a contact, or marks it seen (moves it to the tail) if present. A full bucket puts the newcomer in
   * the replacement cache and returns the least-recently-seen contact, which the caller should ping and
   * {@link remove} if it does not answer.
   */
  add(contact: Contact): AddResult {
    assertId(contact.id, 'contact.id')
    if (typeof contact.address !== 'string' || contact.address === '') {
      throw new TypeError("'contact.address' must be a non-empty string")
    }
    const index = this.bucketIndex(contact.id)
    if (index >= ID_LENGTH_BITS) return { status: 'self' }
    let bucket = this.#buckets[index]!
    if (bucket === EMPTY_BUCKET) {
      bucket = { entries: [], ids: undefined, replacements: undefined }
      this.#buckets[index] = bucket
    }
    const now = this.#now()
    const entries = bucket.entries
    const at = indexIn(bucket, contact.id)
    if (at >= 0) {
      const e = entries[at]!
      // An ID that moved to another address keeps its old one until that stops answering: otherwise
      // anyone could redirect a contact by claiming its ID.
      if (e.address !== contact.address) return { status: 'conflict' }
      e.lastSeen = now
      e.failures = 0
      if (at < entries.length - 1) {
        entries.splice(at, 1)
        entries.push(e)
        const ids = bucket.ids!
        ids.copyWithin(at * ID_LENGTH_BYTES, (at + 1) * ID_LENGTH_BYTES, entries.length * ID_LENGTH_BYTES)
        ids.set(e.id, (entries.length - 1) * ID_LENGTH_BYTES)
      }
      return { status: 'updated' }
    }
    const exempt = this.#exempt(contact.address)
    const shared = intern(contact.id, contact.address)
    const group = exempt ? '' : (shared.group ??= ipGroup(contact.address))
    if (!exempt) {
      if ((this.#groupCounts.get(group) ?? 0) >= this.#perTable) return { status: 'rejected' }
      let inBucket = 0
      for (const e of entries) if (e.group === group) inBucket++
      if (inBucket >= this.#perBucket) return { status: 'rejected' }
    }
    if (entries.length < this.k) {
      const ids = (bucket.ids ??= new Uint8Array(this.k * ID_LENGTH_BYTES))
      ids.set(contact.id, entries.length * ID_LENGTH_BYTES)
      entries.push({ id: shared.id, address: shared.address, lastSeen: now, failures: 0, group })
      this.#size++
      this.#refreshedAt[index] = now
      if (!exempt) this.#groupCounts.set(group, (this.#groupCounts.get(group) ?? 0) + 1)
      return { status: 'added' }
    }
    this.#addReplacement(bucket, contact)
    return { status: 'full', oldest: entries[0]! }
  }

  #addReplacement(bucket: Bucket, contact: Contact): void {
    if (this.#replacementCacheSize <= 0) return
    const list = (bucket.replacements ??= [])
    const at = list.findIndex((c) => idEquals(c.id, contact.id))
    if (at >= 0) list.splice(at, 1)
    list.push({ id: contact.id, address: contact.address })
    if (list.length > this.#replacementCacheSize) list.shift()
  }

  /**
   * Removes a contact; the most recently seen replacement (that fits the IP limits) takes its place.
   * Returns whether the contact was present.
   */
  remove(id: Uint8Array): boolean {
    assertId(id, 'id')
    const index = this.bucketIndex(id)
    if (index >= ID_LENGTH_BITS) return false
    const bucket = this.#buckets[index]!
    const at = indexIn(bucket, id)
    if (at < 0) {
      if (bucket.replacements !== undefined) {
        const r = bucket.replacements.findIndex((c) => idEquals(c.id, id))
        if (r >= 0) bucket.replacements.splice(r, 1)
      }
      return false
    }
    const [removed] = bucket.entries.splice(at, 1)
    bucket.ids!.copyWithin(
      at * ID_LENGTH_BYTES,
      (at + 1) * ID_LENGTH_BYTES,
      (bucket.entries.length + 1) * ID_LENGTH_BYTES,
    )
    this.#size--
    if (removed!.group !== '') {
      const n = (this.#groupCounts.get(removed!.group) ?? 1) - 1
      if (n <= 0) this.#groupCounts.delete(removed!.group)
      else this.#groupCounts.set(removed!.group, n)
    }
    const replacements = bucket.replacements
    while (replacements !== undefined && replacements.length > 0) {
      const next = replacements.pop()!
      if (this.add(next).status === 'added') break
    }
    return true
  }

  /**
   * Records an RPC failure; the contact is removed after `maxFailures` consecutive failures, or at the first
   * failure when a replacement is waiting. Returns whether it was removed.
   */
  recordFailure(id: Uint8Array, maxFailures = 2): boolean {
    const e = this.#find(id)
    if (e === undefined) return false
    e.failures++
    const bucket = this.#buckets[this.bucketIndex(id)]!
    if (e.failures >= maxFailures || (bucket.replacements?.length ?? 0) > 0) return this.remove(id)
    return false
  }

  #find(id: Uint8Array): TableEntry | undefined {
    const index = this.bucketIndex(id)
    if (index >= ID_LENGTH_BITS) return undefined
    const bucket = this.#buckets[index]!
    const at = indexIn(bucket, id)
    return at < 0 ? undefined : bucket.entries[at]
  }

  /** The contact with this ID, if present. */
  get(id: Uint8Array): TableEntry | undefined {
    assertId(id, 'id')
    return this.#find(id)
  }

  /** Whether a contact with this ID is present. */
  has(id: Uint8Array): boolean {
    return this.get(id) !== undefined
  }

  /**
   * The `n` contacts closest to `target` by exact XOR distance, closest first, excluding `exclude`.
   *
   * Each bucket is one contiguous range of distances from `target`, and the order of the ranges follows
   * from the bits of self ⊕ target: with b = cpl(self, target), bucket b comes first; a bucket i > b holds
   * IDs whose distance has bit i equal to NOT (self ⊕ target)_i and bits b..i-1 fixed, so buckets i > b
   * with (self ⊕ target)_i = 1 come next in ascending i, then those with 0 in descending i; then buckets
   * b-1 … 0. Only the buckets needed are sorted.
   */
  closest(target: Uint8Array, n: number = this.k, exclude?: Uint8Array): TableEntry[] {
    assertId(target, 'target')
    const out: TableEntry[] = []
    if (n <= 0) return out
    const self = this.selfId
    const b = this.bucketIndex(target)
    if (b < ID_LENGTH_BITS) this.#take(b, target, n, exclude, out)
    for (let i = b + 1; i < ID_LENGTH_BITS && out.length < n; i++) {
      if ((((self[i >> 3]! ^ target[i >> 3]!) >> (7 - (i & 7))) & 1) === 1)
        this.#take(i, target, n, exclude, out)
    }
    for (let i = ID_LENGTH_BITS - 1; i > b && out.length < n; i--) {
      if ((((self[i >> 3]! ^ target[i >> 3]!) >> (7 - (i & 7))) & 1) === 0)
        this.#take(i, target, n, exclude, out)
    }
    for (let i = Math.min(b, ID_LENGTH_BITS) - 1; i >= 0 && out.length < n; i--)
      this.#take(i, target, n, exclude, out)
    return out
  }

  /**
   * Appends bucket `index` to `out` in XOR order from `target`, keeping `out` at most `n` long (a bounded
   * insertion sort: buckets are small, and no comparator closure or copy is allocated). Every ID of
   * bucket i shares its first i + 1 bits (our prefix, then the flipped bit), so their distances to any
   * target agree on those bits and the comparison starts at byte (i + 1) >> 3.
   */
  #take(
    index: number,
    target: Uint8Array,
    n: number,
    exclude: Uint8Array | undefined,
    out: TableEntry[],
  ): void {
    const bucket = this.#buckets[index]!
    const entries = bucket.entries
    const count = entries.length
    if (count === 0) return
    const ids = bucket.ids!
    const from = (index + 1) >> 3
    const order = this.#order
    let sorted = 0
    for (let e = 0; e < count; e++) {
      const at = e * ID_LENGTH_BYTES
      if (exclude !== undefined && equalAt(ids, at, exclude)) continue
      // Walk back past every farther entry (bounded insertion sort on indexes into the packed IDs).
      let pos = sorted
      while (pos > 0) {
        const other = order[pos - 1]! * ID_LENGTH_BYTES
        let d = 0
        for (let j = from; j < ID_LENGTH_BYTES; j++) {
          const t = target[j]!
          d = (ids[at + j]! ^ t) - (ids[other + j]! ^ t)
          if (d !== 0) break
        }
        if (d >= 0) break
        order[pos] = order[pos - 1]!
        pos--
      }
      order[pos] = e
      sorted++
    }
    for (let i = 0; i < sorted && out.length < n; i++) out.push(entries[order[i]!]!)
  }

  /** Every contact, bucket by bucket (farthest bucket first), least recently seen first within a bucket. */
  *[Symbol.iterator](): IterableIterator<TableEntry> {
    for (const bucket of this.#buckets) yield* bucket.entries.slice()
  }

  /** Same as iterating the table. */
  iterate(): IterableIterator<TableEntry> {
    return this[Symbol.iterator]()
  }

  /** Contacts of one bucket (least recently seen first). */
  bucket(index: number): readonly TableEntry[] {
    return this.#buckets[index]?.entries ?? []
  }

  /** Marks bucket `index` refreshed (a lookup went through its range). */
  markRefreshed(index: number): void {
    if (index >= 0 && index < ID_LENGTH_BITS) this.#refreshedAt[index] = this.#now()
  }

  /**
   * Indexes of non-empty-range buckets not refreshed for `maxAgeMs`, up to the deepest bucket that holds
   * a contact (deeper buckets are empty by construction in a healthy network).
   */
  staleBuckets(maxAgeMs: number): number[] {
    const now = this.#now()
    let deepest = -1
    for (let i = ID_LENGTH_BITS - 1; i >= 0; i--) {
      if (this.#buckets[i]!.entries.length > 0) {
        deepest = i
        break
      }
    }
    const out: number[] = []
    for (let i = 0; i <= deepest; i++) if (now - this.#refreshedAt[i]! >= maxAgeMs) out.push(i)
    return out
  }
}

interface Interned {
  readonly id: Uint8Array
  readonly address: string
  group: string | undefined
}

const INTERN_SLOTS = 1 << 16
let internCache: Array<Interned | undefined> | undefined

/**
 * Tables share one ID object and one address string per contact: many tables in one process (the
 * simulator, test networks) otherwise hold a private copy of each decoded ID and address per table.
 * A bounded direct-mapped cache (65,536 slots, allocated on first use); a collision only means a copy is
 * not shared. IDs held by the table are therefore shared between tables: treat `TableEntry.id` as
 * read-only (as the table already requires).
 */
function intern(id: Uint8Array, address: string): Interned {
  const cache = (internCache ??= new Array<Interned | undefined>(INTERN_SLOTS))
  const slot =
    (((id[0]! << 8) | id[1]!) ^ ((id[18]! << 8) | id[19]!) ^ ((id[9]! << 8) | id[10]!)) & (INTERN_SLOTS - 1)
  const hit = cache[slot]
  if (hit !== undefined && hit.address === address && equalAt(hit.id, 0, id)) return hit
  const fresh: Interned = { id: id.slice(), address, group: undefined }
  cache[slot] = fresh
  return fresh
}

/** Whether `ids[at..at+20)` equals `id`. */
function equalAt(ids: Uint8Array, at: number, id: Uint8Array): boolean {
  for (let j = 0; j < ID_LENGTH_BYTES; j++) if (ids[at + j] !== id[j]) return false
  return true
}

/** Index of `id` in the bucket, or -1 (scans the packed IDs). */
function indexIn(bucket: Bucket, id: Uint8Array): number {
  const ids = bucket.ids
  if (ids === undefined) return -1
  const count = bucket.entries.length
  const first = id[0]
  for (let i = 0; i < count; i++) {
    const at = i * ID_LENGTH_BYTES
    if (ids[at] === first && equalAt(ids, at, id)) return i
  }
  return -1
}
