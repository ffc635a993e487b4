import { isIP } from 'node:net'

/** An IP address in plain form (IPv4-mapped IPv6 as IPv4, lower case); `undefined` for anything else. */
export function normalizeIp(host: string): string | undefined {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)
  if (mapped) return mapped[1]
  return isIP(h) === 0 ? undefined : h
}
