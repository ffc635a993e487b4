import ipaddr from 'ipaddr.js'
import type { Clock } from './types'

/** Per-address token buckets remembered (least recently used forgotten; the global bucket still applies). */
export const MAX_TRACKED_ADDRESSES = 4_096

/** A token bucket over an injected clock: `rate` tokens per second, at most `burst`. */
export class TokenBucket {
  #tokens: number
  #at: number
  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst
    this.#at = now
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.#tokens = Math.min(this.burst, this.#tokens + (Math.max(0, now - this.#at) * this.rate) / 1000)
    this.#at = now
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }
}

/**
 * The address group a link from `address` counts against: an IPv4 /24, an IPv6 /48 (an IPv4-mapped IPv6 address
 * counts as its IPv4 address). Anything that is not an IP address (a memory-transport name) is its own group.
 */
export function addressGroup(address: string): string {
  if (!ipaddr.isValid(address)) return address
  let ip: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.parse(address)
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    ip = (ip as ipaddr.IPv6).toIPv4Address()
  }
  if (ip.kind() === 'ipv4') return `${(ip as ipaddr.IPv4).octets.slice(0, 3).join('.')}.0/24`
  const parts = (ip as ipaddr.IPv6).parts.slice(0, 3).map((p) => p.toString(16))
  return `${parts.join(':')}::/48`
}

/**
 * Admission of inbound connections before their handshake: a bucket per remote address, a global bucket, a
 * reserve of the global budget that only preferred addresses (known nodes) may draw on, and a cap on handshakes
 * running at once.
 */
export class HandshakeAdmission {
  readonly #clock: Clock
  readonly #perAddress = new Map<string, TokenBucket>()
  readonly #rate: number
  readonly #burst: number
  readonly #global: TokenBucket
  readonly #reserve: TokenBucket

  constructor(
    clock: Clock,
    opts: {
      perAddressPerSecond: number
      burstPerAddress: number
      perSecond: number
      burst: number
      preferredBurst: number
    },
  ) {
    this.#clock = clock
    this.#rate = opts.perAddressPerSecond
    this.#burst = opts.burstPerAddress
    const now = clock.now()
    this.#global = new TokenBucket(opts.perSecond, opts.burst, now)
    this.#reserve = new TokenBucket(opts.perSecond, opts.preferredBurst, now)
  }

  /** Whether a handshake from `address` may start now (takes the tokens when it may). */
  admit(address: string, preferred: boolean): boolean {
    const now = this.#clock.now()
    let bucket = this.#perAddress.get(address)
    if (bucket === undefined) {
      bucket = new TokenBucket(this.#rate, this.#burst, now)
      if (this.#perAddress.size >= MAX_TRACKED_ADDRESSES) {
        const oldest = this.#perAddress.keys().next()
        if (oldest.done !== true) this.#perAddress.delete(oldest.value)
      }
    } else this.#perAddress.delete(address)
    this.#perAddress.set(address, bucket)
    if (!bucket.take(now)) return false
    return this.#global.take(now) || (preferred && this.#reserve.take(now))
  }
}
