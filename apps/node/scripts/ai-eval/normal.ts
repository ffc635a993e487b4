/**
 * Normal traffic of the evaluation: the base mix present in every trial, and the normal groups real deployments
 * have (a NAT'd office, a mesh meeting, mobile clients reconnecting every few seconds, trickle-ICE bursts, a
 * y-webrtc room, heavy CRDT editing, DHT nodes joining, PeerJS clients reconnecting). Every client is normal:
 * any of them the engine throttles, blocks or refuses is a false positive.
 */
import { CrdtClient, DhtActor, NativePeer, PeerJsClient, YClient } from './clients'
import { CRDT_MAX_MESSAGE_BYTES, type World } from './world'

/** The normal clients of a trial, by kind (victims of attacks are picked from `peers`). */
export interface Population {
  peers: NativePeer[]
  y: YClient[]
  pj: PeerJsClient[]
  crdt: CrdtClient[]
  dht: DhtActor[]
}

export function emptyPopulation(): Population {
  return { peers: [], y: [], pj: [], crdt: [], dht: [] }
}

const pick = <T>(w: World, list: readonly T[]): T => list[Math.floor(w.rand() * list.length)]!

/** Log-uniform between `lo` and `hi`. */
function logUniform(w: World, lo: number, hi: number): number {
  return lo * (hi / lo) ** w.rand()
}

export interface PeerHabits {
  /** Mean gap between WebRTC set-ups it starts (ms); 0: never starts one. */
  setupGapMs: number
  /** Reconnect every so often (ms; jittered), as a page reload or a network change. */
  reloadMs?: number
  /** Topic joined and discovered, then some members offered a session. */
  room?: string
  /** Candidates per set-up. */
  candidates?: readonly [number, number]
  spreadMs?: number
}

/**
 * Starts a native peer's life: connects (at a random moment within `arriveMs`), joins its room and discovers it,
 * starts set-ups with `partners()` every so often, reconnects on reloads.
 */
export function livePeer(
  w: World,
  peer: NativePeer,
  habits: PeerHabits,
  partners: () => NativePeer[],
  arriveMs: number,
): void {
  peer.onReady = () => {
    if (habits.room !== undefined) {
      const room = habits.room
      peer.send({ type: 'join', topic: room })
      w.after(200 + w.rand() * 1_500, () => peer.send({ type: 'discover', topic: room }))
    }
  }
  peer.onPeers = (found) => {
    // Call one or two of the room's members now and then, as a call or a file transfer does.
    const n = Math.min(found.length, 1 + Math.floor(w.rand() * 2))
    for (let i = 0; i < n; i++) {
      const to = pick(w, found)
      w.after(w.rand() * 3_000, () => peer.offer(to, habits.spreadMs))
    }
  }
  w.after(w.rand() * arriveMs, () => peer.connect())
  if (habits.setupGapMs > 0) {
    w.every(habits.setupGapMs, () => {
      if (peer.stopped) return false
      const list = partners().filter((p) => p !== peer && p.registered)
      if (list.length > 0) peer.offer(pick(w, list).id, habits.spreadMs)
    })
  }
  w.every(20_000 + w.rand() * 10_000, () => {
    if (peer.stopped) return false
    peer.send({ type: 'ping' })
  })
  if (habits.reloadMs !== undefined) {
    w.every(habits.reloadMs, () => {
      if (peer.stopped) return false
      // A reload: the connection drops and the app reconnects at once.
      peer.client?.close()
    })
  }
}

/** Two peers chatting through the signaling server (both ways), in bursts: an app using it as a message bus. */
export function chatter(w: World, a: NativePeer, b: NativePeer): void {
  let busyUntil = 0
  const ratePerS = 2 + w.rand() * 10
  w.every(30_000, () => {
    if (a.stopped) return false
    busyUntil = w.clock.now() + 5_000 + w.rand() * 20_000
  })
  const step = (from: NativePeer, to: NativePeer) => () => {
    if (from.stopped) return false
    if (w.clock.now() < busyUntil && to.registered) from.candidate(to.id)
  }
  w.every(1_000 / ratePerS, step(a, b))
  w.every(1_000 / ratePerS, step(b, a))
}

export interface BaseMixOptions {
  /** Scale of the mix (1: ~100 addresses). @default 1 */
  scale?: number
  /** Clients arrive within this time. @default 20_000 */
  arriveMs?: number
}

/**
 * The base mix of normal traffic (about 100 addresses): native peers with WebRTC set-ups every 5–90 s, chatting
 * pairs, reloads, rooms with discovery; y-webrtc rooms; PeerJS clients; CRDT editors; DHT neighbours.
 */
export function startBaseMix(w: World, pop: Population, options: BaseMixOptions = {}): void {
  const scale = options.scale ?? 1
  const arriveMs = options.arriveMs ?? 20_000
  const nNative = Math.round(56 * scale)
  const isp = `${100 + Math.floor(w.rand() * 20)}.${Math.floor(w.rand() * 250)}.${Math.floor(w.rand() * 250)}`
  const natives: NativePeer[] = []
  for (let i = 0; i < nNative; i++) {
    // Most on their own /24, some customers of one ISP share one.
    const ip = i % 7 === 0 ? w.ip(isp) : i % 11 === 0 ? w.ip('v6') : w.ip()
    const peer = new NativePeer(w, ip, { role: 'normal', reconnectMs: 1_500 })
    natives.push(peer)
    pop.peers.push(peer)
  }
  natives.forEach((peer, i) => {
    livePeer(
      w,
      peer,
      {
        setupGapMs: logUniform(w, 5_000, 90_000),
        ...(i % 7 === 3 ? { reloadMs: logUniform(w, 20_000, 90_000) } : {}),
        ...(i % 3 === 0 ? { room: `room-${i % 8}` } : {}),
      },
      () => natives,
      arriveMs,
    )
  })
  for (let i = 0; i + 1 < nNative; i += 10) chatter(w, natives[i]!, natives[i + 1]!)

  for (let i = 0; i < Math.round(10 * scale); i++) {
    const y = new YClient(w, w.ip(), 'normal')
    pop.y.push(y)
    const rooms = [`doc-room-${i % 3}`]
    w.after(w.rand() * arriveMs, () => y.connect(rooms))
    // A page reload now and then.
    w.every(logUniform(w, 120_000, 600_000), () => {
      if (y.stopped) return false
      y.client?.close()
    })
  }

  const pjIds: string[] = []
  for (let i = 0; i < Math.round(8 * scale); i++) {
    const id = `user-${Buffer.from(w.bytes(4)).toString('hex')}`
    pjIds.push(id)
    const pj = new PeerJsClient(w, w.ip(), 'normal', id, Buffer.from(w.bytes(8)).toString('hex'), 2_000)
    pop.pj.push(pj)
    w.after(w.rand() * arriveMs, () => pj.connect())
    w.every(logUniform(w, 10_000, 60_000), () => {
      if (pj.stopped) return false
      const to = pick(w, pjIds)
      if (to !== id) pj.offer(to)
    })
    w.every(5_000, () => {
      if (pj.stopped) return false
      pj.send({ type: 'HEARTBEAT' })
    })
  }

  for (let i = 0; i < Math.round(8 * scale); i++)
    editor(w, pop, w.ip(), 10_000 + w.rand() * 200_000, arriveMs)

  for (let i = 0; i < Math.round(14 * scale); i++) dhtNeighbour(w, pop, w.ip(), arriveMs)
}

/** A y-websocket editor: an initial sync of `docBytes`, then typing in bursts. */
export function editor(
  w: World,
  pop: Population,
  ip: string,
  docBytes: number,
  arriveMs: number,
): CrdtClient {
  const c = new CrdtClient(w, ip, 'normal', CRDT_MAX_MESSAGE_BYTES, 2_000)
  pop.crdt.push(c)
  let active = false
  w.after(w.rand() * arriveMs, () => {
    c.connect(() => {
      c.message(100) // sync step 1: the state vector
      c.message(Math.min(docBytes, CRDT_MAX_MESSAGE_BYTES)) // its unsynced edits
    })
  })
  w.every(20_000, () => {
    if (c.stopped) return false
    active = w.rand() < 0.5
  })
  w.every(600, () => {
    if (c.stopped) return false
    if (active) c.message(20 + Math.floor(w.rand() * 200))
  })
  return c
}

/** A DHT node near ours: lookups now and then, record republishing in bursts, and a bootstrap burst. */
export function dhtNeighbour(w: World, pop: Population, ip: string, arriveMs: number, port = 6881): DhtActor {
  const d = new DhtActor(w, ip, 'normal', port)
  pop.dht.push(d)
  const rate = 0.2 + w.rand() * 1.3
  w.after(w.rand() * arriveMs, () => {
    // Bootstrap: a burst of lookups.
    const n = 20 + Math.floor(w.rand() * 20)
    for (let i = 0; i < n; i++) w.after(w.rand() * 2_000, () => d.request('find_node'))
    w.every(1_000 / rate, () => {
      d.request(w.rand() < 0.7 ? 'find_node' : 'find_value')
    })
    w.every(20_000 + w.rand() * 40_000, () => {
      const k = 3 + Math.floor(w.rand() * 8)
      for (let i = 0; i < k; i++) w.after(w.rand() * 500, () => d.request('store'))
    })
    w.every(30_000, () => d.request('ping'))
  })
  return d
}
