/**
 * The plaintext of every link record: one channel byte, then the payload. Channel 0x01 carries control messages
 * (JSON); the others belong to the application. This file is the only place control bytes from a peer are parsed:
 * sizes first, then shape.
 */
import { MAX_CONTROL_BYTES, MAX_HELLO_DATA_BYTES } from './options'
import { parseLinkAddress } from './dial-policy'

/** The control channel (reserved). */
export const CONTROL_CHANNEL = 0x01
/** Lowest channel number an application may use (0x01 is the control channel). */
export const MIN_APP_CHANNEL = 0x02
/** Highest channel number an application may use. */
export const MAX_APP_CHANNEL = 0xff

/** A control message, as parsed. */
export type ControlMessage =
  | { type: 'hello'; address: string | undefined; data: Uint8Array | undefined }
  | { type: 'use'; n: number; after: number }
  | { type: 'retire' }

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

/** One record's plaintext: the channel byte and the payload. */
export function encodeFrame(channel: number, payload: Uint8Array): Uint8Array {
  const plain = new Uint8Array(payload.length + 1)
  plain[0] = channel
  plain.set(payload, 1)
  return plain
}

/** Encodes a control message (the caller's own values; checked by the caller). */
export function encodeControl(msg: ControlMessage): Uint8Array {
  if (msg.type === 'hello') {
    const out: Record<string, unknown> = { type: 'hello' }
    if (msg.address !== undefined) out.address = msg.address
    if (msg.data !== undefined) out.data = Buffer.from(msg.data).toString('base64')
    return enc.encode(JSON.stringify(out))
  }
  return enc.encode(JSON.stringify(msg))
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Parses a control message from a peer; `undefined` for anything malformed (too large, not UTF-8 JSON, unknown
 * type, fields of the wrong type or range). A `hello` address that is not a canonical link address is dropped
 * (`address: undefined`), never passed on.
 */
export function parseControl(bytes: Uint8Array): ControlMessage | undefined {
  if (bytes.length === 0 || bytes.length > MAX_CONTROL_BYTES) return undefined
  let msg: unknown
  try {
    msg = JSON.parse(dec.decode(bytes))
  } catch {
    return undefined
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return undefined
  const m = msg as Record<string, unknown>
  switch (m.type) {
    case 'use': {
      const n = m.n
      const after = m.after ?? 0
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) return undefined
      if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0 || after >= n)
        return undefined
      return { type: 'use', n, after }
    }
    case 'retire':
      return { type: 'retire' }
    case 'hello': {
      let data: Uint8Array | undefined
      if (m.data !== undefined) {
        if (typeof m.data !== 'string' || m.data.length > Math.ceil(MAX_HELLO_DATA_BYTES / 3) * 4)
          return undefined
        if (m.data.length % 4 !== 0 || !BASE64.test(m.data)) return undefined
        data = new Uint8Array(Buffer.from(m.data, 'base64'))
      }
      return { type: 'hello', address: parseLinkAddress(m.address), data }
    }
    default:
      return undefined
  }
}
