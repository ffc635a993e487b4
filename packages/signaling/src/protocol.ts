/**
 * Native protocol constants and helpers shared by the server and the client.
 * The message-by-message description lives in the package README ("Native protocol").
 */

/** Version of the native protocol spoken at `/p2p-signaling`. Frames may carry `"v": 1`. */
export const PROTOCOL_VERSION = 1

/** Prefix of the string a peer signs to answer a challenge: `x-signaling/1:<nonce>`. */
export const CHALLENGE_PREFIX = 'x-signaling/1:'

/** Types a registered peer may relay to another peer. */
export const RELAY_TYPES = ['offer', 'answer', 'candidate'] as const

/** A relayable signal type. */
export type RelayType = (typeof RELAY_TYPES)[number]

/** Longest accepted peer ID, in characters. */
export const MAX_PEER_ID_LENGTH = 128

/** Longest accepted topic name, in characters. */
export const MAX_TOPIC_LENGTH = 256

/** Longest accepted request id (`rid`) when it is a string, in characters. */
export const MAX_RID_LENGTH = 64

const encoder = new TextEncoder()

/** The exact bytes a peer signs to answer the challenge carrying `nonce`. */
export function challengeBytes(nonce: string): Uint8Array {
  return encoder.encode(CHALLENGE_PREFIX + nonce)
}

/** Base64 (RFC 4648 §4, with padding) without relying on Node's Buffer, so it runs in browsers. */
export function toBase64(bytes: Uint8Array): string {
  let binary = ''
  const CHUNK = 0x8000
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK))
  }
  return btoa(binary)
}

/** Server-side message a peer receives. Every field a client may rely on is listed. */
export type ServerMessage =
  | { type: 'challenge'; v: number; nonce: string; node: string }
  | { type: 'registered'; id: string; replaced: boolean; rid?: string | number }
  | { type: RelayType; from: string; to: string; data: unknown }
  | { type: 'expire'; peer: string }
  | { type: 'joined'; topic: string; rid?: string | number }
  | { type: 'left'; topic: string; rid?: string | number }
  | { type: 'peers'; topic: string; peers: string[]; rid?: string | number }
  | { type: 'pong'; rid?: string | number }
  | { type: 'error'; code: string; message: string; to?: string; rid?: string | number }
