import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { isCrdtSyncError, type CrdtSyncErrorCode } from './errors'
import { SILENT_LOGGER, type Logger } from './logger'
import { SYSTEM_CLOCK, nextTurn, type Clock } from './clock'
import { encodeStateAsUpdateSliced } from './encode-sliced'
import { docNameProblem } from './keys'
import { sliceUpdateAsync } from './update-slices'
import type { DocStore } from './doc-store'

/**
 * A byte link to another node, reliable and ordered while open (e.g. an encrypted node-to-node session).
 * When it closes and opens again, replication starts a new session and catches up by state vectors.
 */
export interface SyncLink {
  /** Whether frames sent now can arrive; replication sends only while it is true. */
  readonly isOpen: boolean
  /**
   * Largest frame `send` can carry; replication splits bigger frames into fragments and reassembles them on
   * the other side. @default no limit
   */
  readonly maxFrameBytes?: number
  /** Sends one frame. May drop it silently when the link is not open. */
  send(bytes: Uint8Array): void
  /** Subscribes to incoming frames; returns the unsubscribe function. */
  onMessage(handler: (bytes: Uint8Array) => void): () => void
  /** Subscribes to open/close transitions; returns the unsubscribe function. */
  onStateChange(handler: (open: boolean) => void): () => void
}

/** What the node at the other end of a link asks to do with a document. */
export type ReplicationAccess = 'read' | 'write'

/**
 * Decides whether the node `peerId` may `read` a document (learn its name and content: this side subscribes
 * to it, answers its subscription and sends it changes) or `write` it (this side applies its changes).
 * Asked at most once per document, access and session; a throw or a rejection counts as a refusal.
 */
export type ReplicationAuthorize = (
  peerId: string,
  docName: string,
  access: ReplicationAccess,
) => boolean | Promise<boolean>

/** Services injected into {@link replicate}. */
export interface ReplicationComponents {
  /** The documents this side holds (the store's listing and loads decide what it subscribes to). */
  store: DocStore
  /** The byte link to the one node at the other end. */
  link: SyncLink
  /**
   * The trust rule for the node at the other end. The default trusts it with every document both ways: use it
   * only for a link whose other end you trust (e.g. your own two stores).
   * @default every document, 'read' and 'write'
   */
  authorize?: ReplicationAuthorize
  /** Timers of the periodic resync. @default the system clock */
  clock?: Clock
  /** @default a silent logger */
  logger?: Logger
}

/** Options of {@link replicate}; plain data. */
export interface ReplicationInit {
  /** Identity of the node at the other end, as passed to `authorize`. @default 'peer' */
  peerId?: string
  /**
   * Documents the other node may subscribe to per session; further subscriptions are ignored and counted.
   * @default 100_000
   */
  maxSubscriptions?: number
  /** Largest frame accepted from the other node, after reassembling fragments. @default 4_325_376 (4 MiB + 128 KiB) */
  maxFrameBytes?: number
  /**
   * Every this many milliseconds, while the link is open, offer the state vector of every subscribed document
   * again (answered only where the two sides differ, without loading documents otherwise), so updates a
   * misbehaving link lost without reporting a close are repaired. 0 turns it off. @default 300_000
   */
  resyncIntervalMs?: number
}

/** Counters of one replication. */
export interface ReplicationStats {
  /** Sessions started: one when the link opens, again after each reopen. */
  sessions: number
  /** Periodic resync rounds started (see `resyncIntervalMs`). */
  resyncs: number
  /** Subscriptions sent again because the other node has changes this side lacks (or a gap after an update). */
  asks: number
  /** Frames received from the peer. */
  framesIn: number
  /** Frames sent to the peer. */
  framesOut: number
  /** Frames from the peer that were malformed, too large or not applicable, and were dropped. */
  badFrames: number
  /** Documents this side subscribed to at the other node in this session. */
  subscribed: number
  /** Documents the other node subscribed to here in this session (and was allowed to read). */
  subscribers: number
  /** Subscriptions and updates refused by `authorize`, or beyond `maxSubscriptions`. */
  denied: number
  /** Subscriptions for documents this side does not have, and updates for documents it did not subscribe to. */
  ignored: number
  /** Updates from the other node the store refused, by code (too large, quota, malformed). */
  refused: Partial<Record<CrdtSyncErrorCode, number>>
  /** Asynchronous steps (document loads, answers, sends) under way. */
  pending: number
}

/** A running replication; `close()` unsubscribes from the link and the store and clears its timer. */
export interface Replication {
  /** The replication's counters now. */
  getStats(): ReplicationStats
  /** Offers the state vector of every subscribed document now (what the periodic resync does). */
  resync(): void
  /** Stops replicating; the link and the store stay open. Idempotent. */
  close(): void
}

// Frame: varUint kind · varString document name · varUint8Array payload. Fragment frames: varUint kind ·
// varUint8Array part; the parts of one frame are sent back to back and end with a FRAGMENT_END.
const KIND_SUBSCRIBE = 0 // payload: state vector. "Send me this document's changes": answered by STEP_2
const KIND_STEP_2 = 1 // payload: update (what the subscriber lacks)
const KIND_UPDATE = 2 // payload: update (a live change, sent once durable, to subscribers only)
const KIND_RESYNC = 3 // payload: state vector; answered (STEP_2 and/or SUBSCRIBE) only where the sides differ
const KIND_FRAGMENT = 4
const KIND_FRAGMENT_END = 5
// payload: empty. "I will not send you this document": the answer to a subscription for a document this side
// does not have, may not share with the subscriber, or beyond maxSubscriptions (alike: the subscriber cannot
// tell which). Lets the subscriber subscribe again once the other side offers the document itself.
const KIND_UNAVAILABLE = 6
const NO_PAYLOAD = new Uint8Array(0)
const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024 + 128 * 1024
const DEFAULT_MAX_SUBSCRIPTIONS = 100_000
const DEFAULT_RESYNC_INTERVAL_MS = 300_000
const FRAGMENT_OVERHEAD_BYTES = 16 // kind + length prefix of a fragment frame
/**
 * Updates larger than this are sent as several STEP_2/UPDATE frames (slices of the update): the other store
 * refuses single updates over its `maxUpdateBytes` (4 MiB by default), yet a catch-up can be a whole document.
 */
const SEND_SLICE_BYTES = 1024 * 1024
const SEND_SLICE_BUDGET = {
  maxBytes: SEND_SLICE_BYTES,
  maxStructs: Number.MAX_SAFE_INTEGER,
  maxDeleteRanges: SEND_SLICE_BYTES / 16,
}

/** Whether state vector `a` has a clock beyond `b`'s for some client (a holds changes b lacks). */
function ahead(a: Map<number, number>, b: Map<number, number>): boolean {
  for (const [client, clock] of a) if (clock > (b.get(client) ?? 0)) return true
  return false
}

function encodeFrame(kind: number, name: string, payload: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, kind)
  encoding.writeVarString(e, name)
  encoding.writeVarUint8Array(e, payload)
  return encoding.toUint8Array(e)
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`'${name}' must be a positive number`)
  return value
}

const ALLOW_ALL: ReplicationAuthorize = () => true

class ReplicationImpl implements Replication {
  readonly #store: DocStore
  readonly #link: SyncLink
  readonly #authorize: ReplicationAuthorize
  readonly #clock: Clock
  readonly #log: Logger
  readonly #peerId: string
  readonly #maxSubscriptions: number
  readonly #maxFrameBytes: number
  readonly #resyncMs: number
  readonly #off: (() => void)[] = []
  #session = 0
  /** Documents this side subscribed to at the other node (it applies their updates, if allowed to write). */
  #subscribed = new Set<string>()
  /** Documents the other node subscribed to here, allowed to read: their durable changes are sent to it. */
  #subscribers = new Set<string>()
  /** Authorization decisions of this session, per access and document. */
  #decisions = new Map<string, Promise<boolean>>()
  /** Documents with an outstanding ask for a gap (missing dependencies); cleared by the next STEP_2. */
  #gapAsked = new Set<string>()
  /** Parts of a fragmented frame being reassembled; undefined while none is, null after an oversize one. */
  #fragments: Uint8Array[] | null | undefined
  #fragmentBytes = 0
  /** Sends that wait for an earlier one still being sliced, so frames leave in order. */
  #sendQueue: (() => Promise<void>)[] = []
  #sending = false
  #resyncTimer: unknown
  #closed = false
  readonly #stats: ReplicationStats = {
    sessions: 0,
    resyncs: 0,
    asks: 0,
    framesIn: 0,
    framesOut: 0,
    badFrames: 0,
    subscribed: 0,
    subscribers: 0,
    denied: 0,
    ignored: 0,
    refused: {},
    pending: 0,
  }

  constructor(components: ReplicationComponents, init: ReplicationInit) {
    this.#store = components.store
    this.#link = components.link
    this.#authorize = components.authorize ?? ALLOW_ALL
    this.#clock = components.clock ?? SYSTEM_CLOCK
    this.#log = components.logger ?? SILENT_LOGGER
    this.#peerId = init.peerId ?? 'peer'
    this.#maxSubscriptions = positive('maxSubscriptions', init.maxSubscriptions, DEFAULT_MAX_SUBSCRIPTIONS)
    this.#maxFrameBytes = positive('maxFrameBytes', init.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES)
    const resyncMs = init.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS
    if (typeof resyncMs !== 'number' || !(resyncMs >= 0)) {
      throw new RangeError("'resyncIntervalMs' must be >= 0")
    }
    this.#resyncMs = resyncMs
    const linkMax = this.#link.maxFrameBytes
    if (linkMax !== undefined && !(linkMax > FRAGMENT_OVERHEAD_BYTES)) {
      throw new RangeError(`'link.maxFrameBytes' must be > ${FRAGMENT_OVERHEAD_BYTES}`)
    }
    this.#off.push(
      this.#link.onMessage((bytes) => this.#onFrame(bytes)),
      this.#link.onStateChange((open) => {
        if (open) this.#startSession()
        else this.#endSession()
      }),
      this.#store.onUpdate((name, update, origin) => {
        // Durable by now (the store calls back after the write); only to a subscriber allowed to read, and
        // never back where it came from.
        if (origin !== this && this.#subscribers.has(name)) this.#sendUpdate(KIND_UPDATE, name, update)
      }),
      this.#store.onDocumentLoaded((name) => {
        if (this.#link.isOpen && !this.#closed) this.#track(this.#subscribe(name, this.#session))
      }),
    )
    if (this.#link.isOpen) this.#startSession()
  }

  getStats(): ReplicationStats {
    return {
      ...this.#stats,
      refused: { ...this.#stats.refused },
      subscribed: this.#subscribed.size,
      subscribers: this.#subscribers.size,
    }
  }

  resync(): void {
    if (this.#closed || !this.#link.isOpen) return
    this.#stats.resyncs++
    const session = this.#session
    this.#track(
      (async () => {
        for (const name of [...this.#subscribed]) {
          if (session !== this.#session) return
          const stateVector = await this.#store.getStateVector(name)
          if (session === this.#session) this.#send(KIND_RESYNC, name, stateVector)
        }
      })(),
    )
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#endSession()
    for (const off of this.#off) off()
    this.#off.length = 0
  }

  // ---- sessions ---------------------------------------------------------------------------------------------

  /** A new session: subscribe to every document this side holds (stored or in memory) that the peer may read. */
  #startSession(): void {
    if (this.#closed) return
    this.#endSession()
    const session = this.#session
    this.#stats.sessions++
    this.#armResync()
    this.#track(
      (async () => {
        const loaded = new Set(this.#store.loadedDocuments())
        for await (const name of this.#store.listDocuments()) {
          if (session !== this.#session) return
          loaded.delete(name)
          await this.#subscribe(name, session)
        }
        for (const name of loaded) await this.#subscribe(name, session)
      })(),
    )
  }

  /** Forgets everything about the session (state is per session: nothing outlives a close). */
  #endSession(): void {
    this.#session++
    this.#subscribed = new Set()
    this.#subscribers = new Set()
    this.#decisions = new Map()
    this.#gapAsked = new Set()
    this.#fragments = undefined
    this.#fragmentBytes = 0
    this.#sendQueue = []
    this.#sending = false
    if (this.#resyncTimer !== undefined) this.#clock.clearTimeout(this.#resyncTimer)
    this.#resyncTimer = undefined
  }

  #armResync(): void {
    if (this.#resyncMs === 0 || this.#closed) return
    this.#resyncTimer = this.#clock.setTimeout(() => {
      this.#resyncTimer = undefined
      this.resync()
      if (this.#link.isOpen) this.#armResync()
    }, this.#resyncMs)
  }

  #allowed(name: string, access: ReplicationAccess): Promise<boolean> {
    const key = `${access}\u0000${name}`
    let decision = this.#decisions.get(key)
    if (decision === undefined) {
      decision = (async () => {
        try {
          return (await this.#authorize(this.#peerId, name, access)) === true
        } catch (err) {
          this.#log.warn({ err, doc: name, access }, 'authorize threw; refusing')
          return false
        }
      })()
      this.#decisions.set(key, decision)
    }
    return decision
  }

  /** Subscribes to `name` at the other node, once per session, if the other node may read it. */
  async #subscribe(name: string, session: number): Promise<void> {
    if (this.#subscribed.has(name) || session !== this.#session) return
    if (!(await this.#allowed(name, 'read'))) return
    if (this.#subscribed.has(name) || session !== this.#session) return
    this.#subscribed.add(name)
    await this.#ask(name, session, false)
  }

  /** Sends our state vector so the other node answers with what we lack. */
  async #ask(name: string, session: number, again = true): Promise<void> {
    const stateVector = await this.#store.getStateVector(name)
    if (session !== this.#session) return
    if (again) this.#stats.asks++
    this.#send(KIND_SUBSCRIBE, name, stateVector)
  }

  // ---- sending ----------------------------------------------------------------------------------------------

  #send(kind: number, name: string, payload: Uint8Array): void {
    if (this.#closed || !this.#link.isOpen) return
    this.#sendFrame(encodeFrame(kind, name, payload))
  }

  /** Sends an update, as several slices when it is large; in order with every other frame. */
  #sendUpdate(kind: number, name: string, update: Uint8Array): void {
    if (this.#closed || !this.#link.isOpen) return
    if (update.length <= SEND_SLICE_BYTES && !this.#sending) {
      this.#send(kind, name, update)
      return
    }
    const session = this.#session
    this.#enqueue(async () => {
      let slices: Uint8Array[]
      try {
        slices = (await sliceUpdateAsync(update, SEND_SLICE_BUDGET, nextTurn)).slices
      } catch (err) {
        // Our own store's bytes: only a bug gets here. Send it whole; the other side decides.
        this.#log.warn({ err, doc: name }, 'could not slice an outgoing update')
        slices = [update]
      }
      if (session !== this.#session) return
      for (const slice of slices) this.#send(kind, name, slice)
    })
  }

  #enqueue(job: () => Promise<void>): void {
    this.#sendQueue.push(job)
    if (this.#sending) return
    this.#sending = true
    const queue = this.#sendQueue
    this.#track(
      (async () => {
        try {
          while (queue.length > 0 && queue === this.#sendQueue) await queue.shift()!()
        } finally {
          // A session that ended took its queue (and this loop) with it; the next one runs its own.
          if (queue === this.#sendQueue) this.#sending = false
        }
      })(),
    )
  }

  #sendFrame(frame: Uint8Array): void {
    const max = this.#link.maxFrameBytes
    try {
      if (max === undefined || frame.length <= max) {
        this.#stats.framesOut++
        this.#link.send(frame)
        return
      }
      const part = max - FRAGMENT_OVERHEAD_BYTES
      for (let at = 0; at < frame.length; at += part) {
        const end = Math.min(frame.length, at + part)
        const e = encoding.createEncoder()
        encoding.writeVarUint(e, end === frame.length ? KIND_FRAGMENT_END : KIND_FRAGMENT)
        encoding.writeVarUint8Array(e, frame.subarray(at, end))
        this.#stats.framesOut++
        this.#link.send(encoding.toUint8Array(e))
      }
    } catch (err) {
      this.#log.warn({ err }, 'link send failed')
    }
  }

  #track(task: Promise<void>): void {
    this.#stats.pending++
    task
      .catch((err: unknown) => {
        const code = isCrdtSyncError(err) ? err.code : undefined
        if (code !== 'X_CRDT_CLOSED') this.#log.warn({ err, code }, 'replication step failed')
      })
      .finally(() => this.#stats.pending--)
  }

  // ---- receiving: every frame from the other node is hostile -------------------------------------------------

  #onFrame(bytes: Uint8Array): void {
    if (this.#closed) return
    this.#stats.framesIn++
    let kind: number
    let name: string
    let payload: Uint8Array
    try {
      if (!(bytes instanceof Uint8Array) || bytes.length > this.#maxFrameBytes) throw new Error('frame size')
      const d = decoding.createDecoder(bytes)
      kind = decoding.readVarUint(d)
      if (kind === KIND_FRAGMENT || kind === KIND_FRAGMENT_END) {
        this.#onFragment(kind, decoding.readVarUint8Array(d))
        return
      }
      name = decoding.readVarString(d)
      payload = decoding.readVarUint8Array(d)
      if (kind > KIND_UNAVAILABLE || docNameProblem(name) !== undefined) throw new Error('frame shape')
    } catch (err) {
      this.#stats.badFrames++
      this.#log.debug({ err }, 'dropped a malformed replication frame')
      return
    }
    const session = this.#session
    if (kind === KIND_SUBSCRIBE) this.#track(this.#onSubscribe(name, payload, session))
    else if (kind === KIND_RESYNC) this.#track(this.#onResync(name, payload, session))
    else if (kind === KIND_UNAVAILABLE) this.#track(this.#onUnavailable(name, session))
    else this.#track(this.#onUpdate(name, payload, kind, session))
  }

  #onFragment(kind: number, part: Uint8Array): void {
    if (this.#fragments !== null) {
      this.#fragments ??= []
      this.#fragmentBytes += part.length
      if (this.#fragmentBytes > this.#maxFrameBytes) {
        this.#fragments = null // too large: drop the parts until this frame ends
        this.#stats.badFrames++
      } else this.#fragments.push(part.slice())
    }
    if (kind !== KIND_FRAGMENT_END) return
    const parts = this.#fragments
    this.#fragments = undefined
    this.#fragmentBytes = 0
    if (parts == null) return
    const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let at = 0
    for (const p of parts) {
      whole.set(p, at)
      at += p.length
    }
    const d = decoding.createDecoder(whole)
    try {
      const inner = decoding.readVarUint(d)
      if (inner === KIND_FRAGMENT || inner === KIND_FRAGMENT_END) throw new Error('nested fragment')
    } catch {
      this.#stats.badFrames++
      return
    }
    this.#stats.framesIn--
    this.#onFrame(whole)
  }

  /** The other node wants `name`: answer only if this side has it and the other node may read it. */
  async #onSubscribe(name: string, stateVector: Uint8Array, session: number): Promise<void> {
    let peerSv: Map<number, number>
    try {
      peerSv = Y.decodeStateVector(stateVector)
    } catch {
      this.#stats.badFrames++
      return
    }
    if (!this.#subscribers.has(name)) {
      // Not having it, not being allowed and being over the cap look the same from the other side.
      let refusal: 'denied' | 'ignored' | undefined
      if (this.#subscribers.size >= this.#maxSubscriptions) refusal = 'denied'
      else if (this.#store.get(name) === undefined && !(await this.#store.has(name))) refusal = 'ignored'
      else if (!(await this.#allowed(name, 'read'))) refusal = 'denied'
      if (session !== this.#session) return
      // Others may have subscribed while this one awaited.
      if (refusal === undefined && this.#subscribers.size >= this.#maxSubscriptions) refusal = 'denied'
      if (refusal !== undefined) {
        this.#stats[refusal]++
        this.#send(KIND_UNAVAILABLE, name, NO_PAYLOAD)
        return
      }
      this.#subscribers.add(name)
    }
    await this.#answer(name, stateVector, session)
    if (session !== this.#session) return
    // Subscribe back (the other node named it, so this discloses nothing), or ask again when the other node
    // has changes we lack (an earlier answer was lost, or they arrived after it).
    if (!this.#subscribed.has(name)) await this.#subscribe(name, session)
    else if (ahead(peerSv, Y.decodeStateVector(await this.#store.getStateVector(name)))) {
      await this.#ask(name, session)
    }
  }

  /**
   * The other node will not serve `name`. If it has meanwhile subscribed here itself (it has the document now:
   * frames cross on the wire), subscribe again; otherwise wait for it to.
   */
  async #onUnavailable(name: string, session: number): Promise<void> {
    if (!this.#subscribed.delete(name)) return
    if (this.#subscribers.has(name)) await this.#subscribe(name, session)
  }

  /** Sends the other node what it lacks (`stateVector` is its state), once on disk. */
  async #answer(name: string, stateVector: Uint8Array, session: number): Promise<void> {
    const handle = await this.#store.open(name)
    try {
      // (Callers decoded `stateVector` already.) A large document is encoded in steps.
      const diff = await encodeStateAsUpdateSliced(handle.doc, stateVector, nextTurn)
      if (session !== this.#session) return
      // The difference may include changes still being written: it leaves once they are on disk.
      handle.afterDurable(() => {
        if (session === this.#session) this.#sendUpdate(KIND_STEP_2, name, diff)
      })
    } finally {
      handle.release()
    }
  }

  /**
   * A periodic offer from a subscriber: answer and ask only where the state vectors differ. From a node this
   * side does not know as a subscriber of `name`, it is a subscription (its earlier one was lost on a link that
   * did not report it, or this side's answer was).
   */
  async #onResync(name: string, stateVector: Uint8Array, session: number): Promise<void> {
    if (!this.#subscribers.has(name)) {
      await this.#onSubscribe(name, stateVector, session)
      return
    }
    let peerSv: Map<number, number>
    try {
      peerSv = Y.decodeStateVector(stateVector)
    } catch {
      this.#stats.badFrames++
      return
    }
    const ours = Y.decodeStateVector(await this.#store.getStateVector(name))
    if (ahead(ours, peerSv)) await this.#answer(name, stateVector, session)
    if (ahead(peerSv, ours) && this.#subscribed.has(name)) await this.#ask(name, session)
  }

  /** An update from the other node: applied only for a document this side subscribed to, if it may write. */
  async #onUpdate(name: string, update: Uint8Array, kind: number, session: number): Promise<void> {
    if (!this.#subscribed.has(name)) {
      this.#stats.ignored++
      return
    }
    if (!(await this.#allowed(name, 'write'))) {
      this.#stats.denied++
      return
    }
    if (session !== this.#session) return
    if (kind === KIND_STEP_2) this.#gapAsked.delete(name)
    try {
      await this.#store.applyUpdate(name, update, this)
    } catch (err) {
      if (!isCrdtSyncError(err) || err.code === 'X_CRDT_CLOSED') throw err
      this.#stats.refused[err.code] = (this.#stats.refused[err.code] ?? 0) + 1
      this.#log.debug({ err, code: err.code, doc: name }, 'refused an update from the other node')
      return
    }
    // Structs or deletions waiting for changes this side never received: a frame was lost on the way (or
    // the change is still travelling through another node). Ask once for everything we lack.
    const docStore = this.#store.get(name)?.store
    const gap = docStore !== undefined && (docStore.pendingStructs !== null || docStore.pendingDs !== null)
    if (gap && session === this.#session && !this.#gapAsked.has(name)) {
      this.#gapAsked.add(name)
      await this.#ask(name, session)
    }
  }
}

/**
 * Keeps `store` in step with the store at the other end of `link`, by interest: each side subscribes, by name,
 * to the documents it holds (stored or in memory) that `authorize` lets the other node read; the other side
 * answers only for documents it has and lets the subscriber read, then forwards each durable change of them.
 * Updates are applied only for documents this side subscribed to and lets the other node write. No list of
 * names ever crosses the link, and all state is per session: nothing outlives a close or `close()`.
 *
 * Changes received from the link are not sent back on it, but are forwarded on other links, so stores that
 * share an interest converge in any topology.
 */
export function replicate(components: ReplicationComponents, init: ReplicationInit = {}): Replication {
  const store = components?.store
  const link = components?.link
  if (store == null || typeof store.onUpdate !== 'function') {
    throw new TypeError("'components.store' must be a DocStore")
  }
  if (link == null || typeof link.send !== 'function' || typeof link.onMessage !== 'function') {
    throw new TypeError("'components.link' must be a SyncLink")
  }
  if (components.authorize !== undefined && typeof components.authorize !== 'function') {
    throw new TypeError("'components.authorize' must be a function")
  }
  return new ReplicationImpl(components, init)
}
