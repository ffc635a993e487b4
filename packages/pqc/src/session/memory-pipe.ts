/**
 * In-memory duplex message pipes for tests: what one side sends, the other receives in a later microtask, in
 * order. Messages sent before the peer registers a handler are queued, so a handshake followed by records never
 * loses a message between `await handshake(...)` and the record handler's registration.
 */
import type { HandshakePipe } from './handshake'

/** One end of a memory pipe pair. */
export interface MemoryPipe extends HandshakePipe {
  /** Messages sent by this end so far. */
  readonly sent: number
  /** Stop delivering in both directions (pending messages are dropped). */
  close(): void
}

/** Two connected ends. */
export function createMemoryPipes(): [MemoryPipe, MemoryPipe] {
  const handlers: [((b: Uint8Array) => void) | undefined, ((b: Uint8Array) => void) | undefined] = [
    undefined,
    undefined,
  ]
  const queues: [Uint8Array[], Uint8Array[]] = [[], []]
  const sent = [0, 0]
  let closed = false
  const flush = (to: 0 | 1): void => {
    queueMicrotask(() => {
      const h = handlers[to]
      while (!closed && h !== undefined && handlers[to] === h && queues[to].length > 0) h(queues[to].shift()!)
    })
  }
  const end = (self: 0 | 1): MemoryPipe => {
    const peer: 0 | 1 = self === 0 ? 1 : 0
    return {
      get sent() {
        return sent[self]!
      },
      send(bytes: Uint8Array) {
        if (closed) return
        sent[self]!++
        queues[peer].push(bytes.slice())
        flush(peer)
      },
      onMessage(handler: (bytes: Uint8Array) => void) {
        handlers[self] = handler
        flush(self)
        return () => {
          if (handlers[self] === handler) handlers[self] = undefined
        }
      },
      close() {
        closed = true
        queues[0].length = 0
        queues[1].length = 0
      },
    }
  }
  return [end(0), end(1)]
}
