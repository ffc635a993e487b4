import { describe, expect, it } from 'vitest'
import { parsePeerAddress, resolvePeerAddress } from '../src/resolve'

describe('parsePeerAddress (addresses given to bootstrap / ping on an IP transport)', () => {
  it('accepts IP literals and returns them in the canonical form a socket reports', () => {
    expect(parsePeerAddress('127.0.0.1:6091', 'a')).toEqual({
      kind: 'ip',
      address: '127.0.0.1:6091',
      family: 4,
    })
    expect(parsePeerAddress('[::1]:6091', 'a')).toEqual({ kind: 'ip', address: '[::1]:6091', family: 6 })
    // Spelled out, upper case: the answer comes from `[::1]`, so the request must go to that string.
    expect(parsePeerAddress('[0:0:0:0:0:0:0:1]:5', 'a')).toMatchObject({ address: '[::1]:5' })
    expect(parsePeerAddress('[2001:DB8:0:0:1:0:0:1]:5', 'a')).toMatchObject({
      address: '[2001:db8::1:0:0:1]:5',
    })
    expect(parsePeerAddress('[::ffff:10.0.0.1]:5', 'a')).toMatchObject({ address: '[::ffff:10.0.0.1]:5' })
  })

  it('reads host names with a port as names to resolve', () => {
    expect(parsePeerAddress('localhost:6091', 'a')).toEqual({ kind: 'name', host: 'localhost', port: 6091 })
    expect(parsePeerAddress('seed-1.example.org.:1', 'a')).toEqual({
      kind: 'name',
      host: 'seed-1.example.org.',
      port: 1,
    })
    expect(parsePeerAddress('dht_seed:65535', 'a')).toMatchObject({ kind: 'name', host: 'dht_seed' })
  })

  it.each([
    ['localhost', /port/],
    ['127.0.0.1', /port/],
    ['', /host:port/],
    [':6091', /host/],
    ['localhost:', /port/],
    ['localhost:0', /port/],
    ['localhost:65536', /port/],
    ['localhost:6091x', /port/],
    ['::1:6091', /brackets/],
    ['[::1]', /port/],
    ['[::1]6091', /port/],
    ['[::zz]:5', /IPv6/],
    ['[fe80::1%eth0]:5', /IPv6/],
    ['010.0.0.1:5', /leading zero|name/],
    ['1.2.3:5', /name/],
    ['256.1.1.1:5', /name/],
    ['a b:5', /name/],
    ['-a.example:5', /name/],
    [`${'a'.repeat(64)}.example:5`, /name/],
  ])('%j is a TypeError naming the argument', (address, reason) => {
    expect(() => parsePeerAddress(address, 'addresses[2]')).toThrow(TypeError)
    expect(() => parsePeerAddress(address, 'addresses[2]')).toThrow(/'addresses\[2\]'/)
    expect(() => parsePeerAddress(address, 'addresses[2]')).toThrow(reason)
  })

  it('rejects what is not a string', () => {
    expect(() => parsePeerAddress(6091, 'addresses[0]')).toThrow(TypeError)
  })
})

describe('resolvePeerAddress', () => {
  const families4 = new Set<4 | 6>([4])
  const both = new Set<4 | 6>([4, 6])

  it('keeps the addresses of families the transport can send to, canonical and de-duplicated', async () => {
    const resolve = (host: string) => {
      expect(host).toBe('seed.test')
      return Promise.resolve(['::1', '10.0.0.1', '0:0::1', '10.0.0.1', 'garbage', '10.0.0.2'])
    }
    const t = parsePeerAddress('seed.test:7', 'a')
    expect(await resolvePeerAddress(t, families4, resolve)).toEqual(['10.0.0.1:7', '10.0.0.2:7'])
    expect(await resolvePeerAddress(t, both, resolve)).toEqual(['[::1]:7', '10.0.0.1:7', '10.0.0.2:7'])
  })

  it('caps the addresses taken from one name', async () => {
    const many = Array.from({ length: 50 }, (_, i) => `10.0.1.${i}`)
    const out = await resolvePeerAddress(parsePeerAddress('big.test:7', 'a'), families4, () =>
      Promise.resolve(many),
    )
    expect(out.length).toBe(8)
  })

  it('a name that does not resolve, or only to another family, is X_KAD_UNRESOLVED with the cause', async () => {
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND nope.test'), { code: 'ENOTFOUND' })
    const t = parsePeerAddress('nope.test:7', 'a')
    const err = await resolvePeerAddress(t, families4, () => Promise.reject(notFound)).catch(
      (e: unknown) => e,
    )
    expect(err).toMatchObject({ code: 'X_KAD_UNRESOLVED', cause: notFound })
    expect(String(err)).toMatch(/nope\.test/)
    await expect(resolvePeerAddress(t, families4, () => Promise.resolve(['::1']))).rejects.toMatchObject({
      code: 'X_KAD_UNRESOLVED',
      message: expect.stringMatching(/IPv4/),
    })
    await expect(resolvePeerAddress(t, families4, () => Promise.resolve([]))).rejects.toMatchObject({
      code: 'X_KAD_UNRESOLVED',
    })
  })

  it('an IP literal of a family the transport cannot send to is X_KAD_UNRESOLVED', async () => {
    await expect(
      resolvePeerAddress(parsePeerAddress('[::1]:7', 'a'), families4, () => Promise.resolve([])),
    ).rejects.toMatchObject({ code: 'X_KAD_UNRESOLVED', message: expect.stringMatching(/IPv6/) })
  })

  it('stops waiting for a resolver when the signal fires', async () => {
    const controller = new AbortController()
    const p = resolvePeerAddress(
      parsePeerAddress('slow.test:7', 'a'),
      families4,
      () => new Promise(() => {}),
      controller.signal,
    )
    controller.abort()
    await expect(p).rejects.toMatchObject({ code: 'X_KAD_ABORTED' })
  })
})
