/**
 * Test helpers for `@x/crdt-sync`: an in-memory {@link SyncLink} pair and a manual clock.
 *
 * @example
 * ```ts
 * import { createMemoryLinkPair } from '@x/crdt-sync/testing'
 * import { replicate } from '@x/crdt-sync'
 *
 * const pair = createMemoryLinkPair()
 * replicate({ store: storeA, link: pair.a })
 * replicate({ store: storeB, link: pair.b })
 * pair.drop() // both ends close; frames in flight are lost
 * pair.restore() // both ends open again; replication catches up
 * await pair.idle()
 * ```
 *
 * @packageDocumentation
 */
import type { SyncLink } from './replicate'
import type { Clock } from './clock'

/** One end of a memory link. */
export interface MemoryLink extends SyncLink {
  /** Frames this end has sent (including ones lost to a drop). */
  readonly sent: number
}

/** Options of {@link createMemoryLinkPair}. */
export interface MemoryLinkInit {
  /** Whether the link starts open. @default true */
  open?: boolean
  /**
   * Decides, per frame, whether the wire loses it while the link stays open (a misbehaving transport, e.g. a
   * duplicate connection closed with frames in flight). `from` is the sending end. @default nothing is lost
   */
  lose?: (bytes: Uint8Array, from: 'a' | 'b') => boolean
  /** Largest frame `send` accepts (a bigger one throws, as a real transport's would). @default no limit */
  maxFrameBytes?: number
}

/** Two connected memory links and controls over the wire between them. */
export interface MemoryLinkPair {
  /** One end; give it to one store's `replicate()`. */
  a: MemoryLink
  /** The other end; frames sent on `a` arrive here and back. */
  b: MemoryLink
  /** Closes both ends; frames in flight are discarded. */
  drop(): void
  /** Opens both ends again. */
  restore(): void
  /** Resolves once no frame is in flight. */
  idle(): Promise<void>
  /** Frames lost by `init.lose`. */
  readonly lost: number
}

/**
 * Creates an ordered, asynchronous (one `setImmediate` per frame) link pair, open from the start unless
 * `init.open` is false, reliable unless `init.lose` says otherwise.
 */
export function createMemoryLinkPair(init: MemoryLinkInit = {}): MemoryLinkPair {
  let open = init.open ?? true
  let lost = 0
  let generation = 0
  let inFlight = 0
  let idleWaiters: (() => void)[] = []

  const settle = (): void => {
    if (inFlight > 0) return
    const waiters = idleWaiters
    idleWaiters = []
    for (const w of waiters) w()
  }

  interface End {
    messageHandlers: Set<(bytes: Uint8Array) => void>
    stateHandlers: Set<(open: boolean) => void>
    connect(p: End): void
    link: MemoryLink & { sent: number }
  }

  const end = (side: 'a' | 'b'): End => {
    const messageHandlers = new Set<(bytes: Uint8Array) => void>()
    const stateHandlers = new Set<(open: boolean) => void>()
    let peer: End | undefined
    const self: End = {
      messageHandlers,
      stateHandlers,
      connect(p: End) {
        peer = p
      },
      link: {
        sent: 0,
        maxFrameBytes: init.maxFrameBytes,
        get isOpen() {
          return open
        },
        send(bytes: Uint8Array) {
          if (!(bytes instanceof Uint8Array)) throw new TypeError("'bytes' must be a Uint8Array")
          if (init.maxFrameBytes !== undefined && bytes.length > init.maxFrameBytes) {
            throw new RangeError(`frame of ${bytes.length} bytes exceeds ${init.maxFrameBytes}`)
          }
          self.link.sent++
          if (!open || !peer) return
          if (init.lose?.(bytes, side) === true) {
            lost++
            return
          }
          const target = peer
          const gen = generation
          const copy = bytes.slice()
          inFlight++
          setImmediate(() => {
            inFlight--
            if (open && gen === generation) for (const h of target.messageHandlers) h(copy)
            settle()
          })
        },
        onMessage(handler: (bytes: Uint8Array) => void) {
          messageHandlers.add(handler)
          return () => messageHandlers.delete(handler)
        },
        onStateChange(handler: (open: boolean) => void) {
          stateHandlers.add(handler)
          return () => stateHandlers.delete(handler)
        },
      },
    }
    return self
  }

  const a = end('a')
  const b = end('b')
  a.connect(b)
  b.connect(a)
  const announce = (state: boolean) => {
    for (const h of [...a.stateHandlers, ...b.stateHandlers]) h(state)
  }
  return {
    a: a.link,
    b: b.link,
    drop() {
      if (!open) return
      open = false
      generation++
      announce(false)
    },
    restore() {
      if (open) return
      open = true
      announce(true)
    },
    get lost() {
      return lost
    },
    idle() {
      if (inFlight === 0) return Promise.resolve()
      return new Promise((resolve) => idleWaiters.push(resolve))
    },
  }
}

/** A {@link Clock} that moves only when told to; timers fire in order of their due time. */
export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void
  /** Timers scheduled and not yet run or cleared. */
  readonly pendingTimers: number
}

/** Creates a {@link ManualClock} starting at `start` milliseconds. */
export function createManualClock(start = 0): ManualClock {
  let now = start
  let nextId = 0
  const timers = new Map<number, { at: number; fn: () => void }>()
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = ++nextId
      timers.set(id, { at: now + Math.max(0, ms), fn })
      return id
    },
    clearTimeout(handle) {
      timers.delete(handle as number)
    },
    advance(ms) {
      const end = now + ms
      for (;;) {
        let due: [number, { at: number; fn: () => void }] | undefined
        for (const entry of timers)
          if (entry[1].at <= end && (due === undefined || entry[1].at < due[1].at)) due = entry
        if (due === undefined) break
        timers.delete(due[0])
        now = due[1].at
        due[1].fn()
      }
      now = end
    },
    get pendingTimers() {
      return timers.size
    },
  }
}
