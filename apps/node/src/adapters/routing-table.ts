import { isIP } from 'node:net'
import type { KademliaNode } from '@x/kademlia'

/** How long the set of routing-table hosts is reused between admissions. */
const HOSTS_TTL_MS = 1_000

/** An IP address in plain form (IPv4-mapped IPv6 as IPv4, lower case); `undefined` for anything else. */
function normalizeIp(host: string): string | undefined {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)
  if (mapped) return mapped[1]
  return isIP(h) === 0 ? undefined : h
}

/** The host of a routing-table address (`1.2.3.4:5`, `[v6]:5`), IPv4-mapped IPv6 as IPv4. */
export function tableHost(address: string): string {
  const host = address.startsWith('[')
    ? address.slice(1, address.indexOf(']'))
    : address.slice(0, address.lastIndexOf(':'))
  return normalizeIp(host) ?? host.toLowerCase()
}

/**
 * The DHT routing table as the link layer's trust anchor: a node is in it only after it answered this node over
 * UDP from its address. `hostOf` feeds the dial policy (a node is dialed only on that host), `isPreferred` the link
 * slots and handshake reserve (table nodes and their addresses are never crowded out by fresh identities).
 */
export function routingTableTrust(dht: KademliaNode): {
  readonly hostOf: (nodeId: string) => string | undefined
  readonly isPreferred: (nodeId: string | undefined, remoteAddress: string) => boolean
} {
  let hosts = new Set<string>()
  let hostsAt = -Infinity
  const idBytes = (nodeId: string): Uint8Array | undefined =>
    /^[0-9a-f]{40}$/.test(nodeId) ? new Uint8Array(Buffer.from(nodeId, 'hex')) : undefined
  return {
    hostOf(nodeId) {
      const id = idBytes(nodeId)
      const entry = id && dht.table.get(id)
      return entry ? tableHost(entry.address) : undefined
    },
    isPreferred(nodeId, remoteAddress) {
      if (nodeId !== undefined) {
        const id = idBytes(nodeId)
        return id !== undefined && dht.table.get(id) !== undefined
      }
      const now = Date.now()
      if (now - hostsAt > HOSTS_TTL_MS) {
        hosts = new Set([...dht.table].map((e) => tableHost(e.address)))
        hostsAt = now
      }
      return hosts.has(normalizeIp(remoteAddress) ?? remoteAddress)
    },
  }
}
