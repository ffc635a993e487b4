import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import parseForwarded from 'forwarded-parse'
import proxyAddr from 'proxy-addr'

/**
 * Who is on the other end of a request, behind trusted reverse proxies. Without trusted proxies the client is
 * the socket's peer. With them, the chain of addresses the proxies appended (RFC 7239 `Forwarded: for=`, else
 * `X-Forwarded-For`) is walked from the socket inwards, as `proxy-addr` (Express, Fastify) does: the client is
 * the first address that is not a trusted proxy. Headers from an untrusted peer are ignored, so a client cannot
 * pick its own address.
 */
export interface ClientAddressResolver {
  /** The client IP of `req` (no port; IPv4-mapped IPv6 unwrapped). */
  (req: IncomingMessage): string
  /** Whether any proxy is trusted (the AI engine's loopback exemption then no longer applies to proxied clients). */
  readonly trustsProxies: boolean
  /** Whether `address` is a trusted proxy. */
  isTrustedProxy(address: string): boolean
}

function unwrap(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  return m === null ? address : m[1]!
}

/** The `for=` chain of `req` in the order proxies appended it (client first), or `undefined` when malformed. */
function forwardedChain(req: IncomingMessage): string[] | undefined {
  const header = req.headers.forwarded
  if (typeof header === 'string' && header.length > 0) {
    if (header.length > 4_096) return undefined
    try {
      const out: string[] = []
      for (const element of parseForwarded(header)) {
        const node = element.for
        if (node === undefined) return undefined
        // `for="[2001:db8::1]:4711"`, `for=192.0.2.1:80`, obfuscated or "unknown" identifiers.
        let host = node.startsWith('[') ? node.slice(1, node.indexOf(']')) : node.replace(/:\d+$/, '')
        host = unwrap(host)
        if (isIP(host) === 0) return undefined
        out.push(host)
      }
      return out
    } catch {
      return undefined
    }
  }
  const xff = req.headers['x-forwarded-for']
  const value = Array.isArray(xff) ? xff.join(',') : xff
  if (value === undefined || value.length === 0) return []
  if (value.length > 4_096) return undefined
  const out = value.split(',').map((s) => unwrap(s.trim()))
  return out.every((a) => isIP(a) !== 0) ? out : undefined
}

/**
 * Builds the resolver for `trustProxy`: addresses, CIDR ranges or `proxy-addr` keywords (`loopback`,
 * `linklocal`, `uniquelocal`). An empty list trusts nobody.
 */
export function createClientAddress(trustProxy: readonly string[]): ClientAddressResolver {
  const trust = trustProxy.length === 0 ? () => false : proxyAddr.compile([...trustProxy])
  const resolve = ((req: IncomingMessage): string => {
    const socketAddress = unwrap(req.socket?.remoteAddress ?? '')
    if (trustProxy.length === 0 || !trust(socketAddress, 0)) return socketAddress
    const chain = forwardedChain(req)
    // A trusted proxy that sent no usable chain: the proxy is all we know.
    if (chain === undefined || chain.length === 0) return socketAddress
    let client = socketAddress
    for (let i = chain.length - 1, hop = 1; i >= 0; i--, hop++) {
      client = chain[i]!
      if (!trust(client, hop)) return client
    }
    return client
  }) as ClientAddressResolver
  Object.defineProperty(resolve, 'trustsProxies', { value: trustProxy.length > 0 })
  resolve.isTrustedProxy = (address: string) => trustProxy.length > 0 && trust(unwrap(address), 0)
  return resolve
}

/** Validates a `trustProxy` entry the way `proxy-addr` will read it; `undefined` when it is fine. */
export function trustProxyProblem(entry: string): string | undefined {
  try {
    proxyAddr.compile(entry)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/**
 * The Origin check of browser WebSocket paths (`/p2p-signaling`, `/y-webrtc`, `/peerjs`, `/crdt/<doc>`,
 * `/hocuspocus`): a request without `Origin` (not a browser) passes; a browser's passes when its origin is in
 * `allowedOrigins`, or — by default, when the list is empty — when the origin's host is one of the node's own
 * hosts (its dashboard and demo on the REST port). `['*']` allows every origin. Without the check any web page a
 * user visits could read and write the documents of a node bound to localhost.
 */
export function createOriginCheck(
  allowedOrigins: readonly string[],
  ownHosts: readonly string[],
): (req: IncomingMessage) => boolean {
  if (allowedOrigins.includes('*')) return () => true
  const allowed = new Set(allowedOrigins.map((o) => o.toLowerCase()))
  const hosts = new Set(ownHosts.map((h) => h.toLowerCase()))
  return (req) => {
    const origin = req.headers.origin
    if (origin === undefined) return true
    if (allowed.size > 0) return allowed.has(origin.toLowerCase())
    try {
      const url = new URL(origin)
      return (url.protocol === 'http:' || url.protocol === 'https:') && hosts.has(url.hostname.toLowerCase())
    } catch {
      return false
    }
  }
}
