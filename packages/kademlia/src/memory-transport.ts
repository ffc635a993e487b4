/**
 * In-memory datagram network for tests and the simulator: every transport is a named endpoint; delivery
 * goes through the injected clock with configurable latency, jitter and loss (from an injected PRNG).
 */
import { parsePeerAddress } from './resolve'
import type { Clock, Transport } from './types'

/** Options of {@link createMemoryNetwork}. */
export interface MemoryNetworkInit {
  /** Delivers datagrams after their latency: a virtual clock makes a test deterministic. */
  clock: Clock
  /** One-way latency. @default 20 */
  latencyMs?: number
  /** Uniform extra latency in [0, jitterMs). @default 0 */
  jitterMs?: number
  /** Probability a datagram is lost. @default 0 */
  loss?: number
  /** Uniform [0, 1) source. @default Math.random */
  random?: () => number
  /**
   * Endpoints are IP literals (`10.0.0.1:4000`, `[::1]:5`) and declare `families: [4, 6]`, so nodes treat
   * them as they treat UDP: seed addresses are checked and host names resolved (with an injected resolver).
   * @default false (endpoints are any names)
   */
  ip?: boolean
}

/** A simulated datagram network; made by {@link createMemoryNetwork}. */
export interface MemoryNetwork {
  /** Creates an endpoint; throws if the address is taken. */
  createTransport(address: string): MemoryTransport
  /** Datagrams by fate since the network was made. */
  readonly stats: {
    /** Handed to `send` on an open endpoint. */
    sent: number
    /** Reached an endpoint with a handler. */
    delivered: number
    /** Dropped by the simulated `loss`. */
    lost: number
    /** Addressed to an endpoint that does not exist or has no handler (closed). */
    unreachable: number
  }
}

/** One endpoint of a {@link MemoryNetwork}. */
export interface MemoryTransport extends Transport {
  /** The endpoint's address; others send to it by this string. */
  readonly address: string
}

/** Creates an in-memory network; endpoints come from {@link MemoryNetwork.createTransport}. */
export function createMemoryNetwork(init: MemoryNetworkInit): MemoryNetwork {
  const { clock } = init
  const latency = init.latencyMs ?? 20
  const jitter = init.jitterMs ?? 0
  const loss = init.loss ?? 0
  const random = init.random ?? Math.random
  const endpoints = new Map<string, Endpoint>()
  const stats = { sent: 0, delivered: 0, lost: 0, unreachable: 0 }

  interface Endpoint {
    handler: ((bytes: Uint8Array, from: string) => void) | undefined
  }

  return {
    stats,
    createTransport(address: string): MemoryTransport {
      if (endpoints.has(address)) throw new RangeError(`'address' ${address} is already in use`)
      if (init.ip === true && !isIpEndpoint(address)) {
        throw new RangeError(
          `'address' must be a canonical IP literal with a port on this network: ${address}`,
        )
      }
      const self: Endpoint = { handler: undefined }
      endpoints.set(address, self)
      let closed = false
      return {
        address,
        ...(init.ip === true ? { families: [4, 6] as const } : {}),
        send(bytes: Uint8Array, to: string): void {
          if (closed) return
          stats.sent++
          if (loss > 0 && random() < loss) {
            stats.lost++
            return
          }
          // Whole milliseconds: events that share a timestamp run in one batch of the virtual clock.
          const delay = Math.round(jitter > 0 ? latency + random() * jitter : latency)
          clock.setTimeout(() => {
            const target = endpoints.get(to)
            if (target?.handler === undefined) {
              stats.unreachable++
              return
            }
            stats.delivered++
            target.handler(bytes, address)
          }, delay)
        },
        onMessage(handler) {
          self.handler = handler
        },
        close() {
          if (closed) return
          closed = true
          self.handler = undefined
          if (endpoints.get(address) === self) endpoints.delete(address)
        },
      }
    },
  }
}

/** Whether `address` is an IP literal with a port, written as a socket would report it. */
function isIpEndpoint(address: string): boolean {
  try {
    const t = parsePeerAddress(address, 'address')
    return t.kind === 'ip' && t.address === address
  } catch {
    return false
  }
}
