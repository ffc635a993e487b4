import { afterEach, describe, expect, it } from 'vitest'
import { addressGroup, createSignalingServer, type SignalingServer } from '../src/index'
import { defaultEndpoints } from '../src/endpoints/index'
import { resolveOptions } from '../src/options'
import { createServerWithEndpoints } from '../src/server'
import {
  createMemoryConnector,
  createMemoryDirectory,
  createMemoryRelayNetwork,
  type MemoryConnector,
} from '../src/testing'
import { echoEndpoint } from './fixtures/echo-endpoint'
import { components, ed25519Identity, RawClient } from './helpers'

const servers: SignalingServer[] = []
const connectors: MemoryConnector[] = []
const clients: RawClient[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate()
  for (const c of connectors.splice(0)) c.close()
  await Promise.all(servers.splice(0).map((s) => s.close()))
})

function connector(server: SignalingServer): (path: string) => RawClient {
  servers.push(server)
  const memory = createMemoryConnector(server)
  connectors.push(memory)
  return (path) => {
    const c = new RawClient(memory.connect(path))
    clients.push(c)
    return c
  }
}

describe('endpoint table', () => {
  it('serves a fourth protocol added as one endpoint file and one table entry, beside the others', async () => {
    const server = createServerWithEndpoints(components, {}, [...defaultEndpoints(components), echoEndpoint])
    const connect = connector(server)
    const echo = connect('/echo')
    expect(await echo.next()).toEqual({ type: 'hello' })
    echo.send({ type: 'x', n: 1 })
    expect(await echo.next()).toEqual({ type: 'x', n: 1, echo: true, seen: 1 })
    echo.send('not json') // admission runs before any endpoint
    expect(await echo.next()).toEqual({ type: 'refused', code: 'BAD_MESSAGE' })
    const native = connect('/p2p-signaling')
    expect(await native.register(ed25519Identity())).toMatchObject({ type: 'registered' })
    expect(server.getStats()).toMatchObject({ connections: 2, peers: 1, rejected: 1 })
  })

  it('refuses two endpoints on one path', () => {
    expect(() =>
      createServerWithEndpoints(components, { paths: { yWebrtc: '/echo' } }, [
        ...defaultEndpoints(components),
        echoEndpoint,
      ]),
    ).toThrow(/two endpoints on path "\/echo"/)
  })
})

describe('federation waits for the sender to be announced', () => {
  it('forwards a signal sent right after registering only once the directory knows its sender', async () => {
    const directory = createMemoryDirectory()
    let release: (() => void) | undefined
    const slow = {
      ...directory,
      announce: (peerId: string, nodeId: string, registration: Parameters<typeof directory.announce>[2]) =>
        new Promise<void>((resolve) => {
          release = () => void Promise.resolve(directory.announce(peerId, nodeId, registration)).then(resolve)
        }),
    }
    const network = createMemoryRelayNetwork()
    const n0 = connector(
      createSignalingServer({ ...components, directory, relay: network.relay('n0') }, { nodeId: 'n0' }),
    )
    const n1 = connector(
      createSignalingServer({ ...components, directory: slow, relay: network.relay('n1') }, { nodeId: 'n1' }),
    )
    const b = n0('/p2p-signaling')
    const bId = ed25519Identity()
    expect(await b.register(bId)).toMatchObject({ type: 'registered' })
    const a = n1('/p2p-signaling')
    const aId = ed25519Identity()
    expect(await a.register(aId)).toMatchObject({ type: 'registered' })
    a.send({ type: 'offer', to: bId.id, data: { n: 1 } })
    a.send({ type: 'candidate', to: bId.id, data: { n: 2 } })
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(b.frames).toEqual([])
    release!()
    expect(await b.next()).toEqual({ from: aId.id, type: 'offer', to: bId.id, data: { n: 1 } })
    expect(await b.next()).toEqual({ from: aId.id, type: 'candidate', to: bId.id, data: { n: 2 } })
  })
})

describe('options and address groups', () => {
  it('groups IPv4 by address and IPv6 by /64', () => {
    expect(addressGroup('192.0.2.7')).toBe('192.0.2.7')
    expect(addressGroup('::ffff:192.0.2.7')).toBe('192.0.2.7')
    expect(addressGroup('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(addressGroup('2001:0db8:0001:0002::9')).toBe('2001:db8:1:2::/64')
    expect(addressGroup('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(addressGroup('::1')).toBe('0:0:0:0::/64')
    expect(addressGroup('')).toBe('')
  })

  it('names the bad option', () => {
    expect(() => resolveOptions({ maxConnectionsPerAddress: 0 })).toThrow(/"maxConnectionsPerAddress"/)
    expect(() => resolveOptions({ maxTopicsPerAddress: -1 })).toThrow(/"maxTopicsPerAddress"/)
    expect(() => resolveOptions({ closeTimeoutMs: Number.NaN })).toThrow(/"closeTimeoutMs"/)
    expect(() => resolveOptions({ publicHosts: [] })).toThrow(/"publicHosts"/)
    expect(() => resolveOptions({ publicHosts: ['https://x'] })).toThrow(/"publicHosts"/)
    expect(() => resolveOptions({ paths: { native: 'no-slash' } })).toThrow(/"paths.native"/)
    expect(resolveOptions({ publicHosts: ['Node.Example:3001'] }).publicHosts).toEqual(
      new Set(['node.example:3001']),
    )
  })
})
