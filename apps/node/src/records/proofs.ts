/**
 * Peer proofs: a peer's own signed registration statement ("I registered at node N at time T"), served by the
 * node that hosts the peer and checked by every node that validates the peer's DHT record (see `format.ts`).
 *
 * Wire (one link channel, JSON, at most `MAX_PROOF_MESSAGE_BYTES`):
 *
 * | message | fields |
 * |---|---|
 * | request | `{"type":"proof?","id":n,"peer":"<peer ID>","time":t}` |
 * | answer | `{"type":"proof","id":n,"key":"<base64 ML-DSA-87 public key>","sig":"<base64 signature>"}` |
 * | no such statement | `{"type":"proof","id":n}` |
 */
import type { Registration } from '@x/signaling'
import { ML_DSA_87_PUBLIC_KEY_BYTES, ML_DSA_87_SIGNATURE_BYTES } from '@x/pqc'
import type { Logger } from 'pino'
import { BoundedMap, type Clock } from './util'

/** Largest proof message (an answer is ~9.7 KB of base64). */
export const MAX_PROOF_MESSAGE_BYTES = 16 * 1024
/** How long a proof request may take. */
export const PROOF_TIMEOUT_MS = 5_000
/** Statements whose proof verified, remembered (least recently verified evicted). */
export const MAX_VERIFIED_PROOFS = 8_192
/** A statement whose proof failed is not asked for again for this long. */
export const PROOF_RETRY_MS = 30_000
/** Requests answered per node per second; more are dropped (the asker times out). */
export const PROOF_REQUESTS_PER_SECOND = 50
/** Requests in flight to one node. */
export const MAX_PENDING_PER_NODE = 32

/** What proofs need from the links. */
export interface ProofLinks {
  /** Sends a request, linking to the node first if needed (the dial policy applies). */
  sendOrDial(nodeId: string, payload: Uint8Array): Promise<void>
  /** Sends an answer on the link the request came on; `false` when it is gone. */
  send(nodeId: string, payload: Uint8Array): boolean
}

/** Verifies an ML-DSA-87 signature (empty context) off the main thread (the worker pool's `verify`). */
export type StatementVerifier = (
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
) => Promise<boolean>

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

type ProofMessage =
  | { type: 'proof?'; id: number; peer: string; time: number }
  | { type: 'proof'; id: number; key?: Uint8Array; sig?: Uint8Array }

const B64 = /^[A-Za-z0-9+/]*={0,2}$/

/** The only parser of proof messages from other nodes: sizes, then shape. */
export function parseProofMessage(bytes: Uint8Array): ProofMessage | undefined {
  if (bytes.length === 0 || bytes.length > MAX_PROOF_MESSAGE_BYTES) return undefined
  let m: unknown
  try {
    m = JSON.parse(dec.decode(bytes))
  } catch {
    return undefined
  }
  if (typeof m !== 'object' || m === null) return undefined
  const x = m as Record<string, unknown>
  if (typeof x.id !== 'number' || !Number.isSafeInteger(x.id) || x.id < 0) return undefined
  if (x.type === 'proof?') {
    if (typeof x.peer !== 'string' || x.peer.length === 0 || x.peer.length > 128) return undefined
    if (typeof x.time !== 'number' || !Number.isSafeInteger(x.time) || x.time < 0) return undefined
    return { type: 'proof?', id: x.id, peer: x.peer, time: x.time }
  }
  if (x.type !== 'proof') return undefined
  if (x.key === undefined && x.sig === undefined) return { type: 'proof', id: x.id }
  if (typeof x.key !== 'string' || typeof x.sig !== 'string' || !B64.test(x.key) || !B64.test(x.sig))
    return undefined
  const key = new Uint8Array(Buffer.from(x.key, 'base64'))
  const sig = new Uint8Array(Buffer.from(x.sig, 'base64'))
  if (key.length !== ML_DSA_87_PUBLIC_KEY_BYTES || sig.length !== ML_DSA_87_SIGNATURE_BYTES) return undefined
  return { type: 'proof', id: x.id, key, sig }
}

/** The statement nonce: the last line (`nonce:<n>`) of an `x-signaling/2` statement. */
export function statementNonce(statement: string): string | undefined {
  const m = /\nnonce:([^\n]+)$/.exec(statement)
  return m?.[1]
}

export interface PeerProofsComponents {
  verify: StatementVerifier
  /** The peer ID a public key stands for (`@x/pqc`'s ID: the first 160 bits of SHA-256, hex). */
  peerIdFromPublicKey: (publicKey: Uint8Array) => string
  clock: Clock
  logger: Logger
}

/**
 * Both sides of peer proofs: the registrations this node hosts (kept while their records live, to answer other
 * nodes), and the proofs this node checked (fetched from the hosting node, verified once, cached).
 */
export class PeerProofs {
  readonly #c: PeerProofsComponents
  #links: ProofLinks | undefined
  /** Hosted registrations by peer ID; `until` is set once the peer left (its withdrawal record still lives). */
  readonly #hosted = new Map<string, { registration: Registration; until?: number }>()
  readonly #verified = new BoundedMap<string, true>(MAX_VERIFIED_PROOFS)
  readonly #failedUntil = new BoundedMap<string, number>(MAX_VERIFIED_PROOFS)
  readonly #inFlight = new Map<string, Promise<boolean>>()
  readonly #pending = new Map<number, { nodeId: string; resolve: (m: ProofMessage | undefined) => void }>()
  readonly #pendingPerNode = new Map<string, number>()
  readonly #served = new Map<string, { second: number; count: number }>()
  #nextId = 1
  #prunedAt = 0
  readonly stats = { served: 0, unknown: 0, dropped: 0, fetched: 0, verified: 0, rejected: 0, cached: 0 }

  constructor(components: PeerProofsComponents) {
    this.#c = components
  }

  /** Lets proofs travel (the P2P component calls it once its links exist, and with `undefined` at stop). */
  attach(links: ProofLinks | undefined): void {
    this.#links = links
  }

  /** Keeps a hosted peer's registration to answer requests for its statement. */
  host(registration: Registration): void {
    this.#hosted.set(registration.peerId, { registration })
  }

  /** The peer left: its registration is kept until `until` (its withdrawal record's expiry), then dropped. */
  release(peerId: string, until: number): void {
    const entry = this.#hosted.get(peerId)
    if (entry) entry.until = until
    this.#prune()
  }

  #prune(): void {
    const now = this.#c.clock.now()
    if (now - this.#prunedAt < 1_000) return
    this.#prunedAt = now
    for (const [peer, entry] of this.#hosted)
      if (entry.until !== undefined && entry.until < now) this.#hosted.delete(peer)
  }

  /** Hosted registrations (for stats). */
  get hosted(): number {
    return this.#hosted.size
  }

  /**
   * Whether `peerId` signed `statement` (its registration at `nodeId`): a cached answer, or the proof fetched
   * from `nodeId` over the links, its key checked against `peerId` and its signature verified.
   */
  verify(nodeId: string, peerId: string, statement: string, time: number): Promise<boolean> {
    const id = `${peerId}\n${statement}`
    if (this.#verified.has(id)) {
      this.stats.cached++
      return Promise.resolve(true)
    }
    if ((this.#failedUntil.get(id) ?? 0) > this.#c.clock.now()) return Promise.resolve(false)
    const pending = this.#inFlight.get(id)
    if (pending) return pending
    const promise = this.#fetchAndVerify(nodeId, peerId, statement, time).then((ok) => {
      if (ok) {
        this.#verified.set(id, true)
        this.stats.verified++
      } else {
        this.#failedUntil.set(id, this.#c.clock.now() + PROOF_RETRY_MS)
        this.stats.rejected++
      }
      return ok
    })
    const cleanup = (): void => {
      this.#inFlight.delete(id)
    }
    promise.then(cleanup, cleanup)
    this.#inFlight.set(id, promise)
    return promise
  }

  async #fetchAndVerify(nodeId: string, peerId: string, statement: string, time: number): Promise<boolean> {
    const answer = await this.#request(nodeId, peerId, time)
    if (answer?.type !== 'proof' || answer.key === undefined || answer.sig === undefined) return false
    let keyId: string
    try {
      keyId = this.#c.peerIdFromPublicKey(answer.key)
    } catch {
      return false
    }
    if (keyId !== peerId) return false
    try {
      return (await this.#c.verify(answer.key, enc.encode(statement), answer.sig)) === true
    } catch {
      return false
    }
  }

  async #request(nodeId: string, peer: string, time: number): Promise<ProofMessage | undefined> {
    const links = this.#links
    if (links === undefined) return undefined
    const count = this.#pendingPerNode.get(nodeId) ?? 0
    if (count >= MAX_PENDING_PER_NODE) return undefined
    const id = this.#nextId++
    this.#pendingPerNode.set(nodeId, count + 1)
    this.stats.fetched++
    let timer: unknown
    try {
      return await new Promise<ProofMessage | undefined>((resolve) => {
        this.#pending.set(id, { nodeId, resolve })
        timer = this.#c.clock.setTimeout(() => resolve(undefined), PROOF_TIMEOUT_MS)
        links
          .sendOrDial(nodeId, enc.encode(JSON.stringify({ type: 'proof?', id, peer, time })))
          .catch(() => resolve(undefined))
      })
    } finally {
      this.#c.clock.clearTimeout(timer)
      this.#pending.delete(id)
      const left = (this.#pendingPerNode.get(nodeId) ?? 1) - 1
      if (left <= 0) this.#pendingPerNode.delete(nodeId)
      else this.#pendingPerNode.set(nodeId, left)
    }
  }

  /** A message on the proof channel from `fromNodeId` (authenticated by its link). */
  handle(fromNodeId: string, payload: Uint8Array): void {
    const msg = parseProofMessage(payload)
    if (msg === undefined) {
      this.stats.dropped++
      return
    }
    if (msg.type === 'proof') {
      const waiter = this.#pending.get(msg.id)
      // Only the node asked may answer.
      if (waiter?.nodeId === fromNodeId) waiter.resolve(msg)
      else this.stats.dropped++
      return
    }
    if (!this.#allowServe(fromNodeId)) {
      this.stats.dropped++
      return
    }
    this.#prune()
    const entry = this.#hosted.get(msg.peer)
    const reg = entry?.registration
    const reply: Record<string, unknown> = { type: 'proof', id: msg.id }
    if (reg !== undefined && reg.time === msg.time) {
      reply.key = Buffer.from(reg.publicKey).toString('base64')
      reply.sig = Buffer.from(reg.signature).toString('base64')
      this.stats.served++
    } else this.stats.unknown++
    this.#links?.send(fromNodeId, enc.encode(JSON.stringify(reply)))
  }

  #allowServe(nodeId: string): boolean {
    const second = Math.floor(this.#c.clock.now() / 1000)
    const s = this.#served.get(nodeId)
    if (s === undefined || s.second !== second) {
      if (this.#served.size >= 4_096) this.#served.clear()
      this.#served.set(nodeId, { second, count: 1 })
      return true
    }
    return ++s.count <= PROOF_REQUESTS_PER_SECOND
  }
}
