// The server's own WebSocket layer (src/websocket.ts) at the byte level, with a raw TCP client on 127.0.0.1:
// handshake (RFC 6455 §4.2), framing and fragmentation (§5), control frames, the closing handshake (§7) and every
// protocol failure with its close code.
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { createSignalingServer, type SignalingServer } from '../src/index'
import { components, registered, type RawClient } from './helpers'

let server: SignalingServer | undefined
const sockets: Socket[] = []
const clients: RawClient[] = []

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

interface Frame {
  fin: boolean
  opcode: number
  payload: Buffer
}

/** A WebSocket client written byte by byte: frames in, frames out, nothing checked on our side. */
class Wire {
  readonly socket: Socket
  #buf = Buffer.alloc(0)
  #waiter: (() => void) | undefined
  ended = false
  readonly #ended: Promise<void>

  constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d])
      this.#waiter?.()
    })
    this.#ended = new Promise((resolve) =>
      socket.on('close', () => {
        this.ended = true
        this.#waiter?.()
        resolve()
      }),
    )
    socket.on('error', () => {})
  }

  /** Resolves when the server has closed the TCP connection. */
  closed(): Promise<void> {
    return this.#ended
  }

  async #need(n: number): Promise<void> {
    while (this.#buf.length < n) {
      if (this.ended) throw new Error(`connection closed with ${this.#buf.length}/${n} bytes`)
      await new Promise<void>((resolve) => (this.#waiter = resolve))
    }
  }

  async headers(): Promise<string> {
    for (;;) {
      const end = this.#buf.indexOf('\r\n\r\n')
      if (end !== -1) {
        const text = this.#buf.subarray(0, end).toString('latin1')
        this.#buf = this.#buf.subarray(end + 4)
        return text
      }
      await this.#need(this.#buf.length + 1)
    }
  }

  async frame(): Promise<Frame> {
    await this.#need(2)
    const b0 = this.#buf[0]!
    const b1 = this.#buf[1]!
    expect(b1 & 0x80).toBe(0) // servers never mask (§5.1)
    let length = b1 & 0x7f
    let at = 2
    if (length === 126) {
      await this.#need(4)
      length = this.#buf.readUInt16BE(2)
      at = 4
    } else if (length === 127) {
      await this.#need(10)
      length = Number(this.#buf.readBigUInt64BE(2))
      at = 10
    }
    await this.#need(at + length)
    const payload = Buffer.from(this.#buf.subarray(at, at + length))
    this.#buf = this.#buf.subarray(at + length)
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload }
  }

  /** The next frame that is not a ping (the server's liveness pings may interleave). */
  async json(): Promise<Record<string, unknown>> {
    const f = await this.frame()
    expect(f.opcode).toBe(0x1)
    return JSON.parse(f.payload.toString()) as Record<string, unknown>
  }

  /** The close frame's code and reason; the server must then end the TCP connection. */
  async closeFrame(): Promise<{ code: number; reason: string }> {
    const f = await this.frame()
    expect(f.opcode).toBe(0x8)
    await this.closed()
    return f.payload.length === 0
      ? { code: 1005, reason: '' }
      : { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() }
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes)
  }
}

/** Encodes one client frame. */
function frame(
  opcode: number,
  payload: Buffer | string,
  opts: { fin?: boolean; mask?: boolean; rsv?: number; length64?: boolean } = {},
): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const { fin = true, mask = true, rsv = 0, length64 = false } = opts
  const head: number[] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
  const m = mask ? 0x80 : 0
  if (length64 || data.length > 65_535) {
    head.push(m | 127, 0, 0, 0, 0)
    head.push(
      (data.length >>> 24) & 255,
      (data.length >>> 16) & 255,
      (data.length >>> 8) & 255,
      data.length & 255,
    )
  } else if (data.length > 125) head.push(m | 126, data.length >> 8, data.length & 255)
  else head.push(m | data.length)
  if (!mask) return Buffer.concat([Buffer.from(head), data])
  const key = randomBytes(4)
  const masked = Buffer.from(data)
  for (let i = 0; i < masked.length; i++) masked[i]! ^= key[i & 3]!
  return Buffer.concat([Buffer.from(head), key, masked])
}

const text = (s: string, opts?: Parameters<typeof frame>[2]) => frame(0x1, s, opts)
const closePayload = (code: number, reason = '') =>
  Buffer.concat([Buffer.from([code >> 8, code & 255]), Buffer.from(reason)])

async function handshake(
  port: number,
  path = '/p2p-signaling',
  extra: Record<string, string> = {},
  method = 'GET',
): Promise<{ wire: Wire; headers: string }> {
  const socket = connect(port, '127.0.0.1')
  sockets.push(socket)
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  const wire = new Wire(socket)
  const fields: Record<string, string> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
    ...extra,
  }
  const lines = Object.entries(fields)
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${k}: ${v}`)
  socket.write(`${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`)
  return { wire, headers: await wire.headers() }
}

/** An open native connection, past its challenge frame. */
async function opened(port: number): Promise<Wire> {
  const { wire, headers } = await handshake(port)
  expect(headers.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols')
  expect((await wire.json()).type).toBe('challenge')
  return wire
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
    ['version 8', { 'Sec-WebSocket-Version': '8' }, 'GET', 'HTTP/1.1 426 Upgrade Required'],
    ['a POST', {}, 'POST', 'HTTP/1.1 405 Method Not Allowed'],
  ])('refuses %s with an HTTP error and closes', async (_name, extra, method, status) => {
    const port = await start()
    const { wire, headers } = await handshake(port, '/p2p-signaling', extra, method)
    expect(headers.split('\r\n')[0]).toBe(status)
    if (status.includes('426')) expect(headers).toContain('Sec-WebSocket-Version: 13')
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
    expect(await wire.closeFrame()).toEqual({ code: 4321, reason: '' })
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
