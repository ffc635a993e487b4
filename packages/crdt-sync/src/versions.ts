/*
 * Version history. The versions of document `d` live in a companion Yjs document, `.versions/d`, held by the
 * same store: so they are in LevelDB beside the document, and replicate between nodes exactly as documents do
 * (by interest, under the same `authorize`). Its map `meta` holds each version's description by ID, its map
 * `updates` the document as it was (a Yjs v1 update of its whole state). Retention deletes the oldest entries;
 * with gc on, the deleted content leaves the store at the companion's next compaction.
 *
 * A restore is a new change: each shared type of the live document is made equal to the version's (text and
 * XML replaced, arrays replaced, map keys set and removed), in one transaction every client and node converges to.
 */
import { randomBytes } from 'node:crypto'
import * as Y from 'yjs'
import { CrdtSyncError } from './errors'
import { SILENT_LOGGER, type Logger } from './logger'
import { SYSTEM_CLOCK, type Clock } from './clock'
import { docNameProblem } from './keys'
import type { DocStore } from './doc-store'

/** Prefix of the companion documents that hold versions; clients may not open such names. */
export const VERSIONS_PREFIX = '.versions/'
const DEFAULT_PERIODIC_INTERVAL_MS = 10 * 60 * 1000
const DEFAULT_MAX_PERIODIC_VERSIONS = 24
const DEFAULT_MAX_NAMED_VERSIONS = 50
const DEFAULT_MAX_DIRTY_DOCUMENTS = 10_000
const DEFAULT_MAX_VERSION_BYTES = 8 * 1024 * 1024
const MAX_VERSION_NAME_LENGTH = 200

/** Whether `name` is a companion document of versions (reserved: never served to clients). */
export function isVersionsDocName(name: string): boolean {
  return name.startsWith(VERSIONS_PREFIX)
}

/** One version's description. */
export interface VersionInfo {
  /** Its ID (time-ordered). */
  readonly id: string
  /** `named`: made on request; `periodic`: made by the timer after changes. */
  readonly kind: 'named' | 'periodic'
  /** The name it was given (named versions). */
  readonly name?: string
  /** When it was made, in the clock's milliseconds. */
  readonly createdAt: number
  /** Size of its Yjs update, in bytes. */
  readonly bytes: number
}

/** A version as {@link VersionHistory.read} gives it. */
export interface VersionContent {
  /** Its description. */
  info: VersionInfo
  /** The document as it was: one Yjs v1 update of its whole state. */
  update: Uint8Array
  /** The JSON of each shared type (text as a string, XML fragments as markup, arrays and maps as JSON). */
  json: Record<string, unknown>
}

/** The outcome of {@link VersionHistory.restore}. */
export interface VersionRestore {
  /** The version the document was made equal to. */
  restored: VersionInfo
  /** The named version of the state just before the restore. */
  before: VersionInfo
}

/** Services of {@link createVersionHistory}. */
export interface VersionHistoryComponents {
  /** The store of the documents (and of their companions). */
  store: DocStore
  /** Time of versions and the periodic timer. @default the system clock */
  clock?: Clock
  /** Random hex for version IDs. @default node:crypto */
  randomHex?: () => string
  /** @default a silent logger */
  logger?: Logger
}

/** Options of {@link createVersionHistory}; plain data. */
export interface VersionHistoryInit {
  /** A changed document gets a periodic version when its newest one is this old; 0 turns them off. @default 600_000 */
  periodicIntervalMs?: number
  /** Periodic versions kept per document (the oldest are deleted). @default 24 */
  maxPeriodicVersions?: number
  /** Named versions kept per document (the oldest are deleted). @default 50 */
  maxNamedVersions?: number
  /**
   * Bytes of versions kept per document: beyond it the oldest go (periodic ones first), and a document larger
   * than this gets no version (`X_CRDT_DOC_TOO_LARGE`). The companion is a document of the store, loaded whole:
   * keep this at most a quarter of the store's `maxDocumentBytes` (its update log can hold as much again until
   * it is compacted), or the companion outgrows what the store loads. @default 8_388_608 (a quarter of 32 MiB)
   */
  maxVersionBytes?: number
}

/** Versions of documents; see {@link createVersionHistory}. */
export interface VersionHistory {
  /** Makes a version of `docName` now. Rejects with `X_CRDT_DOC_NOT_FOUND` for a document the store lacks. */
  create(docName: string, options?: { name?: string; kind?: VersionInfo['kind'] }): Promise<VersionInfo>
  /** The versions of `docName`, newest first. */
  list(docName: string): Promise<VersionInfo[]>
  /**
   * One version: its description, the document as it was (a Yjs update), and the JSON of its shared types.
   * Rejects with `X_CRDT_VERSION_NOT_FOUND`.
   */
  read(docName: string, id: string): Promise<VersionContent>
  /**
   * Makes the document equal to version `id` again, as a new change all clients converge to; a named version
   * of the state before is made first (so a restore can be undone). Resolves once the change is on disk.
   */
  restore(docName: string, id: string): Promise<VersionRestore>
  /** Makes the periodic versions that are due now (what the timer does). */
  tick(): Promise<number>
  /** Stops the timer and the store subscription. */
  close(): void
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Yjs types are generic in their event type
type AnyType = Y.AbstractType<any>

type Kind = 'text' | 'xml' | 'array' | 'map'

/** What a root type of a document decoded from an update holds (it is untyped until asked for by kind). */
function kindOf(type: AnyType | undefined): Kind | undefined {
  if (type === undefined) return undefined
  if (type instanceof Y.Text) return 'text'
  if (type instanceof Y.XmlFragment) return 'xml'
  if (type instanceof Y.Array) return 'array'
  if (type instanceof Y.Map) return 'map'
  for (let item = type._start; item !== null; item = item.right) {
    if (item.deleted) continue
    const c = item.content
    if (c instanceof Y.ContentString || c instanceof Y.ContentFormat || c instanceof Y.ContentEmbed)
      return 'text'
    if (
      c instanceof Y.ContentType &&
      (c.type instanceof Y.XmlElement || c.type instanceof Y.XmlText || c.type instanceof Y.XmlHook)
    )
      return 'xml'
    return 'array'
  }
  for (const item of type._map.values()) if (!item.deleted) return 'map'
  return undefined
}

function typed(doc: Y.Doc, key: string, kind: Kind): AnyType {
  switch (kind) {
    case 'text':
      return doc.getText(key)
    case 'xml':
      return doc.getXmlFragment(key)
    case 'array':
      return doc.getArray(key)
    case 'map':
      return doc.getMap(key)
  }
}

/** The JSON of every shared type of `doc` (text as a string, XML as its markup, arrays and maps as JSON). */
export function docToJson(doc: Y.Doc): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, type] of [...doc.share]) {
    const kind = kindOf(type)
    if (kind === undefined) continue
    const t = typed(doc, key, kind)
    // An XML fragment's JSON is its markup (YXmlFragment#toJSON is its toString).
    out[key] = t.toJSON() as unknown
  }
  return out
}

function copy(value: unknown): unknown {
  return value instanceof Y.AbstractType ? value.clone() : value
}

/** Makes every shared type of `live` equal to `version`'s, in the current transaction. */
function replaceContent(live: Y.Doc, version: Y.Doc, log: Logger): void {
  const keys = new Set([...version.share.keys(), ...live.share.keys()])
  for (const key of keys) {
    const kind = kindOf(version.share.get(key)) ?? kindOf(live.share.get(key))
    if (kind === undefined) continue
    try {
      const from = typed(version, key, kind)
      const to = typed(live, key, kind)
      if (kind === 'text') {
        const t = to as Y.Text
        t.delete(0, t.length)
        t.applyDelta((from as Y.Text).toDelta() as unknown[])
      } else if (kind === 'xml') {
        const t = to as Y.XmlFragment
        t.delete(0, t.length)
        // (The insert's type leaves out XmlHook, which it takes at runtime.)
        t.insert(0, (from as Y.XmlFragment).toArray().map((n) => n.clone()) as (Y.XmlElement | Y.XmlText)[])
      } else if (kind === 'array') {
        const t = to as Y.Array<unknown>
        t.delete(0, t.length)
        t.insert(0, (from as Y.Array<unknown>).toArray().map(copy))
      } else {
        const t = to as Y.Map<unknown>
        const f = from as Y.Map<unknown>
        for (const k of [...t.keys()]) if (!f.has(k)) t.delete(k)
        for (const [k, v] of f.entries()) t.set(k, copy(v))
      }
    } catch (err) {
      // A root type used as two kinds (e.g. read as text by one client, as a map by another): left as it is.
      log.warn({ err, key }, 'could not restore a shared type')
    }
  }
}

/**
 * Whether `v` is the description of version `id`, as this module writes it. The companion replicates, so what
 * another node wrote into it is read as hostile bytes: anything else is skipped, never thrown on.
 */
function isVersionInfo(v: unknown, id: string): v is VersionInfo {
  if (typeof v !== 'object' || v === null) return false
  const info = v as Record<string, unknown>
  return (
    info.id === id &&
    (info.kind === 'named' || info.kind === 'periodic') &&
    (info.name === undefined ||
      (typeof info.name === 'string' && info.name.length <= MAX_VERSION_NAME_LENGTH)) &&
    typeof info.createdAt === 'number' &&
    Number.isFinite(info.createdAt) &&
    typeof info.bytes === 'number' &&
    Number.isSafeInteger(info.bytes) &&
    info.bytes >= 0
  )
}

/** A copy of a checked description with only its own fields. */
function infoOf(v: VersionInfo): VersionInfo {
  return {
    id: v.id,
    kind: v.kind,
    ...(v.name === undefined ? {} : { name: v.name }),
    createdAt: v.createdAt,
    bytes: v.bytes,
  }
}

function positiveOrZero(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value >= 0)) throw new RangeError(`'${name}' must be a number >= 0`)
  return value
}

class VersionHistoryImpl implements VersionHistory {
  readonly #store: DocStore
  readonly #clock: Clock
  readonly #randomHex: () => string
  readonly #log: Logger
  readonly #intervalMs: number
  readonly #maxPeriodic: number
  readonly #maxNamed: number
  readonly #maxBytes: number
  /** Documents changed since their last periodic check. */
  readonly #dirty = new Set<string>()
  readonly #off: (() => void)[]
  #timer: unknown
  #closed = false

  constructor(components: VersionHistoryComponents, init: VersionHistoryInit) {
    if (components?.store == null || typeof components.store.open !== 'function') {
      throw new TypeError("'components.store' must be a DocStore")
    }
    this.#store = components.store
    this.#clock = components.clock ?? SYSTEM_CLOCK
    this.#randomHex = components.randomHex ?? (() => randomBytes(4).toString('hex'))
    this.#log = components.logger ?? SILENT_LOGGER
    this.#intervalMs = positiveOrZero(
      'periodicIntervalMs',
      init.periodicIntervalMs,
      DEFAULT_PERIODIC_INTERVAL_MS,
    )
    this.#maxPeriodic = positiveOrZero(
      'maxPeriodicVersions',
      init.maxPeriodicVersions,
      DEFAULT_MAX_PERIODIC_VERSIONS,
    )
    this.#maxNamed = positiveOrZero('maxNamedVersions', init.maxNamedVersions, DEFAULT_MAX_NAMED_VERSIONS)
    this.#maxBytes = positiveOrZero('maxVersionBytes', init.maxVersionBytes, DEFAULT_MAX_VERSION_BYTES)
    this.#off = [
      this.#store.onUpdate((name) => {
        if (isVersionsDocName(name) || this.#dirty.size >= DEFAULT_MAX_DIRTY_DOCUMENTS) return
        this.#dirty.add(name)
      }),
      // A node holding a document holds its versions too, so replication (which subscribes to what the store
      // holds) carries them with it, both ways.
      this.#store.onDocumentLoaded((name) => {
        if (this.#closed || isVersionsDocName(name)) return
        const companion = VERSIONS_PREFIX + name
        if (docNameProblem(companion) !== undefined) return
        this.#store.open(companion).then(
          (h) => h.release(),
          (err: unknown) => this.#log.debug({ err, doc: name }, 'could not open the versions of a document'),
        )
      }),
    ]
    this.#arm()
  }

  #arm(): void {
    if (this.#intervalMs === 0 || this.#closed) return
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined
      this.tick()
        .catch((err: unknown) => this.#log.warn({ err }, 'periodic versions failed'))
        .finally(() => this.#arm())
    }, this.#intervalMs)
  }

  async tick(): Promise<number> {
    const due = [...this.#dirty]
    this.#dirty.clear()
    let made = 0
    for (const name of due) {
      if (this.#closed) break
      const newest = (await this.list(name))[0]
      if (newest !== undefined && this.#clock.now() - newest.createdAt < this.#intervalMs) {
        this.#dirty.add(name) // changed again later: checked at the next tick
        continue
      }
      try {
        await this.create(name, { kind: 'periodic' })
        made++
      } catch (err) {
        this.#log.warn({ err, doc: name }, 'could not make a periodic version')
      }
    }
    return made
  }

  #companion(docName: string): string {
    const problem = docNameProblem(docName)
    if (problem !== undefined) throw new CrdtSyncError('X_CRDT_BAD_DOC_NAME', problem)
    if (isVersionsDocName(docName)) {
      throw new CrdtSyncError('X_CRDT_BAD_DOC_NAME', 'a versions document has no versions')
    }
    const name = VERSIONS_PREFIX + docName
    if (docNameProblem(name) !== undefined) {
      throw new CrdtSyncError('X_CRDT_BAD_DOC_NAME', 'document name too long to keep versions of')
    }
    return name
  }

  async #withDoc<T>(name: string, fn: (doc: Y.Doc) => T): Promise<T> {
    const handle = await this.#store.open(name)
    try {
      const result = fn(handle.doc)
      await handle.whenDurable()
      return result
    } finally {
      handle.release()
    }
  }

  async #requireDoc(docName: string): Promise<void> {
    if (this.#store.get(docName) === undefined && !(await this.#store.has(docName))) {
      throw new CrdtSyncError('X_CRDT_DOC_NOT_FOUND', `no document '${docName}'`)
    }
  }

  async create(
    docName: string,
    options: { name?: string; kind?: VersionInfo['kind'] } = {},
  ): Promise<VersionInfo> {
    const companion = this.#companion(docName)
    if (
      options.name !== undefined &&
      (typeof options.name !== 'string' || options.name.length > MAX_VERSION_NAME_LENGTH)
    ) {
      throw new RangeError(`'name' must be a string of at most ${MAX_VERSION_NAME_LENGTH} characters`)
    }
    await this.#requireDoc(docName)
    const update = await this.#store.encodeStateAsUpdate(docName)
    if (update.length > this.#maxBytes) {
      throw new CrdtSyncError(
        'X_CRDT_DOC_TOO_LARGE',
        `'${docName}' (${update.length} bytes) is larger than maxVersionBytes (${this.#maxBytes}): no version made`,
      )
    }
    const createdAt = this.#clock.now()
    const kind = options.kind ?? 'named'
    const info: VersionInfo = {
      id: `${createdAt.toString(36).padStart(9, '0')}-${this.#randomHex()}`,
      kind,
      ...(options.name === undefined ? {} : { name: options.name }),
      createdAt,
      bytes: update.length,
    }
    await this.#withDoc(companion, (doc) => {
      doc.transact(() => {
        const meta = doc.getMap<VersionInfo>('meta')
        const updates = doc.getMap<Uint8Array>('updates')
        meta.set(info.id, info)
        updates.set(info.id, update)
        // Retention: the oldest of this kind beyond the bound go.
        const ofKind = [...meta.entries()]
          .filter(([id, v]) => isVersionInfo(v, id) && v.kind === kind)
          .map(([, v]) => v)
          .sort((a, b) => a.createdAt - b.createdAt)
        const keep = kind === 'named' ? this.#maxNamed : this.#maxPeriodic
        for (const old of ofKind.slice(0, Math.max(0, ofKind.length - keep))) {
          meta.delete(old.id)
          updates.delete(old.id)
        }
        // Bytes: the oldest go, periodic ones before named ones, until what is kept fits (the new one does).
        // Sizes and order are read defensively: the companion replicates, so another node may have written it.
        const kept = [...updates.entries()].map(([id, u]) => {
          const m = meta.get(id) as Partial<VersionInfo> | undefined
          return {
            id,
            bytes: u instanceof Uint8Array ? u.length : 0,
            named: m?.kind === 'named',
            createdAt: typeof m?.createdAt === 'number' ? m.createdAt : 0,
          }
        })
        let total = kept.reduce((n, v) => n + v.bytes, 0)
        kept.sort((a, b) => Number(a.named) - Number(b.named) || a.createdAt - b.createdAt)
        for (const old of kept) {
          if (total <= this.#maxBytes) break
          if (old.id === info.id) continue
          meta.delete(old.id)
          updates.delete(old.id)
          total -= old.bytes
        }
      })
    })
    return info
  }

  async list(docName: string): Promise<VersionInfo[]> {
    const companion = this.#companion(docName)
    if (this.#store.get(companion) === undefined && !(await this.#store.has(companion))) return []
    return this.#withDoc(companion, (doc) =>
      [...doc.getMap<unknown>('meta').entries()]
        .filter((e): e is [string, VersionInfo] => isVersionInfo(e[1], e[0]))
        .map(([, v]) => infoOf(v))
        .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1)),
    )
  }

  async read(docName: string, id: string): Promise<VersionContent> {
    const companion = this.#companion(docName)
    const found =
      this.#store.get(companion) !== undefined || (await this.#store.has(companion))
        ? await this.#withDoc(companion, (doc) => {
            const info = doc.getMap<unknown>('meta').get(id)
            const update = doc.getMap<unknown>('updates').get(id)
            return isVersionInfo(info, id) && update instanceof Uint8Array
              ? { info: infoOf(info), update }
              : undefined
          })
        : undefined
    if (found === undefined)
      throw new CrdtSyncError('X_CRDT_VERSION_NOT_FOUND', `no version '${id}' of '${docName}'`)
    const doc = new Y.Doc()
    try {
      Y.applyUpdate(doc, found.update)
      return { ...found, json: docToJson(doc) }
    } catch (err) {
      throw new CrdtSyncError('X_CRDT_VERSION_NOT_FOUND', `version '${id}' of '${docName}' is unreadable`, {
        cause: err,
      })
    } finally {
      doc.destroy()
    }
  }

  async restore(docName: string, id: string): Promise<VersionRestore> {
    const { info, update } = await this.read(docName, id)
    const before = await this.create(docName, { name: `before restoring ${id}` })
    const version = new Y.Doc()
    try {
      Y.applyUpdate(version, update)
      await this.#withDoc(docName, (live) =>
        live.transact(() => replaceContent(live, version, this.#log), this),
      )
    } finally {
      version.destroy()
    }
    return { restored: info, before }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const off of this.#off) off()
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/**
 * Keeps named and periodic versions of the documents of `store`, with bounded retention, in companion documents
 * of the same store (so they are persisted and replicated as documents are); lists, reads and restores them.
 */
export function createVersionHistory(
  components: VersionHistoryComponents,
  init: VersionHistoryInit = {},
): VersionHistory {
  return new VersionHistoryImpl(components, init)
}
