/**
 * Admission: what a frame or a connection must pass before any endpoint sees it. Per-address shares of the
 * server's tables, the per-connection token bucket, the size / JSON-object checks, and the calls to the optional
 * guard. This file and `federation.ts` are the only places where bytes from outside become a message.
 */
import { isIP } from 'node:net'
import type { Conn } from './connection'
import type { Counters } from './endpoints/endpoint'
import type { SignalingOptions } from './options'
import { CLOSE_CODES } from './protocol'
import type { GuardEndpoint, GuardSession, Logger, SignalingGuard } from './types'

/** The connections, topic memberships and held signals of one address group. */
export interface AddressShare {
  readonly key: string
  connections: number
  topics: number
  /** Signals from this group held for offline peers or waiting for a directory lookup. */
  held: number
}

/**
 * The group an address counts against: an IPv4 address, or the /64 of an IPv6 address (one host or home network
 * usually holds a whole /64, so counting single IPv6 addresses would give one client 2^64 shares).
 */
export function addressGroup(address: string): string {
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (v4mapped !== null) return v4mapped[1]!
  if (isIP(address) !== 6) return address
  const [head = '', tail = ''] = address.toLowerCase().split('::', 2) as [string, string?]
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = address.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`
}

/** Per-address-group counters, created on first use and dropped when they fall back to zero. */
export class AddressShares {
  readonly #shares = new Map<string, AddressShare>()

  /** The share of `address`'s group (created empty if new; call {@link release} when done). */
  of(address: string): AddressShare {
    const key = addressGroup(address)
    let share = this.#shares.get(key)
    if (share === undefined) {
      share = { key, connections: 0, topics: 0, held: 0 }
      this.#shares.set(key, share)
    }
    return share
  }

  /** Forgets `share` if nothing counts against it any more. */
  release(share: AddressShare): void {
    if (
      share.connections === 0 &&
      share.topics === 0 &&
      share.held === 0 &&
      this.#shares.get(share.key) === share
    ) {
      this.#shares.delete(share.key)
    }
  }

  /** Address groups tracked. */
  get size(): number {
    return this.#shares.size
  }
}

/** A frame that passed admission: the parsed object and the text it came from. */
export interface Admitted {
  msg: Record<string, unknown>
  text: string
}

/** Token bucket, frame checks and guard calls of one server. */
export class Admission {
  readonly #options: SignalingOptions
  readonly #counters: Counters
  readonly #log: Logger
  readonly #guard: SignalingGuard | undefined
  readonly #close: (conn: Conn, code: number, reason: string) => void
  /** Handed to the caller through a field, not a fresh object per frame: handlers run synchronously. */
  readonly #admitted: Admitted = { msg: {}, text: '' }

  constructor(
    options: SignalingOptions,
    counters: Counters,
    log: Logger,
    guard: SignalingGuard | undefined,
    close: (conn: Conn, code: number, reason: string) => void,
  ) {
    this.#options = options
    this.#counters = counters
    this.#log = log
    this.#guard = guard
    this.#close = close
  }

  /**
   * The guard's session for a new connection; `false` refuses it (HTTP 429), a string refuses it with that reason
   * (close 4030), `undefined` (no guard, or it threw) admits.
   */
  connect(
    address: string,
    endpoint: GuardEndpoint,
    close: (reason: string) => void,
  ): GuardSession | false | string | undefined {
    if (this.#guard === undefined) return undefined
    try {
      const session = this.#guard.connect(address, endpoint, close)
      return session === false || typeof session === 'string' || typeof session?.frame === 'function'
        ? session
        : undefined
    } catch (err) {
      this.#log.warn({ err: (err as Error)?.message }, 'guard failed; connection admitted')
      return undefined
    }
  }

  /** Calls a guard session method (if the guard has it); a guard that throws is logged and ignored (it admits). */
  call<M extends Exclude<keyof GuardSession, 'frame'>>(
    guard: GuardSession | undefined,
    method: M,
    ...args: Parameters<NonNullable<GuardSession[M]>>
  ): void {
    const fn = guard?.[method] as ((...a: unknown[]) => void) | undefined
    if (fn === undefined) return
    try {
      fn.apply(guard, args)
    } catch (err) {
      this.#log.warn({ err: (err as Error)?.message, method }, 'guard failed')
    }
  }

  /** The guard's verdict on a frame; true (admit) without a guard or when it throws. */
  frame(conn: Conn, type: string, bytes: number, target: string | undefined): boolean {
    const guard = conn.guard
    if (guard === undefined) return true
    try {
      return guard.frame(type, bytes, target) !== false
    } catch (err) {
      this.#log.warn({ err: (err as Error)?.message }, 'guard failed; frame admitted')
      return true
    }
  }

  /**
   * Takes one token from `conn`'s bucket (every inbound frame, WebSocket pings and pongs included, costs one). Returns false when
   * the frame must be dropped; a client that keeps sending for ten bursts' worth of drops is closed (4029).
   */
  take(conn: Conn, now: number): boolean {
    const burst = this.#options.rateLimitBurst
    let tokens = conn.tokens + (now - conn.refilledAt) * this.#options.ratePerMs
    if (tokens > burst) tokens = burst
    conn.refilledAt = now
    if (tokens >= 1) {
      conn.tokens = tokens - 1
      return true
    }
    conn.tokens = tokens
    this.#counters.rateLimited++
    conn.rateDrops++
    this.frame(conn, 'rate-limited', 0, undefined)
    if (conn.rateDrops > burst * 10) {
      this.#close(conn, CLOSE_CODES.RATE_ABUSE, 'rate limit abuse')
      return false
    }
    this.tellRateLimited(conn, now)
    return false
  }

  /** Tells a client its frames are being dropped, at most once a second. */
  tellRateLimited(conn: Conn, now: number): void {
    if (now - conn.rateErrorAt < 1000) return
    conn.rateErrorAt = now
    conn.endpoint.rateLimited(conn)
  }

  /**
   * Liveness, rate, size and JSON-object shape, then the guard. Returns the admitted frame (valid until the
   * caller returns), or `undefined` after refusing and counting it.
   */
  parse(conn: Conn, data: Buffer, isBinary: boolean, now: number): Admitted | undefined {
    conn.lastSeen = now
    if (!this.take(conn, now)) return undefined
    if (isBinary) return this.#refuse(conn, data.length, 'BAD_MESSAGE', 'binary frames are not accepted')
    if (data.length > this.#options.maxFrameBytes) {
      return this.#refuse(
        conn,
        data.length,
        'TOO_LARGE',
        `frame exceeds ${this.#options.maxFrameBytes} bytes`,
      )
    }
    const text = data.toString()
    let msg: unknown
    try {
      msg = JSON.parse(text)
    } catch {
      return this.#refuse(conn, data.length, 'BAD_MESSAGE', 'frame is not valid JSON')
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      return this.#refuse(conn, data.length, 'BAD_MESSAGE', 'frame must be a JSON object')
    }
    const obj = msg as Record<string, unknown>
    if (conn.guard !== undefined) {
      const type = typeof obj.type === 'string' ? obj.type : 'invalid'
      const to = obj.to ?? obj.dst ?? obj.topic
      if (!this.frame(conn, type, data.length, typeof to === 'string' ? to : undefined)) {
        this.#counters.rateLimited++
        this.tellRateLimited(conn, now)
        return undefined
      }
    }
    this.#admitted.msg = obj
    this.#admitted.text = text
    return this.#admitted
  }

  #refuse(conn: Conn, bytes: number, code: 'BAD_MESSAGE' | 'TOO_LARGE', message: string): undefined {
    this.frame(conn, 'invalid', bytes, undefined)
    this.#counters.rejected++
    conn.endpoint.refuse(conn, code, message)
    return undefined
  }
}
