/*
 * The y-websocket wire format (y-websocket/src/y-websocket.js, y-protocols/sync.js, y-protocols/auth.js): one
 * document per connection, named by the URL; every frame is varUint(message type) and a body. The same bodies
 * follow the address in a Hocuspocus frame (see ./hocuspocus.ts), so the sync server builds a body once and
 * frames it per protocol.
 *
 *   0 Sync            varUint(0 step 1) varUint8Array(state vector)
 *                     varUint(1 step 2 | 2 update) varUint8Array(Yjs v1 update)
 *   1 Awareness       varUint8Array(awareness update)
 *   2 Auth            varUint(0 permission denied) varString(reason)     server → client only
 *   3 QueryAwareness  (no body)
 */
import * as encoding from 'lib0/encoding'
import * as authProtocol from 'y-protocols/auth'

export const MESSAGE_SYNC = 0
export const MESSAGE_AWARENESS = 1
export const MESSAGE_AUTH = 2
export const MESSAGE_QUERY_AWARENESS = 3
export const SYNC_STEP_1 = 0
export const SYNC_STEP_2 = 1
export const SYNC_UPDATE = 2

export function message(write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder()
  write(encoder)
  return encoding.toUint8Array(encoder)
}

/** Sync step 1 (or 2, or an update) carrying `payload` (a state vector, or an update). */
export function syncBody(syncType: number, payload: Uint8Array): Uint8Array {
  return message((e) => {
    encoding.writeVarUint(e, MESSAGE_SYNC)
    encoding.writeVarUint(e, syncType)
    encoding.writeVarUint8Array(e, payload)
  })
}

export function awarenessBody(update: Uint8Array): Uint8Array {
  return message((e) => {
    encoding.writeVarUint(e, MESSAGE_AWARENESS)
    encoding.writeVarUint8Array(e, update)
  })
}

/** y-websocket's "permission denied" auth message: the stock provider logs `reason` and stays connected. */
export function permissionDeniedBody(reason: string): Uint8Array {
  return message((e) => {
    encoding.writeVarUint(e, MESSAGE_AUTH)
    authProtocol.writePermissionDenied(e, reason)
  })
}

/** An awareness update listing no clients: a harmless message that resets a client's watchdog. */
export const KEEPALIVE_BODY = awarenessBody(new Uint8Array([0]))

/** A Yjs v1 update with no structs and an empty delete set (what an empty document sends as sync step 2). */
export function isEmptyUpdate(update: Uint8Array): boolean {
  return update.length === 2 && update[0] === 0 && update[1] === 0
}
