/**
 * Native protocol constants and helpers shared by the server and the client.
 * The message-by-message description lives in the package README ("Native protocol").
 */

/** Version of the native protocol spoken at `/p2p-signaling`. Frames may carry `"v": 2`. */
export const PROTOCOL_VERSION = 2

/** First line of the registration statement a peer signs (names the protocol and its version). */
export const STATEMENT_LABEL = 'x-signaling/2'

/** WebSocket close codes used by the server. */
export const CLOSE_CODES = {
  /** The server is shutting down. */
  GOING_AWAY: 1001,
  /** A policy violation: a message in too many fragments, a PeerJS ID taken, a bad PeerJS frame. */
  POLICY: 1008,
  /** A newer connection registered the same peer ID. */
  REPLACED: 4001,
  /** Too many failed registrations on this connection. */
  AUTH_FAILED: 4003,
  /** Not registered within `authTimeoutMs`. */
  AUTH_TIMEOUT: 4004,
  /** Reserved: a silent connection is terminated without a close frame, so peers never see this code. */
  LIVENESS_TIMEOUT: 4008,
  /** Reserved: a slow consumer is terminated without a close frame, so peers never see this code. */
  SLOW_CONSUMER: 4009,
  /** Kept sending while rate limited. */
  RATE_ABUSE: 4029,
  /** Closed or refused by the injected `guard`, with its reason (e.g. its source was blocked as abusive). */
  BLOCKED: 4030,
} as const

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

/** Longest accepted `host` in a registration statement, in characters (a DNS name, `:`, a port). */
export const MAX_HOST_LENGTH = 261

const PEER_ID_RE = /^[\x21-\x7e]+$/
/** A URL `host`: a DNS name, an IPv4 address or a bracketed IPv6 address, and an optional port. */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/
const NONCE_RE = /^[A-Za-z0-9+/]{1,128}={0,2}$/

/** Whether `id` is a well-formed peer ID: 1–128 printable ASCII characters. */
export function isPeerId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_PEER_ID_LENGTH && PEER_ID_RE.test(id)
}

/** Whether `host` is a well-formed URL host (name or address, optional port). */
export function isHost(host: unknown): host is string {
  return typeof host === 'string' && host.length > 0 && host.length <= MAX_HOST_LENGTH && HOST_RE.test(host)
}

/**
 * What a peer states when it registers (native protocol version 2). Bound to the server as WebAuthn binds a
 * signature to an origin: a statement made for one node, or to a client that dialed another host, does not
 * register anywhere else.
 */
export interface RegistrationStatement {
  /** The node ID the server sent in its challenge. */
  node: string
  /** The host the client dialed: the `host` of the WebSocket URL (`name[:port]`, lower case). */
  host: string
  /** When the client signed, in milliseconds since the epoch (its own clock). */
  time: number
  /** The challenge nonce, exactly as received. */
  nonce: string
}

/**
 * The exact text a peer signs to register: five lines, in this order, joined by `\n`, no trailing newline:
 *
 * ```
 * x-signaling/2
 * node:<node id>
 * host:<host>
 * time:<ms since the epoch, decimal>
 * nonce:<nonce>
 * ```
 *
 * Throws `TypeError` on a field that could make the text ambiguous (so a statement has exactly one encoding).
 */
export function statementText(statement: RegistrationStatement): string {
  const { node, host, time, nonce } = statement
  if (!isPeerId(node)) throw new TypeError('"node" must be 1-128 printable ASCII characters')
  if (!isHost(host)) throw new TypeError('"host" must be a URL host (name or address, optional port)')
  if (!Number.isSafeInteger(time) || time < 0) throw new TypeError('"time" must be a non-negative integer')
  if (typeof nonce !== 'string' || !NONCE_RE.test(nonce)) throw new TypeError('"nonce" must be base64')
  return `${STATEMENT_LABEL}\nnode:${node}\nhost:${host.toLowerCase()}\ntime:${time}\nnonce:${nonce}`
}

const encoder = new TextEncoder()

/** The UTF-8 bytes of {@link statementText}: what the peer's signature covers. */
export function statementBytes(statement: RegistrationStatement): Uint8Array {
  return encoder.encode(statementText(statement))
}

/**
 * The `register` frame answering a challenge: the peer's public key, its signature over
 * {@link statementBytes}`(statement)`, and the statement's client-chosen fields (the server knows the others).
 */
export function registerFrame(
  statement: RegistrationStatement,
  publicKey: Uint8Array,
  signature: Uint8Array,
): string {
  return JSON.stringify({
    type: 'register',
    v: PROTOCOL_VERSION,
    publicKey: toBase64(publicKey),
    signature: toBase64(signature),
    host: statement.host,
    time: statement.time,
  })
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
  | {
      /** Sent first: what to sign to register. */
      type: 'challenge'
      /** The protocol version the server speaks ({@link PROTOCOL_VERSION}). */
      v: number
      /** A fresh random nonce the statement must name. */
      nonce: string
      /** The server's node ID, which the statement must name. */
      node: string
    }
  | {
      /** The registration succeeded. */
      type: 'registered'
      /** The peer ID, derived from the public key. */
      id: string
      /** Whether an older connection of the same ID was closed (code 4001). */
      replaced: boolean
      /** The request's `rid`, echoed. */
      rid?: string | number
    }
  | {
      /** A relayed signal. */
      type: RelayType
      /** The sender's peer ID, set by the server. */
      from: string
      /** The recipient: this peer. */
      to: string
      /** What the sender sent: an SDP description or an ICE candidate. */
      data: unknown
    }
  | {
      /** A signal this peer sent was held for an offline peer and expired. */
      type: 'expire'
      /** The peer it was for. */
      peer: string
    }
  | {
      /** Joined a topic. */
      type: 'joined'
      /** The topic. */
      topic: string
      /** The request's `rid`, echoed. */
      rid?: string | number
    }
  | {
      /** Left a topic. */
      type: 'left'
      /** The topic. */
      topic: string
      /** The request's `rid`, echoed. */
      rid?: string | number
    }
  | {
      /** The answer to `discover`. */
      type: 'peers'
      /** The topic. */
      topic: string
      /** Peer IDs in it, on this server and through the directory. */
      peers: string[]
      /** The request's `rid`, echoed. */
      rid?: string | number
    }
  | {
      /** The answer to `ping`. */
      type: 'pong'
      /** The request's `rid`, echoed. */
      rid?: string | number
    }
  | {
      /** A request failed or a signal could not be delivered. */
      type: 'error'
      /** A wire error code (`PEER_NOT_FOUND`, `RATE_LIMITED`, …; see the README's Errors). */
      code: string
      /** For humans. */
      message: string
      /** The recipient of the signal that failed, when it is about one. */
      to?: string
      /** The request's `rid`, echoed, when it is about one. */
      rid?: string | number
    }
