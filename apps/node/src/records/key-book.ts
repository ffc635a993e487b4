import type { Logger } from 'pino'
import { BoundedMap, type Clock } from './util'
import { parseHelloData } from './format'

/** Verified ML-DSA-44 record keys kept (least recently learnt evicted). */
export const MAX_RECORD_KEYS = 4_096
/** How long `learn` waits for a node's hello over a fresh link. */
export const BINDING_TIMEOUT_MS = 5_000
/** A node whose record key could not be learnt is not dialed again for this long. */
export const BINDING_RETRY_MS = 30_000
/** At most this many nodes are being learnt at once; records needing more are refused (and re-sent later). */
export const MAX_BINDING_DIALS = 4

/** What the key book needs from the P2P links: a way to open a link (the dial policy applies there). */
export interface KeyBookLinks {
  connect(nodeId: string, address?: string): Promise<unknown>
}

/** Checks an ML-DSA-87 certificate over a record key (off the main thread in the node: the worker pool). */
export type CertificateVerifier = (
  identityPublicKey: Uint8Array,
  recordPublicKey: Uint8Array,
  certificate: Uint8Array,
) => Promise<boolean>

/**
 * Record keys of other nodes, learnt only from the `hello` of an authenticated link: the link proves the node's
 * ML-DSA-87 identity, and the hello's certificate binds its ML-DSA-44 record key to it. `learn` opens a link when
 * the key is unknown; the links are attached by the P2P component once they exist (before that, records of other
 * nodes simply cannot be validated yet).
 */
export class RecordKeyBook {
  readonly #keys = new BoundedMap<string, Uint8Array>(MAX_RECORD_KEYS)
  readonly #waiters = new Map<string, Set<(key: Uint8Array) => void>>()
  readonly #inFlight = new Map<string, Promise<Uint8Array | undefined>>()
  readonly #failedUntil = new BoundedMap<string, number>(1_024)
  readonly #verify: CertificateVerifier
  readonly #clock: Clock
  readonly #log: Logger
  #links: KeyBookLinks | undefined
  readonly stats = { learnt: 0, badCertificates: 0, dials: 0, refused: 0, failed: 0 }

  constructor(components: { verifyCertificate: CertificateVerifier; clock: Clock; logger: Logger }) {
    this.#verify = components.verifyCertificate
    this.#clock = components.clock
    this.#log = components.logger
  }

  /** Lets `learn` open links (the P2P component calls it once its links exist, and with `undefined` at stop). */
  attach(links: KeyBookLinks | undefined): void {
    this.#links = links
  }

  /** The record key of `nodeId`, if already learnt. */
  get(nodeId: string): Uint8Array | undefined {
    return this.#keys.get(nodeId)
  }

  /**
   * A hello arrived on an authenticated link from `nodeId` whose identity key is `identityPublicKey`: keeps its
   * record key when the certificate verifies. `false` for a missing or bad certificate (the caller drops the
   * link: a node that lies about its record key is not worth a link).
   */
  async acceptHello(
    nodeId: string,
    identityPublicKey: Uint8Array,
    data: Uint8Array | undefined,
  ): Promise<boolean> {
    const parsed = parseHelloData(data)
    // The same record key again from the same (link-authenticated) node: it was certified for this node ID already.
    const known = this.#keys.get(nodeId)
    if (parsed !== undefined && known !== undefined && Buffer.compare(known, parsed.recordPub) === 0)
      return true
    if (
      parsed === undefined ||
      !(await this.#verify(identityPublicKey, parsed.recordPub, parsed.certificate))
    ) {
      this.stats.badCertificates++
      this.#log.warn({ nodeId }, 'hello with a bad record-key certificate')
      return false
    }
    this.#keys.set(nodeId, parsed.recordPub)
    this.#failedUntil.delete(nodeId)
    this.stats.learnt++
    const waiters = this.#waiters.get(nodeId)
    this.#waiters.delete(nodeId)
    for (const w of waiters ?? []) w(parsed.recordPub)
    return true
  }

  /**
   * The record key of `nodeId`: known, or learnt by linking to the node at `address` (the link manager's dial
   * policy decides whether that address may be dialed at all). At most `MAX_BINDING_DIALS` at once; a node that
   * failed is not tried again for `BINDING_RETRY_MS`.
   */
  learn(nodeId: string, address: string | undefined): Promise<Uint8Array | undefined> {
    const known = this.#keys.get(nodeId)
    if (known) return Promise.resolve(known)
    const pending = this.#inFlight.get(nodeId)
    if (pending) return pending
    const links = this.#links
    if (
      links === undefined ||
      (this.#failedUntil.get(nodeId) ?? 0) > this.#clock.now() ||
      this.#inFlight.size >= MAX_BINDING_DIALS
    ) {
      this.stats.refused++
      return Promise.resolve(undefined)
    }
    const promise = this.#learn(links, nodeId, address).finally(() => this.#inFlight.delete(nodeId))
    this.#inFlight.set(nodeId, promise)
    return promise
  }

  async #learn(
    links: KeyBookLinks,
    nodeId: string,
    address: string | undefined,
  ): Promise<Uint8Array | undefined> {
    this.stats.dials++
    let timer: unknown
    try {
      const key = await Promise.race([
        // The hello (with the certificate) is the first record on a new link; an open link already had one.
        new Promise<Uint8Array>((resolve) => {
          let set = this.#waiters.get(nodeId)
          if (!set) this.#waiters.set(nodeId, (set = new Set()))
          set.add(resolve)
          void links.connect(nodeId, address).catch(() => undefined)
        }),
        new Promise<undefined>((resolve) => {
          timer = this.#clock.setTimeout(() => resolve(undefined), BINDING_TIMEOUT_MS)
        }),
      ])
      if (key) return key
    } finally {
      this.#clock.clearTimeout(timer)
    }
    this.#waiters.delete(nodeId)
    const late = this.#keys.get(nodeId)
    if (late) return late
    this.stats.failed++
    this.#failedUntil.set(nodeId, this.#clock.now() + BINDING_RETRY_MS)
    this.#log.debug({ nodeId }, 'record key not learnt')
    return undefined
  }
}
