/**
 * The PeerJS server protocol at `/peerjs` (`OPEN`, `OFFER`, `ANSWER`, `CANDIDATE`, `LEAVE`, `EXPIRE`,
 * `HEARTBEAT`, `ID-TAKEN`, `ERROR`) and its REST call `GET /peerjs/<key>/id`, for unchanged PeerJS clients.
 *
 * PeerJS cannot authenticate: an ID is whatever the client claims, kept by a client-chosen token. The endpoint
 * protects what that model allows: a connected ID cannot be taken without its token (compared in constant time);
 * signals held for an offline ID are handed only to the registration they were meant for (the last token seen
 * for that ID), and expire for anyone else; PeerJS IDs live in their own namespace and never reach native peers.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Conn } from '../connection'
import type { WireErrorCode } from '../errors'
import { CLOSE_CODES } from '../protocol'
import type { Endpoint, RegisteredPeer, ServerCore } from './endpoint'

const PEERJS_ID_RE = /^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$/
const MAX_ID_LENGTH = 64
const MAX_TOKEN_LENGTH = 64
/** How long the token of a closed registration is remembered, to tell a returning owner from a newcomer. */
const RECENT_OWNER_MS = 10 * 60_000

interface PeerJSState {
  token: string | undefined
}

type PeerJSConn = Conn<PeerJSState>

/** Constant-time equality of two tokens (hashed first, so their lengths do not leak either). */
function sameToken(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest()
  const hb = createHash('sha256').update(b).digest()
  return timingSafeEqual(ha, hb)
}

/** What the guard learns of a token: 16 hex digits of its SHA-256 (tells holders of an ID apart, reveals nothing). */
function credentialOf(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16)
}

export function peerjsEndpoint(core: ServerCore): Endpoint<PeerJSState> {
  return new PeerJSEndpoint(core)
}

class PeerJSEndpoint implements Endpoint<PeerJSState> {
  readonly name = 'peerjs'
  readonly path: string
  readonly #core: ServerCore
  readonly #key: string
  readonly #peers = new Map<string, PeerJSConn>()
  /** ID → token of its last registration and when it closed, oldest first. */
  readonly #recent = new Map<string, { token: string; at: number }>()

  constructor(core: ServerCore) {
    this.#core = core
    this.path = core.options.paths.peerjs
    this.#key = core.options.peerjsKey
  }

  get registered(): number {
    return this.#peers.size
  }

  initialState(): PeerJSState {
    return { token: undefined }
  }

  peers(limit: number): RegisteredPeer[] {
    const out: RegisteredPeer[] = []
    for (const [id, conn] of this.#peers) {
      if (out.length >= limit) break
      out.push({ id, protocol: 'peerjs', conn })
    }
    return out
  }

  request(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const base = this.path.endsWith('/') ? this.path : this.path + '/'
    // PeerJS clients with `path: '/'` and `key: K` call `GET /K/id`; with `path: P` they call `P/K/id`.
    if (path !== `/${this.#key}/id` && path !== `${base}${this.#key}/id`) {
      if (path === this.path || path === base) {
        res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' })
        res.end('{"name":"@x/signaling PeerJS-compatible endpoint"}')
        return true
      }
      return false
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' })
      res.end()
      return true
    }
    let id: string
    do {
      id = Buffer.from(this.#core.random(16)).toString('hex')
    } while (this.#peers.has(id))
    res.writeHead(200, { 'content-type': 'text/html', 'access-control-allow-origin': '*' })
    res.end(id)
    return true
  }

  open(conn: PeerJSConn, req: IncomingMessage): void {
    let params: URLSearchParams
    try {
      params = new URL(req.url ?? '', 'http://peerjs').searchParams
    } catch {
      return this.#fail(conn, 'No id, token, or key supplied to websocket server')
    }
    const id = params.get('id')
    const token = params.get('token')
    const key = params.get('key')
    if (
      id === null ||
      token === null ||
      key === null ||
      token.length === 0 ||
      token.length > MAX_TOKEN_LENGTH
    ) {
      return this.#fail(conn, 'No id, token, or key supplied to websocket server')
    }
    if (key !== this.#key) return this.#fail(conn, 'Invalid key provided')
    if (id.length > MAX_ID_LENGTH || !PEERJS_ID_RE.test(id)) return this.#fail(conn, 'Invalid id provided')
    const existing = this.#peers.get(id)
    if (existing !== undefined && !existing.closed) {
      if (!sameToken(existing.state.token ?? '', token)) {
        this.#core.counters.rejected++
        this.#core.send(conn, '{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}')
        this.#core.close(conn, CLOSE_CODES.POLICY, 'ID is taken')
        return
      }
      existing.id = undefined
      this.#core.close(existing, CLOSE_CODES.REPLACED, 'replaced by a newer connection')
    }
    conn.id = id
    conn.idJson = JSON.stringify(id)
    conn.state.token = token
    this.#peers.set(id, conn)
    this.#core.counters.registrations++
    this.#core.admission.call(conn.guard, 'registered', id, credentialOf(token))
    this.#core.send(conn, '{"type":"OPEN"}')
    const held = this.#core.hold.take(`p:${id}`)
    if (held === undefined) return
    if (held.owner === undefined || sameToken(held.owner, token)) {
      for (const f of held.frames) if (this.#core.send(conn, f.frame, f.from)) this.#core.counters.relayed++
    } else {
      // The ID changed hands while the signals waited: they were meant for its previous holder.
      this.#core.hold.expireAll(held)
    }
  }

  message(conn: PeerJSConn, msg: Record<string, unknown>, text: string): void {
    const from = conn.id
    if (from === undefined) return
    const type = msg.type
    switch (type) {
      case 'HEARTBEAT':
        return
      case 'OFFER':
      case 'ANSWER':
      case 'CANDIDATE':
      case 'LEAVE':
      case 'EXPIRE': {
        const dst = msg.dst
        if (typeof dst !== 'string' || dst.length === 0 || dst.length > MAX_ID_LENGTH) {
          this.#core.counters.rejected++
          return this.refuse(conn, 'BAD_MESSAGE', 'dst must be a peer id')
        }
        let frame: string
        try {
          frame =
            msg.src === undefined
              ? `{"src":${conn.idJson},${text.slice(text.indexOf('{') + 1)}`
              : JSON.stringify({ type, src: from, dst, payload: msg.payload })
        } catch {
          // A payload nested too deeply for JSON.stringify, which recurses.
          this.#core.counters.rejected++
          return this.refuse(conn, 'BAD_MESSAGE', 'payload cannot be serialised')
        }
        const target = this.#peers.get(dst)
        if (target !== undefined && !target.closed) {
          if (this.#core.send(target, frame, from)) this.#core.counters.relayed++
        } else if (type !== 'LEAVE' && type !== 'EXPIRE') {
          this.#hold(dst, frame, from, conn.share)
        }
        return
      }
      default:
        this.#core.counters.rejected++
        this.refuse(conn, 'UNKNOWN_TYPE', 'unknown message type')
    }
  }

  refuse(conn: PeerJSConn, _code: WireErrorCode, message: string): void {
    this.#core.send(conn, `{"type":"ERROR","payload":{"msg":${JSON.stringify(message)}}}`)
  }

  rateLimited(conn: PeerJSConn): void {
    this.#core.send(conn, '{"type":"ERROR","payload":{"msg":"Rate limited"}}')
  }

  closed(conn: PeerJSConn): void {
    const id = conn.id
    if (id === undefined || this.#peers.get(id) !== conn) return
    this.#peers.delete(id)
    const token = conn.state.token
    if (token !== undefined) this.#remember(id, token)
  }

  #remember(id: string, token: string): void {
    const now = this.#core.clock.now()
    this.#recent.delete(id)
    this.#recent.set(id, { token, at: now })
    for (const [oldId, entry] of this.#recent) {
      if (this.#recent.size <= this.#core.options.maxHeldTotal && now - entry.at < RECENT_OWNER_MS) break
      this.#recent.delete(oldId)
    }
  }

  #hold(dst: string, frame: string, from: string, share: PeerJSConn['share']): void {
    const now = this.#core.clock.now()
    const recent = this.#recent.get(dst)
    const owner = recent !== undefined && now - recent.at < RECENT_OWNER_MS ? recent.token : undefined
    const expire = (sender: string, peer: string): void => {
      const conn = this.#peers.get(sender)
      if (conn !== undefined) {
        this.#core.admission.call(conn.guard, 'error', 'EXPIRED')
        this.#core.send(
          conn,
          `{"type":"EXPIRE","src":${JSON.stringify(peer)},"dst":${JSON.stringify(sender)}}`,
        )
      }
    }
    if (!this.#core.hold.hold(`p:${dst}`, dst, frame, from, share, now, expire, owner)) {
      this.#core.counters.expired++
      expire(from, dst)
    }
  }

  #fail(conn: PeerJSConn, msg: string): void {
    this.#core.counters.rejected++
    this.#core.send(conn, `{"type":"ERROR","payload":{"msg":${JSON.stringify(msg)}}}`)
    this.#core.close(conn, CLOSE_CODES.POLICY, msg.slice(0, 100))
  }
}
