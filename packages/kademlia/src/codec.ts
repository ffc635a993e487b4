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

/** The wire format version, the first byte of every datagram; others are dropped. */
export const PROTOCOL_VERSION = 1
/** Largest datagram sent or accepted, in bytes. */
export const MAX_DATAGRAM_BYTES = 8192 // fits one UDP datagram with room to spare under 64 KiB
export const MAX_CONTACTS_PER_MESSAGE = 32
export const MAX_ADDRESS_BYTES = 64
export const MAX_TOKEN_BYTES = 32
/** Largest record value the wire format carries, in bytes. */
export const MAX_VALUE_BYTES = 4096 // wire bound; the node's own cap (`maxValueBytes`) may be lower
export const HEADER_BYTES = 2 + 4 + ID_LENGTH_BYTES

/** The `type` byte of each message (see the module comment for their bodies). */
export const MessageType = {
  /** Are you there? Answered by `PONG`. */
  PING: 1,
  /** The answer to `PING`. */
  PONG: 2,
  /** Which contacts do you know closest to `target`? Answered by `NODES`. */
  FIND_NODE: 3,
  /** Do you hold the record under `key`, or which contacts are closest to it? Answered by `NODES`. */
  FIND_VALUE: 4,
  /** Keep this record (with the write token the node gave earlier). Answered by `STORED`. */
  STORE: 5,
  /** Contacts, a write token, and a record when one was asked for and held. */
  NODES: 6,
  /** The answer to `STORE`, with a {@link StoreStatus}. */
  STORED: 7,
} as const

/** STORED status codes. */
export const StoreStatus = {
  /** Stored. */
  OK: 0,
  /** The write token is missing, wrong or expired; ask again with `FIND_VALUE`. */
  BAD_TOKEN: 1,
  /** The node's `validate` refused the record, or its TTL is not positive. */
  INVALID: 2,
  /** The node holds as many records as it may. */
  FULL: 3,
  /** The value is larger than the node accepts. */
  TOO_LARGE: 4,
} as const

/** The fields every message carries. */
export interface MessageHeader {
  /** Chosen by the requester; the response carries the same one. */
  requestId: number
  /** The 20-byte node ID of the sender. */
  senderId: Uint8Array
}

/** One datagram, decoded: the {@link MessageHeader} and the body of its `type`. */
export type Message =
  | (MessageHeader & {
      /** {@link MessageType.PING}. */
      type: typeof MessageType.PING
    })
  | (MessageHeader & {
      /** {@link MessageType.PONG}. */
      type: typeof MessageType.PONG
    })
  | (MessageHeader & {
      /** {@link MessageType.FIND_NODE}. */
      type: typeof MessageType.FIND_NODE
      /** The 20-byte ID to find contacts close to. */
      target: Uint8Array
    })
  | (MessageHeader & {
      /** {@link MessageType.FIND_VALUE}. */
      type: typeof MessageType.FIND_VALUE
      /** The 20-byte record key. */
      key: Uint8Array
    })
  | (MessageHeader & {
      /** {@link MessageType.STORE}. */
      type: typeof MessageType.STORE
      /** The 20-byte record key. */
      key: Uint8Array
      /** The write token the receiver gave the sender in a `NODES` answer. */
      token: Uint8Array
      /** How long the record should live, in milliseconds. */
      ttlMs: number
      /** The record's value, at most {@link MAX_VALUE_BYTES}. */
      value: Uint8Array
    })
  | (MessageHeader & {
      /** {@link MessageType.NODES}. */
      type: typeof MessageType.NODES
      /** A write token for a later `STORE` to the sender. */
      token: Uint8Array
      /** Contacts closest to the target or key, at most 32. */
      contacts: Contact[]
      /** The record, when the request was `FIND_VALUE` and the sender holds it. */
      record?:
        | {
            /** Milliseconds the record has left to live. */
            ttlMs: number
            /** The record's value. */
            value: Uint8Array
          }
        | undefined
    })
  | (MessageHeader & {
      /** {@link MessageType.STORED}. */
      type: typeof MessageType.STORED
      /** A {@link StoreStatus} code. */
      status: number
    })

function checkAddress(address: string): number {
  const len = address.length
  if (len === 0 || len > MAX_ADDRESS_BYTES) throw new RangeError("'address' too long or empty")
  for (let i = 0; i < len; i++) {
    const c = address.charCodeAt(i)
    if (c < 0x21 || c > 0x7e) throw new RangeError("'address' must be printable ASCII")
  }
  return len
}

function checkId(id: Uint8Array, name: string): void {
  if (id.length !== ID_LENGTH_BYTES) throw new RangeError(`'${name}' must be 20 bytes`)
}

function putU32(out: Uint8Array, o: number, v: number): void {
  out[o] = v >>> 24
  out[o + 1] = (v >>> 16) & 0xff
  out[o + 2] = (v >>> 8) & 0xff
  out[o + 3] = v & 0xff
}

function putU16(out: Uint8Array, o: number, v: number): void {
  out[o] = (v >>> 8) & 0xff
  out[o + 1] = v & 0xff
}

function getU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0
}

/** Encodes a message; throws RangeError naming the field if it exceeds a wire bound. */
export function encodeMessage(msg: Message): Uint8Array {
  let size = HEADER_BYTES
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
    case MessageType.NODES: {
      if (msg.token.length > MAX_TOKEN_BYTES) throw new RangeError("'token' too long")
      const contacts = msg.contacts
      if (contacts.length > MAX_CONTACTS_PER_MESSAGE) throw new RangeError("'contacts' too many")
      size += 1 + msg.token.length + 1 + 1
      for (let i = 0; i < contacts.length; i++) {
        size += ID_LENGTH_BYTES + 1 + checkAddress(contacts[i]!.address)
      }
      if (msg.record !== undefined) {
        if (msg.record.value.length > MAX_VALUE_BYTES) throw new RangeError("'record.value' too long")
        size += 4 + 2 + msg.record.value.length
      }
      break
    }
    case MessageType.STORED:
      size += 1
      break
  }
  if (size > MAX_DATAGRAM_BYTES) throw new RangeError('message exceeds MAX_DATAGRAM_BYTES')
  checkId(msg.senderId, 'senderId')
  const out = new Uint8Array(size)
  out[0] = PROTOCOL_VERSION
  out[1] = msg.type
  putU32(out, 2, msg.requestId >>> 0)
  out.set(msg.senderId, 6)
  let o = HEADER_BYTES
  switch (msg.type) {
    case MessageType.FIND_NODE:
      checkId(msg.target, 'target')
      out.set(msg.target, o)
      o += ID_LENGTH_BYTES
      break
    case MessageType.FIND_VALUE:
      checkId(msg.key, 'key')
      out.set(msg.key, o)
      o += ID_LENGTH_BYTES
      break
    case MessageType.STORE:
      checkId(msg.key, 'key')
      out.set(msg.key, o)
      o += ID_LENGTH_BYTES
      out[o++] = msg.token.length
      out.set(msg.token, o)
      o += msg.token.length
      putU32(out, o, clampTtl(msg.ttlMs))
      putU16(out, o + 4, msg.value.length)
      o += 6
      out.set(msg.value, o)
      o += msg.value.length
      break
    case MessageType.NODES: {
      out[o++] = msg.token.length
      out.set(msg.token, o)
      o += msg.token.length
      const contacts = msg.contacts
      out[o++] = contacts.length
      for (let i = 0; i < contacts.length; i++) {
        const c = contacts[i]!
        const id = c.id
        checkId(id, 'contact.id')
        for (let j = 0; j < ID_LENGTH_BYTES; j++) out[o + j] = id[j]!
        o += ID_LENGTH_BYTES
        const address = c.address
        out[o++] = address.length
        for (let j = 0; j < address.length; j++) out[o + j] = address.charCodeAt(j)
        o += address.length
      }
      if (msg.record === undefined) {
        out[o++] = 0
      } else {
        out[o++] = 1
        putU32(out, o, clampTtl(msg.record.ttlMs))
        putU16(out, o + 4, msg.record.value.length)
        o += 6
        out.set(msg.record.value, o)
        o += msg.record.value.length
      }
      break
    }
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

/**
 * The address at `bytes[o..o+len)` as a string; undefined unless it is non-empty printable ASCII. Short
 * addresses (every IP literal) are built from char codes without an intermediate array.
 */
function readAddress(bytes: Uint8Array, o: number, len: number): string | undefined {
  if (len === 0) return undefined
  for (let i = o; i < o + len; i++) {
    const b = bytes[i]!
    if (b < 0x21 || b > 0x7e) return undefined
  }
  return String.fromCharCode.apply(null, bytes.subarray(o, o + len) as unknown as number[])
}

/** Decodes a datagram; `undefined` if it is malformed in any way. Never throws. */
export function decodeMessage(bytes: Uint8Array): Message | undefined {
  if (!(bytes instanceof Uint8Array)) return undefined
  const end = bytes.length
  if (end < HEADER_BYTES || end > MAX_DATAGRAM_BYTES) return undefined
  if (bytes[0] !== PROTOCOL_VERSION) return undefined
  const type = bytes[1]!
  const requestId = getU32(bytes, 2)
  let o = HEADER_BYTES
  let msg: Message
  switch (type) {
    case MessageType.PING:
    case MessageType.PONG:
      msg = { type, requestId, senderId: bytes.slice(6, HEADER_BYTES) }
      break
    case MessageType.FIND_NODE:
      if (end - o < ID_LENGTH_BYTES) return undefined
      msg = {
        type,
        requestId,
        senderId: bytes.slice(6, HEADER_BYTES),
        target: bytes.slice(o, o + ID_LENGTH_BYTES),
      }
      o += ID_LENGTH_BYTES
      break
    case MessageType.FIND_VALUE:
      if (end - o < ID_LENGTH_BYTES) return undefined
      msg = {
        type,
        requestId,
        senderId: bytes.slice(6, HEADER_BYTES),
        key: bytes.slice(o, o + ID_LENGTH_BYTES),
      }
      o += ID_LENGTH_BYTES
      break
    case MessageType.STORE: {
      if (end - o < ID_LENGTH_BYTES + 1) return undefined
      const keyAt = o
      o += ID_LENGTH_BYTES
      const tokenLen = bytes[o]!
      if (tokenLen > MAX_TOKEN_BYTES || end - o < 1 + tokenLen + 6) return undefined
      const tokenAt = o + 1
      o += 1 + tokenLen
      const ttlMs = getU32(bytes, o)
      const valueLen = (bytes[o + 4]! << 8) | bytes[o + 5]!
      o += 6
      if (valueLen > MAX_VALUE_BYTES || end - o < valueLen) return undefined
      msg = {
        type,
        requestId,
        senderId: bytes.slice(6, HEADER_BYTES),
        key: bytes.slice(keyAt, keyAt + ID_LENGTH_BYTES),
        token: bytes.slice(tokenAt, tokenAt + tokenLen),
        ttlMs,
        value: bytes.slice(o, o + valueLen),
      }
      o += valueLen
      break
    }
    case MessageType.NODES: {
      if (end - o < 1) return undefined
      const tokenLen = bytes[o]!
      if (tokenLen > MAX_TOKEN_BYTES || end - o < 1 + tokenLen + 1) return undefined
      const token = bytes.slice(o + 1, o + 1 + tokenLen)
      o += 1 + tokenLen
      const count = bytes[o++]!
      if (count > MAX_CONTACTS_PER_MESSAGE) return undefined
      const contacts: Contact[] = new Array<Contact>(count)
      for (let i = 0; i < count; i++) {
        if (end - o < ID_LENGTH_BYTES + 1) return undefined
        const idAt = o
        o += ID_LENGTH_BYTES
        const len = bytes[o++]!
        if (len > MAX_ADDRESS_BYTES || end - o < len) return undefined
        const address = readAddress(bytes, o, len)
        if (address === undefined) return undefined
        o += len
        contacts[i] = { id: bytes.slice(idAt, idAt + ID_LENGTH_BYTES), address }
      }
      if (end - o < 1) return undefined
      const hasValue = bytes[o++]!
      let record: { ttlMs: number; value: Uint8Array } | undefined
      if (hasValue === 1) {
        if (end - o < 6) return undefined
        const ttlMs = getU32(bytes, o)
        const valueLen = (bytes[o + 4]! << 8) | bytes[o + 5]!
        o += 6
        if (valueLen > MAX_VALUE_BYTES || end - o < valueLen) return undefined
        record = { ttlMs, value: bytes.slice(o, o + valueLen) }
        o += valueLen
      } else if (hasValue !== 0) {
        return undefined
      }
      msg = { type, requestId, senderId: bytes.slice(6, HEADER_BYTES), token, contacts, record }
      break
    }
    case MessageType.STORED:
      if (end - o < 1) return undefined
      msg = { type, requestId, senderId: bytes.slice(6, HEADER_BYTES), status: bytes[o++]! }
      break
    default:
      return undefined
  }
  if (o !== end) return undefined
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
