/**
 * A Kademlia DHT: 160-bit IDs, 160 k-buckets with exact XOR ordering, iterative (optionally disjoint)
 * lookups, records with TTL, write tokens and injected `validate` / `select`, UDP and in-memory transports.
 *
 * @packageDocumentation
 * @example
 * ```ts
 * import { createKademlia, createUdpTransport } from '@x/kademlia'
 *
 * const a = createKademlia({ transport: await createUdpTransport({ host: '127.0.0.1', port: 0 }) })
 * const tb = await createUdpTransport({ host: '127.0.0.1', port: 0 })
 * const b = createKademlia({ transport: tb })
 * await a.start()
 * await b.start()
 * const key = new Uint8Array(20).fill(7)
 * await b.put(key, new TextEncoder().encode('hello'))
 * await a.bootstrap([tb.address])
 * const value = await a.get(key) // Uint8Array of 'hello'
 * await a.stop()
 * await b.stop()
 * ```
 */
export {
  createKademlia,
  LOOKUP_DURATION_BUCKETS_S,
  type KademliaComponents,
  type KademliaInit,
  type KademliaNode,
  type KademliaStats,
  type OperationOptions,
} from './kademlia'
export {
  RoutingTable,
  isLoopback,
  type AddResult,
  type Contact,
  type RoutingTableInit,
  type TableEntry,
} from './routing-table'
export { createUdpTransport, type UdpTransport, type UdpTransportInit } from './udp-transport'
export { KademliaError, type KademliaErrorCode } from './errors'
export { type LookupResult, type Responder } from './lookup'
export { type AdmitFn, type InboundKind, type RpcStats } from './rpc'
export type { MetricLabels, MetricsRegistry } from './types'
export { type KademliaState, STATE_VERSION } from './state'
export {
  decodeMessage,
  encodeMessage,
  MessageType,
  StoreStatus,
  PROTOCOL_VERSION,
  MAX_DATAGRAM_BYTES,
  MAX_VALUE_BYTES,
  type Message,
  type MessageHeader,
} from './codec'
export {
  commonPrefixLength,
  compareDistance,
  fromHex,
  idEquals,
  toHex,
  xorDistance,
  ID_LENGTH_BYTES,
} from './id'
export { ipGroup, parseAddress, formatAddress, type ParsedAddress } from './address'
export { parsePeerAddress, type PeerAddress, type ResolveFn } from './resolve'
export {
  silentLogger,
  type Clock,
  type HashFunction,
  type Logger,
  type RandomSource,
  type Transport,
} from './types'
