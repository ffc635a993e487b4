// Liveness, auth timeouts, close timeouts and held-signal expiry on a virtual clock, over the in-memory WebSocket
// twin: real `ws` on both ends, no TCP, no real sleeps.
import { afterEach, describe, expect, it } from 'vitest'
import { createSignalingServer, type SignalingInit, type SignalingServer } from '../src/index'
import {
  createMemoryConnector,
  createMemoryDirectory,
  createVirtualClock,
  type MemoryConnector,
  type MemoryDirectory,
  type VirtualClock,
} from '../src/testing'
import { components, ed25519Identity, RawClient } from './helpers'

let server: SignalingServer | undefined
let connector: MemoryConnector | undefined
let clock: VirtualClock
const clients: RawClient[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate()
  const closing = server?.close()
  clock?.advance(2_000) // close()'s grace timer runs on the virtual clock too
  await closing
  connector?.close()
  server = undefined
})

/** Lets queued I/O (memory sockets, `ws`, promise continuations) run until `done()` holds; no time passes. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !done(); i++) await new Promise((resolve) => setImmediate(resolve))
  expect(done()).toBe(true)
}

function start(init: SignalingInit = {}, directory?: MemoryDirectory): void {
  clock = createVirtualClock()
  server = createSignalingServer({ ...components, clock, directory }, { nodeId: 'n', ...init })
  connector = createMemoryConnector(server)
}

async function open(): Promise<RawClient> {
  const c = new RawClient(connector!.connect('/p2p-signaling'))
  clients.push(c)
  await c.open()
  return c
}

async function registeredClient(): Promise<RawClient & { id: string }> {
  const c = await open()
  const identity = ed25519Identity()
  const reply = await c.register(identity, { time: clock.now() })
  expect(reply).toMatchObject({ type: 'registered', id: identity.id })
  return Object.assign(c, { id: identity.id })
}

describe('timers on a virtual clock', () => {
  it('terminates a silent connection after the liveness timeout, withdraws it, and keeps the live one', async () => {
    const directory = createMemoryDirectory()
    start({ pingIntervalMs: 30_000, livenessTimeoutMs: 65_000 }, directory)
    const silent = await registeredClient()
    const live = await registeredClient()
    await until(() => directory.records.size === 2)
    silent.ws.pause() // stops reading: pings go unanswered, like a dead peer

    clock.advance(30_000)
    await until(() => server!.getStats().connections === 2) // the live client answers the ping with a pong
    clock.advance(30_000)
    await new Promise((resolve) => setImmediate(resolve))
    expect(server!.getStats().peers).toBe(2)
    clock.advance(6_000) // silent for 66 s > 65 s
    expect(server!.getStats()).toMatchObject({ peers: 1, connections: 1, timedOut: 1 })
    await until(() => !directory.records.has(silent.id))
    expect(directory.records.get(live.id)).toBe('n')
    live.send({ type: 'ping' })
    expect(await live.next()).toEqual({ type: 'pong' })
  })

  it('closes a connection that never registers with 4004', async () => {
    start({ authTimeoutMs: 10_000 })
    const c = await open()
    clock.advance(11_000)
    expect(await c.closed).toBe(4004)
  })

  it('answers a held signal with expire once the hold time passes', async () => {
    start({ holdMs: 5_000 })
    const a = await registeredClient()
    a.send({ type: 'offer', to: 'offline-peer', data: {} })
    a.send({ type: 'candidate', to: 'offline-peer', data: {} })
    await until(() => server!.getStats().held === 2)
    clock.advance(6_000)
    expect(await a.next()).toEqual({ type: 'expire', peer: 'offline-peer' })
    expect(server!.getStats()).toMatchObject({ held: 0, expired: 1 })
  })

  it('schedules nothing before it serves, and leaves no timer behind after close()', async () => {
    start()
    expect(clock.pending).toBe(0)
    await open()
    expect(clock.pending).toBeGreaterThan(0)
    const closing = server!.close()
    clock.advance(2_000)
    await closing
    server = undefined
    expect(clock.pending).toBe(0)
  })
})
