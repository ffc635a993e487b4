import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { isCrdtSyncError } from './errors'
import { SILENT_LOGGER, type Logger } from './logger'
import { docNameProblem } from './keys'
import type { DocStore } from './doc-store'

/**
 * A byte link to another node, reliable and ordered while open (e.g. an encrypted node-to-node session).
 * When it closes and opens again, replication starts a new session and catches up by state vectors.
 */
export interface SyncLink {
  /** Whether frames sent now can arrive; replication sends only while it is true. */
  readonly isOpen: boolean
  /** Sends one frame. May drop it silently when the link is not open. */
  send(bytes: Uint8Array): void
  /** Subscribes to incoming frames; returns the unsubscribe function. */
  onMessage(handler: (bytes: Uint8Array) => void): () => void
  /** Subscribes to open/close transitions; returns the unsubscribe function. */
  onStateChange(handler: (open: boolean) => void): () => void
}

/** Options of {@link replicate}. */
export interface ReplicationInit {
  /** Which documents this link carries (both directions). @default every document */
  filter?: (docName: string) => boolean
  /** Largest frame accepted from the peer. @default 16_777_216 */
  maxFrameBytes?: number
  /**
   * Every this many milliseconds, while the link is open, offer the state vector of every document again
   * (answered only where the two sides differ, from the metadata index, without loading documents), so
   * updates a misbehaving link lost without reporting a close are repaired. 0 turns it off. @default 300_000
   */
  resyncIntervalMs?: number
  /** @default a silent logger */
  logger?: Logger
}

/** Counters of one replication. */
export interface ReplicationStats {
  /** Sessions started: one when the link opens, again after each reopen. */
  sessions: number
  /** Periodic resync rounds started (see `resyncIntervalMs`). */
  resyncs: number
  /** State vectors sent back because the peer's showed changes this side lacks (or a gap after an update). */
  asks: number
  /** Frames received from the peer. */
  framesIn: number
  /** Frames sent to the peer. */
  framesOut: number
  /** Frames from the peer that were malformed, too large or not applicable, and were dropped. */
  badFrames: number
  /** Asynchronous steps (document loads, answers) under way. */
  pending: number
}

/** A running replication; `close()` unsubscribes from the link and the store. */
export interface Replication {
  /** The replication's counters now. */
  getStats(): ReplicationStats
  /** Offers every document's state vector now (what the periodic resync does). */
  resync(): void
  /** Stops replicating; the link and the store stay open. Idempotent. */
  close(): void
}

// Frame: varUint kind · varString document name · varUint8Array payload.
const KIND_STEP_1 = 0 // payload: state vector; answered by STEP_2
const KIND_STEP_2 = 1 // payload: update (the difference)
const KIND_UPDATE = 2 // payload: update (a live change, relayed once durable)
const KIND_RESYNC = 3 // payload: state vector; answered (STEP_2 and/or STEP_1) only where the sides differ
const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
const DEFAULT_RESYNC_INTERVAL_MS = 300_000

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

class ReplicationImpl implements Replication {
  readonly #store: DocStore
  readonly #link: SyncLink
  readonly #filter: (docName: string) => boolean
  readonly #maxFrameBytes: number
  readonly #log: Logger
  readonly #off: (() => void)[] = []
  #session = 0
  #announced = new Set<string>()
  /** Documents with an outstanding ask for a gap (missing dependencies); cleared by the next STEP_2. */
  #gapAsked = new Set<string>()
  #resyncTimer: ReturnType<typeof setInterval> | undefined
  #closed = false
  readonly #stats: ReplicationStats = {
    sessions: 0,
    resyncs: 0,
    asks: 0,
    framesIn: 0,
    framesOut: 0,
    badFrames: 0,
    pending: 0,
  }

  constructor(store: DocStore, link: SyncLink, init: ReplicationInit) {
    this.#store = store
    this.#link = link
    this.#filter = init.filter ?? (() => true)
    this.#maxFrameBytes = init.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.#log = init.logger ?? SILENT_LOGGER
    const resyncMs = init.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS
    if (typeof resyncMs !== 'number' || !(resyncMs >= 0))
      throw new RangeError("'resyncIntervalMs' must be >= 0")
    if (resyncMs > 0) {
      this.#resyncTimer = setInterval(() => this.resync(), resyncMs)
      this.#resyncTimer.unref?.()
    }
    this.#off.push(
      link.onMessage((bytes) => this.#onFrame(bytes)),
      link.onStateChange((open) => {
        if (open) this.#startSession()
        else this.#session++
      }),
      store.onUpdate((name, update, origin) => {
        // Durable by now (the store calls back after the write); never echo a change back where it came from.
        if (origin === this || !this.#filter(name)) return
        this.#send(KIND_UPDATE, name, update)
      }),
    )
    if (link.isOpen) this.#startSession()
  }

  getStats(): ReplicationStats {
    return { ...this.#stats }
  }

  resync(): void {
    if (this.#closed || !this.#link.isOpen) return
    this.#stats.resyncs++
    const session = this.#session
    this.#track(
      (async () => {
        for await (const name of this.#store.listDocuments()) {
          if (session !== this.#session) return
          if (!this.#filter(name)) continue
          const stateVector = await this.#store.getStateVector(name)
          if (session === this.#session) this.#send(KIND_RESYNC, name, stateVector)
        }
      })(),
    )
  }

  close(): void {
    this.#closed = true
    this.#session++
    if (this.#resyncTimer !== undefined) clearInterval(this.#resyncTimer)
    this.#resyncTimer = undefined
    for (const off of this.#off) off()
  }

  #send(kind: number, name: string, payload: Uint8Array): void {
    if (this.#closed || !this.#link.isOpen) return
    this.#stats.framesOut++
    try {
      this.#link.send(encodeFrame(kind, name, payload))
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

  /** A new session: offer our state vector of every document; the peer answers with what we lack. */
  #startSession(): void {
    if (this.#closed) return
    const session = ++this.#session
    this.#stats.sessions++
    this.#announced = new Set()
    this.#gapAsked = new Set()
    this.#track(
      (async () => {
        for await (const name of this.#store.listDocuments()) {
          if (session !== this.#session) return
          if (this.#filter(name)) await this.#offer(name, session)
        }
      })(),
    )
  }

  async #offer(name: string, session: number): Promise<void> {
    if (this.#announced.has(name)) return
    this.#announced.add(name)
    const stateVector = await this.#store.getStateVector(name)
    if (session === this.#session) this.#send(KIND_STEP_1, name, stateVector)
  }

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
      name = decoding.readVarString(d)
      payload = decoding.readVarUint8Array(d)
      if (kind > KIND_RESYNC || docNameProblem(name) !== undefined) throw new Error('frame shape')
    } catch (err) {
      this.#stats.badFrames++
      this.#log.debug({ err }, 'dropped a malformed replication frame')
      return
    }
    if (!this.#filter(name)) return
    const session = this.#session
    if (kind === KIND_STEP_1) this.#track(this.#answer(name, payload, session))
    else if (kind === KIND_RESYNC) this.#track(this.#answerResync(name, payload, session))
    else this.#track(this.#apply(name, payload, kind, session))
  }

  async #apply(name: string, update: Uint8Array, kind: number, session: number): Promise<void> {
    if (kind === KIND_STEP_2) this.#gapAsked.delete(name)
    await this.#store.applyUpdate(name, update, this)
    // Structs or deletions waiting for changes this side never received: a frame was lost on the way (or
    // the change is still travelling through another node). Ask once for everything we lack.
    const docStore = this.#store.get(name)?.store
    const gap = docStore !== undefined && (docStore.pendingStructs !== null || docStore.pendingDs !== null)
    if (gap && session === this.#session && !this.#gapAsked.has(name)) {
      this.#gapAsked.add(name)
      await this.#ask(name, session)
    }
  }

  /** Sends our state vector so the peer answers with what we lack. */
  async #ask(name: string, session: number): Promise<void> {
    const stateVector = await this.#store.getStateVector(name)
    if (session !== this.#session) return
    this.#stats.asks++
    this.#send(KIND_STEP_1, name, stateVector)
  }

  /** A periodic offer: answer and ask only where the state vectors differ, without loading otherwise. */
  async #answerResync(name: string, stateVector: Uint8Array, session: number): Promise<void> {
    let peerSv: Map<number, number>
    try {
      peerSv = Y.decodeStateVector(stateVector)
    } catch {
      this.#stats.badFrames++
      return
    }
    const ours = Y.decodeStateVector(await this.#store.getStateVector(name))
    if (ahead(ours, peerSv)) await this.#answer(name, stateVector, session, peerSv)
    else if (ahead(peerSv, ours)) await this.#ask(name, session)
  }

  async #answer(
    name: string,
    stateVector: Uint8Array,
    session: number,
    decoded?: Map<number, number>,
  ): Promise<void> {
    let peerSv = decoded
    if (peerSv === undefined) {
      try {
        peerSv = Y.decodeStateVector(stateVector)
      } catch {
        this.#stats.badFrames++
        return
      }
    }
    const handle = await this.#store.open(name)
    try {
      let diff: Uint8Array
      try {
        diff = Y.encodeStateAsUpdate(handle.doc, stateVector)
      } catch {
        this.#stats.badFrames++
        return
      }
      // The difference may include changes still being written: it leaves once they are on disk.
      handle.afterDurable(() => {
        if (session === this.#session) this.#send(KIND_STEP_2, name, diff)
      })
    } finally {
      handle.release()
    }
    if (session !== this.#session) return
    // The peer has changes we lack (our offer was lost, or they arrived after it): ask again. Otherwise, a
    // document we had not offered this session (e.g. new to us): offer it.
    if (ahead(peerSv, Y.decodeStateVector(await this.#store.getStateVector(name)))) {
      this.#announced.add(name)
      await this.#ask(name, session)
    } else await this.#offer(name, session)
  }
}

/**
 * Keeps `store` in step with the store at the other end of `link`: on every (re)open both sides offer their
 * state vectors for every document and answer with what the other lacks; afterwards each durable change is
 * forwarded as it happens. Changes received from the link are not sent back on it, but are forwarded on other
 * links, so stores connected in any topology converge.
 */
export function replicate(store: DocStore, link: SyncLink, init: ReplicationInit = {}): Replication {
  if (store == null || typeof store.onUpdate !== 'function') throw new TypeError("'store' must be a DocStore")
  if (link == null || typeof link.send !== 'function' || typeof link.onMessage !== 'function') {
    throw new TypeError("'link' must be a SyncLink")
  }
  return new ReplicationImpl(store, link, init)
}
