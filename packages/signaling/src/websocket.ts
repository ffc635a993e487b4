/**
 * Server side of the WebSocket protocol (RFC 6455) for the signaling endpoints: the opening handshake (§4.2),
 * framing (§5), the closing handshake (§7) and nothing else (no extensions, no subprotocol logic beyond echoing
 * the client's first choice, as `ws` does by default).
 *
 * Why not `ws`: a relayed signal is one small frame in and one out, and on loopback the per-frame path is most of a
 * signaling server's CPU. `ws` runs every received chunk through a Writable stream and a general receiver, and
 * every send through `cork`/`uncork` and `writev`; here a chunk is parsed in place and the frames for one socket
 * produced while handling it leave in one `write` of one Latin-1 string (header and payload together), with no
 * stream buffering in between. `cd bench && pnpm signaling` measures the difference.
 *
 * Strictness follows `ws` (and the Autobahn expectations it passes): unmasked client frames, RSV bits, unknown
 * opcodes, fragmented or oversized control frames, stray continuations and invalid close codes fail with 1002;
 * invalid UTF-8 in a text frame or close reason fails with 1007; a message beyond `maxPayload` fails with 1009.
 * @module
 */
import { createHash } from 'node:crypto'
import { isUtf8 } from 'node:buffer'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

/** RFC 6455 §1.3: appended to the client's key before hashing. */
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
/** A base64-encoded 16-byte nonce (§4.1, item 7). */
const KEY_RE = /^[+/0-9A-Za-z]{22}==$/
/** RFC 7230 token characters (a subprotocol name). */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Time a closing connection may take to finish the handshake before its socket is destroyed. */
export const CLOSE_TIMEOUT_MS = 5_000
/** Longest close reason in bytes: a control frame payload is at most 125 bytes, 2 of them the code (§5.5). */
const MAX_CLOSE_REASON_BYTES = 123

/** `readyState` values, as in the browser API. */
export const enum WsState {
  Open = 1,
  Closing = 2,
  Closed = 3,
}

/** What a connection reports to its server. Handlers run synchronously; `data` is only valid during the call. */
export interface WsListener<T> {
  onMessage(ws: WsConnection<T>, data: Buffer, isBinary: boolean): void
  /** A ping or pong arrived (a sign of life). */
  onAlive(ws: WsConnection<T>): void
  /** The TCP connection closed; called once. */
  onClose(ws: WsConnection<T>): void
}

const WS = Symbol('x-signaling.ws')
type TaggedSocket = Duplex & { [WS]?: WsConnection<unknown> }

/**
 * Frames produced while one received chunk is handled are gathered per socket and written once when the handling
 * ends (synchronously, not on a later tick): a burst of signals read from one sender costs each receiver one write.
 */
const batch = { depth: 0, pending: [] as WsConnection<unknown>[] }

function flushBatch(): void {
  const pending = batch.pending
  // Index loop: a flush cannot add entries (batch.depth is 0 here), but stay correct if it ever did.
  for (let i = 0; i < pending.length; i++) pending[i]!.flush()
  pending.length = 0
}

/** The frame header (FIN + opcode, unmasked length) as a Latin-1 string. */
function header(opcode: number, length: number): string {
  if (length < 126) return String.fromCharCode(0x80 | opcode, length)
  if (length < 65_536) return String.fromCharCode(0x80 | opcode, 126, length >> 8, length & 0xff)
  // Payloads here are far below 2^32 bytes (maxPayload), so the high 32 bits of the 64-bit length are zero.
  return String.fromCharCode(
    0x80 | opcode,
    127,
    0,
    0,
    0,
    0,
    (length >>> 24) & 0xff,
    (length >>> 16) & 0xff,
    (length >>> 8) & 0xff,
    length & 0xff,
  )
}

/** Close codes a peer may send (§7.4.1, §7.4.2): 1000–1003, 1007–1014 and the registered/private 3000–4999. */
function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
}

/** A reason cut to at most 123 UTF-8 bytes without splitting a character. */
function closeReason(reason: string): string {
  let r = reason
  while (Buffer.byteLength(r) > MAX_CLOSE_REASON_BYTES) r = r.slice(0, -1)
  return r
}

/** One accepted WebSocket connection. `owner` is the server's record for it. */
export class WsConnection<T> {
  readonly socket: Duplex
  owner: T | undefined
  state: WsState = WsState.Open
  readonly #listener: WsListener<T>
  readonly #maxPayload: number
  /** Outgoing frames gathered during the current batch, as one Latin-1 string. */
  #out = ''
  /** Received bytes of an incomplete frame, and how many bytes (from their start) complete it. */
  #rest: Buffer[] | undefined
  #restBytes = 0
  #need = 0
  /** Payloads of a fragmented message so far, and its type. */
  #fragments: Buffer[] | undefined
  #fragmentBytes = 0
  #fragmentBinary = false
  /** No more frames are read: a close frame arrived or the peer broke the protocol. */
  #readClosed = false

  constructor(socket: Duplex, listener: WsListener<T>, maxPayload: number) {
    this.socket = socket
    this.#listener = listener
    this.#maxPayload = maxPayload
  }

  /** Bytes accepted by {@link send} and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.socket.writableLength + this.#out.length
  }

  /**
   * Sends a text frame. `ascii` is a promise by the caller that `text` has no character above U+007F (its UTF-16
   * length is then its byte length); without it the text is measured.
   */
  send(text: string, ascii = false): void {
    if (this.state !== WsState.Open) return
    if (ascii || Buffer.byteLength(text) === text.length) {
      this.#write(header(0x1, text.length) + text)
      return
    }
    const bytes = Buffer.from(text)
    this.#write(header(0x1, bytes.length) + bytes.toString('latin1'))
  }

  /** Sends a ping (the peer answers with a pong, reported through `onAlive`). */
  ping(): void {
    if (this.state === WsState.Open) this.#write('\x89\x00')
  }

  /** Starts the closing handshake (§7.1.2): a close frame, then the end of our side of the TCP stream. */
  close(code: number, reason = ''): void {
    if (this.state !== WsState.Open) return
    this.state = WsState.Closing
    const r = Buffer.from(closeReason(reason)).toString('latin1')
    this.#write(header(0x8, 2 + r.length) + String.fromCharCode(code >> 8, code & 0xff) + r)
    this.#end()
  }

  /** Destroys the socket at once (no closing handshake). */
  terminate(): void {
    this.#readClosed = true
    if (this.state === WsState.Open) this.state = WsState.Closing
    this.#out = ''
    this.socket.destroy()
  }

  /** Writes what the current batch gathered for this socket. */
  flush(): void {
    const out = this.#out
    if (out === '') return
    this.#out = ''
    if (this.state !== WsState.Closed) this.socket.write(out, 'latin1')
  }

  #write(frame: string): void {
    if (batch.depth === 0) {
      this.socket.write(frame, 'latin1')
      return
    }
    if (this.#out === '') batch.pending.push(this)
    this.#out += frame
  }

  #end(): void {
    this.flush()
    this.socket.end()
    // A peer that never finishes the handshake (or never reads) does not hold the socket.
    ;(this.socket as Partial<Socket>).setTimeout?.(CLOSE_TIMEOUT_MS)
  }

  /** @internal The socket closed. */
  closed(): void {
    this.state = WsState.Closed
    this.#out = ''
    this.#rest = undefined
    this.#fragments = undefined
    this.#listener.onClose(this)
  }

  /** Fails the connection (§7.1.7): a close frame with the code, and nothing more is read. */
  #fail(code: number, reason: string): void {
    this.#readClosed = true
    this.#rest = undefined
    this.#fragments = undefined
    if (this.state === WsState.Open) this.close(code, reason)
    else this.socket.destroy()
  }

  /** @internal */
  onData(chunk: Buffer): void {
    if (this.#readClosed) return
    let buf = chunk
    if (this.#rest !== undefined) {
      this.#rest.push(chunk)
      this.#restBytes += chunk.length
      if (this.#restBytes < this.#need) return
      buf = Buffer.concat(this.#rest, this.#restBytes)
      this.#rest = undefined
    }
    batch.depth++
    try {
      this.#parse(buf)
    } finally {
      if (--batch.depth === 0) flushBatch()
    }
  }

  #parse(buf: Buffer): void {
    const end = buf.length
    let at = 0
    while (at < end && !this.#readClosed) {
      // Header: 2 bytes, then a 16- or 64-bit extended length, then the 4-byte mask (clients always mask, §5.3).
      if (end - at < 2) return this.#keep(buf, at, 2)
      const b0 = buf[at]!
      const b1 = buf[at + 1]!
      let length = b1 & 0x7f
      let p = at + 2
      if (length === 126) {
        if (end - p < 2) return this.#keep(buf, at, 4)
        length = buf.readUInt16BE(p)
        p += 2
      } else if (length === 127) {
        if (end - p < 8) return this.#keep(buf, at, 10)
        if (buf.readUInt32BE(p) !== 0) return this.#fail(1009, 'message too big')
        length = buf.readUInt32BE(p + 4)
        p += 8
      }
      const opcode = b0 & 0x0f
      const fin = (b0 & 0x80) !== 0
      if ((b0 & 0x70) !== 0) return this.#fail(1002, 'reserved bits set')
      if ((b1 & 0x80) === 0) return this.#fail(1002, 'client frames must be masked')
      if (opcode >= 0x8) {
        if (opcode > 0xa) return this.#fail(1002, 'unknown opcode')
        if (!fin || length > 125) return this.#fail(1002, 'bad control frame')
      } else if (opcode === 0x0) {
        if (this.#fragments === undefined) return this.#fail(1002, 'unexpected continuation')
      } else if (opcode <= 0x2) {
        if (this.#fragments !== undefined) return this.#fail(1002, 'expected a continuation')
      } else {
        return this.#fail(1002, 'unknown opcode')
      }
      if (opcode < 0x8 && this.#fragmentBytes + length > this.#maxPayload) {
        return this.#fail(1009, 'message too big')
      }
      const start = p + 4
      const stop = start + length
      if (stop > end) return this.#keep(buf, at, stop - at)
      const m0 = buf[p]!
      const m1 = buf[p + 1]!
      const m2 = buf[p + 2]!
      const m3 = buf[p + 3]!
      // Unmasked in place: each read gets its own buffer from Node, nobody else holds it.
      let i = start
      for (const stop4 = start + (length & ~3); i < stop4; i += 4) {
        buf[i] = buf[i]! ^ m0
        buf[i + 1] = buf[i + 1]! ^ m1
        buf[i + 2] = buf[i + 2]! ^ m2
        buf[i + 3] = buf[i + 3]! ^ m3
      }
      const tail = stop - i
      if (tail > 0) buf[i] = buf[i]! ^ m0
      if (tail > 1) buf[i + 1] = buf[i + 1]! ^ m1
      if (tail > 2) buf[i + 2] = buf[i + 2]! ^ m2
      at = stop
      const payload = buf.subarray(start, stop)
      if (opcode >= 0x8) this.#control(opcode, payload)
      else if (fin && opcode !== 0x0) this.#message(payload, opcode === 0x2)
      else this.#fragment(opcode, payload, fin)
    }
  }

  /** Keeps the unparsed tail of `buf` until `need` bytes of it are available. */
  #keep(buf: Buffer, at: number, need: number): void {
    // A copy, so a small leftover does not pin a whole 64 KiB read buffer.
    this.#rest = [Buffer.from(buf.subarray(at))]
    this.#restBytes = buf.length - at
    this.#need = need
  }

  #fragment(opcode: number, payload: Buffer, fin: boolean): void {
    if (opcode !== 0x0) {
      this.#fragments = []
      this.#fragmentBytes = 0
      this.#fragmentBinary = opcode === 0x2
    }
    const fragments = this.#fragments!
    // The payload is a view of this read's buffer, which the next read does not reuse.
    fragments.push(payload)
    this.#fragmentBytes += payload.length
    if (!fin) return
    const whole = Buffer.concat(fragments, this.#fragmentBytes)
    const binary = this.#fragmentBinary
    this.#fragments = undefined
    this.#fragmentBytes = 0
    this.#message(whole, binary)
  }

  #message(payload: Buffer, binary: boolean): void {
    if (!binary && !isUtf8(payload)) return this.#fail(1007, 'invalid UTF-8')
    if (this.state === WsState.Open) this.#listener.onMessage(this, payload, binary)
  }

  #control(opcode: number, payload: Buffer): void {
    if (opcode === 0x8) {
      let code = 0
      if (payload.length === 1) return this.#fail(1002, 'bad close frame')
      if (payload.length >= 2) {
        code = payload.readUInt16BE(0)
        if (!validCloseCode(code)) return this.#fail(1002, 'invalid close code')
        if (!isUtf8(payload.subarray(2))) return this.#fail(1007, 'invalid UTF-8')
      }
      this.#readClosed = true
      if (this.state === WsState.Open) {
        // Echo the peer's code (§5.5.1), or an empty close when it gave none.
        this.state = WsState.Closing
        this.#write(code === 0 ? '\x88\x00' : header(0x8, 2) + String.fromCharCode(code >> 8, code & 0xff))
      }
      this.#end()
      return
    }
    if (opcode === 0x9 && this.state === WsState.Open) {
      this.#write(header(0xa, payload.length) + payload.toString('latin1'))
    }
    this.#listener.onAlive(this)
  }
}

// Shared socket listeners (`this` is the socket): no closures per connection.
function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  this[WS]?.onData(chunk)
}
function onSocketEnd(this: TaggedSocket): void {
  // The peer closed its side without (or after) a close frame: finish ours.
  const ws = this[WS]
  if (ws !== undefined && ws.state === WsState.Open) ws.state = WsState.Closing
  this.end()
}
function onSocketClose(this: TaggedSocket): void {
  const ws = this[WS]
  if (ws === undefined) return
  this[WS] = undefined
  ws.closed()
}
function onSocketTimeout(this: TaggedSocket): void {
  this.destroy()
}
function onSocketError(): void {
  // 'close' follows; nothing to report to peers.
}

/** Why a handshake was refused, as an HTTP status and a short text. */
function refuse(socket: Duplex, status: number, message: string, extra = ''): void {
  const reason = status === 400 ? 'Bad Request' : status === 405 ? 'Method Not Allowed' : 'Upgrade Required'
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(message)}\r\n${extra}\r\n${message}`,
  )
  // A client that never reads the refusal does not keep the socket.
  ;(socket as Partial<Socket>).setTimeout?.(CLOSE_TIMEOUT_MS, () => socket.destroy())
}

/**
 * Completes the opening handshake of an HTTP upgrade request (§4.2.2) and returns the connection, or answers
 * with an HTTP error and returns `undefined`. `socket` must already have an error listener.
 */
export function acceptWebSocket<T>(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  listener: WsListener<T>,
  maxPayload: number,
): WsConnection<T> | undefined {
  if (req.method !== 'GET') {
    refuse(socket, 405, 'WebSocket upgrades use GET')
    return undefined
  }
  const upgrade = req.headers.upgrade
  if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') {
    refuse(socket, 400, 'Invalid Upgrade header')
    return undefined
  }
  const key = req.headers['sec-websocket-key']
  if (key === undefined || !KEY_RE.test(key)) {
    refuse(socket, 400, 'Missing or invalid Sec-WebSocket-Key header')
    return undefined
  }
  if (req.headers['sec-websocket-version'] !== '13') {
    refuse(socket, 426, 'Unsupported WebSocket version', 'Sec-WebSocket-Version: 13\r\n')
    return undefined
  }
  if (!socket.readable || !socket.writable) {
    socket.destroy()
    return undefined
  }
  const accept = createHash('sha1')
    .update(key + ACCEPT_GUID)
    .digest('base64')
  let response = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n`
  const protocols = req.headers['sec-websocket-protocol']
  if (protocols !== undefined) {
    const first = protocols.split(',')[0]!.trim()
    if (TOKEN_RE.test(first)) response += `Sec-WebSocket-Protocol: ${first}\r\n`
  }
  socket.write(response + '\r\n')
  const ws = new WsConnection<T>(socket, listener, maxPayload)
  const tagged = socket as TaggedSocket
  tagged[WS] = ws
  const net = socket as Partial<Socket>
  net.setNoDelay?.(true)
  net.setTimeout?.(0)
  if (head.length > 0) socket.unshift(head)
  socket.on('data', onSocketData)
  socket.on('end', onSocketEnd)
  socket.on('close', onSocketClose)
  socket.on('timeout', onSocketTimeout)
  socket.on('error', onSocketError)
  return ws
}
