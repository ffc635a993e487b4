/**
 * Authenticated node-to-node links: one arbitrated link per node pair over an injected transport (`ws` here, an
 * in-memory twin under `./testing`), application channels on it, a switch-over between links that neither
 * loses nor reorders frames, reconnects with back-off, and the trust rules a node applies to other nodes (link
 * slots, handshake rate limits, one dial policy). The handshake is injected (`secure`), so the package imports no
 * crypto library. Wire format and rules: PROTOCOL.md.
 *
 * @example
 * ```ts
 * import { createLinkManager, createWsTransport } from '@x/node-link'
 * import { createTestSecure } from '@x/node-link/testing' // a real node passes a secure() built from @x/pqc
 *
 * const transport = createWsTransport({ port: 0 })
 * const links = createLinkManager(
 *   { transport, secure: createTestSecure('a'.repeat(40)) },
 *   { nodeId: 'a'.repeat(40) },
 * )
 * await links.start()
 * links.onChannel(2, (from, payload) => console.log(from, payload))
 * // later: await links.close()
 * ```
 *
 * @packageDocumentation
 */
export {
  createLinkManager,
  type LinkManager,
  type LinkManagerComponents,
  type LinkManagerInit,
  type ChannelHandler,
  type ConnectOptions,
  type SendOrDialOptions,
} from './manager'
export {
  LINK_PROTOCOL,
  MAX_LINKS,
  MAX_UNPREFERRED_LINKS,
  MAX_LINKS_PER_GROUP,
  MAX_LINKS_PER_NODE,
  IDLE_TIMEOUT_MS,
  HANDSHAKE_TIMEOUT_MS,
  MAX_PENDING_HANDSHAKES,
  HANDSHAKES_PER_ADDRESS_PER_SECOND,
  HANDSHAKE_BURST_PER_ADDRESS,
  HANDSHAKES_PER_SECOND,
  HANDSHAKE_BURST,
  PREFERRED_HANDSHAKE_BURST,
  RECONNECT_MIN_MS,
  RECONNECT_MAX_MS,
  RETIRE_GRACE_MS,
  MAX_HELD_FRAMES,
  MAX_RECORD_BYTES,
  MAX_CONTROL_BYTES,
  MAX_HELLO_DATA_BYTES,
} from './options'
export { CONTROL_CHANNEL, MIN_APP_CHANNEL, MAX_APP_CHANNEL } from './wire'
export {
  createDialPolicy,
  parseLinkAddress,
  isDialableIp,
  RESOLVE_TIMEOUT_MS,
  type DialPolicyInit,
} from './dial-policy'
export { addressGroup } from './admission'
export {
  createWsTransport,
  LINK_PATH,
  WS_OPEN_TIMEOUT_MS,
  type WsTransport,
  type WsTransportInit,
} from './ws-transport'
export { LinkError, isLinkError, type LinkErrorCode } from './errors'
export {
  SILENT_LOGGER,
  SYSTEM_CLOCK,
  type Clock,
  type DialDecision,
  type DialPolicy,
  type HandshakePipe,
  type HelloEvent,
  type LinkEvents,
  type LinkInfo,
  type LinkListener,
  type LinkStats,
  type LinkTransport,
  type Logger,
  type MessagePipe,
  type PreferenceFn,
  type RandomFn,
  type SecureChannel,
  type SecureFn,
  type SecureOptions,
} from './types'
