/**
 * The simulated node of the evaluation: the real AI engine, wired as the node wires it, to a real `@x/signaling`
 * server (every endpoint, the node's default limits, a memory directory and relay as federation), reached by
 * real `ws` clients over in-memory sockets; a real `@x/kademlia` node on a datagram transport the harness
 * drives; the CRDT endpoint's and the WebSocket port's hooks called as `node.ts` calls them. Time is virtual
 * (hours of traffic in minutes), so every trial is repeatable from its seed.
 *
 * What is simulated, not real: the CRDT sync server (its message-size limit closes a connection and its write
 * rate holds back what a client writes beyond it, as `@x/crdt-sync` does), the HTTP server's header timeout for raw
 * sockets, and network latency (none; clients add think time).
 */
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import WebSocket from 'ws'
import {
  createSignalingServer,
  registerFrame,
  type GuardSession,
  type SignalingGuard,
  type SignalingServer,
} from '@x/signaling'
import {
  createMemoryConnector,
  createMemoryDirectory,
  createMemoryRelayNetwork,
  type MemoryConnector,
} from '@x/signaling/testing'
import { createKademlia, type KademliaNode } from '@x/kademlia'
import { createAiEngine, type AiEngine } from '../../src/ai/engine'
import { HeapClock, prng } from './sim-clock'

export const T0 = 1_700_000_000_000
/** Virtual time moves in steps of this much; after each, every in-memory socket delivers what it holds. */
const STEP_MS = 10
const TICK_MS = 250
/** The node's WebSocket server gives a client 10 s to send its upgrade request (`headersTimeout`). */
export const HEADERS_TIMEOUT_MS = 10_000
/** The sync server's defaults, which the node keeps: largest message, and what a client may write per second. */
export const CRDT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024 + 64 * 1024
export const CRDT_WRITE_BYTES_PER_S = 256 * 1024

export type Role = 'normal' | 'attack'

/** What the engine let through and held back, per client address (ground truth for "what the attack achieved"). */
export interface IpStats {
  connects: number
  refused: number
  framesAdmitted: number
  signalsAdmitted: number
  framesDropped: number
  dhtAdmitted: number
  dhtRefused: number
  crdtBytes: number
}

/** A level change the engine logged. */
export interface FlagEvent {
  at: number
  key: string
  to: 'throttled' | 'blocked' | 'normal'
  address: string | undefined
  /** The feature that drove it. */
  reason: string | undefined
  reasons: unknown
}

export interface WorldInit {
  seed: number
  /** Run with the AI engine off (no guard): what attacks achieve without it. @default true */
  ai?: boolean
  /** A learned state to restore (a node restarted after learning). */
  state?: Uint8Array
}

const ADMIT_ALL: SignalingGuard = {
  connect: () => ({ frame: () => true, sent() {}, error() {}, registered() {}, closed() {} }),
}

const silentSignalingLog = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentSignalingLog
  },
}

export class World {
  readonly clock: HeapClock
  readonly rand: () => number
  readonly engine: AiEngine
  readonly server: SignalingServer
  readonly connector: MemoryConnector
  readonly store = new Map<string, Uint8Array>()
  readonly flags: FlagEvent[] = []
  readonly ipStats = new Map<string, IpStats>()
  /** Who each address and peer key belongs to. */
  readonly roles = new Map<string, Role>()
  readonly dhtActors = new Map<string, { receive(bytes: Uint8Array): void }>()
  dht!: KademliaNode
  #dhtHandler: ((bytes: Uint8Array, from: string) => void) | undefined
  #stopped = false
  #ipSeq = 0
  readonly #usedIps = new Set<string>()

  constructor(readonly init: WorldInit) {
    this.clock = new HeapClock(T0)
    this.rand = prng(init.seed)
    const logger = {
      debug() {},
      info: (obj: object) => this.#log(obj),
      warn: (obj: object) => this.#log(obj),
    }
    this.engine = createAiEngine(
      {
        logger,
        clock: this.clock,
        store: {
          get: (k) => Promise.resolve(this.store.get(k)),
          put: (k, v) => {
            this.store.set(k, v)
            return Promise.resolve()
          },
        },
      },
      { enabled: init.ai !== false, allowList: [] },
    )
    if (init.state !== undefined) this.store.set('ai-state', init.state)
    const relay = createMemoryRelayNetwork().relay('node-sim')
    this.server = createSignalingServer(
      {
        verify: () => true,
        peerIdFromPublicKey: peerIdOf,
        clock: this.clock,
        logger: silentSignalingLog,
        directory: createMemoryDirectory(),
        relay,
        // With the engine off, a guard that admits everything still counts what got through.
        guard: this.#wrapGuard(this.engine.guard ?? ADMIT_ALL),
      },
      { nodeId: 'node-sim' },
    )
    this.connector = createMemoryConnector(this.server)
  }

  async start(): Promise<void> {
    await this.engine.restore()
    const admit = this.engine.admitDht
    const rand = prng(this.init.seed ^ 0x9e3779b9)
    this.dht = createKademlia(
      {
        transport: {
          send: (bytes, address) => this.dhtActors.get(address)?.receive(bytes),
          onMessage: (handler) => {
            this.#dhtHandler = handler
          },
          close: () => {},
        },
        clock: this.clock,
        random: (n) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256)),
        admit: (req) => {
          const ok = admit === undefined ? true : admit(req)
          const st = this.stats(hostPart(req.from))
          if (ok) st.dhtAdmitted++
          else st.dhtRefused++
          return ok
        },
      },
      { id: Uint8Array.from({ length: 20 }, () => Math.floor(rand() * 256)) },
    )
    await this.dht.start()
    const tick = () => {
      if (this.#stopped) return
      this.engine.tick()
      this.clock.setTimeout(tick, TICK_MS)
    }
    this.clock.setTimeout(tick, TICK_MS)
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await this.dht.stop()
    const closing = this.server.close()
    // close() waits on closing handshakes that a stopped clock never times out: let it run a little.
    for (let i = 0; i < 200; i++) {
      this.clock.advance(STEP_MS * 10)
      await flush()
    }
    await closing
    this.connector.close()
  }

  #log(obj: object): void {
    const o = obj as { key?: unknown; to?: unknown; address?: unknown; reasons?: { feature?: string }[] }
    if (typeof o.key !== 'string' || typeof o.to !== 'string') return
    this.flags.push({
      at: this.clock.now(),
      key: o.key,
      to: o.to as FlagEvent['to'],
      address: typeof o.address === 'string' ? o.address : undefined,
      reason: Array.isArray(o.reasons) ? o.reasons[0]?.feature : undefined,
      reasons: o.reasons,
    })
  }

  stats(ip: string): IpStats {
    let st = this.ipStats.get(ip)
    if (st === undefined) {
      st = {
        connects: 0,
        refused: 0,
        framesAdmitted: 0,
        signalsAdmitted: 0,
        framesDropped: 0,
        dhtAdmitted: 0,
        dhtRefused: 0,
        crdtBytes: 0,
      }
      this.ipStats.set(ip, st)
    }
    return st
  }

  /** The engine's guard, counting per address what it admitted and refused. */
  #wrapGuard(guard: SignalingGuard): SignalingGuard {
    return {
      connect: (address, endpoint, close) => {
        const st = this.stats(address)
        const v = guard.connect(address, endpoint, close)
        if (v === false || typeof v === 'string') {
          st.refused++
          return v
        }
        st.connects++
        const wrapped: GuardSession = {
          frame(type, bytes, target) {
            const ok = v.frame(type, bytes, target)
            if (type === 'rate-limited' || type === 'invalid') return ok
            if (!ok) st.framesDropped++
            else {
              st.framesAdmitted++
              if (type === 'offer' || type === 'answer' || type === 'candidate' || type === 'publish') {
                st.signalsAdmitted++
              } else if (type === 'OFFER' || type === 'ANSWER' || type === 'CANDIDATE') st.signalsAdmitted++
            }
            return ok
          },
          sent: (bytes, from) => v.sent(bytes, from),
          error: (code) => v.error(code),
          registered: (peerId, credential) => v.registered(peerId, credential),
          discovered: (peers) => v.discovered?.(peers),
          topics: (held) => v.topics?.(held),
          published: (topic, receivers) => v.published?.(topic, receivers),
          closed: () => v.closed(),
        }
        return wrapped
      },
    }
  }

  /** Lets `ms` of virtual time pass, with every socket delivering as it goes. */
  async run(ms: number): Promise<void> {
    const end = this.clock.now() + ms
    while (this.clock.now() < end) {
      this.clock.advance(Math.min(STEP_MS, end - this.clock.now()))
      await flush()
    }
  }

  /** Runs `fn` after `ms` of virtual time. */
  after(ms: number, fn: () => void): void {
    this.clock.setTimeout(() => {
      if (!this.#stopped) fn()
    }, ms)
  }

  /** Runs `fn` every `ms` (jittered ±`jitter`) while it returns anything but false. */
  every(ms: number, fn: () => boolean | void, jitter = 0.5): void {
    const next = () => ms * (1 - jitter + 2 * jitter * this.rand())
    const loop = () => {
      if (fn() !== false) this.after(next(), loop)
    }
    this.after(next(), loop)
  }

  /**
   * A fresh client address. `net` picks the prefix: a /24 of its own (`'own'`), a given `a.b.c` prefix, or
   * `'v6'` (an address in a /64 of its own).
   */
  ip(net = 'own'): string {
    for (;;) {
      let ip: string
      if (net === 'own') {
        const n = ++this.#ipSeq
        ip = `${11 + ((n >> 16) % 200)}.${(n >> 8) & 255}.${n & 255}.${1 + Math.floor(this.rand() * 250)}`
      } else if (net === 'v6') {
        const n = ++this.#ipSeq
        ip = `2001:db8:${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}::${(1 + Math.floor(this.rand() * 60000)).toString(16)}`
      } else ip = `${net}.${1 + Math.floor(this.rand() * 254)}`
      if (this.#usedIps.has(ip)) continue
      this.#usedIps.add(ip)
      return ip
    }
  }

  role(keyOrIp: string, role: Role): void {
    this.roles.set(keyOrIp, role)
  }

  /** Delivers a datagram to the node's DHT as if from `from` (`ip:port`). */
  dhtSend(bytes: Uint8Array, from: string): void {
    this.#dhtHandler?.(bytes, from)
  }

  /** A raw TCP socket on the WebSocket port that never completes its HTTP request. */
  rawSocket(ip: string): FakeSocket {
    const socket = new FakeSocket(ip)
    if (!this.engine.socketOpened(socket as unknown as Socket)) socket.destroy()
    else this.after(HEADERS_TIMEOUT_MS, () => socket.destroy())
    return socket
  }

  /** Random bytes from the world's PRNG. */
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => Math.floor(this.rand() * 256))
  }
}

/** Just what the engine uses of a raw TCP socket. */
export class FakeSocket extends EventEmitter {
  destroyed = false
  constructor(readonly remoteAddress: string) {
    super()
  }
  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    this.emit('close')
  }
}

export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

export function peerIdOf(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 40)
}

function hostPart(address: string): string {
  if (address.startsWith('[')) return address.slice(1, address.indexOf(']'))
  const colon = address.lastIndexOf(':')
  return colon === -1 || address.indexOf(':') !== colon ? address : address.slice(0, colon)
}

/** A WebSocket client of the simulated node, from `ip`. */
export class WsClient {
  readonly ws: WebSocket
  state: 'connecting' | 'open' | 'closed' = 'connecting'
  closeCode: number | undefined
  closeReason: string | undefined
  /** Refused before the WebSocket opened (HTTP 429/503). */
  refusedHttp = false
  onMessage: ((msg: Record<string, unknown>) => void) | undefined
  onOpen: (() => void) | undefined
  onClose: ((code: number, reason: string) => void) | undefined

  constructor(
    world: World,
    path: string,
    readonly ip: string,
  ) {
    this.ws = world.connector.connect(path, { address: ip })
    this.ws.on('open', () => {
      this.state = 'open'
      this.onOpen?.()
    })
    this.ws.on('message', (data: Buffer) => {
      let msg: unknown
      try {
        msg = JSON.parse(data.toString())
      } catch {
        return
      }
      if (typeof msg === 'object' && msg !== null) this.onMessage?.(msg as Record<string, unknown>)
    })
    this.ws.on('error', (err: Error) => {
      if (/Unexpected server response/.test(err.message)) this.refusedHttp = true
    })
    this.ws.on('close', (code: number, reason: Buffer) => {
      if (this.state === 'closed') return
      this.state = 'closed'
      this.closeCode = code
      this.closeReason = reason.toString()
      this.onClose?.(code, this.closeReason)
    })
  }

  send(msg: unknown): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return false
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg))
    return true
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.terminate()
  }
}

/** The native `register` frame for `publicKey` answering `challenge` (the simulated node accepts any signature). */
export function registerFor(challenge: Record<string, unknown>, publicKey: Uint8Array, now: number): string {
  return registerFrame(
    { node: String(challenge.node), host: 'memory.test', time: now, nonce: String(challenge.nonce) },
    publicKey,
    new Uint8Array(32),
  )
}
