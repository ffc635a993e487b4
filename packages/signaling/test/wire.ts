// A WebSocket client written byte by byte for tests at the wire level: frames in, frames out, nothing checked on
// our side, so a test can send what no library would.
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { expect } from 'vitest'

export interface Frame {
  fin: boolean
  opcode: number
  payload: Buffer
}

/** A WebSocket client written byte by byte: frames in, frames out, nothing checked on our side. */
export class Wire {
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
export function frame(
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

export const text = (s: string, opts?: Parameters<typeof frame>[2]) => frame(0x1, s, opts)
export const closePayload = (code: number, reason = '') =>
  Buffer.concat([Buffer.from([code >> 8, code & 255]), Buffer.from(reason)])

export async function handshake(
  sockets: Socket[],
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
export async function opened(sockets: Socket[], port: number): Promise<Wire> {
  const { wire, headers } = await handshake(sockets, port)
  expect(headers.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols')
  expect((await wire.json()).type).toBe('challenge')
  return wire
}
