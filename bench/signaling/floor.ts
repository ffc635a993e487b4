// The floor: the least a Node.js relay can do per signal, to show what the bars compare against. It speaks the
// PeerJS wire protocol the load generator uses (id in the URL, OPEN, `dst` → `src`), with its own minimal WebSocket
// framing (no fragmentation, no control frames but close, no UTF-8 check), and only JSON.parse for "validation":
// no authentication, no rate limit, no bounds, no limits on anything. Not a server to run; a measuring stick.
import http from 'node:http'
import { createHash } from 'node:crypto'
import type { Socket } from 'node:net'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
interface Conn {
  socket: Socket
  idJson: string
  rest: Buffer | undefined
}
const peers = new Map<string, Conn>()
const CONN = Symbol('conn')
type Tagged = Socket & { [CONN]: Conn }

function sendText(c: Conn, s: string): void {
  const n = s.length // ASCII frames only (the load generator's)
  c.socket.write(
    n < 126 ? String.fromCharCode(0x81, n) + s : String.fromCharCode(0x81, 126, n >> 8, n & 255) + s,
    'latin1',
  )
}

function onFrame(c: Conn, payload: Buffer): void {
  const text = payload.toString()
  let msg: { type?: unknown; dst?: unknown }
  try {
    msg = JSON.parse(text)
  } catch {
    return
  }
  const target = typeof msg.dst === 'string' ? peers.get(msg.dst) : undefined
  if (target !== undefined) sendText(target, `{"src":${c.idJson},${text.slice(1)}`)
}

function onData(this: Tagged, chunk: Buffer): void {
  const c = this[CONN]
  const buf = c.rest === undefined ? chunk : Buffer.concat([c.rest, chunk])
  c.rest = undefined
  let off = 0
  while (buf.length - off >= 6) {
    const b0 = buf[off]!
    let len = buf[off + 1]! & 0x7f
    let p = off + 2
    if (len === 126) {
      if (buf.length - off < 8) break
      len = buf.readUInt16BE(p)
      p += 2
    } else if (len === 127) return void this.destroy()
    if (buf.length - p < 4 + len) break
    const mask = [buf[p]!, buf[p + 1]!, buf[p + 2]!, buf[p + 3]!]
    p += 4
    for (let i = 0; i < len; i++) buf[p + i] = buf[p + i]! ^ mask[i & 3]!
    if ((b0 & 0x0f) === 1) onFrame(c, buf.subarray(p, p + len))
    else if ((b0 & 0x0f) === 8) return void this.end()
    off = p + len
  }
  if (off < buf.length) c.rest = Buffer.from(buf.subarray(off))
}

export function startFloor(): Promise<number> {
  const server = http.createServer((_req, res) => res.end())
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    const accept = createHash('sha1')
      .update(String(req.headers['sec-websocket-key']) + GUID)
      .digest('base64')
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    )
    socket.setNoDelay(true)
    const id = new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? ''
    const conn: Conn = {
      socket,
      idJson: JSON.stringify(id),
      rest: head.length > 0 ? Buffer.from(head) : undefined,
    }
    ;(socket as Tagged)[CONN] = conn
    peers.set(id, conn)
    socket.on('data', onData)
    socket.on('error', () => {})
    socket.on('close', () => peers.delete(id))
    sendText(conn, '{"type":"OPEN"}')
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  )
}
