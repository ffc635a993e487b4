/**
 * WebRTC signaling over WebSocket: peers prove their key (challenge / signature), relay SDP offers, answers
 * and ICE candidates with a server-set sender, join topics and discover each other; servers federate through an
 * injected directory and node relay. `/y-webrtc` and `/peerjs` endpoints keep existing apps working.
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
 *   { pingIntervalMs: 30_000 },
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
export {
  createSignalingServer,
  CLOSE_CODES,
  PING_INTERVAL_MS,
  LIVENESS_TIMEOUT_MS,
  HOLD_MS,
  MAX_FRAME_BYTES,
  AUTH_TIMEOUT_MS,
  ANNOUNCE_INTERVAL_MS,
  type SignalingComponents,
  type SignalingInit,
  type SignalingServer,
  type SignalingPeerInfo,
  type SignalingStats,
} from './server'
export { SignalingError, WIRE_ERROR_CODES, type SignalingErrorCode, type WireErrorCode } from './errors'
export {
  PROTOCOL_VERSION,
  CHALLENGE_PREFIX,
  RELAY_TYPES,
  MAX_PEER_ID_LENGTH,
  MAX_TOPIC_LENGTH,
  challengeBytes,
  type RelayType,
  type ServerMessage,
} from './protocol'
export type {
  Clock,
  GuardEndpoint,
  GuardSession,
  Logger,
  NodeRelay,
  PeerDirectory,
  PeerIdFromPublicKeyFn,
  SignalingGuard,
  VerifyFn,
} from './types'
