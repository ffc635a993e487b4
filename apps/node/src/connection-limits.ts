import { readFileSync } from 'node:fs'
import type { Server } from 'node:net'
import type { Socket } from 'node:net'
import { addressGroup } from '@x/signaling'

/**
 * Caps on open TCP connections per listening port, in total and per client address group (an IPv4 address, an
 * IPv6 /64), applied the moment a connection is accepted, so that a flood of idle connections can neither take
 * every file descriptor (a process out of them cannot even answer its health check) nor let one address fill a
 * port. A refused connection gets `503` (total) or `429` (per address) and is closed; trusted reverse proxies are
 * exempt from the per-address cap (every client behind them shares their address; the WebSocket endpoints then
 * count real client addresses at upgrade time).
 */

export interface ConnectionLimits {
  /** Open connections accepted on the port. */
  maxConnections: number
  /** Open connections from one address group. */
  maxPerAddress: number
  /** Whether `address` is a trusted proxy (exempt from `maxPerAddress`). */
  isTrustedProxy?: (address: string) => boolean
}

export interface ConnectionLimiter {
  readonly open: number
  /** Connections refused so far, by reason. */
  readonly refused: { total: number; perAddress: number }
  /** Detaches from the server. */
  stop(): void
}

const REFUSE_TOTAL = 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
const REFUSE_ADDRESS = 'HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
/** A refused socket is destroyed if the client does not read its answer within this time. */
const REFUSE_LINGER_MS = 1_000

function refuse(socket: Socket, answer: string): void {
  socket.on('error', () => {})
  socket.end(answer)
  setTimeout(() => socket.destroy(), REFUSE_LINGER_MS).unref()
}

/**
 * Applies `limits` to every connection `server` accepts. Call it once the server exists (an HTTP server's own
 * connection listener is then wrapped: a refused socket never reaches its parser); listeners added later see only
 * admitted sockets too.
 */
export function limitConnections(server: Server, limits: ConnectionLimits): ConnectionLimiter {
  const perGroup = new Map<string, number>()
  const refused = { total: 0, perAddress: 0 }
  let open = 0
  const admit = (socket: Socket): boolean => {
    const address = socket.remoteAddress ?? ''
    if (open >= limits.maxConnections) {
      refused.total++
      refuse(socket, REFUSE_TOTAL)
      return false
    }
    const exempt = limits.isTrustedProxy?.(address) === true
    const group = addressGroup(address)
    const count = perGroup.get(group) ?? 0
    if (!exempt && count >= limits.maxPerAddress) {
      refused.perAddress++
      refuse(socket, REFUSE_ADDRESS)
      return false
    }
    open++
    perGroup.set(group, count + 1)
    socket.once('close', () => {
      open--
      const left = (perGroup.get(group) ?? 1) - 1
      if (left === 0) perGroup.delete(group)
      else perGroup.set(group, left)
    })
    return true
  }
  // The server's own `connection` listeners run only for admitted sockets; `emit` is wrapped so that listeners
  // added later are covered as well.
  const emit = server.emit.bind(server)
  const wrapped = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'connection' && !admit(args[0] as Socket)) return true
    return emit(event, ...args)
  }) as Server['emit']
  server.emit = wrapped
  return {
    get open() {
      return open
    },
    refused,
    stop: () => {
      if (server.emit === wrapped) server.emit = emit
    },
  }
}

/** Descriptors kept out of the connection budget: LevelDB, the DHT socket, listeners, logs, key files. */
export const RESERVED_FDS = 96

/** The soft limit on open files (`ulimit -n`) from `/proc/self/limits`, or `undefined` where it cannot be read. */
export function openFileLimit(
  read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): number | undefined {
  try {
    const line = read('/proc/self/limits')
      .split('\n')
      .find((l) => l.startsWith('Max open files'))
    const soft = line?.split(/\s{2,}/)[1]
    if (soft === undefined || soft === 'unlimited') return undefined
    const n = Number(soft)
    return Number.isInteger(n) && n > 0 ? n : undefined
  } catch {
    return undefined
  }
}

/**
 * Connection budgets of the two ports from the file-descriptor limit: 80 % of what is left after
 * {@link RESERVED_FDS} to the WebSocket port, 20 % to REST (at least 16 each). `configured` (> 0) overrides the
 * WebSocket share. Without a readable limit: `fallbackWs` and 1,024 for REST.
 */
export function connectionBudgets(
  fdLimit: number | undefined,
  configured: number,
  fallbackWs = 20_000,
): { ws: number; rest: number } {
  if (fdLimit === undefined) return { ws: configured > 0 ? configured : fallbackWs, rest: 1_024 }
  const spare = Math.max(0, fdLimit - RESERVED_FDS)
  const rest = Math.max(16, Math.floor(spare * 0.2))
  const ws = configured > 0 ? configured : Math.max(16, Math.floor(spare * 0.8))
  return { ws, rest }
}
