import { parseLinkAddress } from './dial-policy'
import type { LinkManagerInit } from './manager'

/** Protocol name and version mixed into every link handshake (the `prologue` passed to `secure`). */
export const LINK_PROTOCOL = 'x-node-link/1'

/** Most links held at once (distinct nodes; duplicates during a switch-over do not count twice). */
export const MAX_LINKS = 64
/** Share of `maxLinks` that nodes not preferred (not in the routing table) may hold. */
export const MAX_UNPREFERRED_LINKS = 32
/** Most links from not-preferred nodes in one address group (IPv4 /24, IPv6 /48). */
export const MAX_LINKS_PER_GROUP = 4
/** Most links (an active one and ones being replaced) to one node. */
export const MAX_LINKS_PER_NODE = 4
/** A link with no application frame either way for this long is closed, unless its node is preferred or wanted. */
export const IDLE_TIMEOUT_MS = 5 * 60_000
/** Deadline of a handshake, and of the arbiter's activation after it. */
export const HANDSHAKE_TIMEOUT_MS = 10_000
/** Handshakes running at once; more connections are refused before any work is done. */
export const MAX_PENDING_HANDSHAKES = 32
/** Handshakes admitted per second from one address (token bucket rate). */
export const HANDSHAKES_PER_ADDRESS_PER_SECOND = 1
/** Burst of that bucket. */
export const HANDSHAKE_BURST_PER_ADDRESS = 8
/** Handshakes admitted per second in all (token bucket rate). */
export const HANDSHAKES_PER_SECOND = 20
/** Burst of that bucket. */
export const HANDSHAKE_BURST = 64
/** Part of the global handshake budget only preferred addresses may use, so a flood cannot lock real nodes out. */
export const PREFERRED_HANDSHAKE_BURST = 32
/** First reconnect delay of a wanted link (±25 % jitter; doubles per failure). */
export const RECONNECT_MIN_MS = 1_000
/** Longest reconnect delay. */
export const RECONNECT_MAX_MS = 30_000
/** How long a retired link stays open for the peer's last frames when the peer does not retire it too. */
export const RETIRE_GRACE_MS = 5_000
/** Frames held on a newer link while an older link to the same node drains (then the older one is cut). */
export const MAX_HELD_FRAMES = 4_096
/** Largest record accepted from a transport: one 1 MiB frame plus record overhead. */
export const MAX_RECORD_BYTES = 1024 * 1024 + 64
/** Largest control frame (JSON). */
export const MAX_CONTROL_BYTES = 32 * 1024
/** Largest application data in a `hello`. */
export const MAX_HELLO_DATA_BYTES = 16 * 1024
/** Node addresses announced in `hello`s remembered (least recently set evicted). */
export const MAX_KNOWN_ADDRESSES = 4_096
/** Messages queued between the handshake's end and the record handler (beyond: the link is closed). */
export const MAX_EARLY_MESSAGES = 64
/** How often idle links are looked for. */
export const IDLE_SWEEP_MS = 30_000

export interface ResolvedInit {
  nodeId: string
  address: string | undefined
  helloData: Uint8Array | undefined
  maxLinks: number
  maxUnpreferredLinks: number
  maxLinksPerGroup: number
  maxLinksPerNode: number
  idleTimeoutMs: number
  handshakeTimeoutMs: number
  maxPendingHandshakes: number
  handshakesPerAddressPerSecond: number
  handshakeBurstPerAddress: number
  handshakesPerSecond: number
  handshakeBurst: number
  preferredHandshakeBurst: number
  reconnectMinMs: number
  reconnectMaxMs: number
  retireGraceMs: number
  maxHeldFrames: number
}

function positive(name: string, value: number | undefined, fallback: number, integer = true): number {
  const v = value ?? fallback
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new RangeError(`"${name}" must be a positive ${integer ? 'integer' : 'number'}`)
  }
  return v
}

const NODE_ID = /^[\x21-\x7e]{1,128}$/

export function resolveInit(init: LinkManagerInit): ResolvedInit {
  if (typeof init !== 'object' || init === null) throw new TypeError('"init" must be an object')
  if (typeof init.nodeId !== 'string' || !NODE_ID.test(init.nodeId)) {
    throw new TypeError('"nodeId" must be 1-128 printable ASCII characters')
  }
  if (init.address !== undefined && parseLinkAddress(init.address) === undefined) {
    throw new TypeError('"address" must be a ws:// or wss:// URL of a host and port, without a path')
  }
  if (init.helloData !== undefined) {
    if (!(init.helloData instanceof Uint8Array)) throw new TypeError('"helloData" must be a Uint8Array')
    if (init.helloData.length > MAX_HELLO_DATA_BYTES) {
      throw new RangeError(`"helloData" must be at most ${MAX_HELLO_DATA_BYTES} bytes`)
    }
  }
  const maxLinks = positive('maxLinks', init.maxLinks, MAX_LINKS)
  const r: ResolvedInit = {
    nodeId: init.nodeId,
    address: init.address === undefined ? undefined : parseLinkAddress(init.address),
    helloData: init.helloData,
    maxLinks,
    maxUnpreferredLinks: positive(
      'maxUnpreferredLinks',
      init.maxUnpreferredLinks,
      Math.min(MAX_UNPREFERRED_LINKS, Math.ceil(maxLinks / 2)),
    ),
    maxLinksPerGroup: positive('maxLinksPerGroup', init.maxLinksPerGroup, MAX_LINKS_PER_GROUP),
    maxLinksPerNode: positive('maxLinksPerNode', init.maxLinksPerNode, MAX_LINKS_PER_NODE),
    idleTimeoutMs: positive('idleTimeoutMs', init.idleTimeoutMs, IDLE_TIMEOUT_MS),
    handshakeTimeoutMs: positive('handshakeTimeoutMs', init.handshakeTimeoutMs, HANDSHAKE_TIMEOUT_MS),
    maxPendingHandshakes: positive('maxPendingHandshakes', init.maxPendingHandshakes, MAX_PENDING_HANDSHAKES),
    handshakesPerAddressPerSecond: positive(
      'handshakesPerAddressPerSecond',
      init.handshakesPerAddressPerSecond,
      HANDSHAKES_PER_ADDRESS_PER_SECOND,
      false,
    ),
    handshakeBurstPerAddress: positive(
      'handshakeBurstPerAddress',
      init.handshakeBurstPerAddress,
      HANDSHAKE_BURST_PER_ADDRESS,
    ),
    handshakesPerSecond: positive(
      'handshakesPerSecond',
      init.handshakesPerSecond,
      HANDSHAKES_PER_SECOND,
      false,
    ),
    handshakeBurst: positive('handshakeBurst', init.handshakeBurst, HANDSHAKE_BURST),
    preferredHandshakeBurst: positive(
      'preferredHandshakeBurst',
      init.preferredHandshakeBurst,
      PREFERRED_HANDSHAKE_BURST,
    ),
    reconnectMinMs: positive('reconnectMinMs', init.reconnectMinMs, RECONNECT_MIN_MS),
    reconnectMaxMs: positive('reconnectMaxMs', init.reconnectMaxMs, RECONNECT_MAX_MS),
    retireGraceMs: positive('retireGraceMs', init.retireGraceMs, RETIRE_GRACE_MS),
    maxHeldFrames: positive('maxHeldFrames', init.maxHeldFrames, MAX_HELD_FRAMES),
  }
  if (r.maxUnpreferredLinks > r.maxLinks)
    throw new RangeError('"maxUnpreferredLinks" must be at most "maxLinks"')
  if (r.reconnectMaxMs < r.reconnectMinMs) {
    throw new RangeError('"reconnectMaxMs" must be at least "reconnectMinMs"')
  }
  return r
}
