import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { CLOSE_CODES, createSignalingServer, type SignalingGuard, type SignalingServer } from '../src/index'
import { createMemoryConnector, createVirtualClock } from '../src/testing'
import { components, connected, ed25519Identity, RawClient, registered } from './helpers'

let server: SignalingServer | undefined
const clients: RawClient[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await server?.close()
  server = undefined
})

/** A recording guard; `refuse` decides frames, `refuseConnections` upgrades. */
function recordingGuard() {
  const events: string[] = []
  const closers: ((reason: string) => void)[] = []
  const state = { refuseConnections: false, refuse: (_type: string) => false as boolean, throws: false }
  const guard: SignalingGuard = {
    connect(address, endpoint, close) {
      if (state.throws) throw new Error('guard bug')
      events.push(`connect ${address} ${endpoint}`)
      if (state.refuseConnections) return false
      closers.push(close)
      return {
        frame(type, bytes, target) {
          if (state.throws) throw new Error('guard bug')
          events.push(`frame ${type} ${bytes > 0} ${target ?? '-'}`)
          return !state.refuse(type)
        },
        sent(bytes, from) {
          events.push(`sent ${bytes > 0}${from === undefined ? '' : ` ${from}`}`)
        },
        error(code) {
          events.push(`error ${code}`)
        },
        registered(peerId, credential) {
          events.push(`registered ${peerId ?? 'failed'}${credential === undefined ? '' : ` ${credential}`}`)
        },
        discovered(peers) {
          events.push(`discovered ${peers.join(',')}`)
        },
        topics(held) {
          events.push(`topics ${held}`)
        },
        published(topic, receivers) {
          events.push(`published ${topic} ${receivers}`)
        },
        closed() {
          events.push('closed')
        },
      }
    },
  }
  return { guard, events, closers, state }
}

async function start(guard: SignalingGuard): Promise<string> {
  server = createSignalingServer({ ...components, guard })
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${port}`
}

describe('guard (admission hook)', () => {
  it('sees every connection, frame, registration, error, sent frame and close', async () => {
    const { guard, events } = recordingGuard()
    const url = `${await start(guard)}/p2p-signaling`
    const a = await registered(url)
    clients.push(a)
    const b = await registered(url)
    clients.push(b)
    a.send({ type: 'offer', to: b.id, data: { sdp: 'x' } })
    expect(await b.next()).toMatchObject({ type: 'offer', from: a.id })
    a.send('not json')
    expect(await a.next()).toMatchObject({ code: 'BAD_MESSAGE' })
    const bad = await connected(url)
    clients.push(bad)
    await bad.challenge()
    const other = ed25519Identity()
    bad.send(bad.registerFrame(other, { nonce: Buffer.alloc(32, 7).toString('base64') }))
    expect(await bad.next()).toMatchObject({ code: 'UNAUTHENTICATED' })
    a.close()
    await expect.poll(() => events.filter((e) => e === 'closed').length).toBe(1)
    expect(events).toEqual(
      expect.arrayContaining([
        'connect 127.0.0.1 native',
        'frame register true -',
        `registered ${a.id}`,
        `registered ${b.id}`,
        `frame offer true ${b.id}`,
        'sent true',
        'frame invalid true -',
        'error BAD_MESSAGE',
        'registered failed',
        'error UNAUTHENTICATED',
      ]),
    )
  })

  it('drops the frames it refuses (answered RATE_LIMITED), refuses upgrades with 429, closes with 4030', async () => {
    const { guard, closers, state } = recordingGuard()
    const base = await start(guard)
    const url = `${base}/p2p-signaling`
    const a = await registered(url)
    clients.push(a)
    const b = await registered(url)
    clients.push(b)
    state.refuse = (type) => type === 'offer'
    a.send({ type: 'offer', to: b.id, data: {} })
    expect(await a.next()).toMatchObject({ type: 'error', code: 'RATE_LIMITED' })
    a.send({ type: 'answer', to: b.id, data: { ok: 1 } })
    // The refused offer never reached b; the answer did.
    expect(await b.next()).toMatchObject({ type: 'answer', data: { ok: 1 } })
    expect(server!.getStats().rateLimited).toBe(1)

    state.refuseConnections = true
    const refused = new RawClient(url)
    await expect(refused.open()).rejects.toThrow(/429/)
    const refusedY = new RawClient(`${base}/y-webrtc`)
    await expect(refusedY.open()).rejects.toThrow(/429/)

    closers[0]!('blocked: flood')
    expect(await a.closed).toBe(CLOSE_CODES.BLOCKED)
  })

  it('ends the session of an upgrade that never completes', async () => {
    const { guard, events } = recordingGuard()
    const base = await start(guard)
    const { port } = new URL(base)
    const socket = connect(Number(port), '127.0.0.1', () =>
      // No Sec-WebSocket-Key: ws answers 400 and destroys the socket without calling back.
      socket.write(
        'GET /p2p-signaling HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      ),
    )
    socket.on('error', () => {})
    socket.resume()
    await expect.poll(() => events).toEqual(['connect 127.0.0.1 native', 'closed'])
    socket.destroy()
  })

  it('closes with 4030 and the reason when the guard closes a connection while it opens (a PeerJS ID it blocks)', async () => {
    const { guard, events } = recordingGuard()
    // The guard blocks the PeerJS ID the moment it registers, during the WebSocket's open.
    const blocking: SignalingGuard = {
      connect(address, endpoint, close) {
        const session = guard.connect(address, endpoint, close)
        if (session === false || typeof session === 'string') return session
        return {
          ...session,
          registered(peerId, credential) {
            session.registered(peerId, credential)
            close('blocked: this ID was flagged')
          },
        }
      },
    }
    const base = await start(blocking)
    const c = new RawClient(`${base}/peerjs?key=peerjs&id=alice&token=t1`)
    clients.push(c)
    expect(await c.closed).toBe(CLOSE_CODES.BLOCKED)
    expect(c.closeReason).toBe('blocked: this ID was flagged')
    expect(events).toContainEqual(expect.stringMatching(/^registered alice [0-9a-f]{16}$/))
  })

  it('refuses an upgrade with a reason: the WebSocket opens and closes at once with 4030 and that reason', async () => {
    const refusing: SignalingGuard = { connect: () => 'blocked: flood; retry in 30 s' }
    const base = await start(refusing)
    for (const path of ['/p2p-signaling', '/y-webrtc', '/peerjs?key=peerjs&id=bob&token=t']) {
      const c = new RawClient(`${base}${path}`)
      clients.push(c)
      expect(await c.closed).toBe(CLOSE_CODES.BLOCKED)
      expect(c.closeReason).toBe('blocked: flood; retry in 30 s')
    }
    expect(server!.getStats()).toMatchObject({ connections: 0, refusedConnections: 3, addresses: 0 })
  })

  it('tells the guard who sent what it relays, what discover answered, topic counts, fan-out and expiries', async () => {
    const { guard, events } = recordingGuard()
    const base = await start(guard)
    const url = `${base}/p2p-signaling`
    const a = await registered(url)
    clients.push(a)
    const b = await registered(url)
    clients.push(b)
    b.send({ type: 'join', topic: 'room' })
    expect(await b.next()).toMatchObject({ type: 'joined' })
    a.send({ type: 'discover', topic: 'room' })
    expect(await a.next()).toMatchObject({ type: 'peers', peers: [b.id] })
    a.send({ type: 'offer', to: b.id, data: { sdp: 'x' } })
    expect(await b.next()).toMatchObject({ type: 'offer', from: a.id })
    b.send({ type: 'leave', topic: 'room' })
    expect(await b.next()).toMatchObject({ type: 'left' })
    const y1 = await connected(`${base}/y-webrtc`)
    clients.push(y1)
    const y2 = await connected(`${base}/y-webrtc`)
    clients.push(y2)
    y1.send({ type: 'subscribe', topics: ['t1', 't2'] })
    y2.send({ type: 'subscribe', topics: ['t1'] })
    y2.send({ type: 'ping' })
    expect(await y2.next()).toMatchObject({ type: 'pong' })
    y1.send({ type: 'publish', topic: 't1', data: 1 })
    expect(await y2.next()).toMatchObject({ type: 'publish', clients: 2 })
    const p = await connected(`${base}/peerjs?key=peerjs&id=carol&token=secret`)
    clients.push(p)
    expect(await p.next()).toMatchObject({ type: 'OPEN' })
    expect(events).toEqual(
      expect.arrayContaining([
        `discovered ${b.id}`,
        `sent true ${a.id}`,
        'topics 1',
        'topics 0',
        'topics 2',
        'published t1 2',
        // The PeerJS credential is a digest of the token, never the token.
        expect.stringMatching(/^registered carol [0-9a-f]{16}$/),
      ]),
    )
    expect(events.join('\n')).not.toContain('secret')
  })

  it('tells the guard when a signal it held expired undelivered', async () => {
    const clock = createVirtualClock()
    const { guard, events } = recordingGuard()
    server = createSignalingServer({ ...components, guard, clock })
    const connector = createMemoryConnector(server)
    const a = await connected(connector.connect('/p2p-signaling'))
    clients.push(a)
    expect(await a.register(ed25519Identity(), { time: clock.now() })).toMatchObject({ type: 'registered' })
    a.send({ type: 'offer', to: 'f'.repeat(40), data: {} })
    await expect.poll(() => events).toContain('frame offer true ' + 'f'.repeat(40))
    clock.advance(6_000)
    expect(await a.next()).toMatchObject({ type: 'expire', peer: 'f'.repeat(40) })
    expect(events).toContain('error EXPIRED')
    connector.close()
  })

  it('admits when the guard throws', async () => {
    const { guard, state } = recordingGuard()
    const url = `${await start(guard)}/p2p-signaling`
    const a = await registered(url)
    clients.push(a)
    state.throws = true
    const b = await registered(url) // connect throws: admitted without a session
    clients.push(b)
    a.send({ type: 'offer', to: b.id, data: { n: 1 } }) // frame throws: admitted
    expect(await b.next()).toMatchObject({ type: 'offer', data: { n: 1 } })
    expect(() => createSignalingServer({ ...components, guard: {} as SignalingGuard })).toThrow(TypeError)
  })
})
