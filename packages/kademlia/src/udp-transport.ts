/**
 * UDP transport on node:dgram, IPv4 or IPv6 (chosen from `host`). Oversized datagrams are dropped
 * before they reach the node; send errors (unreachable, bad address) are counted, never thrown.
 */
import { createSocket, type Socket } from 'node:dgram'
import { isIPv4 } from 'node:net'
import { formatAddress, parseAddress } from './address'
import { MAX_DATAGRAM_BYTES } from './codec'
import { KademliaError } from './errors'
import type { Transport } from './types'

/** Options of {@link createUdpTransport}. */
export interface UdpTransportInit {
  /** Address to bind. `::` or an IPv6 literal binds IPv6. @default '0.0.0.0' */
  host?: string
  /** Port; 0 picks a free one. @default 0 */
  port?: number
  /** For `::`, also accept IPv4 (dual stack). @default false */
  dualStack?: boolean
}

/** A bound UDP transport. */
export interface UdpTransport extends Transport {
  /** The bound address as `host:port` / `[v6]:port`. */
  readonly address: string
  /** The bound port (the one the system picked when `port` was 0). */
  readonly port: number
  /** `[4]` for an IPv4 socket, `[6]` for IPv6, `[4, 6]` for a dual-stack one. */
  readonly families: readonly (4 | 6)[]
  /** Datagrams by fate since the socket was bound. */
  readonly stats: {
    /** Not sent: an address that is not an IP literal, an oversized datagram, or a socket error. */
    sendErrors: number
    /** Received and dropped for being larger than {@link MAX_DATAGRAM_BYTES}. */
    oversized: number
    /** Received, oversized ones included. */
    received: number
    /** Handed to the socket. */
    sent: number
  }
}

/** Binds a UDP socket and resolves once it is listening. */
export async function createUdpTransport(init: UdpTransportInit = {}): Promise<UdpTransport> {
  const host = init.host ?? '0.0.0.0'
  const port = init.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError("'port' must be 0..65535")
  const ipv6 = host.includes(':')
  const socket = createSocket({ type: ipv6 ? 'udp6' : 'udp4', ipv6Only: ipv6 && init.dualStack !== true })
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void =>
      reject(new KademliaError('X_KAD_TRANSPORT', `cannot bind udp ${host}:${port}`, { cause: err }))
    socket.once('error', onError)
    socket.bind(port, host, () => {
      socket.off('error', onError)
      resolve()
    })
  })
  return new Udp(socket, host, ipv6 ? (init.dualStack === true ? [4, 6] : [6]) : [4])
}

const V4_MAPPED = '::ffff:'

class Udp implements UdpTransport {
  readonly stats = { sendErrors: 0, oversized: 0, received: 0, sent: 0 }
  readonly #socket: Socket
  readonly #host: string
  readonly families: readonly (4 | 6)[]
  /** A dual-stack socket sends IPv4 as `::ffff:a.b.c.d` and hears IPv4 senders under that name too. */
  readonly #mapsV4: boolean
  #handler: (bytes: Uint8Array, from: string) => void = () => {}
  #closed = false

  constructor(socket: Socket, host: string, families: readonly (4 | 6)[]) {
    this.#socket = socket
    this.#host = host
    this.families = families
    this.#mapsV4 = families.length === 2
    socket.on('error', () => {
      this.stats.sendErrors++
    })
    socket.on('message', (msg, rinfo) => {
      this.stats.received++
      if (msg.length > MAX_DATAGRAM_BYTES) {
        this.stats.oversized++
        return
      }
      try {
        // IPv4 peers of a dual-stack socket keep their IPv4 address, the one seeds and tables use.
        const from =
          this.#mapsV4 && rinfo.address.startsWith(V4_MAPPED) && isIPv4(rinfo.address.slice(V4_MAPPED.length))
            ? rinfo.address.slice(V4_MAPPED.length)
            : rinfo.address
        this.#handler(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), formatAddress(from, rinfo.port))
      } catch {
        // The node never throws from its handler; this guards a custom one.
      }
    })
  }

  get port(): number {
    return this.#socket.address().port
  }

  get address(): string {
    const a = this.#socket.address()
    const host = this.#host === '0.0.0.0' ? '127.0.0.1' : this.#host === '::' ? '::1' : a.address
    return formatAddress(host, a.port)
  }

  send(bytes: Uint8Array, address: string): void {
    if (this.#closed) return
    const p = parseAddress(address)
    if (p === undefined || bytes.length > MAX_DATAGRAM_BYTES) {
      this.stats.sendErrors++
      return
    }
    this.stats.sent++
    try {
      const host = this.#mapsV4 && p.family === 4 ? V4_MAPPED + p.host : p.host
      this.#socket.send(bytes, p.port, host, (err) => {
        if (err) this.stats.sendErrors++
      })
    } catch {
      this.stats.sendErrors++
    }
  }

  onMessage(handler: (bytes: Uint8Array, from: string) => void): void {
    this.#handler = handler
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#closed = true
    return new Promise((resolve) => this.#socket.close(() => resolve()))
  }
}
