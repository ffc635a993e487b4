import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { normalizeIp } from './dial-policy'
import { MAX_RECORD_BYTES } from './options'
import type { LinkListener, LinkTransport, MessagePipe } from './types'

/** The HTTP path links are served at and dialed on. */
export const LINK_PATH = '/p2p-node'
/** How long opening a WebSocket (TCP + HTTP upgrade) may take. */
export const WS_OPEN_TIMEOUT_MS = 5_000

/** Options of {@link createWsTransport}. */
export interface WsTransportInit {
  /** Path served and dialed. @default LINK_PATH ('/p2p-node') */
  path?: string
  /**
   * Standalone use: `listen()` starts its own HTTP server on this port (0: any free port). Without it, the app
   * routes upgrade requests for `path` to `handleUpgrade`.
   * @default undefined
   */
  port?: number
  /** Interface of the standalone server. @default '127.0.0.1' */
  host?: string
  /** Largest WebSocket message accepted. @default MAX_RECORD_BYTES (1 MiB + 64) */
  maxPayload?: number
  /** @default WS_OPEN_TIMEOUT_MS */
  openTimeoutMs?: number
  /**
   * The client IP of an upgrade request (rate limits and address groups count it). Behind a reverse proxy, pass
   * one that reads the trusted proxy's header.
   * @default the socket's remote address
   */
  clientAddress?: (req: IncomingMessage) => string
  /**
   * Whether dialing a `wss://` address checks the peer's TLS certificate. A link is authenticated by the
   * handshake of `secure` (the peer proves its node ID) and encrypted by its session whatever carries it, so TLS
   * adds nothing a link relies on; a node that serves its WebSocket port over TLS with a certificate other nodes
   * cannot check (self-signed, an internal CA) is still reachable with `false`.
   * @default true
   */
  verifyTlsCertificate?: boolean
}

/** The `ws` transport. */
export interface WsTransport extends LinkTransport {
  /** Takes an HTTP upgrade request for the link path (answers 429 when the listener does not admit it). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void
  /** The standalone server's port once listening (`undefined` without `port`). */
  readonly port: number | undefined
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data))
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

function pipeOf(ws: WebSocket, remoteAddress: string): MessagePipe {
  ws.binaryType = 'nodebuffer'
  ws.on('error', () => undefined)
  return {
    remoteAddress,
    get isOpen() {
      return ws.readyState === WebSocket.OPEN
    },
    send(bytes, done) {
      if (ws.readyState !== WebSocket.OPEN) {
        done?.(new Error('WebSocket not open'))
        return
      }
      ws.send(bytes, { binary: true }, (err) => done?.(err ?? undefined))
    },
    onMessage(handler) {
      ws.on('message', (data: RawData) => handler(toBytes(data)))
    },
    onClose(handler) {
      if (ws.readyState === WebSocket.CLOSED) queueMicrotask(handler)
      else ws.once('close', () => handler())
    },
    close(code = 1000, reason = '') {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(code, reason)
    },
    terminate() {
      ws.terminate()
    },
  }
}

/**
 * Links over WebSocket (`ws`): binary messages, no compression, no redirects followed. The app either routes
 * upgrade requests for `path` to `handleUpgrade`, or gives `port` and lets `listen()` start a server.
 */
export function createWsTransport(init: WsTransportInit = {}): WsTransport {
  const path = init.path ?? LINK_PATH
  if (!path.startsWith('/')) throw new TypeError('"path" must start with "/"')
  const maxPayload = init.maxPayload ?? MAX_RECORD_BYTES
  const openTimeoutMs = init.openTimeoutMs ?? WS_OPEN_TIMEOUT_MS
  const clientAddress =
    init.clientAddress ?? ((req: IncomingMessage) => req.socket.remoteAddress ?? 'unknown')
  const wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false })
  let listener: LinkListener | undefined
  let server: Server | undefined
  let port: number | undefined
  let closed = false

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy())
    if (listener === undefined || closed) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n')
      return
    }
    const raw = clientAddress(req)
    const remote = normalizeIp(raw) ?? raw
    if (!listener.admit(remote)) {
      socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n\r\n')
      return
    }
    const target = listener
    wss.handleUpgrade(req, socket, head, (ws) => target.accept(pipeOf(ws, remote)))
  }

  return {
    handleUpgrade,
    get port() {
      return port
    },
    async listen(l) {
      if (closed) throw new Error('transport closed')
      listener = l
      if (init.port === undefined) return
      server = createServer((_req, res) => res.writeHead(404).end())
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        let pathname = ''
        try {
          pathname = new URL(req.url ?? '/', 'http://x').pathname
        } catch {
          // refused below
        }
        if (pathname === path) handleUpgrade(req, socket, head)
        else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n')
      })
      const s = server
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen(init.port, init.host ?? '127.0.0.1', () => resolve())
      })
      port = (s.address() as AddressInfo).port
    },
    dial(address, { signal }) {
      return new Promise<MessagePipe>((resolve, reject) => {
        if (signal.aborted) return reject(new Error('aborted'))
        const ws = new WebSocket(`${address}${path}`, {
          maxPayload,
          handshakeTimeout: openTimeoutMs,
          perMessageDeflate: false,
          followRedirects: false,
          rejectUnauthorized: init.verifyTlsCertificate !== false,
        })
        const onAbort = (): void => {
          ws.terminate()
          reject(new Error('aborted'))
        }
        signal.addEventListener('abort', onAbort, { once: true })
        ws.once('open', () => {
          signal.removeEventListener('abort', onAbort)
          resolve(pipeOf(ws, address))
        })
        ws.once('error', (err) => {
          signal.removeEventListener('abort', onAbort)
          reject(err)
        })
      })
    },
    async close() {
      closed = true
      listener = undefined
      for (const ws of wss.clients) ws.terminate()
      wss.close()
      if (server) {
        server.closeAllConnections()
        await new Promise((resolve) => server!.close(resolve))
      }
    },
  }
}
