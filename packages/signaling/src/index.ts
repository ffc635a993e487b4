/**
 * WebRTC signaling over WebSocket: peers prove their key by signing a statement bound to the node, the host they
 * dialed and the time; relay SDP offers, answers and ICE candidates with a server-set sender; join topics and
 * discover each other; servers federate through an injected directory and node relay, treating other nodes'
 * frames as hostile input. `/y-webrtc` and `/peerjs` endpoints keep existing apps working.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http'
 * import { createSignalingServer } from '@x/signaling'
 * import { ml_dsa87 } from '@noble/post-quantum/ml-dsa.js'
 * import { createHash } from 'node:crypto'
 *
 * const signaling = createSignalingServer(
 *   {
 *     verify: (publicKey, message, signature) => ml_dsa87.verify(signature, message, publicKey),
 *     peerIdFromPublicKey: (publicKey) => createHash('sha256').update(publicKey).digest('hex').slice(0, 40),
 *   },
 *   { publicHosts: ['127.0.0.1:3001', 'localhost:3001'] },
 * )
 * const http = createServer((req, res) => {
 *   if (!signaling.handleRequest(req, res)) res.writeHead(404).end()
 * })
 * http.on('upgrade', (req, socket, head) => {
 *   if (!signaling.handleUpgrade(req, socket, head)) socket.destroy()
 * })
 * http.listen(3001)
 * // later: await signaling.close(); http.close()
 * ```
 *
 * @packageDocumentation
 */
export { createSignalingServer } from './server'
export type { SignalingComponents, SignalingServer, SignalingPeerInfo, SignalingStats } from './api'
export {
  PING_INTERVAL_MS,
  LIVENESS_TIMEOUT_MS,
  HOLD_MS,
  MAX_FRAME_BYTES,
  AUTH_TIMEOUT_MS,
  ANNOUNCE_INTERVAL_MS,
  CLOSE_TIMEOUT_MS,
  MAX_CLOCK_SKEW_MS,
  type SignalingInit,
} from './options'
export { SignalingError, WIRE_ERROR_CODES, type SignalingErrorCode, type WireErrorCode } from './errors'
export {
  PROTOCOL_VERSION,
  STATEMENT_LABEL,
  CLOSE_CODES,
  RELAY_TYPES,
  MAX_PEER_ID_LENGTH,
  MAX_TOPIC_LENGTH,
  statementText,
  statementBytes,
  registerFrame,
  type RegistrationStatement,
  type RelayType,
  type ServerMessage,
} from './protocol'
export { addressGroup } from './admission'
export {
  SYSTEM_CLOCK,
  type ClientAddressFn,
  type Clock,
  type GuardEndpoint,
  type GuardSession,
  type Logger,
  type NodeRelay,
  type PeerDirectory,
  type PeerIdFromPublicKeyFn,
  type Registration,
  type SignalingGuard,
  type VerifyFn,
} from './types'
