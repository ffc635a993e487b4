/**
 * The native protocol at `/p2p-signaling` (version 2, described in the package README): a peer proves its key by
 * signing a statement bound to this node, the host it dialed and the time; relays signals with a server-set
 * sender; joins topics and discovers their members here and in the directory; reaches peers on other nodes
 * through the federation.
 */
import type { IncomingMessage } from 'node:http'
import type { Conn } from '../connection'
import type { WireErrorCode } from '../errors'
import { dataText, Federation } from '../federation'
import {
  CLOSE_CODES,
  isHost,
  isPeerId,
  MAX_RID_LENGTH,
  MAX_TOPIC_LENGTH,
  PROTOCOL_VERSION,
  statementText,
  type RelayType,
} from '../protocol'
import type { PeerIdFromPublicKeyFn, Registration, VerifyFn } from '../types'
import type { Endpoint, RegisteredPeer, ServerCore } from './endpoint'

/** Base64 of one ML-DSA-87 signature is 6,172 characters; nothing a peer sends here needs more than this. */
const MAX_BASE64_CHARS = 16 * 1024
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/
/** `discover` requests of one connection waiting for the directory (in the node: DHT reads); more are refused. */
export const MAX_DISCOVERS_IN_FLIGHT = 4

interface NativeState {
  /** The challenge nonce, until the peer registers. */
  nonce: string | undefined
  /** The `Host` header of the upgrade request (the accepted host when no `publicHosts` are set). */
  requestHost: string
  authBusy: boolean
  authFailures: number
  /** `discover` requests waiting for the directory. */
  discovering: number
  /** The peer's signed statement, once registered. */
  registration: Registration | undefined
  /**
   * Signals to peers on other nodes (`data` as JSON text), held until this peer's announce completed (so the
   * target's node finds it).
   */
  pending: { to: string; type: RelayType; data: string }[] | undefined
}

type NativeConn = Conn<NativeState>
type Rid = string | number | undefined

function ridOf(msg: Record<string, unknown>): Rid {
  const rid = msg.rid
  if (typeof rid === 'number' && Number.isFinite(rid)) return rid
  if (typeof rid === 'string' && rid.length <= MAX_RID_LENGTH) return rid
  return undefined
}

function ridSuffix(rid: Rid): string {
  return rid === undefined ? '' : `,"rid":${JSON.stringify(rid)}`
}

function validTopic(topic: unknown): topic is string {
  return typeof topic === 'string' && topic.length > 0 && topic.length <= MAX_TOPIC_LENGTH
}

function decodeBase64(value: unknown): Uint8Array | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_BASE64_CHARS) return undefined
  if (value.length % 4 !== 0 || !BASE64_RE.test(value)) return undefined
  return new Uint8Array(Buffer.from(value, 'base64'))
}

/** `name` of a URL host (`name`, `name:port`, `[v6]`, `[v6]:port`). */
function hostName(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1)
  const colon = host.lastIndexOf(':')
  return colon === -1 ? host : host.slice(0, colon)
}

/** Whether a statement's `host` is one this server answers as. */
function hostAccepted(
  host: string,
  publicHosts: ReadonlySet<string> | undefined,
  requestHost: string,
): boolean {
  const h = host.toLowerCase()
  if (publicHosts === undefined) return h === requestHost.toLowerCase()
  return publicHosts.has(h) || publicHosts.has(hostName(h))
}

/** Injected services the native endpoint needs. */
export interface NativeEndpointComponents {
  verify: VerifyFn
  peerIdFromPublicKey: PeerIdFromPublicKeyFn
}

export function nativeEndpoint(components: NativeEndpointComponents) {
  return (core: ServerCore): Endpoint<NativeState> => new NativeEndpoint(core, components)
}

class NativeEndpoint implements Endpoint<NativeState> {
  readonly name = 'native'
  readonly path: string
  readonly #core: ServerCore
  readonly #verify: VerifyFn
  readonly #peerIdOf: PeerIdFromPublicKeyFn
  readonly #peers = new Map<string, NativeConn>()
  readonly #federation: Federation | undefined
  #announceTimer: unknown

  constructor(core: ServerCore, components: NativeEndpointComponents) {
    this.#core = core
    this.path = core.options.paths.native
    this.#verify = components.verify
    this.#peerIdOf = components.peerIdFromPublicKey
    const { relay, directory } = core
    if (relay !== undefined && directory !== undefined) {
      this.#federation = new Federation(core, relay, directory, {
        peer: (id) => this.#open(id),
        notFound: (from, to) => this.#notFound(from, to),
        hold: (to, frame, from) => this.#hold(to, frame, from),
      })
    }
  }

  get registered(): number {
    return this.#peers.size
  }

  initialState(): NativeState {
    return {
      nonce: undefined,
      requestHost: '',
      authBusy: false,
      authFailures: 0,
      discovering: 0,
      registration: undefined,
      pending: undefined,
    }
  }

  start(): void {
    this.#federation?.start()
    if (this.#core.directory !== undefined) this.#scheduleAnnounce()
  }

  async stop(): Promise<void> {
    this.#core.clock.clearTimeout(this.#announceTimer)
    this.#federation?.stop()
    const withdrawals: Promise<void>[] = []
    for (const id of this.#peers.keys()) {
      withdrawals.push(this.#core.directoryCall('withdraw', (d) => d.withdraw(id, this.#core.nodeId)))
    }
    await Promise.all(withdrawals)
  }

  open(conn: NativeConn, req: IncomingMessage): void {
    const nonce = Buffer.from(this.#core.random(32)).toString('base64')
    conn.state.nonce = nonce
    conn.state.requestHost = typeof req.headers.host === 'string' ? req.headers.host : ''
    this.#core.send(
      conn,
      `{"type":"challenge","v":${PROTOCOL_VERSION},"nonce":"${nonce}","node":${JSON.stringify(this.#core.nodeId)}}`,
    )
  }

  registration(id: string): Registration | undefined {
    return this.#peers.get(id)?.state.registration
  }

  peers(limit: number): RegisteredPeer[] {
    const out: RegisteredPeer[] = []
    for (const [id, conn] of this.#peers) {
      if (out.length >= limit) break
      out.push({ id, protocol: 'native', conn })
    }
    return out
  }

  message(conn: NativeConn, msg: Record<string, unknown>, text: string): void | Promise<void> {
    const type = msg.type
    if (typeof type !== 'string')
      return this.#reject(conn, 'BAD_MESSAGE', '"type" must be a string', ridOf(msg))
    if (msg.v !== undefined && msg.v !== PROTOCOL_VERSION) {
      return this.#reject(
        conn,
        'UNSUPPORTED_VERSION',
        `only version ${PROTOCOL_VERSION} is spoken`,
        ridOf(msg),
      )
    }
    switch (type) {
      case 'offer':
      case 'answer':
      case 'candidate':
        return this.#relay(conn, type, msg, text)
      case 'ping':
        return void this.#core.send(conn, `{"type":"pong"${ridSuffix(ridOf(msg))}}`)
      case 'register':
        return this.#register(conn, msg)
      case 'join':
        return this.#join(conn, msg)
      case 'leave':
        return this.#leave(conn, msg)
      case 'discover':
        return this.#discover(conn, msg)
      default:
        return this.#reject(conn, 'UNKNOWN_TYPE', `unknown type "${type.slice(0, 32)}"`, ridOf(msg))
    }
  }

  refuse(conn: NativeConn, code: WireErrorCode, message: string): void {
    this.#error(conn, code, message)
  }

  rateLimited(conn: NativeConn): void {
    this.#error(conn, 'RATE_LIMITED', 'too many frames; slow down')
  }

  closed(conn: NativeConn): void {
    const id = conn.id
    if (id === undefined) return
    if (this.#peers.get(id) !== conn) return
    this.#peers.delete(id)
    if (this.#core.closing) return
    void this.#core.directoryCall('withdraw', (d) => d.withdraw(id, this.#core.nodeId))
    this.#leaveTopics(conn, id)
  }

  sweep(conn: NativeConn, now: number): void {
    if (
      conn.id === undefined &&
      !conn.state.authBusy &&
      now - conn.openedAt > this.#core.options.authTimeoutMs
    ) {
      this.#core.close(conn, CLOSE_CODES.AUTH_TIMEOUT, 'registration timeout')
    }
  }

  // ---------------------------------------------------------------- helpers

  /** Takes `id` out of the directory's members of `conn`'s topics (their local memberships go with `conn`). */
  #leaveTopics(conn: NativeConn, id: string): void {
    for (const key of conn.topics ?? []) {
      if (key.startsWith('n:')) void this.#core.directoryCall('leave', (d) => d.leave(key.slice(2), id))
    }
  }

  /** The open connection registered as `id`. */
  #open(id: string): NativeConn | undefined {
    const conn = this.#peers.get(id)
    return conn === undefined || conn.closed ? undefined : conn
  }

  #error(conn: NativeConn, code: WireErrorCode, message: string, rid?: Rid, to?: string): void {
    this.#core.admission.call(conn.guard, 'error', code)
    let frame = `{"type":"error","code":"${code}","message":${JSON.stringify(message)}`
    if (to !== undefined) frame += `,"to":${JSON.stringify(to)}`
    this.#core.send(conn, frame + ridSuffix(rid) + '}')
  }

  #reject(conn: NativeConn, code: WireErrorCode, message: string, rid?: Rid, to?: string): void {
    this.#core.counters.rejected++
    this.#error(conn, code, message, rid, to)
  }

  #notFound(from: string, to: string): void {
    const conn = this.#peers.get(from)
    if (conn !== undefined) this.#error(conn, 'PEER_NOT_FOUND', 'peer is not connected', undefined, to)
  }

  #hold(to: string, frame: string, from: string): void {
    const origin = this.#peers.get(from)
    if (origin === undefined) return // gone while its signal waited for a lookup: nobody to hold it for
    const now = this.#core.clock.now()
    const held = this.#core.hold.hold(`n:${to}`, to, frame, from, origin.share, now, (sender, peer) => {
      const conn = this.#peers.get(sender)
      if (conn === undefined) return
      this.#core.admission.call(conn.guard, 'error', 'EXPIRED')
      this.#core.send(conn, `{"type":"expire","peer":${JSON.stringify(peer)}}`)
    })
    if (!held) this.#notFound(from, to)
  }

  #scheduleAnnounce(): void {
    this.#announceTimer = this.#core.clock.setTimeout(() => {
      for (const conn of this.#peers.values()) void this.#announce(conn)
      this.#scheduleAnnounce()
    }, this.#core.options.announceIntervalMs)
  }

  #announce(conn: NativeConn): Promise<void> {
    const id = conn.id
    const registration = conn.state.registration
    if (id === undefined || registration === undefined) return Promise.resolve()
    return this.#core.directoryCall('announce', (d) => d.announce(id, this.#core.nodeId, registration))
  }

  // ---------------------------------------------------------------- relay

  #relay(conn: NativeConn, type: RelayType, msg: Record<string, unknown>, text: string): void {
    const from = conn.id
    if (from === undefined) return this.#reject(conn, 'UNAUTHENTICATED', 'register first', ridOf(msg))
    const rawTo = msg.to
    // Registered IDs are valid, so a hit needs no further check; only a miss pays for the pattern test.
    const target = typeof rawTo === 'string' ? this.#peers.get(rawTo) : undefined
    if (target === undefined && !isPeerId(rawTo)) {
      return this.#reject(conn, 'BAD_MESSAGE', '"to" must be a peer ID', ridOf(msg))
    }
    const to = rawTo as string
    const data = msg.data
    if (typeof data !== 'object' || data === null) {
      return this.#reject(conn, 'BAD_MESSAGE', '"data" must be an object or array', ridOf(msg), to)
    }
    if (msg.from !== undefined) {
      return this.#reject(conn, 'BAD_MESSAGE', '"from" is set by the server', ridOf(msg), to)
    }
    if (target !== undefined && !target.closed) {
      // The frame was parsed and has no top-level "from" (JSON.parse keeps the last duplicate key, so none
      // exists): prefixing the server-set sender onto the original text yields valid JSON without re-serialising.
      const frame = `{"from":${conn.idJson},${text.slice(text.indexOf('{') + 1)}`
      if (this.#core.send(target, frame, from)) this.#core.counters.relayed++
      return
    }
    const federation = this.#federation
    if (federation === undefined) {
      return this.#hold(to, `{"from":${conn.idJson},${text.slice(text.indexOf('{') + 1)}`, from)
    }
    const json = dataText(data)
    if (json === undefined) {
      return this.#reject(conn, 'BAD_MESSAGE', '"data" is nested too deeply', ridOf(msg), to)
    }
    const pending = conn.state.pending
    if (pending === undefined) return federation.route(to, from, type, json, conn.share)
    if (pending.length < this.#core.options.maxHeldPerPeer) pending.push({ to, type, data: json })
    else this.#notFound(from, to)
  }

  // ---------------------------------------------------------------- registration

  async #register(conn: NativeConn, msg: Record<string, unknown>): Promise<void> {
    const rid = ridOf(msg)
    const state = conn.state
    if (conn.id !== undefined) return this.#reject(conn, 'BAD_MESSAGE', 'already registered', rid)
    if (state.authBusy) return this.#reject(conn, 'BAD_MESSAGE', 'a registration is in progress', rid)
    const nonce = state.nonce
    if (nonce === undefined) return
    if (msg.host === undefined && msg.time === undefined) {
      return this.#reject(
        conn,
        'UNSUPPORTED_VERSION',
        `protocol version 1 registrations are refused: sign the version ${PROTOCOL_VERSION} statement (node, host, time, nonce); @x/signaling/client does`,
        rid,
      )
    }
    const publicKey = decodeBase64(msg.publicKey)
    const signature = decodeBase64(msg.signature)
    if (publicKey === undefined || signature === undefined) {
      return this.#reject(conn, 'BAD_MESSAGE', '"publicKey" and "signature" must be base64', rid)
    }
    const { host, time } = msg
    if (!isHost(host))
      return this.#reject(conn, 'BAD_MESSAGE', '"host" must be the host the client dialed', rid)
    if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0) {
      return this.#reject(conn, 'BAD_MESSAGE', '"time" must be milliseconds since the epoch', rid)
    }
    let id: string
    try {
      id = this.#peerIdOf(publicKey)
    } catch {
      return this.#reject(conn, 'BAD_MESSAGE', 'public key is malformed', rid)
    }
    if (!isPeerId(id)) return this.#reject(conn, 'INTERNAL', 'derived peer ID is invalid', rid)
    if (msg.id !== undefined && msg.id !== id) {
      return this.#reject(conn, 'BAD_MESSAGE', '"id" does not match the public key', rid)
    }
    if (!hostAccepted(host, this.#core.options.publicHosts, state.requestHost)) {
      return this.#authFailed(
        conn,
        id,
        `the statement names host "${host.slice(0, 64)}", not this server`,
        rid,
      )
    }
    if (Math.abs(time - this.#core.clock.now()) > this.#core.options.maxClockSkewMs) {
      return this.#authFailed(conn, id, 'the statement time is not within the allowed clock skew', rid)
    }
    const statement = statementText({ node: this.#core.nodeId, host, time, nonce })
    state.authBusy = true
    let ok = false
    try {
      ok = (await this.#verify(publicKey, new TextEncoder().encode(statement), signature)) === true
    } catch (err) {
      this.#core.log.debug({ err: (err as Error).message }, 'verify threw')
      ok = false
    }
    state.authBusy = false
    if (conn.closed || conn.closingAt !== undefined || this.#core.closing) return
    if (!ok) return this.#authFailed(conn, id, 'signature does not verify', rid)
    const previous = this.#peers.get(id)
    if (previous !== undefined && previous !== conn) {
      // The new connection proved the key: it wins. Detach the old one before closing so its close
      // handler does not withdraw the peer we are about to re-announce; its topics are left here instead (the
      // new connection joins what it wants), or the directory would list the peer in them for ever.
      previous.id = undefined
      this.#leaveTopics(previous, id)
      this.#core.dropTopics(previous)
      this.#core.close(previous, CLOSE_CODES.REPLACED, 'replaced by a newer connection')
    }
    conn.id = id
    conn.idJson = JSON.stringify(id)
    state.nonce = undefined
    state.registration = {
      peerId: id,
      publicKey,
      statement,
      signature,
      node: this.#core.nodeId,
      host: host.toLowerCase(),
      time,
    }
    this.#peers.set(id, conn)
    this.#core.counters.registrations++
    this.#core.admission.call(conn.guard, 'registered', id)
    this.#core.send(
      conn,
      `{"type":"registered","id":${conn.idJson},"replaced":${previous !== undefined}${ridSuffix(rid)}}`,
    )
    if (this.#federation !== undefined) {
      // Remote nodes check that a signal from this peer comes from the node that hosts it: forward nothing
      // until the directory can say so.
      state.pending = []
      void this.#announce(conn).then(() => {
        const pending = state.pending
        state.pending = undefined
        if (pending === undefined || conn.id !== id || conn.closed) return
        for (const s of pending) this.#federation?.route(s.to, id, s.type, s.data, conn.share)
      })
    } else {
      void this.#announce(conn)
    }
    const held = this.#core.hold.take(`n:${id}`)
    if (held !== undefined) {
      for (const f of held.frames) if (this.#core.send(conn, f.frame, f.from)) this.#core.counters.relayed++
    }
  }

  #authFailed(conn: NativeConn, id: string, reason: string, rid: Rid): void {
    this.#core.counters.authFailures++
    conn.state.authFailures++
    this.#core.admission.call(conn.guard, 'registered', undefined)
    if (this.#peers.has(id))
      this.#reject(conn, 'ID_TAKEN', `peer ID is registered and the proof failed: ${reason}`, rid)
    else this.#reject(conn, 'UNAUTHENTICATED', reason, rid)
    if (conn.state.authFailures >= this.#core.options.maxAuthFailures) {
      this.#core.close(conn, CLOSE_CODES.AUTH_FAILED, 'authentication failed')
    }
  }

  // ---------------------------------------------------------------- topics

  #join(conn: NativeConn, msg: Record<string, unknown>): void {
    const rid = ridOf(msg)
    const id = conn.id
    if (id === undefined) return this.#reject(conn, 'UNAUTHENTICATED', 'register first', rid)
    const topic = msg.topic
    if (!validTopic(topic))
      return this.#reject(conn, 'BAD_MESSAGE', '"topic" must be a non-empty string', rid)
    const key = `n:${topic}`
    // A repeated join is answered but costs the directory nothing (in the node every call is a DHT write).
    const joined = conn.topics?.has(key) === true
    if (!this.#core.joinTopic(conn, key)) return this.#reject(conn, 'TOPIC_LIMIT', 'too many topics', rid)
    this.#core.send(conn, `{"type":"joined","topic":${JSON.stringify(topic)}${ridSuffix(rid)}}`)
    if (!joined) void this.#core.directoryCall('join', (d) => d.join(topic, id))
  }

  #leave(conn: NativeConn, msg: Record<string, unknown>): void {
    const rid = ridOf(msg)
    const id = conn.id
    if (id === undefined) return this.#reject(conn, 'UNAUTHENTICATED', 'register first', rid)
    const topic = msg.topic
    if (!validTopic(topic))
      return this.#reject(conn, 'BAD_MESSAGE', '"topic" must be a non-empty string', rid)
    if (this.#core.leaveTopic(conn, `n:${topic}`)) {
      void this.#core.directoryCall('leave', (d) => d.leave(topic, id))
    }
    this.#core.send(conn, `{"type":"left","topic":${JSON.stringify(topic)}${ridSuffix(rid)}}`)
  }

  async #discover(conn: NativeConn, msg: Record<string, unknown>): Promise<void> {
    const rid = ridOf(msg)
    const id = conn.id
    if (id === undefined) return this.#reject(conn, 'UNAUTHENTICATED', 'register first', rid)
    const topic = msg.topic
    if (!validTopic(topic))
      return this.#reject(conn, 'BAD_MESSAGE', '"topic" must be a non-empty string', rid)
    const max = this.#core.options.maxDiscoverResults
    const found = new Set<string>()
    for (const member of this.#core.topicMembers(`n:${topic}`) ?? []) {
      if (found.size >= max) break
      if (member.id !== undefined && member.id !== id) found.add(member.id)
    }
    const directory = this.#core.directory
    if (directory !== undefined && found.size < max) {
      if (conn.state.discovering >= MAX_DISCOVERS_IN_FLIGHT) {
        return this.#reject(conn, 'RATE_LIMITED', 'too many discover requests in progress', rid)
      }
      conn.state.discovering++
      try {
        const remote = await directory.findTopic(topic, max)
        if (Array.isArray(remote)) {
          for (const peer of remote) {
            if (found.size >= max) break
            if (isPeerId(peer) && peer !== id) found.add(peer)
          }
        }
      } catch (err) {
        this.#core.log.warn({ err: (err as Error).message, topic }, 'directory findTopic failed')
      } finally {
        conn.state.discovering--
      }
    }
    const peers = [...found]
    if (peers.length > 0) this.#core.admission.call(conn.guard, 'discovered', peers)
    this.#core.send(conn, JSON.stringify({ type: 'peers', topic, peers, rid }))
  }
}
