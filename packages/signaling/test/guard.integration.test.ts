import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { CLOSE_CODES, createSignalingServer, type SignalingGuard, type SignalingServer } from '../src/index'
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
        sent(bytes) {
          events.push(`sent ${bytes > 0}`)
        },
        error(code) {
          events.push(`error ${code}`)
        },
        registered(peerId) {
          events.push(`registered ${peerId ?? 'failed'}`)
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
