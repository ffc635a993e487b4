import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { CrdtSyncError, isCrdtSyncError, type CrdtSyncErrorCode } from './errors'
import { SILENT_LOGGER, type Logger } from './logger'
import { nextTurn, type Clock } from './clock'
import { sliceUpdate, sliceUpdateAsync, type SliceBudget, type SlicedUpdate } from './update-slices'
import { encodeStateAsUpdateSliced } from './encode-sliced'
import {
  META_RANGE,
  decodeName,
  docNameProblem,
  docRange,
  encodeName,
  metaKey,
  parseDocKey,
  snapshotKey,
  updateKey,
} from './keys'

/** One operation of {@link CrdtDatabase.batch}. */
export type CrdtBatchOperation =
  | {
      /** Write `value` under `key`. */
      type: 'put'
      /** The database key (utf8). */
      key: string
      /** The bytes to store. */
      value: Uint8Array
    }
  | {
      /** Delete `key`. */
      type: 'del'
      /** The database key (utf8). */
      key: string
    }

/**
 * What the store needs from its database: an `abstract-level` 2/3 database (or sublevel) with `utf8` keys and
 * `view` (Uint8Array) values, e.g. `db.sublevel('crdt', { keyEncoding: 'utf8', valueEncoding: 'view' })` of a
 * `level`/`classic-level` database. It must be open (or opening: abstract-level defers operations until open).
 * `get` resolves `undefined` for a missing key (abstract-level ≥ 2). `close` is called only when the store
 * owns the database (`DocStoreInit.ownsDatabase`).
 */
export interface CrdtDatabase {
  /** The value under `key`, or `undefined` when there is none. */
  get(key: string): Promise<Uint8Array | undefined>
  /** Applies every operation atomically: all of them are written, or none. */
  batch(operations: CrdtBatchOperation[]): Promise<void>
  /** Entries in key order within the range (`gt`/`lt` exclusive bounds). */
  iterator(options: {
    gt?: string
    lt?: string
    keys?: boolean
    values?: boolean
  }): AsyncIterable<[string, Uint8Array]>
  /** Closes the database; called only when the store owns it. */
  close(): Promise<void>
}

/** Services injected into {@link createDocStore}. */
export interface DocStoreComponents {
  /** The database documents live in; see {@link CrdtDatabase} for what it must support. */
  db: CrdtDatabase
  /** @default a silent logger */
  logger?: Logger
  /** Only `now` is used. @default `Date.now` */
  clock?: Pick<Clock, 'now'>
}

/** Options of {@link createDocStore}; plain data. */
export interface DocStoreInit {
  /** A document nobody holds is evicted from memory after this long. @default 30_000 */
  idleTimeoutMs?: number
  /** How often idle documents are looked for. @default 5_000 */
  evictionIntervalMs?: number
  /** Most documents held in memory at once; beyond it the least recently used idle one is evicted, or the open fails with `X_CRDT_TOO_MANY_DOCS`. @default 10_000 */
  maxOpenDocuments?: number
  /** Most bytes a document may occupy in storage (snapshot + uncompacted updates). @default 33_554_432 (32 MiB) */
  maxDocumentBytes?: number
  /**
   * Largest single update accepted from a client or another node (`X_CRDT_UPDATE_TOO_LARGE`). Whatever its
   * size, an update is applied in small slices, as many per turn of the event loop as fit in 10 ms.
   * @default 4_194_304 (4 MiB)
   */
  maxUpdateBytes?: number
  /**
   * Storage quota of the whole store: an update that would take the stored bytes of all documents (plus what is
   * being written) beyond it is refused with `X_CRDT_QUOTA_EXCEEDED`. Approximate until the first scan of the
   * metadata index (started by the first `open`) has finished. @default 1_073_741_824 (1 GiB)
   */
  maxStoredBytes?: number
  /**
   * Most distinct Yjs client IDs in one document (`X_CRDT_DOC_TOO_LARGE`): every transaction on a document
   * costs time in proportion to its client count, so a document carrying hundreds of thousands of them (a few
   * bytes each) would slow every later edit. @default 20_000
   */
  maxDocumentClients?: number
  /**
   * CPU time one update may take to apply, across its slices; beyond it the rest of the update is dropped and
   * the update is refused with `X_CRDT_UPDATE_TOO_LARGE` (what it applied so far stays, like any change). Yjs
   * integrates some crafted shapes in time quadratic in their size. @default 2_000
   */
  maxApplyMs?: number
  /** Compact a document when its uncompacted updates outweigh `ratio` × its snapshot. @default 1 */
  compactionRatio?: number
  /** Never compact (by size ratio) while uncompacted updates total fewer bytes than this. @default 65_536 */
  compactionMinBytes?: number
  /**
   * Also compact once a document has this many uncompacted updates, whatever their size: loading costs per
   * update, and thousands of one-keystroke updates are small in bytes but slow to load. @default 500
   */
  compactionMaxUpdates?: number
  /** Yjs garbage collection of deleted content (turn off to keep snapshots/history). @default true */
  gc?: boolean
  /** Whether {@link DocStore.close} closes the database. Leave false when the database is shared. @default false */
  ownsDatabase?: boolean
}

/** A held, loaded document. Hold it while you use it; `release()` lets it be evicted when idle. */
export interface DocHandle {
  /** The document's name, as passed to {@link DocStore.open}. */
  readonly name: string
  /** The live document. Local edits (`doc.getText().insert(...)`) are persisted like remote ones. */
  readonly doc: Y.Doc
  /**
   * Validates and applies a remote update; resolves once it is applied (not yet durable: see `whenDurable`).
   * A small update is applied before this returns; a large one in slices, one per turn of the event loop, after
   * every update this handle's document received before it. Rejects with `X_CRDT_UPDATE_TOO_LARGE`,
   * `X_CRDT_DOC_TOO_LARGE`, `X_CRDT_QUOTA_EXCEEDED`, `X_CRDT_BAD_MESSAGE` (not a Yjs update: nothing applied)
   * or `X_CRDT_DOC_FAILED`. Listeners of {@link DocStore.onUpdate} hear about it once it is on disk.
   */
  applyUpdate(update: Uint8Array, origin?: unknown): Promise<void>
  /** Runs `fn` once every change made to this document so far is on disk (synchronously if it already is). */
  afterDurable(fn: () => void): void
  /** Resolves once every change made to this document so far is on disk. */
  whenDurable(): Promise<void>
  /** Gives the hold back. Idempotent. */
  release(): void
}

/** Called once an update is on disk, with the origin passed to `applyUpdate` (or the transaction origin). */
export type UpdateListener = (name: string, update: Uint8Array, origin: unknown) => void

/** Health of the store as a whole, for a health registry. */
export interface DocStoreHealth {
  /** `degraded` after a storage error until the next successful write; `closed` after `close()`. */
  status: 'ok' | 'degraded' | 'closed'
  /** The most recent storage error, or `null` if none since the start. */
  lastError: {
    /** The error's code. */
    code: CrdtSyncErrorCode
    /** The error's message. */
    message: string
    /** When it happened, in milliseconds since the epoch. */
    at: number
  } | null
}

/** Information about the most recent compaction. */
export interface CompactionInfo {
  /** The document that was compacted. */
  name: string
  /** When it finished, in milliseconds since the epoch. */
  at: number
  /** Stored bytes of the document (snapshot + updates) before. */
  bytesBefore: number
  /** Stored bytes after: the new snapshot. */
  bytesAfter: number
}

/** Snapshot of the store's counters. */
export interface DocStoreStats {
  /** Documents held in memory now. */
  openDocuments: number
  /** Updates persisted per second, averaged over the last 10 s. */
  updatesPerSecond: number
  /** Updates accepted for persistence since the store was created (a counter, for `rate()` in Prometheus). */
  updatesTotal: number
  /** Stored bytes (snapshot + uncompacted updates) of every document, from the metadata index. */
  bytesStored: number
  /** The storage quota (`maxStoredBytes`). */
  maxStoredBytes: number
  /** The most recent compaction, or `null` if none yet. */
  lastCompaction: CompactionInfo | null
  /** Error counts by code. */
  errors: Partial<Record<CrdtSyncErrorCode, number>>
}

/** Persistent Yjs documents; see {@link createDocStore}. */
export interface DocStore {
  /** Loads (if needed) and holds a document. Rejects with `X_CRDT_TOO_MANY_DOCS`, `X_CRDT_DOC_TOO_LARGE`, `X_CRDT_STORAGE`, `X_CRDT_BAD_DOC_NAME` or `X_CRDT_CLOSED`. */
  open(name: string): Promise<DocHandle>
  /** The document if it is in memory right now. */
  get(name: string): Y.Doc | undefined
  /** Applies a remote update (opening the document if needed); resolves once it is on disk. */
  applyUpdate(name: string, update: Uint8Array, origin?: unknown): Promise<void>
  /** The document's state vector, from memory or from the metadata index without loading it. */
  getStateVector(name: string): Promise<Uint8Array>
  /** The document (or its difference from `stateVector`) as one update, once everything in it is on disk. */
  encodeStateAsUpdate(name: string, stateVector?: Uint8Array): Promise<Uint8Array>
  /** Names of every stored document, in key order. */
  listDocuments(): AsyncIterable<string>
  /** Whether the document is stored (it has metadata) or in memory now, without loading it. */
  has(name: string): Promise<boolean>
  /** Names of the documents in memory now (stored or not yet written). */
  loadedDocuments(): string[]
  /** Subscribes to documents being loaded into memory (opened while not in memory); returns the unsubscribe function. */
  onDocumentLoaded(listener: (name: string) => void): () => void
  /** Subscribes to durable updates; returns the unsubscribe function. */
  onUpdate(listener: UpdateListener): () => void
  /** Subscribes to documents dropped from memory because a write failed; returns the unsubscribe function. */
  onDocumentFailed(listener: (name: string, error: CrdtSyncError) => void): () => void
  /** Merges a document's updates into its snapshot now (when it is open). */
  compact(name: string): Promise<void>
  /** Resolves once every change made so far is on disk. */
  flush(): Promise<void>
  /** Evicts every idle document now; resolves with how many were evicted. */
  evictIdle(): Promise<number>
  /** The store's health now; see {@link DocStoreHealth}. */
  readonly health: DocStoreHealth
  /** The store's counters now. */
  getStats(): DocStoreStats
  /** Flushes, drops every document from memory and closes the database if the store owns it. */
  close(): Promise<void>
}

const DEFAULT_IDLE_TIMEOUT_MS = 30_000
const DEFAULT_EVICTION_INTERVAL_MS = 5_000
const DEFAULT_MAX_OPEN_DOCUMENTS = 10_000
const DEFAULT_MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
const DEFAULT_MAX_UPDATE_BYTES = 4 * 1024 * 1024
const DEFAULT_MAX_STORED_BYTES = 1024 * 1024 * 1024
const DEFAULT_MAX_DOCUMENT_CLIENTS = 20_000
/**
 * Updates are applied in slices of at most 16 structs, as many per turn of the event loop as fit in
 * APPLY_TURN_MS (and at most APPLY_TURN_STRUCTS): Y.applyUpdate costs ~10 µs per struct for hostile shapes
 * (inserts at random positions), but an item integrated among many concurrent siblings scans them, so a time
 * box, not a count alone, keeps each turn short.
 */
const APPLY_SLICE_BUDGET: SliceBudget = { maxBytes: 64 * 1024, maxStructs: 16, maxDeleteRanges: 256 }
const APPLY_TURN_MS = 10
const APPLY_TURN_STRUCTS = 1_000
const DEFAULT_MAX_APPLY_MS = 2_000
/** Monotonic time for the time box (a measurement, not a timer). */
const monotonicMs = (): number => performance.now()
/** Updates up to this size are read and applied at once, without yielding (the common case: keystrokes). */
const APPLY_AT_ONCE_BYTES = 16 * 1024
const DEFAULT_COMPACTION_RATIO = 1
const DEFAULT_COMPACTION_MIN_BYTES = 64 * 1024
const DEFAULT_COMPACTION_MAX_UPDATES = 500
const RATE_WINDOW_S = 10 // updates/s is averaged over this many one-second buckets
const EMPTY_STATE_VECTOR = new Uint8Array([0])

interface InflightMark {
  upTo: number
  done: boolean
}

/** In-memory state of one loaded document. */
class Entry {
  readonly name: string
  readonly enc: string
  readonly doc: Y.Doc
  holders = 0
  lastUsed: number
  snapshotBytes = 0
  /** Stored bytes of this document as included in the store's `bytesStored` total. */
  countedBytes = 0
  /** Bytes of update keys written (or being written) after the snapshot. */
  updateBytes = 0
  firstSeq = 0
  nextSeq = 0
  /** Updates not yet put in a batch. */
  unbatched: Uint8Array[] = []
  unbatchedBytes = 0
  /** Count of changes enqueued for writing / known to be on disk. `durable === enqueued` means clean. */
  enqueued = 0
  durable = 0
  inflight: InflightMark[] = []
  waiters: { seq: number; fn: () => void }[] = []
  compactRequested = false
  /** A snapshot being encoded (in steps) for compaction. */
  compacting = false
  /** An encoded snapshot that replaces update keys below `upTo` once no batch of this document is in flight. */
  compactReady: { snapshot: Uint8Array; upTo: number; coveredBytes: number; bytesBefore: number } | undefined
  /** The last update being applied in slices (later ones wait for it); undefined when none is. */
  applyTail: Promise<void> | undefined
  /** Bytes of updates accepted and not yet applied. */
  applyingBytes = 0
  evicted = false
  failed: CrdtSyncError | undefined
  onUpdate: ((update: Uint8Array, origin: unknown) => void) | undefined

  constructor(name: string, enc: string, doc: Y.Doc, now: number) {
    this.name = name
    this.enc = enc
    this.doc = doc
    this.lastUsed = now
  }

  get storedBytes(): number {
    return this.snapshotBytes + this.updateBytes
  }

  get clean(): boolean {
    return this.durable === this.enqueued && this.unbatched.length === 0 && this.inflight.length === 0
  }
}

class RateCounter {
  readonly #buckets = new Array<number>(RATE_WINDOW_S).fill(0)
  #second = 0

  add(nowMs: number, n: number): void {
    this.#advance(nowMs)
    this.#buckets[this.#second % RATE_WINDOW_S]! += n
  }

  perSecond(nowMs: number): number {
    this.#advance(nowMs)
    return this.#buckets.reduce((a, b) => a + b, 0) / RATE_WINDOW_S
  }

  #advance(nowMs: number): void {
    const s = Math.floor(nowMs / 1000)
    if (s <= this.#second) return
    const steps = Math.min(s - this.#second, RATE_WINDOW_S)
    for (let i = 1; i <= steps; i++) this.#buckets[(this.#second + i) % RATE_WINDOW_S] = 0
    this.#second = s
  }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`'${name}' must be a positive number`)
  return value
}

function encodeMeta(stateVector: Uint8Array, storedBytes: number): Uint8Array {
  const enc = encoding.createEncoder()
  encoding.writeVarUint8Array(enc, stateVector)
  encoding.writeVarUint(enc, storedBytes)
  return encoding.toUint8Array(enc)
}

function decodeMeta(bytes: Uint8Array): { stateVector: Uint8Array; storedBytes: number } {
  const dec = decoding.createDecoder(bytes)
  const stateVector = decoding.readVarUint8Array(dec)
  const storedBytes = decoding.readVarUint(dec)
  return { stateVector, storedBytes }
}

class DocStoreImpl implements DocStore {
  readonly #db: CrdtDatabase
  readonly #log: Logger
  readonly #clock: Pick<Clock, 'now'>
  readonly #idleTimeoutMs: number
  readonly #evictionIntervalMs: number
  readonly #maxOpen: number
  readonly #maxDocBytes: number
  readonly #maxUpdateBytes: number
  readonly #maxStoredBytes: number
  readonly #maxDocClients: number
  readonly #maxApplyMs: number
  readonly #ratio: number
  readonly #compactionMinBytes: number
  readonly #compactionMaxUpdates: number
  readonly #gc: boolean
  readonly #ownsDb: boolean

  readonly #entries = new Map<string, Entry>()
  readonly #loading = new Map<string, Promise<Entry>>()
  readonly #dirty = new Set<Entry>()
  readonly #batches = new Set<Promise<void>>()
  readonly #compactionJobs = new Set<Promise<void>>()
  readonly #updateListeners = new Set<UpdateListener>()
  readonly #failedListeners = new Set<(name: string, error: CrdtSyncError) => void>()
  readonly #loadedListeners = new Set<(name: string) => void>()
  /**
   * Only while the one-time metadata scan runs: the stored size each document had when it was first rewritten
   * during the scan, so the scan counts that (and the write its difference) whatever the iterator sees.
   * Nothing is kept per document once the scan is done: memory must not grow with documents ever opened.
   */
  #scanTouched: Map<string, number> | undefined
  readonly #errors: Partial<Record<CrdtSyncErrorCode, number>> = {}
  readonly #rate = new RateCounter()
  #updatesTotal = 0
  #bytesStored = 0
  /** Bytes accepted (being applied, or applied and not yet written) and not yet in `#bytesStored`. */
  #unwrittenBytes = 0
  #scan: Promise<void> | undefined
  #flushScheduled = false
  #sweepTimer: ReturnType<typeof setInterval> | undefined
  #lastCompaction: CompactionInfo | null = null
  #health: DocStoreHealth = { status: 'ok', lastError: null }
  #closing: Promise<void> | undefined
  #closed = false

  constructor(components: DocStoreComponents, init: DocStoreInit) {
    if (components?.db == null || typeof components.db.batch !== 'function') {
      throw new TypeError("'components.db' must be an abstract-level compatible database")
    }
    this.#db = components.db
    this.#log = components.logger ?? SILENT_LOGGER
    this.#clock = components.clock ?? { now: Date.now }
    this.#idleTimeoutMs = positive('idleTimeoutMs', init.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS)
    this.#evictionIntervalMs = positive(
      'evictionIntervalMs',
      init.evictionIntervalMs,
      DEFAULT_EVICTION_INTERVAL_MS,
    )
    this.#maxOpen = positive('maxOpenDocuments', init.maxOpenDocuments, DEFAULT_MAX_OPEN_DOCUMENTS)
    this.#maxDocBytes = positive('maxDocumentBytes', init.maxDocumentBytes, DEFAULT_MAX_DOCUMENT_BYTES)
    this.#maxUpdateBytes = positive('maxUpdateBytes', init.maxUpdateBytes, DEFAULT_MAX_UPDATE_BYTES)
    this.#maxStoredBytes = positive('maxStoredBytes', init.maxStoredBytes, DEFAULT_MAX_STORED_BYTES)
    this.#maxDocClients = positive(
      'maxDocumentClients',
      init.maxDocumentClients,
      DEFAULT_MAX_DOCUMENT_CLIENTS,
    )
    this.#maxApplyMs = positive('maxApplyMs', init.maxApplyMs, DEFAULT_MAX_APPLY_MS)
    this.#ratio = positive('compactionRatio', init.compactionRatio, DEFAULT_COMPACTION_RATIO)
    this.#compactionMinBytes = init.compactionMinBytes ?? DEFAULT_COMPACTION_MIN_BYTES
    if (!(this.#compactionMinBytes >= 0)) throw new RangeError("'compactionMinBytes' must be >= 0")
    this.#compactionMaxUpdates = positive(
      'compactionMaxUpdates',
      init.compactionMaxUpdates,
      DEFAULT_COMPACTION_MAX_UPDATES,
    )
    this.#gc = init.gc ?? true
    this.#ownsDb = init.ownsDatabase ?? false
  }

  // ---- public API -------------------------------------------------------------------------------------------

  async open(name: string): Promise<DocHandle> {
    this.#assertOpen()
    this.#checkName(name)
    this.#startScan()
    for (let attempt = 0; attempt < 8; attempt++) {
      const entry = this.#entries.get(name) ?? (await this.#loadOnce(name))
      this.#assertOpen()
      if (entry.failed) throw entry.failed
      // An entry can be evicted between its load resolving and this continuation; then load again.
      if (entry.evicted) continue
      entry.holders++
      entry.lastUsed = this.#clock.now()
      return this.#handle(entry)
    }
    throw new CrdtSyncError(
      'X_CRDT_TOO_MANY_DOCS',
      `document '${name}' was evicted while opening, repeatedly`,
    )
  }

  get(name: string): Y.Doc | undefined {
    return this.#entries.get(name)?.doc
  }

  async applyUpdate(name: string, update: Uint8Array, origin?: unknown): Promise<void> {
    const handle = await this.open(name)
    try {
      await handle.applyUpdate(update, origin)
      await handle.whenDurable()
    } finally {
      handle.release()
    }
  }

  async getStateVector(name: string): Promise<Uint8Array> {
    this.#assertOpen()
    this.#checkName(name)
    const entry = this.#entries.get(name)
    if (entry) return Y.encodeStateVector(entry.doc)
    let bytes: Uint8Array | undefined
    try {
      bytes = await this.#db.get(metaKey(encodeName(name)))
    } catch (err) {
      throw this.#storageError(`reading metadata of '${name}' failed`, err)
    }
    if (bytes === undefined) return EMPTY_STATE_VECTOR
    try {
      return decodeMeta(bytes).stateVector
    } catch (err) {
      throw this.#storageError(`metadata of '${name}' is corrupt`, err)
    }
  }

  async encodeStateAsUpdate(name: string, stateVector?: Uint8Array): Promise<Uint8Array> {
    const handle = await this.open(name)
    try {
      const update = await encodeStateAsUpdateSliced(handle.doc, stateVector, nextTurn)
      await handle.whenDurable()
      return update
    } finally {
      handle.release()
    }
  }

  async *listDocuments(): AsyncIterable<string> {
    this.#assertOpen()
    try {
      for await (const [key] of this.#db.iterator({ ...META_RANGE, values: false })) {
        yield decodeName(key.slice(2))
      }
    } catch (err) {
      throw this.#storageError('listing documents failed', err)
    }
  }

  async has(name: string): Promise<boolean> {
    this.#assertOpen()
    this.#checkName(name)
    if (this.#entries.has(name) || this.#loading.has(name)) return true
    try {
      return (await this.#db.get(metaKey(encodeName(name)))) !== undefined
    } catch (err) {
      throw this.#storageError(`reading metadata of '${name}' failed`, err)
    }
  }

  loadedDocuments(): string[] {
    return [...this.#entries.keys()]
  }

  onDocumentLoaded(listener: (name: string) => void): () => void {
    this.#loadedListeners.add(listener)
    return () => this.#loadedListeners.delete(listener)
  }

  onUpdate(listener: UpdateListener): () => void {
    this.#updateListeners.add(listener)
    return () => this.#updateListeners.delete(listener)
  }

  onDocumentFailed(listener: (name: string, error: CrdtSyncError) => void): () => void {
    this.#failedListeners.add(listener)
    return () => this.#failedListeners.delete(listener)
  }

  async compact(name: string): Promise<void> {
    const entry = this.#entries.get(name)
    if (!entry || entry.failed) return
    entry.compactRequested = true
    this.#markDirty(entry)
    await this.flush()
  }

  async flush(): Promise<void> {
    while (this.#dirty.size > 0 || this.#batches.size > 0 || this.#compactionJobs.size > 0) {
      if (this.#dirty.size > 0) this.#flushNow()
      if (this.#batches.size > 0) await Promise.allSettled([...this.#batches])
      else if (this.#compactionJobs.size > 0) await Promise.allSettled([...this.#compactionJobs])
    }
  }

  async evictIdle(): Promise<number> {
    const now = this.#clock.now()
    const idle = [...this.#entries.values()].filter(
      (e) => e.holders === 0 && now - e.lastUsed >= this.#idleTimeoutMs,
    )
    if (idle.some((e) => !e.clean)) await this.flush()
    let evicted = 0
    for (const e of idle) {
      if (e.holders === 0 && e.clean && !e.evicted && !e.failed) {
        this.#evict(e)
        evicted++
      }
    }
    if (evicted > 0) this.#log.debug({ evicted, open: this.#entries.size }, 'evicted idle documents')
    return evicted
  }

  get health(): DocStoreHealth {
    return { ...this.#health }
  }

  getStats(): DocStoreStats {
    return {
      openDocuments: this.#entries.size,
      updatesPerSecond: this.#rate.perSecond(this.#clock.now()),
      updatesTotal: this.#updatesTotal,
      bytesStored: this.#bytesStored,
      maxStoredBytes: this.#maxStoredBytes,
      lastCompaction: this.#lastCompaction,
      errors: { ...this.#errors },
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  // ---- internals --------------------------------------------------------------------------------------------

  async #close(): Promise<void> {
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer)
    this.#sweepTimer = undefined
    await Promise.allSettled([...this.#loading.values()])
    await this.flush()
    await this.#scan?.catch(() => undefined)
    for (const e of this.#entries.values()) this.#evict(e)
    this.#closed = true
    this.#health = { ...this.#health, status: 'closed' }
    if (this.#ownsDb) {
      try {
        await this.#db.close()
      } catch (err) {
        throw this.#storageError('closing the database failed', err)
      }
    }
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new CrdtSyncError('X_CRDT_CLOSED', 'the document store is closed')
  }

  #checkName(name: string): void {
    const problem = docNameProblem(name)
    if (problem !== undefined) {
      this.#count('X_CRDT_BAD_DOC_NAME')
      throw new CrdtSyncError('X_CRDT_BAD_DOC_NAME', problem)
    }
  }

  #count(code: CrdtSyncErrorCode): void {
    this.#errors[code] = (this.#errors[code] ?? 0) + 1
  }

  #storageError(message: string, cause: unknown): CrdtSyncError {
    if (isCrdtSyncError(cause)) return cause
    const err = new CrdtSyncError('X_CRDT_STORAGE', message, { cause })
    this.#count('X_CRDT_STORAGE')
    this.#health = {
      status: this.#closed ? 'closed' : 'degraded',
      lastError: { code: err.code, message: `${message}: ${String(cause)}`, at: this.#clock.now() },
    }
    this.#log.error({ err: cause }, message)
    return err
  }

  /** A write of `e` completed and it now occupies `bytes`: move the total by the difference. */
  #setStored(e: Entry, bytes: number): void {
    if (this.#scanTouched !== undefined && !this.#scanTouched.has(e.enc)) {
      this.#scanTouched.set(e.enc, e.countedBytes)
    }
    this.#bytesStored += bytes - e.countedBytes
    e.countedBytes = bytes
  }

  /** Totals the stored size of every document once, from the metadata index (one small value per document). */
  #startScan(): void {
    if (this.#scan !== undefined) return
    // Starts before the first document loads, so before any write: every document's size is counted once,
    // either as the scan reads it or, if rewritten meanwhile, as it was before that write.
    const touched = new Map<string, number>()
    this.#scanTouched = touched
    this.#scan = (async () => {
      try {
        for await (const [key, value] of this.#db.iterator({ ...META_RANGE })) {
          const enc = key.slice(2)
          this.#bytesStored += touched.get(enc) ?? decodeMeta(value).storedBytes
        }
      } catch (err) {
        this.#storageError('scanning document metadata failed', err)
      } finally {
        this.#scanTouched = undefined
      }
    })()
  }

  #startSweep(): void {
    if (this.#sweepTimer !== undefined || this.#closing !== undefined) return
    this.#sweepTimer = setInterval(() => {
      this.evictIdle().catch((err: unknown) => this.#log.warn({ err }, 'eviction sweep failed'))
    }, this.#evictionIntervalMs)
    this.#sweepTimer.unref?.()
  }

  #loadOnce(name: string): Promise<Entry> {
    const pending = this.#loading.get(name)
    if (pending) return pending
    const p = (async () => {
      await this.#makeRoom(name)
      const entry = await this.#load(name)
      this.#assertOpen()
      this.#entries.set(name, entry)
      this.#startSweep()
      for (const listener of this.#loadedListeners) {
        try {
          listener(name)
        } catch (err) {
          this.#log.warn({ err, doc: name }, 'load listener threw')
        }
      }
      // Stored by an older release or another configuration with too many updates: compact now, so the
      // next load is fast (a write on read, once).
      if (entry.nextSeq - entry.firstSeq > this.#compactionMaxUpdates) {
        entry.compactRequested = true
        this.#markDirty(entry)
      }
      return entry
    })().finally(() => this.#loading.delete(name))
    this.#loading.set(name, p)
    return p
  }

  async #makeRoom(loadingName: string): Promise<void> {
    const othersLoading = (): number => this.#loading.size - (this.#loading.has(loadingName) ? 1 : 0)
    while (this.#entries.size + othersLoading() >= this.#maxOpen) {
      let victim: Entry | undefined
      for (const e of this.#entries.values()) {
        if (e.holders === 0 && !e.failed && (victim === undefined || e.lastUsed < victim.lastUsed)) victim = e
      }
      if (victim === undefined) {
        this.#count('X_CRDT_TOO_MANY_DOCS')
        throw new CrdtSyncError(
          'X_CRDT_TOO_MANY_DOCS',
          `${this.#maxOpen} documents are open and held; cannot open another`,
        )
      }
      if (!victim.clean) await this.#whenDurable(victim)
      if (victim.holders === 0 && victim.clean && !victim.evicted && !victim.failed) this.#evict(victim)
    }
  }

  async #load(name: string): Promise<Entry> {
    const enc = encodeName(name)
    let snapshot: Uint8Array | undefined
    const updates: Uint8Array[] = []
    let firstSeq = -1
    let lastSeq = -1
    let snapshotBytes = 0
    let updateBytes = 0
    try {
      for await (const [key, value] of this.#db.iterator(docRange(enc))) {
        const seq = parseDocKey(enc, key)
        if (seq === -1) {
          snapshot = value
          snapshotBytes = value.length
        } else if (seq >= 0) {
          updates.push(value)
          updateBytes += value.length
          if (firstSeq < 0) firstSeq = seq
          lastSeq = seq
        }
        if (snapshotBytes + updateBytes > this.#maxDocBytes) {
          this.#count('X_CRDT_DOC_TOO_LARGE')
          throw new CrdtSyncError(
            'X_CRDT_DOC_TOO_LARGE',
            `document '${name}' exceeds ${this.#maxDocBytes} stored bytes`,
          )
        }
      }
    } catch (err) {
      throw this.#storageError(`loading '${name}' failed`, err)
    }
    const doc = new Y.Doc({ gc: this.#gc })
    try {
      // In slices too, time-boxed per turn of the event loop (one transaction per turn): a stored document can
      // hold many MiB of structs.
      let pending: Uint8Array[] = []
      let next = 0
      const applyTurn = (): void => {
        const start = monotonicMs()
        Y.transact(doc, () => {
          let structs = 0
          do {
            Y.applyUpdate(doc, pending[next]!)
            next++
            structs += APPLY_SLICE_BUDGET.maxStructs
          } while (
            next < pending.length &&
            structs < APPLY_TURN_STRUCTS &&
            monotonicMs() - start < APPLY_TURN_MS
          )
        })
      }
      for (const value of snapshot ? [snapshot, ...updates] : updates) {
        const sliced =
          value.length <= APPLY_AT_ONCE_BYTES
            ? sliceUpdate(value, APPLY_SLICE_BUDGET)
            : await sliceUpdateAsync(value, APPLY_SLICE_BUDGET, nextTurn)
        pending = next < pending.length ? [...pending.slice(next), ...sliced.slices] : sliced.slices
        next = 0
        // Small stored updates are gathered until they make a turn's worth.
        while (pending.length - next >= APPLY_TURN_STRUCTS / APPLY_SLICE_BUDGET.maxStructs) {
          applyTurn()
          await nextTurn()
          this.#assertOpen()
        }
      }
      while (next < pending.length) {
        applyTurn()
        if (next < pending.length) {
          await nextTurn()
          this.#assertOpen()
        }
      }
    } catch (err) {
      doc.destroy()
      if (isCrdtSyncError(err) && err.code === 'X_CRDT_CLOSED') throw err
      throw this.#storageError(`stored data of '${name}' is corrupt`, err)
    }
    const entry = new Entry(name, enc, doc, this.#clock.now())
    entry.snapshotBytes = snapshotBytes
    entry.updateBytes = updateBytes
    entry.firstSeq = firstSeq < 0 ? 0 : firstSeq
    entry.nextSeq = lastSeq + 1
    // What is on disk now, which is what the total holds for it (from the scan or from earlier writes).
    entry.countedBytes = entry.storedBytes
    entry.onUpdate = (update, origin) => this.#onDocUpdate(entry, update, origin, true)
    doc.on('update', entry.onUpdate)
    return entry
  }

  #handle(entry: Entry): DocHandle {
    let released = false
    return {
      name: entry.name,
      doc: entry.doc,
      applyUpdate: (update, origin) => this.#applyRemote(entry, update, origin),
      afterDurable: (fn) => this.#afterDurable(entry, fn),
      whenDurable: () => this.#whenDurable(entry),
      release: () => {
        if (released) return
        released = true
        entry.holders--
        entry.lastUsed = this.#clock.now()
      },
    }
  }

  /** Checks a remote update against the limits before anything is applied (the caller counts nothing). */
  #admit(entry: Entry, update: Uint8Array): void {
    if (!(update instanceof Uint8Array)) throw new TypeError("'update' must be a Uint8Array")
    if (entry.failed) throw entry.failed
    if (entry.evicted) throw new CrdtSyncError('X_CRDT_CLOSED', `document '${entry.name}' is no longer open`)
    if (update.length > this.#maxUpdateBytes) {
      this.#count('X_CRDT_UPDATE_TOO_LARGE')
      throw new CrdtSyncError(
        'X_CRDT_UPDATE_TOO_LARGE',
        `an update of ${update.length} bytes exceeds ${this.#maxUpdateBytes} bytes`,
      )
    }
    if (entry.storedBytes + entry.unbatchedBytes + entry.applyingBytes + update.length > this.#maxDocBytes) {
      this.#count('X_CRDT_DOC_TOO_LARGE')
      throw new CrdtSyncError(
        'X_CRDT_DOC_TOO_LARGE',
        `an update of ${update.length} bytes would take '${entry.name}' over ${this.#maxDocBytes} bytes`,
      )
    }
    if (this.#bytesStored + this.#unwrittenBytes + update.length > this.#maxStoredBytes) {
      this.#count('X_CRDT_QUOTA_EXCEEDED')
      throw new CrdtSyncError(
        'X_CRDT_QUOTA_EXCEEDED',
        `an update of ${update.length} bytes would take the store over its quota of ${this.#maxStoredBytes} bytes`,
      )
    }
  }

  /** Reading the update found new client IDs beyond `maxDocumentClients`: refuse it before applying any of it. */
  #checkClients(entry: Entry, sliced: SlicedUpdate): void {
    const known = entry.doc.store.clients
    let added = 0
    for (const client of sliced.clients) if (!known.has(client)) added++
    if (added > 0 && known.size + added > this.#maxDocClients) {
      this.#count('X_CRDT_DOC_TOO_LARGE')
      throw new CrdtSyncError(
        'X_CRDT_DOC_TOO_LARGE',
        `an update with ${added} new clients would take '${entry.name}' over ${this.#maxDocClients} clients`,
      )
    }
  }

  #badUpdate(err: unknown): CrdtSyncError {
    if (isCrdtSyncError(err)) return err
    this.#count('X_CRDT_BAD_MESSAGE')
    return new CrdtSyncError('X_CRDT_BAD_MESSAGE', 'the Yjs update could not be applied', { cause: err })
  }

  #applyRemote(entry: Entry, update: Uint8Array, origin: unknown): Promise<void> {
    try {
      this.#admit(entry, update)
      if (entry.applyTail === undefined && update.length <= APPLY_AT_ONCE_BYTES) {
        let sliced: SlicedUpdate
        try {
          sliced = sliceUpdate(update, APPLY_SLICE_BUDGET)
        } catch (err) {
          throw this.#badUpdate(err)
        }
        this.#checkClients(entry, sliced)
        if (sliced.slices.length === 1) {
          this.#applySlice(entry, update, origin)
          return Promise.resolve()
        }
      }
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
    // Large (or behind a large one): read and apply it in slices, one per turn, after the updates before it.
    entry.applyingBytes += update.length
    this.#unwrittenBytes += update.length
    entry.holders++ // not evicted half-applied
    const job = (entry.applyTail ?? Promise.resolve())
      .then(() => this.#applySliced(entry, update, origin))
      .finally(() => {
        entry.applyingBytes -= update.length
        this.#unwrittenBytes -= update.length
        entry.holders--
      })
    const tail = job.then(
      () => undefined,
      () => undefined,
    )
    entry.applyTail = tail
    void tail.then(() => {
      if (entry.applyTail === tail) entry.applyTail = undefined
    })
    return job
  }

  async #applySliced(entry: Entry, update: Uint8Array, origin: unknown): Promise<void> {
    let sliced: SlicedUpdate
    try {
      sliced = await sliceUpdateAsync(update, APPLY_SLICE_BUDGET, nextTurn)
    } catch (err) {
      throw this.#badUpdate(err)
    }
    this.#checkClients(entry, sliced)
    const { slices } = sliced
    let next = 0
    let spentMs = 0
    while (next < slices.length) {
      if (next > 0) await nextTurn()
      if (entry.failed) throw entry.failed
      if (entry.evicted || this.#closing !== undefined) {
        throw new CrdtSyncError('X_CRDT_CLOSED', `document '${entry.name}' is no longer open`)
      }
      const start = monotonicMs()
      // One transaction per turn: one 'update' event (and one stored update) per turn, not per slice.
      Y.transact(
        entry.doc,
        () => {
          let structs = 0
          do {
            this.#applySlice(entry, slices[next]!, origin)
            next++
            structs += APPLY_SLICE_BUDGET.maxStructs
          } while (
            next < slices.length &&
            structs < APPLY_TURN_STRUCTS &&
            monotonicMs() - start < APPLY_TURN_MS
          )
        },
        origin,
      )
      spentMs += monotonicMs() - start
      if (spentMs > this.#maxApplyMs && next < slices.length) {
        this.#count('X_CRDT_UPDATE_TOO_LARGE')
        throw new CrdtSyncError(
          'X_CRDT_UPDATE_TOO_LARGE',
          `an update of ${update.length} bytes took more than ${this.#maxApplyMs} ms to apply; the rest was dropped`,
        )
      }
    }
  }

  /** Applies one validated slice (or small update) now. */
  #applySlice(entry: Entry, update: Uint8Array, origin: unknown): void {
    // Y.applyUpdate reads every struct before integrating any, so bytes that do not decode change nothing;
    // whatever it did integrate before a late failure is persisted and relayed like any change.
    try {
      Y.applyUpdate(entry.doc, update, origin)
    } catch (err) {
      throw this.#badUpdate(err)
    }
    // Structs waiting for missing dependencies are not in any 'update' event, yet encodeStateAsUpdate hands
    // them out: keep the raw update too, so nothing is ever served that is not on disk.
    const store = entry.doc.store
    if (store.pendingStructs !== null || store.pendingDs !== null) {
      this.#onDocUpdate(entry, update, origin, false)
    }
  }

  #onDocUpdate(entry: Entry, update: Uint8Array, origin: unknown, announce: boolean): void {
    if (entry.failed || entry.evicted) return
    const now = this.#clock.now()
    entry.unbatched.push(update)
    entry.unbatchedBytes += update.length
    this.#unwrittenBytes += update.length
    entry.enqueued++
    entry.lastUsed = now
    this.#rate.add(now, 1)
    this.#updatesTotal++
    this.#markDirty(entry)
    if (announce && this.#updateListeners.size > 0) {
      const { name } = entry
      this.#afterDurable(entry, () => {
        for (const listener of this.#updateListeners) {
          try {
            listener(name, update, origin)
          } catch (err) {
            this.#log.warn({ err, doc: name }, 'update listener threw')
          }
        }
      })
    }
  }

  #markDirty(entry: Entry): void {
    this.#dirty.add(entry)
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    // One batch per tick: everything that arrives in this turn of the event loop is written together.
    setImmediate(() => {
      this.#flushScheduled = false
      this.#flushNow()
    })
  }

  #afterDurable(entry: Entry, fn: () => void): void {
    if (entry.waiters.length === 0 && entry.durable >= entry.enqueued) {
      fn()
      return
    }
    entry.waiters.push({ seq: entry.enqueued, fn })
  }

  #whenDurable(entry: Entry): Promise<void> {
    if (entry.failed) return Promise.reject(entry.failed)
    if (entry.waiters.length === 0 && entry.durable >= entry.enqueued) return Promise.resolve()
    return new Promise((resolve, reject) => {
      entry.waiters.push({ seq: entry.enqueued, fn: resolve })
      // A failure drops the waiters; surface it instead of hanging.
      this.#rejectOnFailure(entry, reject)
    })
  }

  readonly #failureRejects = new Map<Entry, ((err: CrdtSyncError) => void)[]>()

  #rejectOnFailure(entry: Entry, reject: (err: CrdtSyncError) => void): void {
    const list = this.#failureRejects.get(entry)
    if (list) list.push(reject)
    else this.#failureRejects.set(entry, [reject])
  }

  #flushNow(): void {
    if (this.#dirty.size === 0) return
    const ops: CrdtBatchOperation[] = []
    const marks: [Entry, InflightMark, number][] = []
    let batchedBytes = 0
    const compactions: CompactionInfo[] = []
    const now = this.#clock.now()
    const toCompact: Entry[] = []
    for (const e of this.#dirty) {
      if (e.failed) continue
      const ready = e.compactReady
      if (e.unbatched.length === 0 && !e.compactRequested && ready === undefined) continue
      // A snapshot may only replace update keys once no batch holding them is in flight. Under a steady stream
      // of edits a batch is almost always in flight at flush time: the snapshot waits, and the first flush after
      // the writes drain commits it (#settle schedules one), instead of starving compaction for ever. It is
      // encoded meanwhile in steps (encodeStateAsUpdateSliced), never in one long call.
      if (ready !== undefined && e.inflight.length === 0) {
        ops.push({ type: 'put', key: snapshotKey(e.enc), value: ready.snapshot })
        for (let seq = e.firstSeq; seq < ready.upTo; seq++)
          ops.push({ type: 'del', key: updateKey(e.enc, seq) })
        e.firstSeq = ready.upTo
        e.snapshotBytes = ready.snapshot.length
        e.updateBytes -= ready.coveredBytes
        e.compactReady = undefined
        compactions.push({
          name: e.name,
          at: now,
          bytesBefore: ready.bytesBefore,
          bytesAfter: ready.snapshot.length + e.updateBytes + e.unbatchedBytes,
        })
      }
      // Changes since the snapshot began (or all of them) are kept as update keys after it.
      for (const u of e.unbatched) {
        ops.push({ type: 'put', key: updateKey(e.enc, e.nextSeq++), value: u })
        e.updateBytes += u.length
      }
      const wanted =
        e.compactRequested ||
        e.nextSeq - e.firstSeq > this.#compactionMaxUpdates ||
        (e.updateBytes > e.snapshotBytes * this.#ratio && e.updateBytes >= this.#compactionMinBytes)
      if (wanted && !e.compacting && e.compactReady === undefined) {
        e.compactRequested = false
        toCompact.push(e)
      }
      batchedBytes += e.unbatchedBytes
      e.unbatched = []
      e.unbatchedBytes = 0
      ops.push({
        type: 'put',
        key: metaKey(e.enc),
        value: encodeMeta(Y.encodeStateVector(e.doc), e.storedBytes),
      })
      const mark = { upTo: e.enqueued, done: false }
      e.inflight.push(mark)
      marks.push([e, mark, e.storedBytes])
    }
    this.#dirty.clear()
    for (const e of toCompact) this.#startCompaction(e)
    if (ops.length === 0) return
    const batch = this.#db.batch(ops).then(
      () => {
        this.#unwrittenBytes -= batchedBytes
        if (this.#health.status === 'degraded') this.#health = { ...this.#health, status: 'ok' }
        for (const c of compactions) this.#lastCompaction = c
        for (const [e, mark, stored] of marks) {
          this.#setStored(e, stored)
          mark.done = true
          this.#settle(e)
        }
      },
      (err: unknown) => {
        this.#unwrittenBytes -= batchedBytes
        const error = this.#storageError(`writing ${ops.length} operations failed`, err)
        for (const [e] of marks) this.#fail(e, error)
      },
    )
    this.#batches.add(batch)
    void batch.finally(() => this.#batches.delete(batch))
  }

  /**
   * Encodes a snapshot of `e` in steps; it will replace the update keys written so far (all of them below
   * `upTo`), since the document holds every change they hold.
   */
  #startCompaction(e: Entry): void {
    e.compacting = true
    e.holders++ // not evicted (and destroyed) while being encoded
    const upTo = e.nextSeq
    const coveredBytes = e.updateBytes
    const bytesBefore = e.snapshotBytes + e.updateBytes
    const job = (async () => {
      try {
        await nextTurn() // not in the turn of the flush that asked for it
        const snapshot = await encodeStateAsUpdateSliced(e.doc, undefined, nextTurn)
        if (e.failed || e.evicted || this.#closed) return
        e.compactReady = { snapshot, upTo, coveredBytes, bytesBefore }
        this.#markDirty(e)
      } catch (err) {
        this.#log.warn({ err, doc: e.name }, 'encoding a snapshot failed; compaction skipped')
      } finally {
        e.compacting = false
        e.holders--
      }
    })()
    this.#compactionJobs.add(job)
    void job.finally(() => this.#compactionJobs.delete(job))
  }

  /** Advances `durable` over completed batches, in order, and runs the waiters that became durable. */
  #settle(e: Entry): void {
    while (e.inflight[0]?.done === true) e.durable = e.inflight.shift()!.upTo
    while (e.waiters.length > 0 && e.waiters[0]!.seq <= e.durable) {
      const { fn } = e.waiters.shift()!
      try {
        fn()
      } catch (err) {
        this.#log.warn({ err, doc: e.name }, 'durability callback threw')
      }
    }
    if (e.waiters.length === 0) this.#failureRejects.delete(e)
    if ((e.compactRequested || e.compactReady !== undefined) && e.inflight.length === 0) this.#markDirty(e)
  }

  #fail(e: Entry, error: CrdtSyncError): void {
    if (e.failed) return
    e.failed = new CrdtSyncError('X_CRDT_DOC_FAILED', `document '${e.name}' lost a write and was dropped`, {
      cause: error,
    })
    this.#count('X_CRDT_DOC_FAILED')
    this.#unwrittenBytes -= e.unbatchedBytes
    e.unbatched = []
    e.unbatchedBytes = 0
    e.waiters = []
    for (const reject of this.#failureRejects.get(e) ?? []) reject(e.failed)
    this.#failureRejects.delete(e)
    if (this.#entries.get(e.name) === e) this.#entries.delete(e.name)
    this.#dirty.delete(e)
    if (e.onUpdate) e.doc.off('update', e.onUpdate)
    for (const listener of this.#failedListeners) {
      try {
        listener(e.name, e.failed)
      } catch (err) {
        this.#log.warn({ err, doc: e.name }, 'failure listener threw')
      }
    }
    e.doc.destroy()
  }

  #evict(e: Entry): void {
    e.evicted = true
    if (this.#entries.get(e.name) === e) this.#entries.delete(e.name)
    if (e.onUpdate) e.doc.off('update', e.onUpdate)
    this.#failureRejects.delete(e)
    e.doc.destroy()
  }
}

/**
 * Creates a store of Yjs documents persisted in an injected LevelDB (abstract-level) database.
 *
 * Every change to a document (remote or local) is appended as an update key; changes made in one turn of the
 * event loop, across all documents, are written in one `db.batch`. {@link DocStore.onUpdate} listeners and
 * {@link DocHandle.afterDurable} callbacks run only after the batch holding the change has completed, which is
 * how the sync server and replication keep the rule "on disk before anyone else sees it". Compaction replaces
 * a document's updates by one snapshot when they outweigh it (`compactionRatio`).
 */
export function createDocStore(components: DocStoreComponents, init: DocStoreInit = {}): DocStore {
  return new DocStoreImpl(components, init)
}
