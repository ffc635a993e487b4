/**
 * Addresses a caller gives to `bootstrap()` / `ping()` on an IP transport: `1.2.3.4:5`, `[v6]:5`, or
 * `name:5` resolved through an injected resolver. IP literals are rewritten to the form a socket reports
 * for the sender of a datagram (libuv's inet_ntop: RFC 5952 for IPv6), because a response is accepted only
 * from the exact address string the request went to: a seed written `[0:0::1]:5` would otherwise be
 * answered from `[::1]:5` and never join.
 */
import { isIPv4, isIPv6, SocketAddress } from 'node:net'
import { formatAddress } from './address'
import { KademliaError, throwIfAborted } from './errors'

/** Resolves a host name to IP address strings (`1.2.3.4`, `::1`), e.g. node:dns/promises `lookup`. */
export type ResolveFn = (hostname: string, options: { signal?: AbortSignal }) => Promise<readonly string[]>

/** An address read by {@link parsePeerAddress}. */
export type PeerAddress =
  | {
      /** An IP literal with a port. */
      kind: 'ip'
      /** `host:port` or `[v6]:port`, in canonical form. */
      address: string
      /** The IP version. */
      family: 4 | 6
    }
  | {
      /** A host name with a port, to be resolved. */
      kind: 'name'
      /** The host name, as written. */
      host: string
      /** The port, 1–65535. */
      port: number
    }

/** IP family of a transport address. */
export type IpFamily = 4 | 6

const MAX_ADDRESSES_PER_NAME = 8 // a seed name with many A/AAAA records is still a handful of pings
// RFC 1123 labels; `_` too, as container and service names use it and getaddrinfo takes it.
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/

function bad(name: string, address: string, why: string): never {
  throw new TypeError(`'${name}' must be host:port or [ipv6]:port (${why}): ${JSON.stringify(address)}`)
}

/** The canonical text of an IP literal, or undefined if `host` is none. */
function canonicalIp(host: string): { host: string; family: IpFamily } | undefined {
  if (isIPv4(host)) return { host, family: 4 }
  // Zones (`fe80::1%eth0`) are refused: the table's IP-group limits do not read them.
  if (!host.includes('%') && isIPv6(host)) {
    return { host: new SocketAddress({ address: host, family: 'ipv6' }).address, family: 6 }
  }
  return undefined
}

function isHostName(host: string): boolean {
  const labels = (host.endsWith('.') ? host.slice(0, -1) : host).split('.')
  if (host.length > 253 || !labels.every((l) => LABEL.test(l))) return false
  // An all-numeric last label is an IPv4 literal getaddrinfo would read its own way (`1.2.3` is 1.2.0.3).
  return !/^\d+$/.test(labels[labels.length - 1]!)
}

/**
 * Reads a peer address as `bootstrap()` and `ping()` read it on an IP transport: `1.2.3.4:5`, `[v6]:5`
 * (canonical on return) or `host.name:5`. A malformed one throws a TypeError naming `name` (e.g.
 * `addresses[0]`), so configuration can be checked the same way before a node starts.
 */
export function parsePeerAddress(address: unknown, name = 'address'): PeerAddress {
  if (typeof address !== 'string') throw new TypeError(`'${name}' must be a string`)
  let host: string
  let portText: string
  if (address.startsWith('[')) {
    const end = address.indexOf(']')
    if (end < 0) bad(name, address, 'unclosed [')
    if (address[end + 1] !== ':') bad(name, address, 'no port after ]')
    host = address.slice(1, end)
    portText = address.slice(end + 2)
    if (canonicalIp(host)?.family !== 6) bad(name, address, 'not an IPv6 address inside [ ]')
  } else {
    const colon = address.lastIndexOf(':')
    if (colon < 0) bad(name, address, address === '' ? 'empty' : 'no port')
    host = address.slice(0, colon)
    portText = address.slice(colon + 1)
    if (host.includes(':')) bad(name, address, 'IPv6 addresses need brackets: [::1]:6091')
    if (host === '') bad(name, address, 'no host')
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65_535) {
    bad(name, address, 'port must be 1-65535')
  }
  const port = Number(portText)
  const ip = canonicalIp(host)
  if (ip !== undefined) return { kind: 'ip', address: formatAddress(ip.host, port), family: ip.family }
  if (/^[\d.]+$/.test(host) && host.split('.').length === 4) {
    bad(name, address, 'not an IPv4 address (octets 0-255, no leading zeros) nor a host name')
  }
  if (!isHostName(host)) bad(name, address, 'not an IP address nor a valid host name')
  return { kind: 'name', host, port }
}

async function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  throwIfAborted(signal)
  let onAbort = (): void => {}
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new KademliaError('X_KAD_ABORTED', 'operation aborted'))
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

const familyText = (families: ReadonlySet<IpFamily>): string =>
  [...families].map((f) => `IPv${f}`).join(' or ')

/**
 * The transport addresses a target stands for: the literal itself, or what its name resolves to, limited
 * to the families the transport can send to. Throws `X_KAD_UNRESOLVED` when that leaves none.
 */
export async function resolvePeerAddress(
  target: PeerAddress,
  families: ReadonlySet<IpFamily>,
  resolve: ResolveFn,
  signal?: AbortSignal,
): Promise<string[]> {
  if (target.kind === 'ip') {
    if (families.has(target.family)) return [target.address]
    throw new KademliaError(
      'X_KAD_UNRESOLVED',
      `${target.address} is IPv${target.family}; the transport sends ${familyText(families)} only`,
    )
  }
  const shown = formatAddress(target.host, target.port)
  let found: readonly unknown[]
  try {
    found = await raceSignal(
      Promise.resolve().then(() => resolve(target.host, signal === undefined ? {} : { signal })),
      signal,
    )
  } catch (err) {
    throwIfAborted(signal)
    throw new KademliaError('X_KAD_UNRESOLVED', `${shown}: host name did not resolve`, { cause: err })
  }
  const out: string[] = []
  for (const raw of Array.isArray(found) ? found : []) {
    const ip = typeof raw === 'string' ? canonicalIp(raw) : undefined
    if (ip === undefined || !families.has(ip.family)) continue
    const address = formatAddress(ip.host, target.port)
    if (!out.includes(address)) out.push(address)
    if (out.length === MAX_ADDRESSES_PER_NAME) break
  }
  if (out.length === 0) {
    throw new KademliaError('X_KAD_UNRESOLVED', `${shown}: host name has no ${familyText(families)} address`)
  }
  return out
}
