import { lookup } from 'node:dns/promises'
import ipaddr from 'ipaddr.js'
import { SYSTEM_CLOCK, type Clock, type DialDecision, type DialPolicy } from './types'

/** How long a dial policy waits for DNS before refusing. */
export const RESOLVE_TIMEOUT_MS = 2_000
/** Longest link address accepted, in characters. */
export const MAX_ADDRESS_LENGTH = 300

/**
 * The canonical form of a link address — `ws://host:port` or `wss://host:port`, nothing else: no user info, no
 * path, no query, no fragment (a path or query could steer the dial to another resource on the host) — or
 * `undefined` when `address` is not one. Host names are lower-cased, IPv6 hosts bracketed.
 */
export function parseLinkAddress(address: unknown): string | undefined {
  if (typeof address !== 'string' || address.length === 0 || address.length > MAX_ADDRESS_LENGTH)
    return undefined
  if (/[\s\\]/.test(address)) return undefined
  let url: URL
  try {
    url = new URL(address)
  } catch {
    return undefined
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return undefined
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return undefined
  if (url.pathname !== '/' && url.pathname !== '') return undefined
  if (address.includes('?') || address.includes('#') || address.includes('@')) return undefined
  if (url.hostname === '') return undefined
  return `${url.protocol}//${url.host}`
}

/** The host of a canonical link address, without IPv6 brackets. */
export function linkAddressHost(address: string): string {
  return new URL(address).hostname.replace(/^\[|\]$/g, '')
}

/** The IP address in its plain form (IPv4-mapped IPv6 as IPv4); `undefined` when `host` is not an IP address. */
export function normalizeIp(host: string): string | undefined {
  try {
    const ip = ipaddr.parse(host.replace(/^\[|\]$/g, ''))
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
      return (ip as ipaddr.IPv6).toIPv4Address().toString()
    }
    return ip.toString()
  } catch {
    return undefined
  }
}

/** Ranges never dialed: they reach this host or nothing (0.0.0.0 connects to localhost on Linux). */
const NEVER = new Set(['unspecified', 'multicast', 'broadcast', 'reserved'])
/** Ranges dialed only when private addresses are allowed (a testnet, a LAN). */
const PRIVATE = new Set(['loopback', 'private', 'linkLocal', 'uniqueLocal', 'carrierGradeNat'])

/**
 * Whether IP address `ip` may be dialed: public unicast always, loopback / private / link-local / unique-local /
 * CGNAT only with `allowPrivate`, unspecified / multicast / broadcast / reserved and every other special range
 * never.
 */
export function isDialableIp(ip: string, allowPrivate: boolean): boolean {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6
  try {
    parsed = ipaddr.parse(ip)
  } catch {
    return false
  }
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address()
  }
  const range = parsed.range()
  if (range === 'unicast') return true
  if (NEVER.has(range)) return false
  return allowPrivate && PRIVATE.has(range)
}

/** Options of {@link createDialPolicy}. */
export interface DialPolicyInit {
  /**
   * Dial loopback, private, link-local, unique-local and CGNAT addresses (a test network or a LAN). Off on a
   * public network, so that an address learnt from another node cannot point this node at its own services.
   * @default false
   */
  allowPrivate?: boolean
  /**
   * The host (IP address) this node already knows for `nodeId` from a source it trusts more than the address —
   * the DHT routing table, where the node answered over UDP. When given, a node it returns `undefined` for is
   * never dialed, and an address is dialed only on that host.
   * @default undefined (any host that passes the range check)
   */
  hostOf?: (nodeId: string) => string | undefined | Promise<string | undefined>
  /**
   * Resolves a host name to its IP addresses. Every address it returns must pass the range check.
   * @default `dns.promises.lookup(name, { all: true })`
   */
  resolve?: (hostname: string) => Promise<string[]>
  /** @default RESOLVE_TIMEOUT_MS */
  resolveTimeoutMs?: number
  /** Timers of the resolve deadline. @default SYSTEM_CLOCK */
  clock?: Clock
}

async function defaultResolve(hostname: string): Promise<string[]> {
  return (await lookup(hostname, { all: true })).map((r) => r.address)
}

/**
 * The one dial policy: an address is dialed only if it is a canonical link address (see
 * {@link parseLinkAddress}) whose host resolves only to dialable IP addresses (see {@link isDialableIp}) and, when
 * `hostOf` is given, one of them is the host known for the node. The decision names the address to dial with the
 * checked IP address in place of a host name (`ws:` only; `wss:` keeps the name for TLS), so DNS cannot answer
 * differently between the check and the dial.
 */
export function createDialPolicy(init: DialPolicyInit = {}): DialPolicy {
  const allowPrivate = init.allowPrivate ?? false
  const resolve = init.resolve ?? defaultResolve
  const timeoutMs = init.resolveTimeoutMs ?? RESOLVE_TIMEOUT_MS
  const clock = init.clock ?? SYSTEM_CLOCK
  const refuse = (reason: string): DialDecision => ({ allow: false, reason })
  return async (nodeId, address) => {
    const canonical = parseLinkAddress(address)
    if (canonical === undefined) return refuse('not a ws:// or wss:// address of a host and port')
    const url = new URL(canonical)
    const host = linkAddressHost(canonical)
    let ips: string[]
    const literal = normalizeIp(host)
    if (literal !== undefined) ips = [literal]
    else {
      let timer: unknown
      try {
        ips = await Promise.race([
          resolve(host),
          new Promise<never>((_, reject) => {
            timer = clock.setTimeout(() => reject(new Error('DNS timeout')), timeoutMs)
          }),
        ])
      } catch {
        return refuse(`cannot resolve ${host}`)
      } finally {
        if (timer !== undefined) clock.clearTimeout(timer)
      }
      ips = ips.map((ip) => normalizeIp(ip)).filter((ip): ip is string => ip !== undefined)
      if (ips.length === 0) return refuse(`${host} has no address`)
    }
    const bad = ips.find((ip) => !isDialableIp(ip, allowPrivate))
    if (bad !== undefined) {
      return refuse(
        `${bad} is ${allowPrivate ? 'a special-purpose' : 'a private or special-purpose'} address`,
      )
    }
    let chosen = ips[0]!
    if (init.hostOf !== undefined) {
      const known = await init.hostOf(nodeId)
      const knownIp = known === undefined ? undefined : normalizeIp(known)
      if (knownIp === undefined) return refuse('node not in the routing table')
      if (!ips.includes(knownIp))
        return refuse(`not the host the routing table knows for the node (${knownIp})`)
      chosen = knownIp
    }
    if (url.protocol === 'wss:') return { allow: true, address: canonical }
    const ipHost = chosen.includes(':') ? `[${chosen}]` : chosen
    return { allow: true, address: `ws://${ipHost}${url.port === '' ? '' : `:${url.port}`}` }
  }
}
