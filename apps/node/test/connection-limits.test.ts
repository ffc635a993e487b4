import { createServer, connect, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { connectionBudgets, limitConnections, openFileLimit, RESERVED_FDS } from '../src/connection-limits'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const fn of cleanups.splice(0).reverse()) fn()
})

/** Sockets the server accepted (past the limiter), and a wake-up for each. */
let onAccepted: () => void = () => {}

async function serve(): Promise<{ server: Server; port: number; held: Socket[] }> {
  const held: Socket[] = []
  const server = createServer((s) => {
    held.push(s)
    onAccepted()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => {
    for (const s of held) s.destroy()
    server.close()
  })
  return { server, port: (server.address() as { port: number }).port, held }
}

/** Connects; resolves `open` once the server's handler got the socket, or the status line it was refused with. */
function attempt(port: number, localAddress = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    onAccepted = () => resolve('open')
    const socket = connect({ port, host: '127.0.0.1', localAddress })
    cleanups.push(() => socket.destroy())
    let data = ''
    socket.on('data', (d: Buffer) => (data += d.toString()))
    socket.on('error', () => resolve('error'))
    socket.on('close', () => resolve(data.split('\r\n')[0] ?? ''))
  })
}

describe('connection limits', () => {
  it('caps connections per address group and in total, and frees a slot when one closes', async () => {
    const { server, port, held } = await serve()
    const limiter = limitConnections(server, { maxConnections: 4, maxPerAddress: 2 })
    expect(await attempt(port, '127.0.0.1')).toBe('open')
    expect(await attempt(port, '127.0.0.1')).toBe('open')
    expect(await attempt(port, '127.0.0.1')).toBe('HTTP/1.1 429 Too Many Requests')
    expect(await attempt(port, '127.0.0.2')).toBe('open')
    expect(await attempt(port, '127.0.0.3')).toBe('open')
    expect(await attempt(port, '127.0.0.4')).toBe('HTTP/1.1 503 Service Unavailable')
    expect(limiter.open).toBe(4)
    expect(limiter.refused).toEqual({ total: 1, perAddress: 1 })
    await new Promise<void>((resolve) => held[0]!.destroy().once('close', () => resolve()))
    expect(limiter.open).toBe(3)
    expect(await attempt(port, '127.0.0.1')).toBe('open')
  })

  it('exempts trusted proxies from the per-address cap', async () => {
    const { server, port } = await serve()
    limitConnections(server, {
      maxConnections: 10,
      maxPerAddress: 1,
      isTrustedProxy: (a) => a === '127.0.0.1',
    })
    for (let i = 0; i < 3; i++) expect(await attempt(port, '127.0.0.1')).toBe('open')
    expect(await attempt(port, '127.0.0.9')).toBe('open')
    expect(await attempt(port, '127.0.0.9')).toBe('HTTP/1.1 429 Too Many Requests')
  })

  it('derives budgets from the file-descriptor limit', () => {
    expect(
      openFileLimit(
        () =>
          'Limit  Soft Limit  Hard Limit  Units\nMax open files            256                  256                  files\n',
      ),
    ).toBe(256)
    expect(
      openFileLimit(() => 'Max open files            unlimited            unlimited            files\n'),
    ).toBeUndefined()
    expect(
      openFileLimit(() => {
        throw new Error('no /proc')
      }),
    ).toBeUndefined()
    expect(openFileLimit()).toBeGreaterThan(0) // this machine's
    expect(connectionBudgets(256, 0)).toEqual({
      ws: Math.floor((256 - RESERVED_FDS) * 0.8),
      rest: Math.floor((256 - RESERVED_FDS) * 0.2),
    })
    expect(connectionBudgets(256, 100)).toMatchObject({ ws: 100 })
    expect(connectionBudgets(100, 0)).toEqual({ ws: 16, rest: 16 })
    expect(connectionBudgets(undefined, 0)).toEqual({ ws: 20_000, rest: 1_024 })
  })
})
