import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createSignalingServer, type SignalingServer } from '../src/index'
import { createMemoryDirectory } from '../src/testing'
import { components, connected, registered, type RawClient } from './helpers'

// Only the server's clocks are faked; setTimeout/setImmediate stay real so sockets keep working.
const realTick = () => new Promise<void>((resolve) => setTimeout(resolve, 30))

let server: SignalingServer | undefined
const clients: RawClient[] = []

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
})

afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await server?.close()
  server = undefined
  vi.useRealTimers()
})

describe('liveness', () => {
  it('terminates a silent connection after the timeout, withdraws it, and keeps the live one', async () => {
    const directory = createMemoryDirectory()
    server = createSignalingServer(
      { ...components, directory },
      { pingIntervalMs: 30_000, livenessTimeoutMs: 65_000, nodeId: 'n' },
    )
    const { port } = await server.listen({ port: 0 })
    const url = `ws://127.0.0.1:${port}/p2p-signaling`
    const silent = await registered(url)
    const live = await registered(url)
    clients.push(silent, live)
    await realTick()
    expect(directory.records.get(silent.id)).toBe('n')
    silent.ws.pause() // stops reading: pings go unanswered, like a dead peer

    vi.advanceTimersByTime(30_000)
    await realTick() // the live client answers the ping with a pong
    vi.advanceTimersByTime(30_000)
    await realTick()
    expect(server.getStats().peers).toBe(2)
    vi.advanceTimersByTime(6_000) // silent for 66 s > 65 s
    expect(server.getStats()).toMatchObject({ peers: 1, connections: 1, timedOut: 1 })
    await realTick()
    expect(directory.records.has(silent.id)).toBe(false)
    expect(directory.records.get(live.id)).toBe('n')
    live.send({ type: 'ping' })
    expect(await live.next()).toEqual({ type: 'pong' })
  })

  it('closes a connection that never registers with 4004', async () => {
    server = createSignalingServer(components, { authTimeoutMs: 10_000 })
    const { port } = await server.listen({ port: 0 })
    const c = await connected(`ws://127.0.0.1:${port}/p2p-signaling`)
    clients.push(c)
    vi.advanceTimersByTime(11_000)
    expect(await c.closed).toBe(4004)
  })

  it('answers a held signal with expire once the hold time passes', async () => {
    server = createSignalingServer(components, { holdMs: 5_000 })
    const { port } = await server.listen({ port: 0 })
    const a = await registered(`ws://127.0.0.1:${port}/p2p-signaling`)
    clients.push(a)
    a.send({ type: 'offer', to: 'offline-peer', data: {} })
    a.send({ type: 'candidate', to: 'offline-peer', data: {} })
    await realTick()
    expect(server.getStats().held).toBe(2)
    vi.advanceTimersByTime(6_000)
    expect(await a.next()).toEqual({ type: 'expire', peer: 'offline-peer' })
    expect(server.getStats()).toMatchObject({ held: 0, expired: 1 })
  })
})
