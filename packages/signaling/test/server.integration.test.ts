import { afterEach, describe, expect, it } from 'vitest'
import type { Socket } from 'node:net'
import { createSignalingServer, type SignalingInit, type SignalingServer } from '../src/index'
import { components, connected, ed25519Identity, registered, RawClient } from './helpers'

let server: SignalingServer | undefined
const clients: RawClient[] = []

async function start(init: SignalingInit = {}, comps = components): Promise<string> {
  server = createSignalingServer(comps, init)
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${port}/p2p-signaling`
}

async function client(url: string): Promise<RawClient> {
  const c = await connected(url)
  clients.push(c)
  return c
}

async function peer(url: string, identity = ed25519Identity()) {
  const c = await registered(url, identity)
  clients.push(c)
  return c
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await server?.close()
  server = undefined
})

describe('native protocol', () => {
  it('sends a fresh challenge on connect', async () => {
    const url = await start({ nodeId: 'n1' })
    const a = await client(url)
    const b = await client(url)
    const ca = await a.next()
    const cb = await b.next()
    expect(ca).toMatchObject({ type: 'challenge', v: 2, node: 'n1' })
    expect(Buffer.from(ca.nonce, 'base64')).toHaveLength(32)
    expect(ca.nonce).not.toBe(cb.nonce)
  })

  it('registers a peer that signs the challenge, and refuses a bad signature', async () => {
    const url = await start()
    const id = ed25519Identity()
    const good = await client(url)
    expect(await good.register(id)).toEqual({ type: 'registered', id: id.id, replaced: false })

    const bad = await client(url)
    await bad.challenge()
    const other = ed25519Identity()
    // Signs the wrong nonce: a replayed or foreign signature must not verify.
    bad.send(bad.registerFrame(other, { nonce: Buffer.alloc(32, 7).toString('base64') }, { rid: 7 }))
    expect(await bad.next()).toMatchObject({ type: 'error', code: 'UNAUTHENTICATED', rid: 7 })
    expect(server!.getStats()).toMatchObject({
      registrations: 1,
      authFailures: 1,
      peers: 1,
      connectedPeers: 1,
    })
  })

  it('closes a connection after too many failed registrations', async () => {
    const url = await start({ maxAuthFailures: 2 })
    const c = await client(url)
    await c.challenge()
    const id = ed25519Identity()
    const msg = c.registerFrame(id, {}, { signature: Buffer.from(new Uint8Array(64)).toString('base64') })
    c.send(msg)
    c.send(msg) // while the first is being verified
    expect((await c.next()).message).toMatch(/in progress/)
    expect((await c.next()).code).toBe('UNAUTHENTICATED')
    c.send(msg)
    expect((await c.next()).code).toBe('UNAUTHENTICATED')
    expect(await c.closed).toBe(4003)
  })

  it('answers INTERNAL when the injected peerIdFromPublicKey returns an invalid ID, and survives', async () => {
    const url = await start({}, { ...components, peerIdFromPublicKey: () => 'not a peer ID' })
    const c = await client(url)
    expect(await c.register(ed25519Identity())).toMatchObject({ type: 'error', code: 'INTERNAL' })
    expect(server!.getStats()).toMatchObject({ peers: 0, connections: 1 })
    c.send({ type: 'ping' })
    expect(await c.next()).toEqual({ type: 'pong' })
  })

  it('rejects malformed registration fields with BAD_MESSAGE', async () => {
    const url = await start()
    const c = await client(url)
    await c.challenge()
    c.send({ type: 'register', publicKey: 'not base64!', signature: 'AAAA', host: c.host, time: Date.now() })
    expect(await c.next()).toMatchObject({ type: 'error', code: 'BAD_MESSAGE' })
    const id = ed25519Identity()
    c.send(c.registerFrame(id, {}, { id: 'someone-else' }))
    expect(await c.next()).toMatchObject({ type: 'error', code: 'BAD_MESSAGE' })
    c.send(c.registerFrame(id, {}, { host: 'bad host/' }))
    expect(await c.next()).toMatchObject({ type: 'error', code: 'BAD_MESSAGE' })
    c.send(c.registerFrame(id, {}, { time: 'yesterday' }))
    expect(await c.next()).toMatchObject({ type: 'error', code: 'BAD_MESSAGE' })
  })

  it('relays offer, answer and candidate with the sender set by the server', async () => {
    const url = await start()
    const a = await peer(url)
    const b = await peer(url)
    for (const type of ['offer', 'answer', 'candidate'] as const) {
      const data =
        type === 'candidate'
          ? { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host' }
          : { type, sdp: 'v=0' }
      a.send({ type, to: b.id, data })
      expect(await b.next()).toEqual({ type, from: a.id, to: b.id, data })
    }
    expect(server!.getStats().relayed).toBe(3)
  })

  it('refuses a frame that tries to set its own sender', async () => {
    const url = await start()
    const a = await peer(url)
    const b = await peer(url)
    a.send('{"type":"offer","to":"' + b.id + '","from":"' + b.id + '","data":{}}')
    expect(await a.next()).toMatchObject({ type: 'error', code: 'BAD_MESSAGE', to: b.id })
    // duplicate keys: JSON.parse keeps the last one, which must still be refused
    a.send('{"type":"offer","from":"x","to":"' + b.id + '","from":"y","data":{}}')
    expect(await a.next()).toMatchObject({ code: 'BAD_MESSAGE' })
    a.send({ type: 'offer', to: b.id, data: { sdp: 'ok' } })
    expect(await b.next()).toMatchObject({ from: a.id, data: { sdp: 'ok' } })
  })

  it('refuses an escaped "from" key and keeps the relayed frame valid JSON with leading whitespace', async () => {
    const url = await start()
    const a = await peer(url)
    const b = await peer(url)
    a.send('{"type":"offer","to":"' + b.id + '","\\u0066rom":"' + b.id + '","data":{}}')
    expect(await a.next()).toMatchObject({ type: 'error', code: 'BAD_MESSAGE' })
    a.send(' \n {  "type":"offer","to":"' + b.id + '","data":{"sdp":"ws"}}')
    expect(await b.next()).toEqual({ from: a.id, type: 'offer', to: b.id, data: { sdp: 'ws' } })
  })

  it('relays ASCII and non-ASCII frames intact across the 7-bit, 16-bit and 64-bit length encodings', async () => {
    const url = await start({ maxFrameBytes: 100_000 })
    const a = await peer(url)
    const b = await peer(url)
    const base =
      JSON.stringify({ type: 'candidate', to: b.id, data: { c: '' } }).length + '"from":"",'.length + 40
    for (const size of [20, 125, 126, 127, 65_535, 65_536, 70_000]) {
      for (const fill of ['a', 'é', '😀']) {
        const c = fill.repeat(Math.max(1, Math.floor((size - base) / Buffer.byteLength(fill))))
        a.send({ type: 'candidate', to: b.id, data: { c } })
        expect(await b.next()).toEqual({ from: a.id, type: 'candidate', to: b.id, data: { c } })
      }
    }
  })

  it('delivers a burst sent in one TCP write intact and in order (frames for one socket leave together)', async () => {
    const url = await start({ rateLimitBurst: 1_000, rateLimitPerSec: 1_000 })
    const a = await peer(url)
    const b = await peer(url)
    const raw = (a.ws as unknown as { _socket: Socket })._socket
    raw.cork()
    for (let n = 0; n < 300; n++) a.send({ type: 'candidate', to: b.id, data: { n } })
    raw.uncork()
    for (let n = 0; n < 300; n++) expect(await b.next()).toMatchObject({ from: a.id, data: { n } })
    expect(server!.getStats().relayed).toBe(300)
  })

  it('answers UNAUTHENTICATED to an unregistered peer for every peer message', async () => {
    const url = await start()
    const c = await client(url)
    await c.next()
    for (const msg of [
      { type: 'offer', to: 'x', data: {} },
      { type: 'join', topic: 't' },
      { type: 'leave', topic: 't' },
      { type: 'discover', topic: 't' },
    ]) {
      c.send(msg)
      expect(await c.next()).toMatchObject({ type: 'error', code: 'UNAUTHENTICATED' })
    }
    c.send({ type: 'ping', rid: 'r1' })
    expect(await c.next()).toEqual({ type: 'pong', rid: 'r1' })
  })

  it('answers bad frames with stable codes and keeps the connection', async () => {
    const url = await start({ maxFrameBytes: 1024 })
    const a = await peer(url)
    const cases: [string | Buffer, string][] = [
      ['{not json', 'BAD_MESSAGE'],
      ['[1,2,3]', 'BAD_MESSAGE'],
      ['"str"', 'BAD_MESSAGE'],
      ['null', 'BAD_MESSAGE'],
      ['{"type":5}', 'BAD_MESSAGE'],
      ['{"type":"teleport"}', 'UNKNOWN_TYPE'],
      ['{"type":"ping","v":1}', 'UNSUPPORTED_VERSION'],
      ['{"type":"offer","to":5,"data":{}}', 'BAD_MESSAGE'],
      ['{"type":"offer","to":"abc","data":"str"}', 'BAD_MESSAGE'],
      ['{"type":"offer","to":"abc"}', 'BAD_MESSAGE'],
      ['{"type":"join","topic":""}', 'BAD_MESSAGE'],
      ['{"type":"join","topic":7}', 'BAD_MESSAGE'],
      ['{"type":"discover"}', 'BAD_MESSAGE'],
      [JSON.stringify({ type: 'ping', pad: 'x'.repeat(2000) }), 'TOO_LARGE'],
      ['{"type":"register"}', 'BAD_MESSAGE'],
    ]
    for (const [frame, code] of cases) {
      a.send(frame)
      expect(await a.next(), String(frame).slice(0, 40)).toMatchObject({ type: 'error', code })
    }
    a.ws.send(Buffer.from([1, 2, 3]), { binary: true })
    expect(await a.next()).toMatchObject({ code: 'BAD_MESSAGE' })
    a.send({ type: 'ping' })
    expect(await a.next()).toEqual({ type: 'pong' })
    expect(server!.getStats().rejected).toBe(cases.length + 1)
  })

  it('closes with 1009 on a frame beyond the hard limit (4x maxFrameBytes)', async () => {
    const url = await start({ maxFrameBytes: 1024 })
    const a = await client(url)
    a.send('x'.repeat(5000))
    expect(await a.closed).toBe(1009)
  })

  it('rate limits per connection with RATE_LIMITED, then cuts off abusers', async () => {
    const url = await start({ rateLimitPerSec: 1, rateLimitBurst: 5 })
    const a = await client(url)
    await a.next() // challenge
    for (let i = 0; i < 6; i++) a.send({ type: 'ping', rid: i })
    for (let i = 0; i < 5; i++) expect(await a.next()).toEqual({ type: 'pong', rid: i })
    expect(await a.next()).toMatchObject({ type: 'error', code: 'RATE_LIMITED' })
    for (let i = 0; i < 60; i++) a.send({ type: 'ping' })
    expect(await a.closed).toBe(4029)
    expect(server!.getStats().rateLimited).toBeGreaterThan(50)
  })

  it('holds a signal for a peer that registers later, in order', async () => {
    const url = await start()
    const a = await peer(url)
    const idB = ed25519Identity()
    a.send({ type: 'offer', to: idB.id, data: { n: 1 } })
    a.send({ type: 'candidate', to: idB.id, data: { n: 2 } })
    await expect.poll(() => server!.getStats().held).toBe(2)
    const b = await peer(url, idB)
    expect(await b.next()).toMatchObject({ type: 'offer', from: a.id, data: { n: 1 } })
    expect(await b.next()).toMatchObject({ type: 'candidate', from: a.id, data: { n: 2 } })
    expect(server!.getStats().held).toBe(0)
  })

  it('answers PEER_NOT_FOUND when the hold queue is full', async () => {
    const url = await start({ maxHeldPerPeer: 1 })
    const a = await peer(url)
    a.send({ type: 'offer', to: 'nobody', data: {} })
    a.send({ type: 'offer', to: 'nobody', data: {} })
    expect(await a.next()).toMatchObject({ type: 'error', code: 'PEER_NOT_FOUND', to: 'nobody' })
  })

  it('joins, discovers and leaves topics, with TOPIC_LIMIT', async () => {
    const url = await start({ maxTopicsPerConnection: 2 })
    const a = await peer(url)
    const b = await peer(url)
    a.send({ type: 'join', topic: 'room', rid: 1 })
    expect(await a.next()).toEqual({ type: 'joined', topic: 'room', rid: 1 })
    b.send({ type: 'join', topic: 'room' })
    expect(await b.next()).toEqual({ type: 'joined', topic: 'room' })
    b.send({ type: 'discover', topic: 'room', rid: 'd' })
    expect(await b.next()).toEqual({ type: 'peers', topic: 'room', peers: [a.id], rid: 'd' })
    expect(server!.getStats().topics).toBe(1)
    a.send({ type: 'join', topic: 't2' })
    await a.next()
    a.send({ type: 'join', topic: 't3' })
    expect(await a.next()).toMatchObject({ type: 'error', code: 'TOPIC_LIMIT' })
    a.send({ type: 'leave', topic: 'room' })
    expect(await a.next()).toEqual({ type: 'left', topic: 'room' })
    b.send({ type: 'discover', topic: 'room' })
    expect(await b.next()).toEqual({ type: 'peers', topic: 'room', peers: [] })
  })

  it('refuses upgrades beyond maxConnections and unknown paths', async () => {
    const url = await start({ maxConnections: 1 })
    await client(url)
    const second = new RawClient(url)
    await expect(second.open()).rejects.toThrow(/503/)
    const wrong = new RawClient(url.replace('/p2p-signaling', '/nope'))
    await expect(wrong.open()).rejects.toThrow(/404/)
  })
})

describe('duplicate IDs', () => {
  it('replaces the old connection when the new one proves the key', async () => {
    const url = await start()
    const id = ed25519Identity()
    const first = await peer(url, id)
    const second = await client(url)
    expect(await second.register(id)).toEqual({ type: 'registered', id: id.id, replaced: true })
    expect(await first.closed).toBe(4001)
    const other = await peer(url)
    other.send({ type: 'offer', to: id.id, data: { hi: 1 } })
    expect(await second.next()).toMatchObject({ from: other.id, data: { hi: 1 } })
    expect(server!.getStats()).toMatchObject({ peers: 2, connectedPeers: 2, connections: 2 })
    const listed = server!.listPeers()
    expect(listed.map((p) => p.id).sort()).toEqual([id.id, other.id].sort())
    for (const p of listed) {
      expect(p).toMatchObject({ protocol: 'native', state: 'open' })
      expect(p.address).toBe('127.0.0.1')
      expect(p.since).toBeGreaterThan(0)
    }
    expect(server!.listPeers({ limit: 1 })).toHaveLength(1)
    expect(() => server!.listPeers({ limit: -1 })).toThrow(RangeError)
  })

  it('refuses with ID_TAKEN when the proof for a registered ID fails', async () => {
    const url = await start()
    const id = ed25519Identity()
    const first = await peer(url, id)
    const intruder = await client(url)
    await intruder.challenge()
    intruder.send(
      intruder.registerFrame(id, {}, { signature: Buffer.from(new Uint8Array(64)).toString('base64') }),
    )
    expect(await intruder.next()).toMatchObject({ type: 'error', code: 'ID_TAKEN' })
    first.send({ type: 'ping' })
    expect(await first.next()).toEqual({ type: 'pong' })
  })
})
