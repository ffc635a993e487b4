/**
 * Test helpers: an in-memory {@link PeerDirectory}, an in-memory {@link NodeRelay} network (with a way to inject
 * forged envelopes), {@link startTestFederation} (N federated servers on 127.0.0.1), a virtual {@link Clock}, and
 * an in-memory WebSocket connection to a server ({@link createMemoryConnector}: real `ws` on both sides, the bytes
 * carried by a memory socket pair instead of TCP).
 *
 * @packageDocumentation
 */
import { createServer, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import WebSocket from 'ws'
import type { SignalingComponents, SignalingServer } from './api'
import { createSignalingServer } from './server'
import type { SignalingInit } from './options'
import type { Clock, NodeRelay, PeerDirectory, Registration } from './types'

/** An in-memory directory shared by every server of a test (what a DHT is to real nodes). */
export interface MemoryDirectory extends PeerDirectory {
  /** Peer → node records. */
  readonly records: ReadonlyMap<string, string>
  /** Peer → the signed registration its node announced. */
  readonly registrations: ReadonlyMap<string, Registration>
  /** Topic → members. */
  readonly topics: ReadonlyMap<string, ReadonlySet<string>>
  /** How many times `announce` was called. */
  announces: number
}

/** Creates an in-memory directory. `stats`, when given, is returned by `getStats()`. */
export function createMemoryDirectory(stats?: { dhtNodes: number; dhtBuckets: number }): MemoryDirectory {
  const records = new Map<string, string>()
  const registrations = new Map<string, Registration>()
  const topics = new Map<string, Set<string>>()
  const directory: MemoryDirectory = {
    records,
    registrations,
    topics,
    announces: 0,
    announce(peerId, nodeId, registration) {
      directory.announces++
      records.set(peerId, nodeId)
      registrations.set(peerId, registration)
      return Promise.resolve()
    },
    withdraw(peerId, nodeId) {
      if (records.get(peerId) === nodeId) {
        records.delete(peerId)
        registrations.delete(peerId)
      }
      return Promise.resolve()
    },
    lookup(peerId) {
      return Promise.resolve(records.get(peerId))
    },
    join(topic, peerId) {
      let members = topics.get(topic)
      if (members === undefined) topics.set(topic, (members = new Set()))
      members.add(peerId)
      return Promise.resolve()
    },
    leave(topic, peerId) {
      const members = topics.get(topic)
      members?.delete(peerId)
      if (members?.size === 0) topics.delete(topic)
      return Promise.resolve()
    },
    findTopic(topic, limit) {
      return Promise.resolve([...(topics.get(topic) ?? [])].slice(0, limit))
    },
  }
  if (stats !== undefined) directory.getStats = () => stats
  return directory
}

/** A set of in-memory relays that deliver frames to each other asynchronously, in order. */
export interface MemoryRelayNetwork {
  /** The relay endpoint of node `nodeId` (created on first use). */
  relay(nodeId: string): NodeRelay
  /**
   * Delivers `frame` to node `to` as if node `from` had sent it over an authenticated link: what a hostile
   * node can do. Resolves once the receiving handler ran.
   */
  inject(from: string, to: string, frame: string): Promise<void>
  /** Frames sent so far (injected ones not counted). */
  readonly sent: number
}

/** Creates an in-memory relay network. Sending to an unknown node rejects. */
export function createMemoryRelayNetwork(): MemoryRelayNetwork {
  const handlers = new Map<string, (from: string, frame: string) => void>()
  const network = {
    sent: 0,
    relay(nodeId: string): NodeRelay {
      return {
        nodeId,
        send(to, frame) {
          const handler = handlers.get(to)
          if (handler === undefined) return Promise.reject(new Error(`node ${to} unreachable`))
          network.sent++
          queueMicrotask(() => handlers.get(to)?.(nodeId, frame))
          return Promise.resolve()
        },
        onFrame(handler) {
          handlers.set(nodeId, handler)
          return () => {
            if (handlers.get(nodeId) === handler) handlers.delete(nodeId)
          }
        },
      }
    },
    inject(from: string, to: string, frame: string): Promise<void> {
      return new Promise((resolve) =>
        queueMicrotask(() => {
          handlers.get(to)?.(from, frame)
          resolve()
        }),
      )
    },
  }
  return network
}

/** A running federation of test servers. */
export interface TestFederation {
  /** The servers, in order; server `i` has node ID `node-i`. */
  servers: SignalingServer[]
  /** `ws://127.0.0.1:<port>` per server (append the endpoint path). */
  urls: string[]
  /** The directory every server announces its peers in. */
  directory: MemoryDirectory
  /** The relay network that carries signals between the servers. */
  network: MemoryRelayNetwork
  /** Closes every server. */
  close(): Promise<void>
}

/**
 * Starts `n` servers on 127.0.0.1 (port 0), sharing one memory directory and relay network.
 * Node IDs are `node-0` … `node-(n-1)`.
 */
export async function startTestFederation(
  n: number,
  components: Pick<SignalingComponents, 'verify' | 'peerIdFromPublicKey'> & Partial<SignalingComponents>,
  init: SignalingInit = {},
): Promise<TestFederation> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`"n" must be a positive integer, got ${n}`)
  const directory = createMemoryDirectory()
  const network = createMemoryRelayNetwork()
  const servers: SignalingServer[] = []
  const urls: string[] = []
  try {
    for (let i = 0; i < n; i++) {
      const server = createSignalingServer(
        { directory, relay: network.relay(`node-${i}`), ...components },
        { ...init, nodeId: `node-${i}` },
      )
      servers.push(server)
      const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
      urls.push(`ws://127.0.0.1:${port}`)
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.close()))
    throw err
  }
  return {
    servers,
    urls,
    directory,
    network,
    close: async () => {
      await Promise.all(servers.map((s) => s.close()))
    },
  }
}

// ------------------------------------------------------------------ virtual clock

/** A {@link Clock} whose time moves only when told to; timers run in time order, then creation order. */
export interface VirtualClock extends Clock {
  /** Moves time forward by `ms`, running every timer that falls due on the way, each at its own time. */
  advance(ms: number): void
  /** Timers scheduled and not yet run or cleared. */
  readonly pending: number
}

/** Creates a virtual clock starting at `start` (ms since the epoch). */
export function createVirtualClock(start = 1_700_000_000_000): VirtualClock {
  interface Timer {
    at: number
    seq: number
    fn: () => void
  }
  let now = start
  let seq = 0
  const timers = new Set<Timer>()
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const timer = { at: now + Math.max(0, ms || 0), seq: seq++, fn }
      timers.add(timer)
      return timer
    },
    clearTimeout(handle) {
      timers.delete(handle as Timer)
    },
    get pending() {
      return timers.size
    },
    advance(ms) {
      if (!(ms >= 0)) throw new RangeError(`"ms" must be a non-negative number, got ${ms}`)
      const end = now + ms
      for (;;) {
        let next: Timer | undefined
        for (const t of timers) {
          if (
            t.at <= end &&
            (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq))
          ) {
            next = t
          }
        }
        if (next === undefined) break
        timers.delete(next)
        now = next.at
        next.fn()
      }
      now = end
    },
  }
}

// ------------------------------------------------------------------ memory WebSocket

/** One end of an in-memory socket pair, shaped enough like a `net.Socket` for `http` and `ws`. */
class MemorySocket extends Duplex {
  peer: MemorySocket | undefined
  readonly remoteAddress: string
  readonly remotePort: number
  readonly remoteFamily: string
  /** The writer's callback waiting for this socket's reader to want more (back-pressure, as a kernel gives). */
  #blocked: (() => void) | undefined

  constructor(remoteAddress: string, remotePort: number) {
    super({ allowHalfOpen: false })
    this.remoteAddress = remoteAddress
    this.remotePort = remotePort
    this.remoteFamily = remoteAddress.includes(':') ? 'IPv6' : 'IPv4'
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const peer = this.peer
    if (peer === undefined || peer.destroyed) return callback(new Error('EPIPE: the other end is gone'))
    // Delivered on a later tick, as a socket delivers, so handlers never re-enter each other.
    process.nextTick(() => {
      if (peer.destroyed) return callback()
      if (peer.push(chunk)) callback()
      else peer.#blocked = callback
    })
  }

  override _read(): void {
    const blocked = this.#blocked
    this.#blocked = undefined
    blocked?.()
  }

  override _final(callback: (err?: Error | null) => void): void {
    const peer = this.peer
    process.nextTick(() => {
      if (peer !== undefined && !peer.destroyed) peer.push(null)
      callback()
    })
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const peer = this.peer
    this.peer = undefined
    const blocked = this.#blocked
    this.#blocked = undefined
    blocked?.()
    if (peer !== undefined && !peer.destroyed) {
      process.nextTick(() => {
        peer.push(null)
        peer.destroy()
      })
    }
    callback(err)
  }

  setNoDelay(): this {
    return this
  }

  setKeepAlive(): this {
    return this
  }

  setTimeout(): this {
    return this
  }

  ref(): this {
    return this
  }

  unref(): this {
    return this
  }
}

/** Options of {@link MemoryConnector.connect}. */
export interface MemoryConnectOptions {
  /** The client's address as the server sees it. @default '127.0.0.1' */
  address?: string
  /** Extra request headers (a `Host` header sets the host the client "dialed"). */
  headers?: Record<string, string>
}

/** Opens WebSocket connections to a server over memory socket pairs: real `ws` and `http` code, no TCP. */
export interface MemoryConnector {
  /** A `ws` client connected to `path` (with its query) of the server, e.g. `/p2p-signaling`. */
  connect(path: string, options?: MemoryConnectOptions): WebSocket
  /** Closes the connector's HTTP parser (not the signaling server). */
  close(): void
}

/** A connector for `server`'s upgrades and REST requests. */
export function createMemoryConnector(
  server: Pick<SignalingServer, 'handleUpgrade' | 'handleRequest'>,
): MemoryConnector {
  const http: Server = createServer((req, res) => {
    if (!server.handleRequest(req, res)) res.writeHead(404).end()
  })
  http.on('upgrade', (req, socket, head) => {
    if (!server.handleUpgrade(req, socket, head)) socket.destroy()
  })
  let port = 40_000
  return {
    connect(path, options = {}) {
      const client = new MemorySocket('127.0.0.1', 0)
      const serverSide = new MemorySocket(options.address ?? '127.0.0.1', port++)
      client.peer = serverSide
      serverSide.peer = client
      http.emit('connection', serverSide)
      return new WebSocket(`ws://memory.test${path}`, {
        perMessageDeflate: false,
        headers: options.headers,
        createConnection: () => client as unknown as Socket,
      })
    },
    close() {
      http.close()
    },
  }
}

export type { Clock, NodeRelay, PeerDirectory, Registration } from './types'
