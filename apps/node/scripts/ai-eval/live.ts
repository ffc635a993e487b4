/**
 * Evaluation harness of the AI engine: starts a real node, replays normal traffic (signaling peers at varied
 * rates with WebRTC-style bursts, busy peers, reconnecting peers, y-websocket clients editing documents,
 * DHT nodes doing lookups) and, once the engine has learned for a while, runs rounds of attacks (message
 * flood, target scanning, identity bursts, DHT store spam, slow-loris connections), one of each per round,
 * each from a fresh source address. Every client binds its own loopback source address (127.x.y.z), so the
 * node sees distinct peers and addresses as it would on a network.
 *
 * Reports per attack: detection rate (flagged, throttled or blocked, within 2 s of the attack's start), time
 * to detect, and the share of normal peers ever throttled or blocked. A table, then one JSON line. This is the
 * end-to-end check (a real process, real sockets, ML-DSA registrations); the evaluation proper, with its normal
 * groups, sweeps, seeds and held-out set, is `index.ts` (virtual time, the same engine and signaling server).
 *
 *   pnpm --filter @x/node ai:eval --live [--normal 100] [--rounds 20] [--warmup-ms 20000] [--seed 1]
 */
import { createSocket } from 'node:dgram'
import { connect as tcpConnect, type Socket } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { Identity } from '@x/pqc'
import { registerFrame, statementBytes } from '@x/signaling'
import {
  createKademlia,
  createUdpTransport,
  encodeMessage,
  MessageType,
  type KademliaNode,
} from '@x/kademlia'
import { localArgs, spawnNode, type SpawnedNode } from '../spawn-node'
import { prng } from './sim-clock'

export const ATTACKS = ['flood', 'scan', 'identity-burst', 'dht-spam', 'slow-loris'] as const
export type Attack = (typeof ATTACKS)[number]

/** An attack counts as detected when it is flagged within this time of its start. */
export const DETECT_WITHIN_MS = 2_000
const ATTACK_MS = 4_000
const ROUND_MS = 6_000
const POLL_MS = 100

export interface EvalOptions {
  normal?: number
  rounds?: number
  warmupMs?: number
  seed?: number
  /** Extra node arguments (e.g. `['--ai', 'off']` to see that nothing is detected then). */
  nodeArgs?: string[]
  log?: (line: string) => void
}

export interface AttackReport {
  trials: number
  detected: number
  detectionRate: number
  /** Time to detect of the detected trials (ms). */
  ttdP50Ms: number
  ttdMaxMs: number
  /** Trials flagged, but later than DETECT_WITHIN_MS. */
  late: number
  /** The feature that drove the first flag, counted over the trials. */
  drivenBy: Record<string, number>
}

export interface EvalReport {
  normalPeers: number
  rounds: number
  warmupMs: number
  seed: number
  attacks: Record<Attack, AttackReport>
  normalFlagged: number
  falsePositiveRate: number
  /** What the engine said at the end. */
  ai: unknown
  wallMs: number
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** A `ws` WebSocket class whose connections leave from `localAddress`. */
function boundWebSocket(localAddress: string): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { localAddress, perMessageDeflate: false })
    }
  } as typeof WebSocket
}

interface Peer {
  ip: string
  identity: Identity
  ws: WebSocket | undefined
  id: string
  stopped: boolean
}

/** Opens a native signaling connection from `ip` and registers `identity`. */
async function registerPeer(
  url: string,
  ip: string,
  identity: Identity,
  timeoutMs = 10_000,
): Promise<WebSocket> {
  const ws = new WebSocket(url, { localAddress: ip, perMessageDeflate: false })
  ws.on('error', () => {})
  return new Promise<WebSocket>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error('registration timeout'))
    }, timeoutMs)
    const onMessage = (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as { type: string; nonce?: string; node?: string }
      if (msg.type === 'challenge') {
        const statement = { node: msg.node!, host: new URL(url).host, time: Date.now(), nonce: msg.nonce! }
        ws.send(registerFrame(statement, identity.publicKey, identity.sign(statementBytes(statement))))
      } else if (msg.type === 'registered') {
        clearTimeout(timer)
        ws.off('message', onMessage)
        resolve(ws)
      } else if (msg.type === 'error') {
        clearTimeout(timer)
        ws.terminate()
        reject(new Error(`registration refused: ${data.toString()}`))
      }
    }
    ws.on('message', onMessage)
    ws.once('close', () => {
      clearTimeout(timer)
      reject(new Error('closed before registration'))
    })
  })
}

function candidate(to: string, i: number): string {
  return JSON.stringify({
    type: 'candidate',
    to,
    data: {
      candidate: `candidate:${i} 1 udp 2122260223 192.168.1.${i % 250} ${40000 + (i % 20000)} typ host generation 0 ufrag abcd network-id 1`,
      sdpMid: '0',
      sdpMLineIndex: 0,
    },
  })
}

/** Normal traffic: returns a stop function. */
async function startNormalTraffic(
  node: SpawnedNode,
  count: number,
  rand: () => number,
  log: (l: string) => void,
): Promise<{ peers: Peer[]; ips: Set<string>; stop: () => Promise<void> }> {
  const url = `${node.wsUrl}/p2p-signaling`
  const peers: Peer[] = Array.from({ length: count }, (_, i) => {
    const identity = Identity.generate()
    return {
      ip: `127.1.${(i >> 8) & 255}.${(i & 255) + 1}`,
      identity,
      ws: undefined,
      id: identity.idString,
      stopped: false,
    }
  })
  const ips = new Set(peers.map((p) => p.ip))
  const timers = new Set<NodeJS.Timeout>()
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t)
      fn()
    }, ms)
    timers.add(t)
  }
  const send = (p: Peer, frame: string) => {
    if (p.ws?.readyState === WebSocket.OPEN) p.ws.send(frame)
  }
  const partnerOf = (i: number) => peers[i ^ 1] ?? peers[0]!

  // Per-peer habits: mean gap between WebRTC set-ups (log-uniform 3–30 s); one pair in five chatters steadily,
  // both ways (an app using signaling as a message bus).
  const chat = peers.map(() => 5 + rand() * 20)
  const habits = peers.map((_, i) => ({
    sessionGapMs: 3_000 * 10 ** rand(),
    busyPerS: (i >> 1) % 5 === 0 ? chat[i & ~1]! * (0.8 + rand() * 0.4) : 0,
    reconnects: i % 7 === 3,
  }))

  const connectPeer = async (p: Peer, i: number): Promise<void> => {
    if (p.stopped) return
    try {
      p.ws = await registerPeer(url, p.ip, p.identity)
    } catch (err) {
      log(`normal peer ${i} could not register: ${(err as Error).message}`)
      return
    }
    const ws = p.ws
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as { type: string; from?: string }
      // Answer an offer the way a browser does: an answer, then a trickle of candidates.
      if (msg.type === 'offer' && msg.from !== undefined) {
        const from = msg.from
        send(
          p,
          JSON.stringify({ type: 'answer', to: from, data: { type: 'answer', sdp: 'v=0 '.repeat(80) } }),
        )
        const n = 4 + Math.floor(rand() * 9)
        for (let c = 0; c < n; c++) later(20 + rand() * 80 * (c + 1), () => send(p, candidate(from, c)))
      }
    })
    send(p, JSON.stringify({ type: 'join', topic: `room-${i % 10}` }))
    later(500 + rand() * 2_000, () => send(p, JSON.stringify({ type: 'discover', topic: `room-${i % 10}` })))
    if (habits[i]!.reconnects) {
      later(20_000 + rand() * 40_000, () => {
        ws.close()
        later(500 + rand() * 3_000, () => void connectPeer(p, i))
      })
    }
  }

  const sessionLoop = (p: Peer, i: number) => {
    if (p.stopped) return
    const partner = partnerOf(i)
    send(
      p,
      JSON.stringify({ type: 'offer', to: partner.id, data: { type: 'offer', sdp: 'v=0 '.repeat(80) } }),
    )
    const n = 4 + Math.floor(rand() * 9)
    for (let c = 0; c < n; c++) later(20 + rand() * 80 * (c + 1), () => send(p, candidate(partner.id, c)))
    later(habits[i]!.sessionGapMs * (0.5 + rand()), () => sessionLoop(p, i))
  }
  const busyLoop = (p: Peer, i: number) => {
    if (p.stopped) return
    const perS = habits[i]!.busyPerS
    send(p, candidate(partnerOf(i).id, Math.floor(rand() * 1000)))
    later((1000 / perS) * (0.5 + rand()), () => busyLoop(p, i))
  }
  const pingLoop = (p: Peer) => {
    if (p.stopped) return
    send(p, '{"type":"ping"}')
    later(15_000 + rand() * 10_000, () => pingLoop(p))
  }

  // Registrations spread over the first seconds, as users arrive.
  await Promise.all(
    peers.map(async (p, i) => {
      await sleep(rand() * Math.min(5_000, count * 40))
      await connectPeer(p, i)
      later(rand() * habits[i]!.sessionGapMs, () => sessionLoop(p, i))
      if (habits[i]!.busyPerS > 0) later(rand() * 1_000, () => busyLoop(p, i))
      later(rand() * 20_000, () => pingLoop(p))
    }),
  )

  // Documents edited through /crdt by y-websocket clients, each from its own address.
  const docs: { provider: WebsocketProvider; doc: Y.Doc }[] = []
  for (let i = 0; i < Math.max(2, Math.round(count / 20)); i++) {
    const ip = `127.5.0.${i + 1}`
    ips.add(ip)
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(`${node.wsUrl}/crdt`, `doc-${i % 3}`, doc, {
      WebSocketPolyfill: boundWebSocket(ip) as never,
      disableBc: true,
    })
    docs.push({ provider, doc })
    const type = (n: number) => {
      if (peers[0]!.stopped) return
      doc.getText('t').insert(0, String.fromCharCode(97 + (n % 26)))
      later(200 + rand() * 800, () => type(n + 1))
    }
    later(rand() * 2_000, () => type(0))
  }

  // DHT nodes that look things up now and then.
  const dhtNodes: KademliaNode[] = []
  for (let i = 0; i < Math.max(2, Math.round(count / 10)); i++) {
    const ip = `127.2.0.${i + 1}`
    ips.add(ip)
    const transport = await createUdpTransport({ host: ip, port: 0 })
    const dht = createKademlia({ transport }, { requestTimeoutMs: 500 })
    await dht.start()
    dhtNodes.push(dht)
    void dht.bootstrap([`127.0.0.1:${node.ready.dht}`]).catch(() => undefined)
    const lookupLoop = () => {
      if (peers[0]!.stopped) return
      const target = new Uint8Array(20).map(() => Math.floor(rand() * 256))
      void dht.findNode(target).catch(() => undefined)
      later(1_000 + rand() * 5_000, lookupLoop)
    }
    later(rand() * 3_000, lookupLoop)
  }

  return {
    peers,
    ips,
    async stop() {
      for (const p of peers) p.stopped = true
      for (const t of timers) clearTimeout(t)
      timers.clear()
      for (const p of peers) p.ws?.terminate()
      for (const d of docs) {
        d.provider.destroy()
        d.doc.destroy()
      }
      await Promise.all(dhtNodes.map((d) => d.stop()))
    },
  }
}

/** One attack from `ip`; resolves when it has stopped (after ATTACK_MS). */
async function runAttack(
  attack: Attack,
  ip: string,
  node: SpawnedNode,
  victims: Peer[],
  rand: () => number,
  identities: Identity[],
  started: () => void,
): Promise<void> {
  const url = `${node.wsUrl}/p2p-signaling`
  let until = Date.now() + ATTACK_MS
  /** The attack's clock starts with its first abusive frame, not with the set-up before it. */
  const begin = () => {
    until = Date.now() + ATTACK_MS
    started()
  }
  const open: { close(): void }[] = []
  try {
    switch (attack) {
      case 'flood': {
        // 400 candidate-sized frames a second at a normal peer (the built-in limit is 100/s).
        const ws = await registerPeer(url, ip, identities.pop()!)
        open.push({ close: () => ws.terminate() })
        const victim = victims[Math.floor(rand() * victims.length)]!.id
        let i = 0
        begin()
        while (Date.now() < until && ws.readyState === WebSocket.OPEN) {
          for (let k = 0; k < 4; k++) ws.send(candidate(victim, i++))
          await sleep(10)
        }
        break
      }
      case 'scan': {
        // Offers to 40 random peer IDs a second: under the rate limit, but nobody talks to that many peers.
        const ws = await registerPeer(url, ip, identities.pop()!)
        open.push({ close: () => ws.terminate() })
        begin()
        while (Date.now() < until && ws.readyState === WebSocket.OPEN) {
          const to = Buffer.from(new Uint8Array(20).map(() => Math.floor(rand() * 256))).toString('hex')
          ws.send(JSON.stringify({ type: 'offer', to, data: { type: 'offer', sdp: 'v=0 '.repeat(40) } }))
          await sleep(25)
        }
        break
      }
      case 'identity-burst': {
        // Throw-away identities: 20 registrations a second from one address, each connection dropped at once.
        begin()
        while (Date.now() < until && identities.length > 0) {
          const identity = identities.pop()!
          void registerPeer(url, ip, identity, 3_000).then(
            (ws) => setTimeout(() => ws.terminate(), 100),
            () => undefined,
          )
          await sleep(50)
        }
        break
      }
      case 'dht-spam': {
        // STOREs (with a made-up token) and FIND_NODEs at 500 datagrams a second.
        const socket = createSocket('udp4')
        await new Promise<void>((r) => socket.bind(0, ip, () => r()))
        open.push({ close: () => socket.close() })
        const senderId = new Uint8Array(20).map(() => Math.floor(rand() * 256))
        let requestId = 1
        begin()
        while (Date.now() < until) {
          for (let k = 0; k < 5; k++) {
            const key = new Uint8Array(20).map(() => Math.floor(rand() * 256))
            const msg =
              k % 2 === 0
                ? encodeMessage({
                    type: MessageType.STORE,
                    requestId: requestId++,
                    senderId,
                    key,
                    token: new Uint8Array(8),
                    ttlMs: 3_600_000,
                    value: new Uint8Array(512).fill(65),
                  })
                : encodeMessage({
                    type: MessageType.FIND_NODE,
                    requestId: requestId++,
                    senderId,
                    target: key,
                  })
            socket.send(msg, node.ready.dht, '127.0.0.1')
          }
          await sleep(10)
        }
        break
      }
      case 'slow-loris': {
        // 30 sockets that send an HTTP request one header line at a time and never finish it, and 10
        // WebSockets that never register: connection slots held for nothing.
        const sockets: Socket[] = []
        begin()
        for (let k = 0; k < 30; k++) {
          const s = tcpConnect({ host: '127.0.0.1', port: node.ready.ws, localAddress: ip })
          s.on('error', () => {})
          s.write('GET /p2p-signaling HTTP/1.1\r\nHost: 127.0.0.1\r\n')
          sockets.push(s)
        }
        open.push({ close: () => sockets.forEach((s) => s.destroy()) })
        for (let k = 0; k < 10; k++) {
          const ws = new WebSocket(url, { localAddress: ip, perMessageDeflate: false })
          ws.on('error', () => {})
          open.push({ close: () => ws.terminate() })
        }
        let n = 0
        while (Date.now() < until) {
          for (const s of sockets) if (!s.destroyed) s.write(`X-Slow-${n}: ${n}\r\n`)
          n++
          await sleep(500)
        }
        break
      }
    }
  } catch {
    // Refused or cut off by the node: the attack is over (detection is judged from /api/ai/flagged).
  } finally {
    for (const o of open) o.close()
  }
}

interface FlaggedEntry {
  kind: string
  id: string
  address?: string
  level: string
  reasons: { feature: string }[]
}

async function flagged(node: SpawnedNode): Promise<FlaggedEntry[]> {
  try {
    const res = await fetch(`${node.restUrl}/api/ai/flagged`)
    return ((await res.json()) as { flagged: FlaggedEntry[] }).flagged
  } catch {
    return []
  }
}

export async function runAiEval(options: EvalOptions = {}): Promise<EvalReport> {
  const started = Date.now()
  const normalCount = options.normal ?? 100
  const rounds = options.rounds ?? 20
  const warmupMs = options.warmupMs ?? 20_000
  const seed = options.seed ?? 1
  const log = options.log ?? (() => {})
  const rand = prng(seed)
  const dataDir = await mkdtemp(join(tmpdir(), 'x-ai-eval-'))
  const node = await spawnNode(
    'ai-eval',
    localArgs(dataDir, ['--log-level', 'warn', ...(options.nodeArgs ?? [])]),
  )
  let normal: Awaited<ReturnType<typeof startNormalTraffic>> | undefined
  try {
    log(`node up; starting ${normalCount} normal peers`)
    normal = await startNormalTraffic(node, normalCount, rand, log)
    const normalIds = new Set(normal.peers.map((p) => p.id))
    const normalFlagged = new Set<string>()
    const noteFalsePositives = (entries: FlaggedEntry[]) => {
      for (const e of entries) {
        if (e.level === 'normal') continue
        if (e.kind === 'peer' && normalIds.has(e.id)) normalFlagged.add(e.id)
        else if (e.address !== undefined && normal!.ips.has(e.address)) normalFlagged.add(e.address)
      }
    }
    log(`warming up for ${warmupMs} ms`)
    const warmupEnd = Date.now() + warmupMs
    while (Date.now() < warmupEnd) {
      noteFalsePositives(await flagged(node))
      await sleep(500)
    }

    // Identities for the attacks, made before the clock starts (ML-DSA-87 key generation is not free).
    const perRound = 2 + 100 // flood + scan + an identity burst's worth
    const results = new Map<Attack, { ttd: number | undefined; reason: string | undefined }[]>(
      ATTACKS.map((a) => [a, []]),
    )
    for (let r = 0; r < rounds; r++) {
      const identities = Array.from({ length: perRound }, () => Identity.generate())
      const start = Date.now()
      const startedAt = new Map<Attack, number>()
      const ipOf = (a: Attack) => `127.3.${r & 255}.${ATTACKS.indexOf(a) + 1}`
      const detectedAt = new Map<Attack, { at: number; reason: string | undefined }>()
      const attacks = ATTACKS.map((a) =>
        runAttack(a, ipOf(a), node, normal!.peers, rand, identities, () => startedAt.set(a, Date.now())),
      )
      let done = false
      void Promise.all(attacks).then(() => (done = true))
      while (!done || Date.now() - start < ATTACK_MS + 1_000) {
        const entries = await flagged(node)
        const now = Date.now()
        noteFalsePositives(entries)
        for (const a of ATTACKS) {
          const t0 = startedAt.get(a)
          if (detectedAt.has(a) || t0 === undefined) continue
          const ip = ipOf(a)
          const hit = entries.find((e) => e.level !== 'normal' && (e.address === ip || e.id === ip))
          if (hit !== undefined) detectedAt.set(a, { at: now - t0, reason: hit.reasons[0]?.feature })
        }
        await sleep(POLL_MS)
      }
      for (const a of ATTACKS) {
        const d = detectedAt.get(a)
        results.get(a)!.push({ ttd: d?.at, reason: d?.reason })
      }
      log(
        `round ${r + 1}/${rounds}: ` +
          ATTACKS.map((a) => {
            const d = detectedAt.get(a)
            return `${a} ${d !== undefined ? `${d.at} ms (${d.reason})` : 'missed'}`
          }).join(', '),
      )
      const rest = ROUND_MS - (Date.now() - start)
      if (rest > 0) await sleep(rest)
    }
    noteFalsePositives(await flagged(node))
    const ai = ((await (await fetch(`${node.restUrl}/api/health`)).json()) as { components: { ai: unknown } })
      .components.ai
    const attacks = Object.fromEntries(
      ATTACKS.map((a) => {
        const trials = results.get(a)!
        const ttds = trials
          .map((t) => t.ttd)
          .filter((t): t is number => t !== undefined && t <= DETECT_WITHIN_MS)
        ttds.sort((x, y) => x - y)
        const report: AttackReport = {
          trials: trials.length,
          detected: ttds.length,
          detectionRate: trials.length === 0 ? 0 : ttds.length / trials.length,
          ttdP50Ms: ttds[Math.floor(ttds.length / 2)] ?? 0,
          ttdMaxMs: ttds[ttds.length - 1] ?? 0,
          late: trials.filter((t) => t.ttd !== undefined && t.ttd > DETECT_WITHIN_MS).length,
          drivenBy: {},
        }
        for (const t of trials) {
          if (t.reason !== undefined) report.drivenBy[t.reason] = (report.drivenBy[t.reason] ?? 0) + 1
        }
        return [a, report]
      }),
    ) as Record<Attack, AttackReport>
    return {
      normalPeers: normalCount,
      rounds,
      warmupMs,
      seed,
      attacks,
      normalFlagged: normalFlagged.size,
      falsePositiveRate: normalFlagged.size / normal.ips.size,
      ai,
      wallMs: Date.now() - started,
    }
  } finally {
    await normal?.stop()
    await node.kill()
    await rm(dataDir, { recursive: true, force: true })
  }
}

export async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      normal: { type: 'string', default: '100' },
      rounds: { type: 'string', default: '20' },
      'warmup-ms': { type: 'string', default: '20000' },
      seed: { type: 'string', default: '1' },
      ai: { type: 'string', default: 'on' },
      live: { type: 'boolean', default: true },
    },
  })
  const report = await runAiEval({
    normal: Number(values.normal),
    rounds: Number(values.rounds),
    warmupMs: Number(values['warmup-ms']),
    seed: Number(values.seed),
    nodeArgs: ['--ai', values.ai],
    log: (l) => console.error(`[ai-eval] ${l}`),
  })
  console.log(
    `normal peers ${report.normalPeers}, rounds ${report.rounds}, warm-up ${report.warmupMs} ms, seed ${report.seed}`,
  )
  console.log(
    'attack           detected (≤ 2 s)   rate      time to detect p50 / max   late   first flagged for',
  )
  for (const a of ATTACKS) {
    const r = report.attacks[a]
    console.log(
      `${a.padEnd(16)} ${`${r.detected}/${r.trials}`.padEnd(18)} ${`${(r.detectionRate * 100).toFixed(1)} %`.padEnd(9)} ${`${r.ttdP50Ms} / ${r.ttdMaxMs} ms`.padEnd(26)} ${String(r.late).padEnd(6)} ${Object.entries(
        r.drivenBy,
      )
        .map(([f, n]) => `${f} ×${n}`)
        .join(', ')}`,
    )
  }
  console.log(
    `normal peers and addresses ever throttled or blocked: ${report.normalFlagged} (${(report.falsePositiveRate * 100).toFixed(2)} %)`,
  )
  console.log(`wall time ${(report.wallMs / 1000).toFixed(1)} s`)
  console.log(JSON.stringify(report))
}
