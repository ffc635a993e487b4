import type { IncomingMessage } from 'node:http'
import { describe, expect, it } from 'vitest'
import { createClientAddress, createOriginCheck, trustProxyProblem } from '../src/client-address'

function req(remoteAddress: string, headers: Record<string, string> = {}): IncomingMessage {
  return { socket: { remoteAddress }, headers } as unknown as IncomingMessage
}

describe('client address behind trusted proxies', () => {
  it('ignores forwarding headers when no proxy is trusted', () => {
    const resolve = createClientAddress([])
    expect(resolve(req('203.0.113.9', { 'x-forwarded-for': '1.2.3.4' }))).toBe('203.0.113.9')
    expect(resolve(req('::ffff:203.0.113.9'))).toBe('203.0.113.9')
    expect(resolve.trustsProxies).toBe(false)
  })

  it('takes X-Forwarded-For from a trusted proxy, walking past trusted hops only', () => {
    const resolve = createClientAddress(['127.0.0.1', '10.0.0.0/8'])
    expect(resolve(req('127.0.0.1', { 'x-forwarded-for': '198.51.100.7' }))).toBe('198.51.100.7')
    // client, then an inner proxy: the spoofed first entry is not reached.
    expect(resolve(req('127.0.0.1', { 'x-forwarded-for': '6.6.6.6, 198.51.100.7, 10.1.2.3' }))).toBe(
      '198.51.100.7',
    )
    // an untrusted peer cannot choose its address.
    expect(resolve(req('203.0.113.9', { 'x-forwarded-for': '1.1.1.1' }))).toBe('203.0.113.9')
    // a trusted proxy that sent nothing usable: the proxy itself.
    expect(resolve(req('127.0.0.1'))).toBe('127.0.0.1')
    expect(resolve(req('127.0.0.1', { 'x-forwarded-for': 'not-an-ip' }))).toBe('127.0.0.1')
    expect(resolve.isTrustedProxy('10.9.9.9')).toBe(true)
  })

  it('prefers RFC 7239 Forwarded, with ports and bracketed IPv6', () => {
    const resolve = createClientAddress(['loopback'])
    expect(resolve(req('::1', { forwarded: 'for="[2001:db8::1]:4711";proto=https' }))).toBe('2001:db8::1')
    expect(
      resolve(
        req('127.0.0.1', {
          forwarded: 'for=192.0.2.60;proto=http, for=127.0.0.1',
          'x-forwarded-for': '9.9.9.9',
        }),
      ),
    ).toBe('192.0.2.60')
    expect(resolve(req('127.0.0.1', { forwarded: 'for=unknown' }))).toBe('127.0.0.1')
    expect(resolve(req('127.0.0.1', { forwarded: '"garbage' }))).toBe('127.0.0.1')
  })

  it('names a bad trustProxy entry', () => {
    expect(trustProxyProblem('10.0.0.0/8')).toBeUndefined()
    expect(trustProxyProblem('loopback')).toBeUndefined()
    expect(trustProxyProblem('10.0.0.0/99')).toMatch(/invalid/i)
    expect(trustProxyProblem('example.org')).toMatch(/invalid/i)
  })
})

describe('origin check of browser WebSocket paths', () => {
  const check = createOriginCheck([], ['localhost', '127.0.0.1', '[::1]', 'node.example'])

  it('lets non-browser clients (no Origin) and the node’s own pages through by default', () => {
    expect(check(req('1.2.3.4'))).toBe(true)
    expect(check(req('1.2.3.4', { origin: 'http://localhost:3000' }))).toBe(true)
    expect(check(req('1.2.3.4', { origin: 'https://node.example' }))).toBe(true)
    expect(check(req('1.2.3.4', { origin: 'http://[::1]:3000' }))).toBe(true)
  })

  it('refuses any other web page', () => {
    expect(check(req('1.2.3.4', { origin: 'https://evil.example' }))).toBe(false)
    expect(check(req('1.2.3.4', { origin: 'null' }))).toBe(false)
    expect(check(req('1.2.3.4', { origin: 'file://localhost' }))).toBe(false)
  })

  it('uses an explicit list, or allows all with *', () => {
    const listed = createOriginCheck(['https://app.example'], ['localhost'])
    expect(listed(req('1.2.3.4', { origin: 'https://app.example' }))).toBe(true)
    expect(listed(req('1.2.3.4', { origin: 'http://localhost:3000' }))).toBe(false)
    expect(createOriginCheck(['*'], [])(req('1.2.3.4', { origin: 'https://anything' }))).toBe(true)
  })
})
