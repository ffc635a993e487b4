// Regression tests for the second attack review (a hostile client or a hostile linked node against the `ws`-based
// server): each reproduces one way past a bound and checks the bound that now holds.
import { createServer as createHttpServer } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createSignalingServer } from '../src/index'
import {
  createMemoryDirectory,
  createMemoryRelayNetwork,
  createVirtualClock,
  type MemoryDirectory,
} from '../src/testing'
import { MAX_DISCOVERS_IN_FLIGHT } from '../src/endpoints/native'
import type { Registration } from '../src/types'
import { components, connected, ed25519Identity, type RawClient } from './helpers'
import { closeAll, register, serve, servers, settle, wss } from './memory-servers'
import { opened, text } from './wire'

afterEach(closeAll)

/** `data` nested deeper than `JSON.stringify` can recurse (a 10 kB frame; `JSON.parse` takes it). */
function deepData(depth = 10_000): string {
  return '['.repeat(depth) + ']'.repeat(depth)
}

function federation(directory: MemoryDirectory) {
  const network = createMemoryRelayNetwork()
  const n0 = serve({ nodeId: 'node-0' }, { directory, relay: network.relay('node-0') })
  const n1 = serve({ nodeId: 'node-1' }, { directory, relay: network.relay('node-1') })
  return { network, n0, n1 }
}

describe('signals nested too deeply to re-serialise', () => {
  it('a peer whose signal goes to the federation gets an answer; nothing throws', async () => {
    const directory = createMemoryDirectory()
    const { n0 } = federation(directory)
    const a = await register(n0.connect('/p2p-signaling'))
    await settle(() => directory.records.size === 1)
    a.send(`{"type":"offer","to":"nobody-here","data":${deepData()}}`)
    expect(await a.next()).toMatchObject({ type: 'error', code: 'BAD_MESSAGE', to: 'nobody-here' })
    a.send({ type: 'ping' })
    expect(await a.next()).toEqual({ type: 'pong' })
  })

  it('an envelope from the node that hosts the sender is dropped and counted, not thrown', async () => {
    const directory = createMemoryDirectory()
    const { network, n0, n1 } = federation(directory)
    const a = await register(n0.connect('/p2p-signaling'))
    const b = await register(n1.connect('/p2p-signaling'))
    await settle(() => directory.records.size === 2)
    const envelope = `{"t":"deliver","from":${JSON.stringify(a.id)},"to":${JSON.stringify(b.id)},"type":"offer","data":${deepData()}}`
    // First with the sender's route unknown (checked after a lookup), then with it cached.
    await network.inject('node-0', 'node-1', envelope)
    await settle(() => n1.server.getStats().relayRejected === 1)
    await network.inject('node-0', 'node-1', envelope)
    await settle(() => n1.server.getStats().relayRejected === 2)
    a.send({ type: 'offer', to: b.id, data: { sdp: 'real' } })
    expect(await b.next()).toEqual({ from: a.id, type: 'offer', to: b.id, data: { sdp: 'real' } })
  })
})

/** A directory whose lookups wait until `answer()` (a slow DHT). */
function slowDirectory(): MemoryDirectory & { answer(): void } {
  const directory = createMemoryDirectory()
  const waiters: (() => void)[] = []
  return Object.assign(directory, {
    answer() {
      for (const w of waiters.splice(0)) w()
    },
    lookup(peerId: string) {
      return new Promise<string | undefined>((resolve) =>
        waiters.push(() => resolve(directory.records.get(peerId))),
      )
    },
  })
}

describe('signals waiting for a directory lookup', () => {
  const limits = { maxHeldTotal: 10, maxHeldPerPeer: 4 }

  it('are bounded in total by maxHeldTotal signals, not maxHeldTotal targets × maxHeldPerPeer', async () => {
    const directory = slowDirectory()
    const network = createMemoryRelayNetwork()
    const n0 = serve({ nodeId: 'node-0', ...limits }, { directory, relay: network.relay('node-0') })
    const a = await register(n0.connect('/p2p-signaling'))
    await settle(() => directory.records.size === 1)
    for (let t = 0; t < 10; t++) {
      for (let i = 0; i < 4; i++) a.send({ type: 'candidate', to: `target-${t}`, data: { i } })
    }
    a.send({ type: 'ping' })
    let refused = 0
    for (let frame = await a.next(); frame.type !== 'pong'; frame = await a.next()) {
      expect(frame).toMatchObject({ type: 'error', code: 'PEER_NOT_FOUND' })
      refused++
    }
    expect(refused).toBe(30)
  })

  it('from other nodes are bounded in total by maxHeldTotal signals too', async () => {
    const directory = slowDirectory()
    const network = createMemoryRelayNetwork()
    const n1 = serve({ nodeId: 'node-1', ...limits }, { directory, relay: network.relay('node-1') })
    const b = await register(n1.connect('/p2p-signaling'))
    for (let f = 0; f < 10; f++) {
      for (let i = 0; i < 4; i++) {
        const envelope = { t: 'deliver', from: `sender-${f}`, to: b.id, type: 'candidate', data: { i } }
        await network.inject('node-2', 'node-1', JSON.stringify(envelope))
      }
    }
    expect(n1.server.getStats().relayRejected).toBe(30)
  })
})

describe('refused upgrades', () => {
  /** Sends an upgrade request from a client that never closes its side; resolves with the answer's status line. */
  async function refusedUpgrade(port: number, path: string, sockets: Socket[]): Promise<string> {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    sockets.push(socket)
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    )
    let response = ''
    socket.on('data', (chunk: Buffer) => (response += chunk.toString('latin1')))
    await new Promise((resolve) => socket.once('end', resolve)) // the server's FIN; ours is never sent
    return response.split('\r\n')[0]!
  }

  it('release the socket once answered, even when the client keeps its side open', async () => {
    const signaling = createSignalingServer(components, { maxConnectionsPerAddress: 1 })
    servers.push(signaling)
    const upgrades: Socket[] = []
    const http = createHttpServer()
    http.on('upgrade', (req, socket: Socket, head: Buffer) => {
      upgrades.push(socket)
      if (!signaling.handleUpgrade(req, socket, head)) socket.destroy()
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    const { port } = http.address() as AddressInfo
    const clients: Socket[] = []
    try {
      const first = await connected(`ws://127.0.0.1:${port}/y-webrtc`)
      wss.push(first.ws)
      expect(await refusedUpgrade(port, '/y-webrtc', clients)).toBe('HTTP/1.1 429 Too Many Requests')
      await settle(() => upgrades[1]!.destroyed)
      first.ws.terminate()
      await settle(() => signaling.getStats().connections === 0)
      const closing = signaling.close()
      expect(await refusedUpgrade(port, '/y-webrtc', clients)).toBe('HTTP/1.1 503 Service Unavailable')
      await settle(() => upgrades[2]!.destroyed)
      await closing
    } finally {
      for (const socket of [...clients, ...upgrades]) socket.destroy()
      await new Promise((resolve) => http.close(resolve))
    }
  })
})

describe('unsolicited WebSocket pongs', () => {
  it('take tokens like every other frame: a flood is rate limited and closed (4029)', async () => {
    const { server, connect } = serve({ rateLimitPerSec: 1, rateLimitBurst: 10, closeTimeoutMs: 100 })
    const c = connect('/p2p-signaling')
    await c.open()
    for (let i = 0; i < 500 && c.ws.readyState === c.ws.OPEN; i++) c.ws.pong()
    await settle(() => server.getStats().rateLimited > 0)
    expect(await c.closed).toBe(4029)
  })
})

describe('a registration that replaces an older connection', () => {
  it("leaves the old connection's topics in the directory too", async () => {
    const directory = createMemoryDirectory()
    const { connect } = serve({}, { directory })
    const identity = ed25519Identity()
    const old = await register(connect('/p2p-signaling'), identity)
    for (const topic of ['room-1', 'room-2']) {
      old.send({ type: 'join', topic })
      expect(await old.next()).toMatchObject({ type: 'joined', topic })
    }
    await settle(() => directory.topics.size === 2)
    const fresh = connect('/p2p-signaling')
    await fresh.open()
    expect(await fresh.register(identity)).toMatchObject({ type: 'registered', replaced: true })
    expect(await old.closed).toBe(4001)
    await settle(() => directory.topics.size === 0)
    const other = await register(connect('/p2p-signaling'))
    other.send({ type: 'discover', topic: 'room-1' })
    expect(await other.next()).toEqual({ type: 'peers', topic: 'room-1', peers: [] })
  })
})

describe('directory work a native peer can cause', () => {
  it('a join for a topic already joined is answered without another directory call', async () => {
    const directory = createMemoryDirectory()
    let joins = 0
    const join = directory.join.bind(directory)
    directory.join = (topic, peerId) => {
      joins++
      return join(topic, peerId)
    }
    const { connect } = serve({}, { directory })
    const a = await register(connect('/p2p-signaling'))
    for (let i = 0; i < 50; i++) a.send({ type: 'join', topic: 'room' })
    for (let i = 0; i < 50; i++) expect(await a.next()).toMatchObject({ type: 'joined', topic: 'room' })
    expect(joins).toBe(1)
  })

  it('discover requests waiting for the directory are bounded per connection', async () => {
    const directory = createMemoryDirectory()
    const waiting: (() => void)[] = []
    directory.findTopic = () => new Promise((resolve) => waiting.push(() => resolve([])))
    const { connect } = serve({}, { directory })
    const a = await register(connect('/p2p-signaling'))
    for (let rid = 0; rid < 50; rid++) a.send({ type: 'discover', topic: `t-${rid}`, rid })
    a.send({ type: 'ping' })
    let refused = 0
    for (let frame = await a.next(); frame.type !== 'pong'; frame = await a.next()) {
      expect(frame).toMatchObject({
        type: 'error',
        code: 'RATE_LIMITED',
        rid: MAX_DISCOVERS_IN_FLIGHT + refused,
      })
      refused++
    }
    expect(refused).toBe(50 - MAX_DISCOVERS_IN_FLIGHT)
    expect(waiting).toHaveLength(MAX_DISCOVERS_IN_FLIGHT)
    for (const answer of waiting.splice(0)) answer()
    for (let rid = 0; rid < MAX_DISCOVERS_IN_FLIGHT; rid++) {
      expect(await a.next()).toEqual({ type: 'peers', topic: `t-${rid}`, peers: [], rid })
    }
    a.send({ type: 'discover', topic: 'again', rid: 'r' })
    expect(waiting).toHaveLength(0)
    await settle(() => waiting.length === 1)
  })
})

describe('one address or one node filling the tables of waiting signals', () => {
  const limits = { maxHeldTotal: 64, maxHeldPerAddress: 40 }

  /** Sends `frames`, then a ping; resolves with the errors answered before the pong. */
  async function errorsFor(c: RawClient, frames: unknown[]): Promise<Record<string, unknown>[]> {
    for (const f of frames) c.send(f)
    c.send({ type: 'ping' })
    const errors = []
    for (let frame = await c.next(); frame.type !== 'pong'; frame = await c.next()) errors.push(frame)
    return errors
  }

  const offers = (targets: string[], each: number) =>
    targets.flatMap((to) => Array.from({ length: each }, (_, i) => ({ type: 'candidate', to, data: { i } })))

  it('holds for offline peers: a share per address, kept across reconnects', async () => {
    const { server, connect } = serve(limits)
    const attacker = await register(connect('/p2p-signaling', { address: '10.0.0.1' }))
    const errors = await errorsFor(attacker, offers(['offline-1', 'offline-2'], 32))
    expect(errors).toHaveLength(24)
    expect(errors.every((e) => e.code === 'PEER_NOT_FOUND')).toBe(true)
    attacker.ws.close()
    await attacker.closed
    const again = await register(connect('/p2p-signaling', { address: '10.0.0.1' }))
    expect(await errorsFor(again, offers(['offline-3'], 1))).toMatchObject([{ code: 'PEER_NOT_FOUND' }])
    const user = await register(connect('/p2p-signaling', { address: '10.0.0.2' }))
    expect(await errorsFor(user, offers(['offline-4'], 1))).toEqual([])
    expect(server.getStats().held).toBe(41)
  })

  it('waits for directory lookups: a share per address', async () => {
    const directory = slowDirectory()
    const network = createMemoryRelayNetwork()
    const { connect } = serve({ nodeId: 'node-0', ...limits }, { directory, relay: network.relay('node-0') })
    const attacker = await register(connect('/p2p-signaling', { address: '10.0.0.1' }))
    const user = await register(connect('/p2p-signaling', { address: '10.0.0.2' }))
    await settle(() => directory.records.size === 2)
    const errors = await errorsFor(attacker, offers(['remote-1', 'remote-2'], 32))
    expect(errors).toHaveLength(24)
    expect(await errorsFor(user, offers(['remote-3'], 1))).toEqual([])
  })

  it('waits for origin checks: a share per linked node', async () => {
    const directory = slowDirectory()
    const network = createMemoryRelayNetwork()
    const n1 = serve({ nodeId: 'node-1', ...limits }, { directory, relay: network.relay('node-1') })
    const b = await register(n1.connect('/p2p-signaling'))
    const deliver = (from: string, i: number) =>
      JSON.stringify({ t: 'deliver', from, to: b.id, type: 'candidate', data: { i } })
    // A hostile node sends signals "from" 64 senders the directory takes its time to look up.
    for (let i = 0; i < 64; i++) await network.inject('node-2', 'node-1', deliver(`forged-${i}`, i))
    expect(n1.server.getStats().relayRejected).toBe(24)
    // An honest node's signal still gets its origin check.
    await directory.announce('honest-peer', 'node-0', {} as Registration)
    await network.inject('node-0', 'node-1', deliver('honest-peer', 99))
    expect(n1.server.getStats().relayRejected).toBe(24)
    directory.answer()
    expect(await b.next()).toEqual({ from: 'honest-peer', type: 'candidate', to: b.id, data: { i: 99 } })
  })
})

describe('a client that keeps flooding a connection the server is closing', () => {
  it('is no longer read once its bucket is empty', async () => {
    const clock = createVirtualClock()
    const signaling = createSignalingServer(
      { ...components, clock },
      { rateLimitPerSec: 1, rateLimitBurst: 10 },
    )
    servers.push(signaling)
    const upgrades: Socket[] = []
    const http = createHttpServer()
    http.on('upgrade', (req, socket: Socket, head: Buffer) => {
      upgrades.push(socket)
      if (!signaling.handleUpgrade(req, socket, head)) socket.destroy()
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    const { port } = http.address() as AddressInfo
    const sockets: Socket[] = []
    const flood = async (rounds: number): Promise<void> => {
      const pings = Buffer.concat(Array.from({ length: 100 }, () => text('{"type":"ping"}')))
      for (let i = 0; i < rounds; i++) {
        wire.send(pings)
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    const wire = await opened(sockets, port)
    wire.socket.setNoDelay(true) // else Nagle holds small writes back for a delayed ACK
    try {
      wire.send(Buffer.concat(Array.from({ length: 150 }, () => text('{"type":"ping"}'))))
      let close = await wire.frame()
      while (close.opcode !== 0x8) close = await wire.frame()
      expect(close.payload.readUInt16BE(0)).toBe(4029)
      // The client ignores the close frame and goes on. The server stops reading it (once a paused stream has
      // buffered its high-water mark): bytes read stay the same over rounds of flooding.
      const server = upgrades[0]!
      let unchanged = 0
      for (let round = 0, last = -1; round < 500 && unchanged < 10; round++) {
        await flood(1)
        for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
        unchanged = server.bytesRead === last ? unchanged + 1 : 0
        last = server.bytesRead
      }
      expect(unchanged).toBe(10)
    } finally {
      for (const socket of [...sockets, ...upgrades]) socket.destroy()
      await new Promise((resolve) => http.close(resolve))
    }
  })
})

describe('frames that cannot be re-serialised on the compatible endpoints', () => {
  it('are refused like other bad frames: no handler throws, nothing is logged as a server error', async () => {
    const errors: unknown[] = []
    const logger = {
      debug() {},
      info() {},
      warn() {},
      error: (obj: object) => void errors.push(obj),
      child: () => logger,
    }
    const { server, connect } = serve({}, { logger })
    const y = connect('/y-webrtc')
    await y.open()
    y.send({ type: 'subscribe', topics: ['room'] })
    y.send(`{"type":"publish","topic":"room","data":${deepData()}}`)
    const pj = connect('/peerjs?key=peerjs&id=alice&token=t&version=1.5.5')
    expect(await pj.next()).toEqual({ type: 'OPEN' })
    pj.send(`{"type":"OFFER","src":"alice","dst":"bob","payload":${deepData()}}`)
    await settle(() => server.getStats().rejected === 2)
    expect(errors).toEqual([])
    y.send({ type: 'publish', topic: 'room', data: 'ok' })
    expect(await y.next()).toEqual({ type: 'publish', topic: 'room', data: 'ok', clients: 1 })
  })
})
