/**
 * Address strings: `1.2.3.4:5` for IPv4, `[2001:db8::1]:5` for IPv6, and any other printable string for
 * non-IP transports (the memory transport). The IP group (/24 for IPv4, /64 for IPv6) is what the routing
 * table limits, so that one host or subnet cannot fill a bucket (cf. BEP 42's motivation).
 */

/** An IP address read by {@link parseAddress}. */
export interface ParsedAddress {
  /** The IP literal, without brackets for IPv6. */
  host: string
  /** The UDP port, 1–65535. */
  port: number
  /** The IP version. */
  family: 4 | 6
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

/** Parses `host:port` / `[v6]:port`; undefined if it is not an IP literal with a valid port. */
export function parseAddress(address: string): ParsedAddress | undefined {
  let host: string
  let portText: string
  if (address.startsWith('[')) {
    const end = address.indexOf(']')
    if (end < 0 || address[end + 1] !== ':') return undefined
    host = address.slice(1, end)
    portText = address.slice(end + 2)
  } else {
    const colon = address.lastIndexOf(':')
    if (colon < 0) return undefined
    host = address.slice(0, colon)
    portText = address.slice(colon + 1)
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined
  const port = Number(portText)
  if (port < 1 || port > 65535) return undefined
  const v4 = IPV4.exec(host)
  if (v4 !== null) {
    for (let i = 1; i <= 4; i++) if (Number(v4[i]) > 255) return undefined
    return { host, port, family: 4 }
  }
  if (host.includes(':') && /^[0-9a-fA-F:.]+$/.test(host) && expandIpv6(host) !== undefined) {
    return { host, port, family: 6 }
  }
  return undefined
}

/** Formats a host and port as an address string. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

function expandIpv6(host: string): number[] | undefined {
  // Embedded IPv4 (::ffff:1.2.3.4) is mapped to two groups.
  let text = host
  const lastColon = text.lastIndexOf(':')
  const tail = text.slice(lastColon + 1)
  if (tail.includes('.')) {
    const m = IPV4.exec(tail)
    if (m === null) return undefined
    const b = [1, 2, 3, 4].map((i) => Number(m[i]))
    if (b.some((x) => x > 255)) return undefined
    text = `${text.slice(0, lastColon + 1)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const head = halves[0] === '' ? [] : halves[0]!.split(':')
  const rest = halves.length === 2 && halves[1] !== '' ? halves[1]!.split(':') : []
  const missing = 8 - head.length - rest.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest]
  const out: number[] = []
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined
    out.push(parseInt(g, 16))
  }
  return out
}

/**
 * The group an address belongs to for per-subnet limits: `v4:a.b.c` (/24), `v6:xxxx:xxxx:xxxx:xxxx` (/64),
 * or the whole address for non-IP transports (so every memory address is its own group).
 */
export function ipGroup(address: string): string {
  const fast = ipv4Group(address)
  if (fast !== undefined) return fast
  const parsed = parseAddress(address)
  if (parsed === undefined) return `x:${address}`
  if (parsed.family === 4) {
    const mapped = parsed.host
    return `v4:${mapped.slice(0, mapped.lastIndexOf('.'))}`
  }
  const groups = expandIpv6(parsed.host)!
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) is grouped as the IPv4 /24 it maps.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `v4:${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}`
  }
  return `v6:${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}`
}

/**
 * `v4:a.b.c` for a canonical-enough `a.b.c.d:port` (1–3 digit octets ≤ 255, port 1–65535 in 1–5 digits),
 * parsed without regular expressions or intermediate strings; undefined for anything else (the general
 * parser decides those). Same result as the general path for every input it accepts.
 */
function ipv4Group(address: string): string | undefined {
  const len = address.length
  let i = 0
  let groupEnd = 0
  for (let octet = 0; octet < 4; octet++) {
    let value = 0
    let digits = 0
    while (i < len) {
      const c = address.charCodeAt(i)
      if (c < 0x30 || c > 0x39) break
      value = value * 10 + (c - 0x30)
      digits++
      i++
    }
    if (digits === 0 || digits > 3 || value > 255) return undefined
    if (octet === 2) groupEnd = i
    const sep = address.charCodeAt(i)
    if (sep !== (octet < 3 ? 0x2e : 0x3a)) return undefined
    i++
  }
  let port = 0
  let digits = 0
  for (; i < len; i++) {
    const c = address.charCodeAt(i)
    if (c < 0x30 || c > 0x39) return undefined
    port = port * 10 + (c - 0x30)
    digits++
  }
  if (digits === 0 || digits > 5 || port < 1 || port > 65535) return undefined
  return `v4:${address.slice(0, groupEnd)}`
}
