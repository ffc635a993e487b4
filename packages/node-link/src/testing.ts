/**
 * Test helpers: an in-memory transport whose deliveries a seeded scheduler can order (as yjs's test connector
 * does), a virtual clock, a seeded PRNG, and a stand-in `secure` that exchanges claimed IDs.
 *
 * @example
 * ```ts
 * import { createLinkManager } from '@x/node-link'
 * import { allowAnyAddress, createMemoryNetwork, createTestSecure } from '@x/node-link/testing'
 *
 * const net = createMemoryNetwork()
 * const make = (id: string, address: string) =>
 *   createLinkManager(
 *     { transport: net.transport(address), secure: createTestSecure(id), dialPolicy: allowAnyAddress },
 *     { nodeId: id, address },
 *   )
 * const a = make('a'.repeat(40), 'ws://10.0.0.1:1')
 * const b = make('b'.repeat(40), 'ws://10.0.0.2:1')
 * await Promise.all([a.start(), b.start()])
 * b.onChannel(2, (from, payload) => console.log(from, payload))
 * await a.sendOrDial('b'.repeat(40), 2, Uint8Array.of(1), { address: 'ws://10.0.0.2:1' })
 * ```
 *
 * @packageDocumentation
 */
import { linkAddressHost, parseLinkAddress } from './dial-policy'
import type {
  Clock,
  DialPolicy,
  HandshakePipe,
  LinkListener,
  LinkTransport,
  MessagePipe,
  SecureChannel,
  SecureFn,
} from './types'

// ------------------------------------------------------------------ randomness and time

/** A seeded PRNG (mulberry32): the same seed gives the same sequence in [0, 1). */
export function createSeededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A clock whose time moves only when told to. */
export interface VirtualClock extends Clock {
  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  advance(ms: number): void
  /** Jumps to the earliest timer and fires it; `false` when none is set. */
  runNext(): boolean
  /** Timers set and not yet fired or cleared. */
  pendingTimers(): number
}

/** A virtual clock starting at `startMs` (ms since the epoch). */
export function createVirtualClock(startMs = 1_700_000_000_000): VirtualClock {
  let now = startMs
  let seq = 0
  const timers = new Map<number, { at: number; fn: () => void }>()
  const earliest = (): [number, { at: number; fn: () => void }] | undefined => {
    let best: [number, { at: number; fn: () => void }] | undefined
    for (const entry of timers) {
      if (
        best === undefined ||
        entry[1].at < best[1].at ||
        (entry[1].at === best[1].at && entry[0] < best[0])
      ) {
        best = entry
      }
    }
    return best
  }
  const fire = (id: number, t: { at: number; fn: () => void }): void => {
    timers.delete(id)
    now = Math.max(now, t.at)
    t.fn()
  }
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = ++seq
      timers.set(id, { at: now + Math.max(0, ms), fn })
      return id
    },
    clearTimeout(handle) {
      timers.delete(handle as number)
    },
    advance(ms) {
      const target = now + ms
      for (let next = earliest(); next !== undefined && next[1].at <= target; next = earliest()) fire(...next)
      now = Math.max(now, target)
    },
    runNext() {
      const next = earliest()
      if (next === undefined) return false
      fire(...next)
      return true
    },
    pendingTimers: () => timers.size,
  }
}

// ------------------------------------------------------------------ memory transport

type Event = () => void

/** FIFO of the events for one pipe end, in the order the network put them there. */
class Inbox {
  readonly items: Event[] = []
  head = 0
  /** Position in the network's list of non-empty inboxes (-1: not in it). */
  slot = -1
  get size(): number {
    return this.items.length - this.head
  }
  shift(): Event | undefined {
    const ev = this.items[this.head++]
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head)
      this.head = 0
    }
    return ev
  }
}

/** Options of {@link createMemoryNetwork}. */
export interface MemoryNetworkInit {
  /**
   * The seeded scheduler: when given, nothing is delivered until `step()` is called, and each step delivers the
   * next event of one pipe end chosen with this randomness (each end's own events stay in order, as on a
   * socket). Without it, events are delivered by themselves, one per microtask, in the order they were sent.
   * @default undefined
   */
  random?: () => number
}

/** A network of memory transports. */
export interface MemoryNetwork {
  /**
   * A transport listening at `address` (a link address such as `ws://10.0.0.1:7000`). Its inbound connections
   * come from, and its outbound ones are seen by listeners as, `remoteAddress`.
   * @param options.remoteAddress @default the host of `address`
   */
  transport(address: string, options?: { remoteAddress?: string }): LinkTransport
  /** Scheduler only: delivers one event; `false` when none is pending. */
  step(): boolean
  /** Events waiting to be delivered. */
  pending(): number
  /** Drops every connection to or from the transport at `address` (no closing handshake), as a crash would. */
  cut(address: string): void
  /** Events delivered so far. */
  delivered(): number
}

/**
 * A memory network. Pipes keep order per direction and close like WebSockets: `close()` on one end lets the
 * messages the other end already sent arrive before both ends report the close.
 */
export function createMemoryNetwork(init: MemoryNetworkInit = {}): MemoryNetwork {
  const random = init.random
  const active: Inbox[] = []
  const listeners = new Map<string, { listener: LinkListener; remoteAddress: string }>()
  const ends = new Map<string, Set<MemoryEnd>>()
  let pendingCount = 0
  let deliveredCount = 0

  const runHead = (inbox: Inbox): void => {
    const ev = inbox.shift()
    if (ev === undefined) return
    pendingCount--
    if (inbox.size === 0 && inbox.slot >= 0) {
      const last = active.pop()!
      if (last !== inbox) {
        active[inbox.slot] = last
        last.slot = inbox.slot
      }
      inbox.slot = -1
    }
    deliveredCount++
    ev()
  }

  const enqueue = (inbox: Inbox, ev: Event): void => {
    inbox.items.push(ev)
    pendingCount++
    if (random === undefined) {
      queueMicrotask(() => runHead(inbox))
      return
    }
    if (inbox.slot < 0) {
      inbox.slot = active.length
      active.push(inbox)
    }
  }

  class MemoryEnd implements MessagePipe {
    readonly inbox = new Inbox()
    peer!: MemoryEnd
    state: 'open' | 'closing' | 'closed' = 'open'
    #handler: ((bytes: Uint8Array) => void) | undefined
    readonly #buffer: Uint8Array[] = []
    readonly #closeHandlers: (() => void)[] = []
    constructor(
      readonly remoteAddress: string,
      readonly owner: string,
    ) {}

    get isOpen(): boolean {
      return this.state === 'open'
    }

    send(bytes: Uint8Array, done?: (err?: Error) => void): void {
      if (this.state !== 'open') {
        done?.(new Error('pipe closed'))
        return
      }
      const peer = this.peer
      enqueue(peer.inbox, () => peer.receive(bytes))
      done?.()
    }

    receive(bytes: Uint8Array): void {
      if (this.state === 'closed') return
      if (this.#handler) this.#handler(bytes)
      else this.#buffer.push(bytes)
    }

    onMessage(handler: (bytes: Uint8Array) => void): void {
      this.#handler = handler
      for (const b of this.#buffer.splice(0)) if (this.state !== 'closed') handler(b)
    }

    onClose(handler: () => void): void {
      if (this.state === 'closed') queueMicrotask(handler)
      else this.#closeHandlers.push(handler)
    }

    close(): void {
      if (this.state !== 'open') return
      this.state = 'closing'
      const peer = this.peer
      enqueue(peer.inbox, () => peer.remoteClose())
    }

    terminate(): void {
      if (this.state === 'closed') return
      this.finish()
      const peer = this.peer
      enqueue(peer.inbox, () => peer.finish())
    }

    /** The peer asked to close: answer (unless we asked too) and report. */
    remoteClose(): void {
      if (this.state === 'closed') return
      const answer = this.state === 'open'
      this.finish()
      if (answer) {
        const peer = this.peer
        enqueue(peer.inbox, () => peer.finish())
      }
    }

    finish(): void {
      if (this.state === 'closed') return
      this.state = 'closed'
      ends.get(this.owner)?.delete(this)
      for (const h of this.#closeHandlers.splice(0)) h()
    }
  }

  const track = (end: MemoryEnd): void => {
    let set = ends.get(end.owner)
    if (!set) ends.set(end.owner, (set = new Set()))
    set.add(end)
  }

  return {
    transport(address, options = {}) {
      const canonical = parseLinkAddress(address) ?? address
      let host = canonical
      try {
        host = linkAddressHost(canonical)
      } catch {
        // not a URL: the name is the address
      }
      const remoteAddress = options.remoteAddress ?? host
      let listening = false
      return {
        listen(listener) {
          if (listeners.has(canonical)) throw new Error(`${canonical} is already listening`)
          listeners.set(canonical, { listener, remoteAddress })
          listening = true
        },
        dial(target, { signal }) {
          const to = parseLinkAddress(target) ?? target
          const entry = listeners.get(to)
          if (entry === undefined) return Promise.reject(new Error(`connection refused: ${to}`))
          if (signal.aborted) return Promise.reject(new Error('aborted'))
          const client = new MemoryEnd(to, canonical)
          const server = new MemoryEnd(remoteAddress, to)
          client.peer = server
          server.peer = client
          return new Promise<MessagePipe>((resolve, reject) => {
            enqueue(server.inbox, () => {
              if (listeners.get(to) !== entry || !entry.listener.admit(remoteAddress)) {
                reject(new Error(`refused by ${to}`))
                return
              }
              track(client)
              track(server)
              entry.listener.accept(server)
              resolve(client)
            })
          })
        },
        close() {
          if (listening && listeners.get(canonical)?.remoteAddress === remoteAddress)
            listeners.delete(canonical)
          listening = false
        },
      }
    },
    step() {
      if (random === undefined)
        throw new TypeError('step() needs the seeded scheduler (createMemoryNetwork({ random }))')
      if (active.length === 0) return false
      runHead(active[Math.floor(random() * active.length)]!)
      return true
    },
    pending: () => pendingCount,
    cut(address) {
      const canonical = parseLinkAddress(address) ?? address
      for (const end of [...(ends.get(canonical) ?? [])]) end.terminate()
    },
    delivered: () => deliveredCount,
  }
}

/** A dial policy that allows every address as given (memory networks; never in production). */
export const allowAnyAddress: DialPolicy = (_nodeId, address) => ({ allow: true, address })

// ------------------------------------------------------------------ stand-in secure

const enc = new TextEncoder()
const dec = new TextDecoder()
const HS = 'x-node-link/test-hs'

/**
 * A stand-in for `secure`, for tests only — NOT SECURE: each side claims its ID in one message and believes the
 * other's claim; records are not encrypted. It keeps what the link manager relies on: the initiator's
 * `expectedPeerId` check (error code `X_TEST_IDENTITY_MISMATCH`), the responder finishing first (so its first
 * records may follow its last handshake message at once), and records that must be opened in order (a 4-byte
 * sequence number; a replayed, lost or reordered record throws).
 */
export function createTestSecure(nodeId: string): SecureFn {
  return (pipe: HandshakePipe, options) =>
    new Promise<SecureChannel>((resolve, reject) => {
      const sub: { off?: () => void } = {}
      const done = (peer: string | Error): void => {
        options.signal.removeEventListener('abort', onAbort)
        sub.off?.()
        if (peer instanceof Error) reject(peer)
        else resolve(testChannel(peer))
      }
      const onAbort = (): void => done(new Error('handshake aborted'))
      options.signal.addEventListener('abort', onAbort, { once: true })
      sub.off = pipe.onMessage((bytes) => {
        const m = /^x-node-link\/test-hs:([12]):(.{1,128})$/.exec(dec.decode(bytes))
        if (m === null) return done(new Error('not a test handshake message'))
        const [, n, peer] = m as unknown as [string, string, string]
        if (options.role === 'responder' && n === '1') {
          pipe.send(enc.encode(`${HS}:2:${nodeId}`))
          return done(peer)
        }
        if (options.role === 'initiator' && n === '2') {
          if (options.expectedPeerId !== undefined && options.expectedPeerId !== peer) {
            return done(Object.assign(new Error(`peer is ${peer}`), { code: 'X_TEST_IDENTITY_MISMATCH' }))
          }
          return done(peer)
        }
        return done(new Error('unexpected test handshake message'))
      })
      if (options.role === 'initiator') pipe.send(enc.encode(`${HS}:1:${nodeId}`))
    })
}

function testChannel(peerId: string): SecureChannel {
  let sent = 0
  let received = 0
  return {
    peerId,
    peerPublicKey: enc.encode(peerId),
    seal(plain) {
      const out = new Uint8Array(plain.length + 4)
      const n = sent++
      out[0] = n >>> 24
      out[1] = (n >>> 16) & 255
      out[2] = (n >>> 8) & 255
      out[3] = n & 255
      out.set(plain, 4)
      return out
    },
    open(record) {
      if (record.length < 4) throw new Error('short record')
      const seq = ((record[0]! << 24) | (record[1]! << 16) | (record[2]! << 8) | record[3]!) >>> 0
      if (seq !== received) throw new Error(`record ${seq} out of order (expected ${received})`)
      received++
      return record.subarray(4)
    },
  }
}
