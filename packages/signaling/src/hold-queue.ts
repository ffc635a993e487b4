/**
 * Signals held for a peer that is offline, for `holdMs`, bounded per peer and in total. When the peer registers
 * they are handed over; when the time passes each sender hears once that its signals expired.
 */
import type { AddressShare } from './admission'
import type { Counters } from './endpoints/endpoint'
import type { SignalingOptions } from './options'

/** Tells `from` that its signals to `peer` expired. */
export type ExpireFn = (from: string, peer: string) => void

interface HeldFrame {
  frame: string
  from: string
  /** The sender's address share, which counts this frame until it leaves the queue. */
  share: AddressShare
  at: number
}

/** The signals held for one peer. */
export interface HeldSignals {
  /** The held peer's ID (the key without its namespace). */
  readonly peer: string
  /**
   * Who the signals were meant for, when the endpoint can tell (PeerJS: the token of the registration that
   * was last seen for this ID). A later registration by someone else must not receive them.
   */
  readonly owner: string | undefined
  readonly expire: ExpireFn
  readonly frames: HeldFrame[]
}

export class HoldQueue {
  readonly #options: SignalingOptions
  readonly #counters: Counters
  readonly #held = new Map<string, HeldSignals>()
  readonly #release: (share: AddressShare) => void
  #count = 0

  /** `release` is called for a share whose held count fell (it may be forgotten if nothing else counts). */
  constructor(options: SignalingOptions, counters: Counters, release: (share: AddressShare) => void) {
    this.#options = options
    this.#counters = counters
    this.#release = release
  }

  /** Signals held in total. */
  get size(): number {
    return this.#count
  }

  /**
   * Holds `frame` from `from` (whose connection counts against `share`) for `peer` under `key`
   * (`<namespace>:<peer>`). Returns false, holding nothing, when holding is off or a bound is reached: the
   * caller answers the sender.
   */
  hold(
    key: string,
    peer: string,
    frame: string,
    from: string,
    share: AddressShare,
    now: number,
    expire: ExpireFn,
    owner?: string,
  ): boolean {
    const held = this.#held.get(key)
    if (
      this.#options.holdMs === 0 ||
      this.#count >= this.#options.maxHeldTotal ||
      share.held >= this.#options.maxHeldPerAddress ||
      (held?.frames.length ?? 0) >= this.#options.maxHeldPerPeer
    ) {
      return false
    }
    const entry = { frame, from, share, at: now }
    if (held === undefined) this.#held.set(key, { peer, owner, expire, frames: [entry] })
    else held.frames.push(entry)
    this.#count++
    share.held++
    return true
  }

  /** Removes and returns what is held under `key`. */
  take(key: string): HeldSignals | undefined {
    const held = this.#held.get(key)
    if (held === undefined) return undefined
    this.#held.delete(key)
    this.#count -= held.frames.length
    for (const f of held.frames) this.#unshare(f)
    return held
  }

  #unshare(frame: HeldFrame): void {
    frame.share.held--
    this.#release(frame.share)
  }

  /** Tells each sender of `held` once that its signals expired (signals handed back by {@link take}). */
  expireAll(held: HeldSignals): void {
    const told = new Set<string>()
    for (const f of held.frames) {
      if (told.has(f.from)) continue
      told.add(f.from)
      this.#counters.expired++
      held.expire(f.from, held.peer)
    }
  }

  /** Expires signals held longer than `holdMs`. */
  sweep(now: number): void {
    if (this.#count === 0) return
    const holdMs = this.#options.holdMs
    for (const [key, held] of this.#held) {
      const frames = held.frames
      let keep = 0
      const told = new Set<string>()
      for (const f of frames) {
        if (now - f.at < holdMs) frames[keep++] = f
        else {
          this.#count--
          this.#unshare(f)
          if (!told.has(f.from)) {
            told.add(f.from)
            this.#counters.expired++
            held.expire(f.from, held.peer)
          }
        }
      }
      frames.length = keep
      if (keep === 0) this.#held.delete(key)
    }
  }

  clear(): void {
    this.#held.clear()
    this.#count = 0
  }
}
