/**
 * Test helpers: an in-memory {@link PeerDirectory}, an in-memory {@link NodeRelay} network, and
 * {@link startTestFederation}, which starts N federated servers on 127.0.0.1.
 *
 * @packageDocumentation
 */
import {
  createSignalingServer,
  type SignalingComponents,
  type SignalingInit,
  type SignalingServer,
} from './server'
import type { NodeRelay, PeerDirectory } from './types'

/** An in-memory directory shared by every server of a test (what a DHT is to real nodes). */
export interface MemoryDirectory extends PeerDirectory {
  /** Peer → node records. */
  readonly records: ReadonlyMap<string, string>
  /** Topic → members. */
  readonly topics: ReadonlyMap<string, ReadonlySet<string>>
  /** How many times `announce` was called. */
  announces: number
}

/** Creates an in-memory directory. `stats`, when given, is returned by `getStats()`. */
export function createMemoryDirectory(stats?: { dhtNodes: number; dhtBuckets: number }): MemoryDirectory {
  const records = new Map<string, string>()
  const topics = new Map<string, Set<string>>()
  const directory: MemoryDirectory = {
    records,
    topics,
    announces: 0,
    announce(peerId, nodeId) {
      directory.announces++
      records.set(peerId, nodeId)
      return Promise.resolve()
    },
    withdraw(peerId, nodeId) {
      if (records.get(peerId) === nodeId) records.delete(peerId)
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
  /** Frames sent so far. */
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
  }
  return network
}

/** A running federation of test servers. */
export interface TestFederation {
  servers: SignalingServer[]
  /** `ws://127.0.0.1:<port>` per server (append the endpoint path). */
  urls: string[]
  directory: MemoryDirectory
  network: MemoryRelayNetwork
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

export type { NodeRelay, PeerDirectory } from './types'
