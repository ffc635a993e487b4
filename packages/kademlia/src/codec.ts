/**
 * Wire format (all integers big-endian). Every datagram:
 *
 *   version u8 (= 1) | type u8 | requestId u32 | senderId 20 bytes | body
 *
 *   PING        (1)  —
 *   PONG        (2)  —
 *   FIND_NODE   (3)  target 20
 *   FIND_VALUE  (4)  key 20
 *   STORE       (5)  key 20 | token (u8 len, ≤ 32) | ttlMs u32 | value (u16 len, ≤ MAX_VALUE_BYTES)
 *   NODES       (6)  token (u8 len) | contacts (u8 count ≤ 32; each id 20 | address u8 len ≤ 64, printable ASCII)
 *                    | hasValue u8 (0/1) | [ttlMs u32 | value u16 len]
 *   STORED      (7)  status u8
 *
 * The decoder checks the datagram size before anything else, every length before reading, and rejects
 * trailing bytes; it never throws and returns `undefined` for anything malformed.
 */
import { ID_LENGTH_BYTES } from './id'
import type { Contact } from './routing-table'

export const PROTOCOL_VERSION = 1
export const MAX_DATAGRAM_BYTES = 8192 // fits one UDP datagram with room to spare under 64 KiB
export const MAX_CONTACTS_PER_MESSAGE = 32
export const MAX_ADDRESS_BYTES = 64
export const MAX_TOKEN_BYTES = 32
export const MAX_VALUE_BYTES = 4096 // wire bound; the node's own cap (`maxValueBytes`) may be lower
export const HEADER_BYTES = 2 + 4 + ID_LENGTH_BYTES

export const MessageType = {
  PING: 1,
  PONG: 2,
  FIND_NODE: 3,
  FIND_VALUE: 4,
  STORE: 5,
  NODES: 6,
  STORED: 7,
} as const

/** STORED status codes. */
export const StoreStatus = { OK: 0, BAD_TOKEN: 1, INVALID: 2, FULL: 3, TOO_LARGE: 4 } as const

interface Header {
  requestId: number
  senderId: Uint8Array
}

export type Message =
  | (Header & { type: typeof MessageType.PING })
  | (Header & { type: typeof MessageType.PONG })
  | (Header & { type: typeof MessageType.FIND_NODE; target: Uint8Array })
  | (Header & { type: typeof MessageType.FIND_VALUE; key: Uint8Array })
  | (Header & {
      type: typeof MessageType.STORE
      key: Uint8Array
      token: Uint8Array
      ttlMs: number
      value: Uint8Array
    })
  | (Header & {
      type: typeof MessageType.NODES
      token: Uint8Array
      contacts: Contact[]
      record?: { ttlMs: number; value: Uint8Array } | undefined
    })
  | (Header & { type: typeof MessageType.STORED; status: number })

function addressBytes(address: string): Uint8Array {
  const len = address.length
  if (len === 0 || len > MAX_ADDRESS_BYTES) throw new RangeError("'address' too long or empty")
  const bytes = new Uint8Array(len)
  for (let i = 0; i < len; i++) {
    const b = address.charCodeAt(i)
    if (b < 0x21 || b > 0x7e) throw new RangeError("'address' must be printable ASCII")
    bytes[i] = b
  }
  return bytes
}

/** Encodes a message; throws RangeError naming the field if it exceeds a wire bound. */
export function encodeMessage(msg: Message): Uint8Array {
  let size = HEADER_BYTES
  let addrs: Uint8Array[] | undefined
  switch (msg.type) {
    case MessageType.PING:
    case MessageType.PONG:
      break
    case MessageType.FIND_NODE:
    case MessageType.FIND_VALUE:
      size += ID_LENGTH_BYTES
      break
    case MessageType.STORE:
      if (msg.token.length > MAX_TOKEN_BYTES) throw new RangeError("'token' too long")
      if (msg.value.length > MAX_VALUE_BYTES) throw new RangeError("'value' too long")
      size += ID_LENGTH_BYTES + 1 + msg.token.length + 4 + 2 + msg.value.length
      break
    case MessageType.NODES:
      if (msg.token.length > MAX_TOKEN_BYTES) throw new RangeError("'token' too long")
      if (msg.contacts.length > MAX_CONTACTS_PER_MESSAGE) throw new RangeError("'contacts' too many")
      addrs = msg.contacts.map((c) => addressBytes(c.address))
      size += 1 + msg.token.length + 1 + 1
      for (const a of addrs) size += ID_LENGTH_BYTES + 1 + a.length
      if (msg.record !== undefined) {
        if (msg.record.value.length > MAX_VALUE_BYTES) throw new RangeError("'record.value' too long")
        size += 4 + 2 + msg.record.value.length
      }
      break
    case MessageType.STORED:
      size += 1
      break
  }
  if (size > MAX_DATAGRAM_BYTES) throw new RangeError('message exceeds MAX_DATAGRAM_BYTES')
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  out[0] = PROTOCOL_VERSION
  out[1] = msg.type
  view.setUint32(2, msg.requestId >>> 0)
  if (msg.senderId.length !== ID_LENGTH_BYTES) throw new RangeError("'senderId' must be 20 bytes")
  out.set(msg.senderId, 6)
  let o = HEADER_BYTES
  const putId = (id: Uint8Array, name: string): void => {
    if (id.length !== ID_LENGTH_BYTES) throw new RangeError(`'${name}' must be 20 bytes`)
    out.set(id, o)
    o += ID_LENGTH_BYTES
  }
  const putBytes8 = (b: Uint8Array): void => {
    out[o++] = b.length
    out.set(b, o)
    o += b.length
  }
  switch (msg.type) {
    case MessageType.FIND_NODE:
      putId(msg.target, 'target')
      break
    case MessageType.FIND_VALUE:
      putId(msg.key, 'key')
      break
    case MessageType.STORE:
      putId(msg.key, 'key')
      putBytes8(msg.token)
      view.setUint32(o, clampTtl(msg.ttlMs))
      o += 4
      view.setUint16(o, msg.value.length)
      o += 2
      out.set(msg.value, o)
      o += msg.value.length
      break
    case MessageType.NODES:
      putBytes8(msg.token)
      out[o++] = msg.contacts.length
      for (let i = 0; i < msg.contacts.length; i++) {
        putId(msg.contacts[i]!.id, 'contact.id')
        putBytes8(addrs![i]!)
      }
      if (msg.record === undefined) {
        out[o++] = 0
      } else {
        out[o++] = 1
        view.setUint32(o, clampTtl(msg.record.ttlMs))
        o += 4
        view.setUint16(o, msg.record.value.length)
        o += 2
        out.set(msg.record.value, o)
        o += msg.record.value.length
      }
      break
    case MessageType.STORED:
      out[o++] = msg.status & 0xff
      break
    default:
      break
  }
  return out
}

function clampTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs < 0) return 0
  return Math.min(Math.floor(ttlMs), 0xffffffff)
}

/** Decodes a datagram; `undefined` if it is malformed in any way. Never throws. */
export function decodeMessage(bytes: Uint8Array): Message | undefined {
  if (!(bytes instanceof Uint8Array)) return undefined
  if (bytes.length < HEADER_BYTES || bytes.length > MAX_DATAGRAM_BYTES) return undefined
  if (bytes[0] !== PROTOCOL_VERSION) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const type = bytes[1]!
  const requestId = view.getUint32(2)
  const senderId = bytes.slice(6, HEADER_BYTES)
  let o = HEADER_BYTES
  const left = (): number => bytes.length - o
  const takeId = (): Uint8Array | undefined => {
    if (left() < ID_LENGTH_BYTES) return undefined
    const id = bytes.slice(o, o + ID_LENGTH_BYTES)
    o += ID_LENGTH_BYTES
    return id
  }
  const takeBytes8 = (max: number): Uint8Array | undefined => {
    if (left() < 1) return undefined
    const len = bytes[o]!
    if (len > max || left() < 1 + len) return undefined
    const b = bytes.slice(o + 1, o + 1 + len)
    o += 1 + len
    return b
  }
  const takeTtlValue = (): { ttlMs: number; value: Uint8Array } | undefined => {
    if (left() < 6) return undefined
    const ttlMs = view.getUint32(o)
    const len = view.getUint16(o + 4)
    o += 6
    if (len > MAX_VALUE_BYTES || left() < len) return undefined
    const value = bytes.slice(o, o + len)
    o += len
    return { ttlMs, value }
  }
  let msg: Message | undefined
  switch (type) {
    case MessageType.PING:
    case MessageType.PONG:
      msg = { type, requestId, senderId }
      break
    case MessageType.FIND_NODE: {
      const target = takeId()
      if (target !== undefined) msg = { type, requestId, senderId, target }
      break
    }
    case MessageType.FIND_VALUE: {
      const key = takeId()
      if (key !== undefined) msg = { type, requestId, senderId, key }
      break
    }
    case MessageType.STORE: {
      const key = takeId()
      const token = key === undefined ? undefined : takeBytes8(MAX_TOKEN_BYTES)
      const tv = token === undefined ? undefined : takeTtlValue()
      if (key !== undefined && token !== undefined && tv !== undefined) {
        msg = { type, requestId, senderId, key, token, ttlMs: tv.ttlMs, value: tv.value }
      }
      break
    }
    case MessageType.NODES: {
      const token = takeBytes8(MAX_TOKEN_BYTES)
      if (token === undefined || left() < 1) return undefined
      const count = bytes[o++]!
      if (count > MAX_CONTACTS_PER_MESSAGE) return undefined
      const contacts: Contact[] = []
      for (let i = 0; i < count; i++) {
        const id = takeId()
        const addr = id === undefined ? undefined : takeBytes8(MAX_ADDRESS_BYTES)
        if (id === undefined || addr === undefined || addr.length === 0) return undefined
        for (const b of addr) if (b < 0x21 || b > 0x7e) return undefined
        const address = String.fromCharCode.apply(null, addr as unknown as number[])
        contacts.push({ id, address })
      }
      if (left() < 1) return undefined
      const hasValue = bytes[o++]!
      let record: { ttlMs: number; value: Uint8Array } | undefined
      if (hasValue === 1) {
        record = takeTtlValue()
        if (record === undefined) return undefined
      } else if (hasValue !== 0) {
        return undefined
      }
      msg = { type, requestId, senderId, token, contacts, record }
      break
    }
    case MessageType.STORED:
      if (left() < 1) return undefined
      msg = { type, requestId, senderId, status: bytes[o++]! }
      break
    default:
      return undefined
  }
  if (msg === undefined || o !== bytes.length) return undefined
  return msg
}

/** Whether a message type is a request (as opposed to a response). */
export function isRequest(type: number): boolean {
  return (
    type === MessageType.PING ||
    type === MessageType.FIND_NODE ||
    type === MessageType.FIND_VALUE ||
    type === MessageType.STORE
  )
}
