// The server's WebSocket endpoints (`ws`, with the limits the server sets) at the byte level, with a raw TCP
// client on 127.0.0.1: handshake (RFC 6455 §4.2), framing and fragmentation (§5), control frames, the closing
// handshake (§7) and every protocol failure with its close code.
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createSignalingServer, type SignalingServer } from '../src/index'
import { components, registered, type RawClient } from './helpers'
import { closePayload, frame, handshake as rawHandshake, opened as rawOpened, text, type Wire } from './wire'

let server: SignalingServer | undefined
const sockets: Socket[] = []
const clients: RawClient[] = []

const handshake = (...args: Parameters<typeof rawHandshake> extends [Socket[], ...infer R] ? R : never) =>
  rawHandshake(sockets, ...args)
const opened = (port: number): Promise<Wire> => rawOpened(sockets, port)

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  for (const c of clients.splice(0)) c.close()
  await server?.close()
  server = undefined
})

async function start(init: Parameters<typeof createSignalingServer>[1] = {}): Promise<number> {
  server = createSignalingServer(components, init)
  return (await server.listen({ port: 0 })).port
}

/** The server forgets closed connections once their TCP close reaches it, a moment after the client sees it. */
async function noConnections(): Promise<void> {
  const deadline = Date.now() + 2000
  while (server!.getStats().connections !== 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  expect(server!.getStats().connections).toBe(0)
}

describe('WebSocket handshake', () => {
  it('answers the RFC 6455 example key with its accept value and echoes the first subprotocol', async () => {
    const port = await start()
    const { wire, headers } = await handshake(port, '/p2p-signaling', {
      'Sec-WebSocket-Protocol': 'x-signaling, other',
      'Sec-WebSocket-Extensions': 'permessage-deflate', // declined: no extension header in the answer
    })
    const lines = headers.split('\r\n')
    expect(lines[0]).toBe('HTTP/1.1 101 Switching Protocols')
    expect(lines).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=') // §1.3
    expect(lines).toContain('Sec-WebSocket-Protocol: x-signaling')
    expect(headers.toLowerCase()).not.toContain('sec-websocket-extensions')
    expect((await wire.json()).type).toBe('challenge')
  })

  it.each([
    ['a missing key', { 'Sec-WebSocket-Key': '' }, 'GET', 'HTTP/1.1 400 Bad Request'],
    ['a malformed key', { 'Sec-WebSocket-Key': 'short' }, 'GET', 'HTTP/1.1 400 Bad Request'],
    // `ws` also speaks version 8 (hybi-08 frames are version 13's); anything else is refused.
    ['version 7', { 'Sec-WebSocket-Version': '7' }, 'GET', 'HTTP/1.1 400 Bad Request'],
    ['a POST', {}, 'POST', 'HTTP/1.1 405 Method Not Allowed'],
  ])('refuses %s with an HTTP error and closes', async (_name, extra, method, status) => {
    const port = await start()
    const { wire, headers } = await handshake(port, '/p2p-signaling', extra, method)
    expect(headers.split('\r\n')[0]).toBe(status)
    await wire.closed()
    await noConnections()
  })
})

describe('WebSocket framing', () => {
  it('reads frames split byte by byte and several frames in one write', async () => {
    const port = await start()
    const wire = await opened(port)
    for (const byte of text('{"type":"ping","rid":1}')) wire.send(Buffer.from([byte]))
    expect(await wire.json()).toEqual({ type: 'pong', rid: 1 })
    wire.send(Buffer.concat([2, 3, 4].map((rid) => text(`{"type":"ping","rid":${rid}}`))))
    for (const rid of [2, 3, 4]) expect(await wire.json()).toEqual({ type: 'pong', rid })
  })

  it('joins a fragmented message and answers a ping sent between its fragments', async () => {
    const port = await start()
    const wire = await opened(port)
    wire.send(text('{"type":"pi', { fin: false }))
    wire.send(frame(0x9, 'are you there'))
    wire.send(frame(0x0, 'ng","rid"', { fin: false }))
    wire.send(frame(0x0, ':"frag"}'))
    const pong = await wire.frame()
    expect(pong).toMatchObject({ fin: true, opcode: 0xa })
    expect(pong.payload.toString()).toBe('are you there')
    expect(await wire.json()).toEqual({ type: 'pong', rid: 'frag' })
  })

  it('reads a 64-bit length: a 70,000-byte frame is TOO_LARGE and the connection lives', async () => {
    const port = await start()
    const wire = await opened(port)
    wire.send(text(`{"type":"ping","pad":"${'x'.repeat(70_000)}"}`))
    expect(await wire.json()).toMatchObject({ type: 'error', code: 'TOO_LARGE' })
    wire.send(text('{"type":"ping","rid":5}', { length64: true }))
    expect(await wire.json()).toEqual({ type: 'pong', rid: 5 })
  })

  it('relays non-ASCII text intact and frames beyond 65,535 bytes with a 64-bit length', async () => {
    const port = await start({ maxFrameBytes: 200_000 })
    const url = `ws://127.0.0.1:${port}/p2p-signaling`
    const a = await registered(url)
    const b = await registered(url)
    clients.push(a, b)
    a.send({ type: 'offer', to: b.id, data: { sdp: 'héllo ☃ 𝄞' } })
    expect(await b.next()).toEqual({ from: a.id, type: 'offer', to: b.id, data: { sdp: 'héllo ☃ 𝄞' } })
    const sdp = 'v'.repeat(100_000)
    a.send({ type: 'offer', to: b.id, data: { sdp } })
    expect((await b.next()).data.sdp).toBe(sdp)
  })
})

describe('WebSocket failures', () => {
  it.each([
    ['an unmasked frame', 1002, () => text('{"type":"ping"}', { mask: false })],
    ['a reserved bit', 1002, () => text('{"type":"ping"}', { rsv: 4 })],
    ['an unknown data opcode', 1002, () => frame(0x3, 'x')],
    ['an unknown control opcode', 1002, () => frame(0xb, 'x')],
    ['a fragmented ping', 1002, () => frame(0x9, 'x', { fin: false })],
    ['a ping longer than 125 bytes', 1002, () => frame(0x9, 'x'.repeat(126))],
    ['a continuation with nothing to continue', 1002, () => frame(0x0, 'x')],
    [
      'a new message inside a fragmented one',
      1002,
      () => Buffer.concat([text('{"a":', { fin: false }), text('1}')]),
    ],
    ['invalid UTF-8 in a text frame', 1007, () => frame(0x1, Buffer.from([0x7b, 0xc3, 0x28, 0x7d]))],
    ['a one-byte close payload', 1002, () => frame(0x8, Buffer.from([3]))],
    ['close code 1005 on the wire', 1002, () => frame(0x8, closePayload(1005))],
    ['close code 999', 1002, () => frame(0x8, closePayload(999))],
    [
      'invalid UTF-8 in a close reason',
      1007,
      () => frame(0x8, Buffer.concat([closePayload(1000), Buffer.from([0xff])])),
    ],
  ])('fails the connection on %s with close code %i', async (_name, code, make) => {
    const port = await start()
    const wire = await opened(port)
    wire.send(make())
    expect((await wire.closeFrame()).code).toBe(code)
    await noConnections()
  })

  it('fails a declared length beyond the hard limit with 1009 before the payload arrives', async () => {
    const port = await start({ maxFrameBytes: 1024 })
    const wire = await opened(port)
    // Only the header: a 2^31-byte frame is refused from its length alone.
    wire.send(Buffer.from([0x81, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]))
    expect((await wire.closeFrame()).code).toBe(1009)
  })

  it('survives random bytes after a valid header: a close frame, a text answer, or waiting for more', async () => {
    const port = await start()
    for (let round = 0; round < 30; round++) {
      const wire = await opened(port)
      wire.send(Buffer.concat([Buffer.from([0x81 | (round & 0x70), 0x80 | (round % 126)]), randomBytes(200)]))
      wire.send(text('{"type":"ping","rid":"alive"}'))
      // Random bytes may also read as the header of a frame still to come: then nothing arrives, which is right.
      let timer: ReturnType<typeof setTimeout> | undefined
      const f = await Promise.race([
        wire.frame().catch(() => undefined),
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), 200)
        }),
      ])
      clearTimeout(timer)
      if (f !== undefined) expect([0x1, 0x8]).toContain(f.opcode)
      if (f?.opcode === 0x8) await wire.closed()
      wire.socket.destroy()
    }
    await noConnections()
  })
})

describe('WebSocket closing handshake', () => {
  it('echoes a client close with its code and ends the TCP connection', async () => {
    const port = await start()
    const wire = await opened(port)
    wire.send(frame(0x8, closePayload(4321, 'bye')))
    expect(await wire.closeFrame()).toEqual({ code: 4321, reason: 'bye' })
    await noConnections()
  })

  it('answers an empty close with an empty close', async () => {
    const port = await start()
    const wire = await opened(port)
    wire.send(frame(0x8, Buffer.alloc(0)))
    expect((await wire.closeFrame()).code).toBe(1005)
  })

  it('forgets a client that drops the TCP connection without a close frame', async () => {
    const port = await start()
    const wire = await opened(port)
    wire.socket.end()
    await wire.closed()
    await noConnections()
  })

  it('sends 1001 with a reason on close() and ends the TCP connection', async () => {
    const port = await start()
    const wire = await opened(port)
    const closing = server!.close()
    expect(await wire.closeFrame()).toEqual({ code: 1001, reason: 'server shutting down' })
    await closing
    server = undefined
  })
})
