// Regression tests for the attack review of the signaling server: each reproduces one finding against the
// server as it runs (raw TCP where the bytes matter, the in-memory twin elsewhere) and checks the bound that now
// holds.
import type { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createSignalingClient, type WebSocketConstructor } from '../src/client'
import { createSignalingServer, statementBytes } from '../src/index'
import { createMemoryDirectory, createMemoryRelayNetwork, createVirtualClock } from '../src/testing'
import { components, ed25519Identity, type TestIdentity } from './helpers'
import { closeAll, register, serve, servers, settle, wss } from './memory-servers'
import { frame, opened } from './wire'

const sockets: Socket[] = []

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  await closeAll()
})

describe('finding 1: empty continuation frames', () => {
  it('closes a message that arrives in too many fragments (1008), however small they are', async () => {
    const server = createSignalingServer(components)
    servers.push(server)
    const { port } = await server.listen({ port: 0 })
    const wire = await opened(sockets, port)
    const flood = [frame(0x1, '', { fin: false })]
    for (let i = 0; i < 5_000; i++) flood.push(frame(0x0, '', { fin: false }))
    wire.send(Buffer.concat(flood))
    expect((await wire.closeFrame()).code).toBe(1008)
    await settle(() => server.getStats().connections === 0)
  })
})

describe('finding 2: a client that never reads and sends pings', () => {
  it('is cut off as a slow consumer once its unread pongs pass maxBufferedBytes', async () => {
    const { server, connect } = serve({
      maxBufferedBytes: 64 * 1024,
      rateLimitPerSec: 1e6,
      rateLimitBurst: 1e6,
    })
    const c = connect('/p2p-signaling')
    await c.open()
    c.ws.pause() // never reads again
    const payload = Buffer.alloc(125, 1)
    for (let i = 0; i < 4_000 && c.ws.readyState === c.ws.OPEN; i++) c.ws.ping(payload)
    await settle(() => server.getStats().slowConsumers === 1)
    await settle(() => server.getStats().connections === 0)
  })

  it('drops pings beyond the token bucket: they are frames like any other', async () => {
    const { server, connect } = serve({ rateLimitPerSec: 1, rateLimitBurst: 10 })
    const c = connect('/p2p-signaling')
    await c.open()
    let pongs = 0
    c.ws.on('pong', () => pongs++)
    for (let i = 0; i < 50; i++) c.ws.ping()
    await settle(() => server.getStats().rateLimited >= 40)
    c.send({ type: 'ping' }) // flushes: every pong the server sent is before the answer to this
    expect((await c.next()).type).toBe('challenge')
    await c.next()
    expect(pongs).toBeLessThanOrEqual(10)
  })
})

describe('finding 3: a closing connection kept open with pings', () => {
  it('is destroyed once the close timeout passes on the server clock, pings or not', async () => {
    const clock = createVirtualClock()
    const server = createSignalingServer(
      { ...components, clock },
      { authTimeoutMs: 1_000, closeTimeoutMs: 5_000 },
    )
    servers.push(server)
    const { port } = await server.listen({ port: 0 })
    const wire = await opened(sockets, port)
    clock.advance(2_000) // not registered in time: the server sends 4004
    const close = await wire.frame()
    expect(close.opcode).toBe(0x8)
    expect(close.payload.readUInt16BE(0)).toBe(4004)
    // The client never answers the close and keeps the connection busy.
    for (let s = 0; s < 4 && !wire.ended; s++) {
      wire.send(frame(0x9, 'still here'))
      await new Promise((resolve) => setImmediate(resolve))
      clock.advance(1_000)
    }
    expect(wire.ended).toBe(false)
    wire.send(frame(0x9, 'still here'))
    clock.advance(2_000)
    await wire.closed()
    expect(server.getStats().connections).toBe(0)
  })
})

describe('finding 4: frames relayed by other nodes', () => {
  async function federation() {
    const directory = createMemoryDirectory()
    const network = createMemoryRelayNetwork()
    const n0 = serve({ nodeId: 'node-0' }, { directory, relay: network.relay('node-0') })
    const n1 = serve({ nodeId: 'node-1' }, { directory, relay: network.relay('node-1') })
    const a = await register(n0.connect('/p2p-signaling'))
    const b = await register(n1.connect('/p2p-signaling'))
    await settle(() => directory.records.size === 2)
    return { directory, network, n0, n1, a, b }
  }

  it('drops forged, malformed and non-signal envelopes, and counts them', async () => {
    const { network, n1, a, b } = await federation()
    const forged = [
      // A node that does not host a claims a's offer.
      ['node-2', { t: 'deliver', from: a.id, to: b.id, type: 'offer', data: { sdp: 'forged' } }],
      // The node that hosts a, with a frame that is not a signal (a fake server error).
      ['node-0', { t: 'deliver', from: a.id, to: b.id, type: 'error', data: { code: 'INTERNAL' } }],
      // The old envelope, whose frame text was written to the peer verbatim.
      ['node-0', { t: 'deliver', from: a.id, to: b.id, frame: '{"type":"offer","from":"x"}' }],
      ['node-0', { t: 'deliver', from: a.id, to: b.id, type: 'offer', data: 'not an object' }],
      ['node-0', { t: 'gone', to: b.id, peer: a.id }], // node-1 never forwarded anything to node-0
      ['node-0', { t: 'something-else' }],
    ] as const
    for (const [from, envelope] of forged) await network.inject(from, 'node-1', JSON.stringify(envelope))
    await network.inject('node-0', 'node-1', 'not json at all')
    await network.inject('node-0', 'node-1', `{"t":"deliver","pad":"${'x'.repeat(200_000)}"}`)
    await settle(() => n1.server.getStats().relayRejected >= forged.length + 2)
    expect(n1.server.getStats().relayRejected).toBe(forged.length + 2)
    // Nothing reached b: the next frame it sees is the real signal.
    a.send({ type: 'offer', to: b.id, data: { sdp: 'real' } })
    expect(await b.next()).toEqual({ from: a.id, type: 'offer', to: b.id, data: { sdp: 'real' } })
    b.send({ type: 'ping' })
    expect(await b.next()).toEqual({ type: 'pong' })
  })

  it('re-serialises a signal from the node that hosts its sender: only its fields reach the peer', async () => {
    const { network, n1, a, b } = await federation()
    const envelope = `{"t":"deliver","from":${JSON.stringify(a.id)},"to":${JSON.stringify(b.id)},"type":"answer","data":{"sdp":"ok"},"extra":1,"rid":7}`
    await network.inject('node-0', 'node-1', envelope)
    expect(await b.next()).toEqual({ from: a.id, type: 'answer', to: b.id, data: { sdp: 'ok' } })
    expect(n1.server.getStats().relayRejected).toBe(0)
  })
})

describe('finding 5: challenge relay', () => {
  it('refuses a statement that names another host, another node, a stale time or no version 2 fields', async () => {
    const clock = createVirtualClock()
    const { server, connect } = serve({ nodeId: 'real', publicHosts: ['r.test'] }, { clock })
    const victim = ed25519Identity()
    const attempt = async (statement: Record<string, unknown>, frameFields: Record<string, unknown> = {}) => {
      const c = connect('/p2p-signaling', { headers: { host: 'r.test' } })
      await c.open()
      await c.challenge()
      c.send(c.registerFrame(victim, { time: clock.now(), ...statement }, frameFields))
      return (await c.next()) as Record<string, unknown>
    }
    // The victim dialed evil.test; the malicious node relayed the real node's challenge to it.
    expect(await attempt({ host: 'evil.test' })).toMatchObject({ code: 'UNAUTHENTICATED' })
    // A challenge from another node, relayed here.
    expect(await attempt({ host: 'r.test', node: 'other-node' })).toMatchObject({ code: 'UNAUTHENTICATED' })
    expect(await attempt({ host: 'r.test', time: clock.now() - 10 * 60_000 })).toMatchObject({
      code: 'UNAUTHENTICATED',
    })
    expect(
      await attempt({ host: 'r.test' }, { host: undefined, time: undefined, v: undefined }),
    ).toMatchObject({
      code: 'UNSUPPORTED_VERSION',
    })
    expect(server.getStats()).toMatchObject({ peers: 0, registrations: 0 })
    expect(await attempt({ host: 'r.test:8443' })).toMatchObject({ type: 'registered', id: victim.id })
  })

  it('without publicHosts, accepts only the host of the request the statement answers', async () => {
    const { server, connect } = serve()
    const c = connect('/p2p-signaling', { headers: { host: 'node.test:3001' } })
    await c.open()
    await c.challenge()
    c.send(c.registerFrame(ed25519Identity(), { host: 'evil.test:3001' }))
    expect(await c.next()).toMatchObject({ code: 'UNAUTHENTICATED' })
    c.send(c.registerFrame(ed25519Identity(), { host: 'node.test:3001' }))
    expect(await c.next()).toMatchObject({ type: 'registered' })
    expect(server.getStats().authFailures).toBe(1)
  })

  it('the client signs the host it dialed and the node that challenged it; the server keeps the proof', async () => {
    const { server, connector } = serve({ nodeId: 'the-node', publicHosts: ['memory.test'] })
    const identity: TestIdentity = ed25519Identity()
    const MemoryWebSocket = function (url: string) {
      const ws = connector.connect(new URL(url).pathname)
      wss.push(ws)
      return ws
    } as unknown as WebSocketConstructor
    const client = createSignalingClient(
      { publicKey: identity.publicKey, sign: identity.sign, WebSocket: MemoryWebSocket },
      { url: 'ws://memory.test/p2p-signaling', reconnect: false },
    )
    expect(await client.connect()).toBe(identity.id)
    const registration = server.getRegistration(identity.id)!
    expect(registration).toMatchObject({ peerId: identity.id, node: 'the-node', host: 'memory.test' })
    expect(registration.statement).toMatch(
      /^x-signaling\/2\nnode:the-node\nhost:memory\.test\ntime:\d+\nnonce:/,
    )
    const { node, host, time } = registration
    const nonce = /nonce:(.*)$/.exec(registration.statement)![1]!
    expect(statementBytes({ node, host, time, nonce })).toEqual(
      new TextEncoder().encode(registration.statement),
    )
    const bytes = new TextEncoder().encode(registration.statement)
    expect(components.verify(registration.publicKey, bytes, registration.signature)).toBe(true)
    client.close()

    const pinned = createSignalingClient(
      { publicKey: identity.publicKey, sign: identity.sign, WebSocket: MemoryWebSocket },
      { url: 'ws://memory.test/p2p-signaling', reconnect: false, nodeId: 'another-node' },
    )
    await expect(pinned.connect()).rejects.toMatchObject({ code: 'X_SIG_CONNECT_FAILED' })
  })
})

describe('finding 6: one address filling the global tables', () => {
  it('caps topic memberships per address, so another address can still join', async () => {
    const { server, connect } = serve({ maxTopics: 100, maxTopicsPerAddress: 40 })
    for (let i = 0; i < 5; i++) {
      const y = connect('/y-webrtc', { address: '10.0.0.1' })
      await y.open()
      y.send({ type: 'subscribe', topics: Array.from({ length: 32 }, (_, t) => `room-${i}-${t}`) })
    }
    // Same /64: counted with the first.
    const v6a = connect('/y-webrtc', { address: '2001:db8:1:2::1' })
    const v6b = connect('/y-webrtc', { address: '2001:db8:1:2:ffff::9' })
    await v6a.open()
    await v6b.open()
    v6a.send({ type: 'subscribe', topics: Array.from({ length: 30 }, (_, t) => `six-a-${t}`) })
    v6b.send({ type: 'subscribe', topics: Array.from({ length: 30 }, (_, t) => `six-b-${t}`) })
    await settle(() => server.getStats().topics === 80)
    const peer = await register(connect('/p2p-signaling', { address: '10.0.0.2' }))
    peer.send({ type: 'join', topic: 'meeting' })
    expect(await peer.next()).toMatchObject({ type: 'joined', topic: 'meeting' })
    expect(server.getStats().topics).toBe(81)
  })

  it('caps connections per address (HTTP 429), IPv6 by /64', async () => {
    const { server, connector } = serve({ maxConnectionsPerAddress: 2 })
    const status = (address: string) =>
      new Promise<number>((resolve) => {
        const ws = connector.connect('/y-webrtc', { address })
        wss.push(ws)
        ws.on('open', () => resolve(101))
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
        ws.on('error', () => {})
      })
    expect(await status('192.0.2.1')).toBe(101)
    expect(await status('192.0.2.1')).toBe(101)
    expect(await status('192.0.2.1')).toBe(429)
    expect(await status('192.0.2.2')).toBe(101)
    expect(await status('2001:db8::1')).toBe(101)
    expect(await status('2001:db8:0:0:1::2')).toBe(101)
    expect(await status('2001:db8::3')).toBe(429)
    expect(await status('2001:db8:0:1::1')).toBe(101)
    expect(server.getStats()).toMatchObject({ connections: 6, refusedConnections: 2 })
  })
})

describe('finding 7: PeerJS IDs that change hands', () => {
  const pj = (id: string, token: string) => `/peerjs?key=peerjs&id=${id}&token=${token}&version=1.5.5`

  async function held() {
    const { server, connect } = serve()
    const owner = connect(pj('alice', 'owner-token'))
    expect(await owner.next()).toEqual({ type: 'OPEN' })
    owner.ws.close()
    await settle(() => server.getStats().peers === 0)
    const sender = connect(pj('bob', 'bob-token'))
    expect(await sender.next()).toEqual({ type: 'OPEN' })
    sender.send({ type: 'OFFER', dst: 'alice', payload: { sdp: 'for alice' } })
    await settle(() => server.getStats().held === 1)
    return { server, connect, sender }
  }

  it('expires signals held for an ID when someone else registers it', async () => {
    const { server, connect, sender } = await held()
    const taker = connect(pj('alice', 'another-token'))
    expect(await taker.next()).toEqual({ type: 'OPEN' })
    expect(await sender.next()).toEqual({ type: 'EXPIRE', src: 'alice', dst: 'bob' })
    taker.send({ type: 'HEARTBEAT' })
    sender.send({ type: 'OFFER', dst: 'alice', payload: { sdp: 'new' } })
    expect(await taker.next()).toMatchObject({ type: 'OFFER', src: 'bob', payload: { sdp: 'new' } })
    expect(server.getStats()).toMatchObject({ held: 0, expired: 1 })
  })

  it('hands them to the returning owner', async () => {
    const { connect } = await held()
    const back = connect(pj('alice', 'owner-token'))
    expect(await back.next()).toEqual({ type: 'OPEN' })
    expect(await back.next()).toMatchObject({ type: 'OFFER', src: 'bob', payload: { sdp: 'for alice' } })
  })

  it('refuses a connected ID to any other token, whatever its length', async () => {
    const { connect } = serve()
    const owner = connect(pj('carol', 'secret'))
    expect(await owner.next()).toEqual({ type: 'OPEN' })
    for (const token of ['secreT', 'secre', 'secret2', 'x']) {
      const thief = connect(pj('carol', token))
      expect(await thief.next()).toMatchObject({ type: 'ID-TAKEN' })
      expect(await thief.closed).toBe(1008)
    }
    owner.send({ type: 'HEARTBEAT' })
    const again = connect(pj('carol', 'secret'))
    expect(await again.next()).toEqual({ type: 'OPEN' })
    expect(await owner.closed).toBe(4001)
  })
})
