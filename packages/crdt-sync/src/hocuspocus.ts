/*
 * The Hocuspocus v2+ wire format, as `@hocuspocus/provider` 2.x-4.x sends and reads it (provider/src/types.ts,
 * OutgoingMessages/*, MessageReceiver.ts; common/src/auth.ts, routingKey.ts; server/src/OutgoingMessage.ts).
 *
 * Every frame, both ways, starts with varString(address): the document name, or `name \0 sessionId` for a
 * provider with `sessionAwareness` (v4), which the server echoes back so the provider can route the answer.
 * Then varUint(message type) and a body:
 *
 *   0 Sync            y-protocols sync message (step 1, step 2, update)
 *   1 Awareness       varUint8Array(awareness update)
 *   2 Auth            varUint(0 Token) varString(token) [varString(provider version)]   client → server
 *                     varUint(0 Token)                           server → client: "send your token again"
 *                     varUint(1 PermissionDenied) varString(reason)
 *                     varUint(2 Authenticated) varString('read-write' | 'readonly')
 *   3 QueryAwareness  (no body)
 *   5 Stateless       varString(payload)
 *   7 Close           client → server: no body, the provider detached; server → client: varString(reason)
 *   8 SyncStatus      varInt(1 applied | 0 refused): one per sync step 2 or update the server handled
 *
 * Types 4 (SyncReply), 6 (BroadcastStateless), 9 (Ping) and 10 (Pong) are never sent by this server: provider 3.x
 * throws on types it does not know, and reads a one-byte Ping as a malformed address.
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

/**
 * Message types of the Hocuspocus protocol this server handles itself; 0 Sync, 1 Awareness and 3 QueryAwareness
 * share y-websocket's numbers and bodies (./y-websocket.ts).
 */
export const HP_AUTH = 2
export const HP_STATELESS = 5
export const HP_CLOSE = 7
export const HP_SYNC_STATUS = 8

/** Auth sub-types (common/src/auth.ts). */
export const HP_AUTH_TOKEN = 0
export const HP_AUTH_PERMISSION_DENIED = 1
export const HP_AUTH_AUTHENTICATED = 2

/** Separates the document name from a provider's session ID in an address (common/src/routingKey.ts). */
const SESSION_SEPARATOR = '\u0000'

/** Longest address accepted: a document name (≤ 512) plus a provider session ID. */
export const MAX_ADDRESS_LENGTH = 1_024

/** The scope names the provider knows (`AuthorizedScope`). */
export type HocuspocusScope = 'read-write' | 'readonly'

/** A frame split into its address and the rest, positioned at the message type. */
export interface HocuspocusFrame {
  /** The address to echo in every answer (document name, or name + '\0' + session ID). */
  readonly address: string
  /** The document name part of the address. */
  readonly docName: string
  /** Decoder positioned at the message type. */
  readonly decoder: decoding.Decoder
}

/** Reads the address of a frame; throws on bytes that do not start with a bounded UTF-8 string. */
export function readFrame(bytes: Uint8Array): HocuspocusFrame {
  const decoder = decoding.createDecoder(bytes)
  const length = decoding.readVarUint(decoder)
  // Bound before decoding: the length prefix of a string is in bytes, at most 3 per UTF-16 unit.
  if (length > MAX_ADDRESS_LENGTH * 3) throw new Error('address too long')
  decoder.pos = 0
  const address = decoding.readVarString(decoder)
  if (address.length > MAX_ADDRESS_LENGTH) throw new Error('address too long')
  const sep = address.indexOf(SESSION_SEPARATOR)
  return { address, docName: sep === -1 ? address : address.slice(0, sep), decoder }
}

/** The encoded address, written once per session and put in front of every body sent to it. */
export function encodeAddress(address: string): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarString(e, address)
  return encoding.toUint8Array(e)
}

/** `prefix` (an encoded address) followed by `body` (type and payload). */
export function withAddress(prefix: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefix.length + body.length)
  out.set(prefix, 0)
  out.set(body, prefix.length)
  return out
}

function body(write: (e: encoding.Encoder) => void): Uint8Array {
  const e = encoding.createEncoder()
  write(e)
  return encoding.toUint8Array(e)
}

/** Auth: the session is open with this scope (sent after a token was accepted, and on a downgrade). */
export function authenticatedBody(scope: HocuspocusScope): Uint8Array {
  return body((e) => {
    encoding.writeVarUint(e, HP_AUTH)
    encoding.writeVarUint(e, HP_AUTH_AUTHENTICATED)
    encoding.writeVarString(e, scope)
  })
}

/** Auth: the token was refused; the provider emits `authenticationFailed` with `reason`. */
export function permissionDeniedBody(reason: string): Uint8Array {
  return body((e) => {
    encoding.writeVarUint(e, HP_AUTH)
    encoding.writeVarUint(e, HP_AUTH_PERMISSION_DENIED)
    encoding.writeVarString(e, reason)
  })
}

/** Auth: asks the provider to send its token again (it calls its `token` function for a fresh one). */
export const TOKEN_REQUEST_BODY = body((e) => {
  encoding.writeVarUint(e, HP_AUTH)
  encoding.writeVarUint(e, HP_AUTH_TOKEN)
})

/** SyncStatus: one sync step 2 or update was applied and is on disk (`true`), or was refused (`false`). */
export const SYNC_APPLIED_BODY = body((e) => {
  encoding.writeVarUint(e, HP_SYNC_STATUS)
  encoding.writeVarInt(e, 1)
})
export const SYNC_REFUSED_BODY = body((e) => {
  encoding.writeVarUint(e, HP_SYNC_STATUS)
  encoding.writeVarInt(e, 0)
})

/** Close: the server ended this document's session; the provider emits `close` with `reason`. */
export function closeBody(reason: string): Uint8Array {
  return body((e) => {
    encoding.writeVarUint(e, HP_CLOSE)
    encoding.writeVarString(e, reason)
  })
}

/** Stateless: an application payload for the provider's `stateless` event. */
export function statelessBody(payload: string): Uint8Array {
  return body((e) => {
    encoding.writeVarUint(e, HP_STATELESS)
    encoding.writeVarString(e, payload)
  })
}
