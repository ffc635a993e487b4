/**
 * Federation: signals between peers on different nodes, over the injected {@link NodeRelay}, with the injected
 * {@link PeerDirectory} saying which node hosts which peer.
 *
 * Envelopes are JSON text frames:
 * - `{"t":"deliver","from":P,"to":Q,"type":"offer"|"answer"|"candidate","data":{…}}`: a signal from P (hosted
 *   by the sending node) to Q (hosted by the receiving node);
 * - `{"t":"gone","to":P,"peer":Q}`: Q, to whom P's signal was forwarded, is not on the receiving node.
 *
 * Another node is authenticated by its link, never trusted: an envelope is bounded, parsed and validated like a
 * frame from a socket, only relay types pass, the signal is re-serialised here (never forwarded as text), and a
 * `deliver` is dropped and counted unless the directory says its `from` is hosted by the node that sent it.
 */
import type { AddressShare } from './admission'
import type { Conn } from './connection'
import type { ServerCore } from './endpoints/endpoint'
import { isPeerId, RELAY_TYPES, type RelayType } from './protocol'
import type { NodeRelay, PeerDirectory } from './types'

/** How long a directory answer (peer → node, or "nowhere") is reused. */
const ROUTE_TTL_MS = 10_000
/** A mismatching answer younger than this is not asked again (a stream of forged frames costs one lookup). */
const REVALIDATE_MS = 1_000
/** Bound on cached answers. */
const MAX_ROUTES = 10_000
/** Senders remembered per forwarded target, so that only they can be told it is gone. */
const MAX_SENDERS_PER_TARGET = 16
/** Bytes an envelope may add around a signal of `maxFrameBytes`. */
const ENVELOPE_OVERHEAD_BYTES = 512

/** What the native endpoint lends the federation. */
export interface LocalPeers {
  /** The open connection registered as `id`. */
  peer(id: string): Conn | undefined
  /** Tells local peer `from` that `to` cannot be reached. */
  notFound(from: string, to: string): void
  /** Holds `frame` from local peer `from` for `to`, which no node hosts right now. */
  hold(to: string, frame: string, from: string): void
}

interface Route {
  /** The hosting node, or `undefined` when the directory knew none. */
  nodeId: string | undefined
  at: number
}

/**
 * A validated signal. `data` is kept as JSON text: signals wait here for lookups, and a parsed 64 KiB `data` can
 * take well over 1 MB of heap where its text takes 64 KiB.
 */
interface Signal {
  from: string
  to: string
  type: RelayType
  data: string
}

interface Outbound extends Signal {
  /** The sender's address share, which counts this signal while it waits. */
  share: AddressShare
}

interface Inbound extends Signal {
  /** The node that relayed it. */
  fromNode: string
}

/**
 * The JSON text of a signal's `data`, or `undefined` when it cannot be serialised: `JSON.stringify` recurses, so
 * `data` nested a few thousand levels deep (which `JSON.parse` accepts) overflows the stack.
 */
export function dataText(data: object): string | undefined {
  try {
    return JSON.stringify(data)
  } catch {
    return undefined
  }
}

/** The frame a peer receives for `signal`. */
function signalFrame({ from, type, to, data }: Signal): string {
  return `{"from":${JSON.stringify(from)},"type":"${type}","to":${JSON.stringify(to)},"data":${data}}`
}

export class Federation {
  readonly #core: ServerCore
  readonly #relay: NodeRelay
  readonly #directory: PeerDirectory
  readonly #local: LocalPeers
  /** Directory answers, for forwarding and for origin checks. */
  readonly #routes = new Map<string, Route>()
  /** Targets recently forwarded to: the node and the local senders, the only ones a `gone` may concern. */
  readonly #forwarded = new Map<string, { nodeId: string; senders: Set<string>; at: number }>()
  /** Outbound signals waiting for a lookup of their target, in order. */
  readonly #outbound = new Map<string, Outbound[]>()
  /** Inbound signals waiting for a lookup of their sender, in order. */
  readonly #inbound = new Map<string, Inbound[]>()
  /** Signals in `#outbound` and in `#inbound`: each at most `maxHeldTotal`. */
  #outboundSignals = 0
  #inboundSignals = 0
  /** Signals in `#inbound` per relaying node: each at most `maxHeldPerAddress`, so one node cannot fill it. */
  readonly #inboundByNode = new Map<string, number>()
  #unsubscribe: (() => void) | undefined

  constructor(core: ServerCore, relay: NodeRelay, directory: PeerDirectory, local: LocalPeers) {
    this.#core = core
    this.#relay = relay
    this.#directory = directory
    this.#local = local
  }

  start(): void {
    this.#unsubscribe = this.#relay.onFrame((fromNode, frame) => this.receive(fromNode, frame))
  }

  stop(): void {
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
    this.#outbound.clear()
    this.#inbound.clear()
    this.#routes.clear()
    this.#forwarded.clear()
  }

  // ---------------------------------------------------------------- outbound

  /**
   * Sends a signal from local peer `from` to `to`, which is not local. Signals for one target stay in order
   * behind one lookup. `data` is the signal's data as JSON text ({@link dataText}); a waiting signal counts
   * against `share`, the sender's address share.
   */
  route(to: string, from: string, type: RelayType, data: string, share: AddressShare): void {
    const known = this.#fresh(to)
    const queue = this.#outbound.get(to)
    if (queue === undefined && known?.nodeId !== undefined && known.nodeId !== this.#core.nodeId) {
      this.#forward(known.nodeId, { from, to, type, data })
      return
    }
    const { maxHeldPerPeer, maxHeldTotal } = this.#core.options
    if (
      this.#outboundSignals >= maxHeldTotal ||
      share.held >= this.#core.options.maxHeldPerAddress ||
      (queue !== undefined && queue.length >= maxHeldPerPeer)
    ) {
      return this.#local.notFound(from, to)
    }
    this.#outboundSignals++
    share.held++
    if (queue !== undefined) {
      queue.push({ from, to, type, data, share })
      return
    }
    const waiting: Outbound[] = [{ from, to, type, data, share }]
    this.#outbound.set(to, waiting)
    void this.#lookup(to).then((nodeId) => {
      this.#outbound.delete(to)
      this.#outboundSignals -= waiting.length
      for (const signal of waiting) {
        signal.share.held--
        this.#core.releaseShare(signal.share)
      }
      if (this.#core.closing) return
      for (const signal of waiting) {
        const local = this.#local.peer(to)
        if (local !== undefined) {
          if (this.#core.send(local, signalFrame(signal), signal.from)) this.#core.counters.relayed++
        } else if (nodeId !== undefined && nodeId !== this.#core.nodeId) {
          this.#forward(nodeId, signal)
        } else {
          this.#local.hold(to, signalFrame(signal), signal.from)
        }
      }
    })
  }

  #forward(nodeId: string, signal: Signal): void {
    const fail = (err: unknown): void => {
      this.#core.log.debug({ err: (err as Error)?.message, nodeId }, 'relay send failed')
      this.#routes.delete(signal.to)
      this.#local.notFound(signal.from, signal.to)
    }
    this.#remember(nodeId, signal)
    try {
      const { from, to, type, data } = signal
      const envelope = `{"t":"deliver","from":${JSON.stringify(from)},"to":${JSON.stringify(to)},"type":"${type}","data":${data}}`
      const result = this.#relay.send(nodeId, envelope)
      if (result instanceof Promise) result.catch(fail)
      this.#core.counters.forwarded++
      this.#core.counters.relayed++
    } catch (err) {
      fail(err)
    }
  }

  #remember(nodeId: string, { from, to }: Signal): void {
    const now = this.#core.clock.now()
    let entry = this.#forwarded.get(to)
    if (entry === undefined || entry.nodeId !== nodeId || now - entry.at > ROUTE_TTL_MS) {
      if (this.#forwarded.size >= MAX_ROUTES) this.#forwarded.clear()
      entry = { nodeId, senders: new Set(), at: now }
      this.#forwarded.set(to, entry)
    }
    entry.at = now
    if (entry.senders.size < MAX_SENDERS_PER_TARGET) entry.senders.add(from)
  }

  // ---------------------------------------------------------------- inbound

  /** A frame from node `fromNode`: hostile input, bounded and validated here. */
  receive(fromNode: string, raw: string): void {
    if (this.#core.closing) return
    if (typeof raw !== 'string' || raw.length > this.#core.options.maxFrameBytes + ENVELOPE_OVERHEAD_BYTES) {
      return this.#drop(fromNode, 'envelope too large')
    }
    let env: unknown
    try {
      env = JSON.parse(raw)
    } catch {
      return this.#drop(fromNode, 'envelope is not JSON')
    }
    if (typeof env !== 'object' || env === null || Array.isArray(env)) {
      return this.#drop(fromNode, 'envelope is not an object')
    }
    const e = env as Record<string, unknown>
    if (e.t === 'deliver') {
      const { from, to, type, data } = e
      if (
        !isPeerId(from) ||
        !isPeerId(to) ||
        !(RELAY_TYPES as readonly unknown[]).includes(type) ||
        typeof data !== 'object' ||
        data === null
      ) {
        return this.#drop(fromNode, 'malformed deliver')
      }
      const text = dataText(data)
      if (text === undefined) return this.#drop(fromNode, 'signal nested too deeply')
      this.#checkOrigin({ fromNode, from, type: type as RelayType, to, data: text })
    } else if (e.t === 'gone') {
      const { to, peer } = e
      if (!isPeerId(to) || !isPeerId(peer)) return this.#drop(fromNode, 'malformed gone')
      // Only the node a signal was forwarded to can say its target is gone, and only to that signal's sender.
      const forwarded = this.#forwarded.get(peer)
      if (forwarded?.nodeId !== fromNode || !forwarded.senders.has(to)) {
        return this.#drop(fromNode, 'gone from a node not asked')
      }
      this.#forwarded.delete(peer)
      this.#routes.delete(peer)
      this.#local.notFound(to, peer)
    } else {
      this.#drop(fromNode, 'unknown envelope')
    }
  }

  /** Delivers `signal` only if the directory says `from` is hosted by the node that sent it. */
  #checkOrigin(signal: Inbound): void {
    const from = signal.from
    const waiting = this.#inbound.get(from)
    if (waiting === undefined) {
      const known = this.#fresh(from)
      if (known !== undefined) {
        if (known.nodeId === signal.fromNode) return this.#deliver(signal)
        if (this.#core.clock.now() - known.at < REVALIDATE_MS) {
          return this.#drop(signal.fromNode, 'sender is not hosted by the relaying node')
        }
      }
    }
    const byNode = this.#inboundByNode.get(signal.fromNode) ?? 0
    if (
      this.#inboundSignals >= this.#core.options.maxHeldTotal ||
      byNode >= this.#core.options.maxHeldPerAddress
    ) {
      return this.#drop(signal.fromNode, 'too many origin checks')
    }
    if (waiting !== undefined && waiting.length >= this.#core.options.maxHeldPerPeer) {
      return this.#drop(signal.fromNode, 'origin check queue full')
    }
    this.#inboundSignals++
    this.#inboundByNode.set(signal.fromNode, byNode + 1)
    if (waiting !== undefined) {
      waiting.push(signal)
      return
    }
    const queue = [signal]
    this.#inbound.set(from, queue)
    void this.#lookup(from).then((nodeId) => {
      this.#inbound.delete(from)
      this.#inboundSignals -= queue.length
      for (const item of queue) {
        const left = (this.#inboundByNode.get(item.fromNode) ?? 1) - 1
        if (left > 0) this.#inboundByNode.set(item.fromNode, left)
        else this.#inboundByNode.delete(item.fromNode)
      }
      if (this.#core.closing) return
      for (const item of queue) {
        if (nodeId !== undefined && nodeId === item.fromNode) this.#deliver(item)
        else this.#drop(item.fromNode, 'sender is not hosted by the relaying node')
      }
    })
  }

  #deliver(signal: Inbound): void {
    const target = this.#local.peer(signal.to)
    if (target === undefined) {
      this.#send(signal.fromNode, JSON.stringify({ t: 'gone', to: signal.from, peer: signal.to }))
      return
    }
    const frame = signalFrame(signal)
    if (frame.length > this.#core.options.maxFrameBytes)
      return this.#drop(signal.fromNode, 'signal too large')
    if (this.#core.send(target, frame, signal.from)) this.#core.counters.relayed++
  }

  #drop(fromNode: string, reason: string): void {
    this.#core.counters.relayRejected++
    this.#core.log.debug({ fromNode, reason }, 'relay envelope dropped')
  }

  #send(nodeId: string, frame: string): void {
    try {
      const result = this.#relay.send(nodeId, frame)
      if (result instanceof Promise) result.catch(() => {})
    } catch {
      // Best effort: the origin's own hold/expiry covers the loss.
    }
  }

  // ---------------------------------------------------------------- directory

  #fresh(peer: string): Route | undefined {
    const route = this.#routes.get(peer)
    if (route === undefined) return undefined
    const age = this.#core.clock.now() - route.at
    // A miss is asked again soon: the peer may just be registering elsewhere.
    if (age < (route.nodeId === undefined ? REVALIDATE_MS : ROUTE_TTL_MS)) return route
    this.#routes.delete(peer)
    return undefined
  }

  async #lookup(peer: string): Promise<string | undefined> {
    let nodeId: string | undefined
    try {
      const answer = await this.#directory.lookup(peer)
      nodeId = typeof answer === 'string' && answer.length > 0 ? answer : undefined
    } catch (err) {
      this.#core.log.warn({ err: (err as Error).message, peer }, 'directory lookup failed')
      return undefined
    }
    if (this.#routes.size >= MAX_ROUTES) this.#routes.clear()
    this.#routes.set(peer, { nodeId, at: this.#core.clock.now() })
    return nodeId
  }
}
