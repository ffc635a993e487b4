/**
 * The AI engine end to end through its hooks (the signaling guard, the DHT admit hook, raw sockets, the CRDT
 * hook), with an injected clock and `tick()` called by hand: what gets flagged (floods, scans, churn, idle
 * sockets, DHT floods, a flooded victim's sources, a surge of new DHT sources) and what must not be (replies,
 * discovered targets, trickle ICE, a NAT'd office, reconnecting phones, a PeerJS ID's returning owner, the
 * victim of a flood); refusals that say why; persistence; health and the flagged list.
 */
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { GuardSession } from '@x/signaling'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  AI_STATE_KEY,
  AI_TICK_MS,
  NODE_SETTLE_MS,
  type AiClientAddress,
  type AiEngine,
  type AiEngineInit,
  type FlaggedEntry,
  createAiEngine,
  hostOf,
} from '../src/ai/engine'
import { prefixOf } from '../src/ai/features'
import { prng } from '../scripts/ai-eval/sim-clock'

const T0 = 1_700_000_000_000 // a realistic epoch: token buckets start full
const SEED = 0x5eed

interface LogRecord {
  level: 'debug' | 'info' | 'warn'
  obj: Record<string, unknown>
  msg: string | undefined
}

function setup(init: AiEngineInit = {}, extra: { clientAddress?: AiClientAddress } = {}) {
  let t = T0
  const clock = { now: () => t }
  const logs: LogRecord[] = []
  const record =
    (level: LogRecord['level']) =>
    (obj: object, msg?: string): void => {
      logs.push({ level, obj: obj as Record<string, unknown>, msg })
    }
  const logger = { debug: record('debug'), info: record('info'), warn: record('warn') }
  const store = new Map<string, Uint8Array>()
  const engine = createAiEngine(
    {
      logger,
      clock,
      store: {
        get: (k) => Promise.resolve(store.get(k)),
        put: (k, v) => {
          store.set(k, v)
          return Promise.resolve()
        },
      },
      ...extra,
    },
    init,
  )
  return {
    engine,
    logs,
    store,
    now: () => t,
    /** Advances the clock by one tick and scores. */
    tick: (ms = AI_TICK_MS): void => {
      t += ms
      engine.tick()
    },
    /** Advances the clock without scoring (within a tick). */
    wait: (ms: number): void => {
      t += ms
    },
  }
}

function connect(
  engine: AiEngine,
  ip: string,
  close: (reason: string) => void = () => {},
  endpoint: 'native' | 'peerjs' | 'y-webrtc' = 'native',
): GuardSession {
  const s = engine.guard!.connect(ip, endpoint, close)
  if (s === false || typeof s === 'string') throw new Error(`connection from ${ip} refused: ${String(s)}`)
  return s
}

function peer(
  engine: AiEngine,
  ip: string,
  id: string,
  close: (reason: string) => void = () => {},
): GuardSession {
  const s = connect(engine, ip, close)
  s.registered(id)
  return s
}

function find(engine: AiEngine, kind: FlaggedEntry['kind'], id: string): FlaggedEntry | undefined {
  return engine.flagged().find((e) => e.kind === kind && e.id === id)
}

/** Just what the engine uses of a raw TCP socket. */
class FakeSocket extends EventEmitter {
  destroyed = false
  constructor(readonly remoteAddress: string) {
    super()
  }
  destroy(): void {
    this.destroyed = true
    this.emit('close')
  }
}

function socket(ip: string): Socket & FakeSocket {
  return new FakeSocket(ip) as unknown as Socket & FakeSocket
}

afterEach(() => {
  vi.useRealTimers()
})

describe('createAiEngine: a connection as a sender', () => {
  it('throttles, then blocks and closes a peer flooding a target that never answers; its frames are refused', () => {
    const { engine, logs, tick } = setup()
    const close = vi.fn()
    const s = peer(engine, '10.0.0.1', 'peerA', close)
    peer(engine, '10.0.0.2', 'peerB') // registered, but never answers
    let refused = 0
    const levels: string[] = []
    for (let i = 0; i < 24 && levels.at(-1) !== 'blocked'; i++) {
      for (let f = 0; f < 10; f++) if (!s.frame('candidate', 300, 'peerB')) refused++
      tick()
      const level = find(engine, 'peer', 'peerA')?.level ?? 'normal'
      if (levels.at(-1) !== level) levels.push(level)
    }
    // Judged once the grace for an answer is over: 15 frames a tick with no answer is blocked at once.
    expect(levels).toEqual(['normal', 'blocked'])
    const entry = find(engine, 'peer', 'peerA')!
    expect(entry).toMatchObject({ kind: 'peer', id: 'peerA', address: '10.0.0.1', level: 'blocked' })
    expect(entry.until! - entry.since).toBe(30_000)
    expect(entry.reasons[0]!.feature).toBe('one-sided signals/s')
    for (const r of entry.reasons) {
      expect(r.score).toBeGreaterThan(0)
      expect(r.value).toBeGreaterThan(r.p99)
    }
    expect(close).toHaveBeenCalledWith('blocked: one-sided signals/s; retry in 30 s')
    expect(s.frame('candidate', 300, 'peerB')).toBe(false)
    expect(refused).toBe(0) // judged after the grace: nothing was throttled before the block
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        obj: expect.objectContaining({
          key: 'peer:peerA',
          address: '10.0.0.1',
          to: 'blocked',
          untilMs: 30_000,
        }),
      }),
    )
    // Reconnecting under the same peer ID while blocked: closed again on registration, with the reason.
    const again = vi.fn()
    peer(engine, '10.0.0.1', 'peerA', again)
    expect(again).toHaveBeenCalledWith(
      expect.stringMatching(/^blocked: one-sided signals\/s; retry in \d+ s$/),
    )
  })

  it('does not count a trickle of 80 candidates before the answer as one-sided, nor replies to 25 callers', () => {
    const { engine, tick, wait } = setup()
    const a = peer(engine, '10.0.1.1', 'caller')
    const b = peer(engine, '10.0.1.2', 'callee')
    for (let round = 0; round < 8; round++) {
      // A set-up: an offer and 80 candidates in 200 ms, the answer after 300 ms, then the answerer's candidates.
      a.frame('offer', 3000, 'callee')
      b.sent(3000, 'caller')
      for (let c = 0; c < 80; c++) {
        a.frame('candidate', 200, 'callee')
        b.sent(200, 'caller')
      }
      wait(300)
      b.frame('answer', 3000, 'caller')
      a.sent(3000, 'callee')
      for (let c = 0; c < 6; c++) {
        b.frame('candidate', 200, 'caller')
        a.sent(200, 'callee')
      }
      for (let i = 0; i < 20; i++) tick()
    }
    // Reflection: 25 throw-away identities call an auto-answering peer once each; its answers are replies.
    const victim = peer(engine, '10.0.1.3', 'victim')
    for (let k = 0; k < 25; k++) {
      const c = peer(engine, `10.0.2.${k + 1}`, `reflector${k}`)
      c.frame('offer', 3000, 'victim')
      victim.sent(3000, `reflector${k}`)
      victim.frame('answer', 3000, `reflector${k}`)
      for (let n = 0; n < 8; n++) victim.frame('candidate', 200, `reflector${k}`)
    }
    for (let i = 0; i < 20; i++) tick()
    expect(
      engine
        .flagged()
        .filter((e) => e.kind === 'peer')
        .map((e) => [e.id, e.reasons]),
    ).toEqual([])
  })

  it('flags a peer calling 10 random IDs a second (unanswered targets), not one calling 20 peers it discovered', () => {
    const { engine, tick } = setup()
    const random = prng(SEED)
    const scanner = peer(engine, '10.0.3.1', 'scanner')
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 40 && entry === undefined; i++) {
      if (i % 2 === 0) for (let f = 0; f < 5; f++) scanner.frame('offer', 100, random().toString(36).slice(2))
      tick()
      entry = find(engine, 'peer', 'scanner')
    }
    expect(entry).toMatchObject({ level: 'throttled', address: '10.0.3.1' })
    expect(entry!.reasons[0]!.feature).toBe('unanswered targets')

    // A meeting: 20 members found by discover, each called at once (and some never answer).
    const member = peer(engine, '10.0.3.2', 'member')
    const room = Array.from({ length: 20 }, (_, k) => `room${k}`)
    member.discovered!(room)
    for (let i = 0; i < 40; i++) {
      if (i === 0)
        for (const id of room)
          for (let f = 0; f < 12; f++) member.frame(f === 0 ? 'offer' : 'candidate', 200, id)
      tick()
    }
    expect(find(engine, 'peer', 'member')).toBeUndefined()
  })

  it('keys a PeerJS ID with the token digest: the thief bears the block, the owner coming back does not', () => {
    const { engine, tick } = setup()
    const thief = connect(engine, '10.0.4.1', () => {}, 'peerjs')
    thief.registered('alice', 'thief-token-digest')
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 30 && entry?.level !== 'blocked'; i++) {
      for (let f = 0; f < 20; f++) thief.frame('CANDIDATE', 300, `x${(i * 20 + f) % 50}`)
      tick()
      entry = find(engine, 'peerjs', 'alice')
    }
    expect(entry).toMatchObject({
      kind: 'peerjs',
      id: 'alice',
      credential: 'thief-token-digest',
      level: 'blocked',
    })
    thief.closed()
    const ownerClose = vi.fn()
    const owner = connect(engine, '10.0.4.2', ownerClose, 'peerjs')
    owner.registered('alice', 'owner-token-digest')
    tick()
    expect(ownerClose).not.toHaveBeenCalled()
    expect(owner.frame('CANDIDATE', 300, 'bob')).toBe(true)
    // A native peer may hold the same ID: another namespace.
    expect(find(engine, 'peer', 'alice')).toBeUndefined()
  })

  it('puts a blocked peer that comes back after its block on probation: throttled for calmMs, then free', () => {
    const { engine, tick } = setup()
    const s = peer(engine, '10.0.5.1', 'peerA')
    for (let i = 0; i < 24 && find(engine, 'peer', 'peerA')?.level !== 'blocked'; i++) {
      for (let f = 0; f < 10; f++) s.frame('candidate', 300, 'silent')
      tick()
    }
    const blocked = find(engine, 'peer', 'peerA')!
    expect(blocked.level).toBe('blocked')
    s.closed() // the server closes a blocked peer's connection
    while (find(engine, 'peer', 'peerA')!.level === 'blocked') tick()
    expect(find(engine, 'peer', 'peerA')).toMatchObject({
      level: 'throttled',
      since: blocked.until,
      offenses: 1,
    })
    for (let i = 0; i < 4; i++) tick()
    const back = peer(engine, '10.0.5.1', 'peerA')
    // Throttled to 10 frames/s with a burst of 20.
    expect(Array.from({ length: 25 }, () => back.frame('ping', 30, undefined)).filter(Boolean)).toHaveLength(
      20,
    )
    while (find(engine, 'peer', 'peerA')!.level === 'throttled') tick()
    expect(find(engine, 'peer', 'peerA')!.level).toBe('normal')
    expect(Array.from({ length: 25 }, () => back.frame('ping', 30, undefined)).every(Boolean)).toBe(true)
  })

  it('scores but never flags an allow-listed address, and ignores loopback on the list behind trusted proxies', () => {
    const { engine, tick } = setup({ allowList: ['10.0.6.1', '127.0.0.1'] })
    const flood = (s: GuardSession) => {
      for (let i = 0; i < 16; i++) {
        for (let f = 0; f < 20; f++) s.frame('candidate', 300, `t${f % 3}`)
        tick()
      }
    }
    const close = vi.fn()
    flood(peer(engine, '10.0.6.1', 'allowed', close))
    flood(peer(engine, '127.0.0.1', 'local'))
    expect(engine.flagged()).toEqual([])
    expect(close).not.toHaveBeenCalled()
    flood(peer(engine, '10.0.6.2', 'other'))
    expect(find(engine, 'peer', 'other')).toBeDefined()

    const proxied = setup(
      { allowList: ['127.0.0.1', '::1', '10.0.6.1'] },
      {
        clientAddress: Object.assign(() => '127.0.0.1', { trustsProxies: true, isTrustedProxy: () => true }),
      },
    )
    const spoofed = peer(proxied.engine, '127.0.0.1', 'spoofed')
    for (let i = 0; i < 16; i++) {
      for (let f = 0; f < 20; f++) spoofed.frame('candidate', 300, 'x')
      proxied.tick()
    }
    expect(find(proxied.engine, 'peer', 'spoofed')).toBeDefined()
  })
})

describe('createAiEngine: a connection as a target', () => {
  it('throttles the sources of a distributed flood together; the victim is never flagged', () => {
    const { engine, tick } = setup()
    const victimClose = vi.fn()
    const victim = peer(engine, '10.1.0.1', 'victim', victimClose)
    const sources = Array.from({ length: 30 }, (_, k) => peer(engine, `10.1.${k + 1}.9`, `src${k}`))
    // 30 sources, 4 candidates/s each, that the victim never answers.
    for (let i = 0; i < 40; i++) {
      sources.forEach((s, k) => {
        if (i % 4 === k % 4) {
          for (let f = 0; f < 4; f++) {
            s.frame('candidate', 300, 'victim')
            victim.sent(300, `src${k}`)
          }
        }
      })
      tick()
    }
    const flagged = engine.flagged().filter((e) => e.kind === 'peer' && e.id.startsWith('src'))
    expect(flagged.length).toBeGreaterThanOrEqual(15)
    expect(flagged[0]!.reasons[0]!.feature).toMatch(/^flooding a peer/)
    expect(find(engine, 'peer', 'victim')).toBeUndefined()
    expect(victimClose).not.toHaveBeenCalled()
    expect(engine.health()).toMatchObject({ status: 'ok' })
  })
})

describe('createAiEngine: addresses and prefixes', () => {
  it("gives a NAT'd address the allowance of the members it carries", () => {
    const { engine, tick } = setup()
    for (let i = 0; i < NODE_SETTLE_MS / AI_TICK_MS; i++) tick()
    // 60 registered peers arriving behind one address, 2 a second, then reloading their pages 2 a second.
    const office: GuardSession[] = []
    for (let i = 0; i < 400; i++) {
      if (i % 2 === 0 && office.length < 60) office.push(peer(engine, '10.2.0.1', `office${office.length}`))
      for (const s of office) if ((i + office.indexOf(s)) % 40 === 0) s.frame('ping', 30, undefined)
      tick()
    }
    let reloads = 0
    for (let i = 0; i < 120; i++) {
      if (i % 2 === 0) {
        const k = reloads++ % 60
        office[k]!.closed()
        office[k] = peer(engine, '10.2.0.1', `office${k}`)
      }
      tick()
    }
    expect(engine.flagged().map((e) => [e.id, e.reasons])).toEqual([])
    // The same connection rate from an address carrying nobody: connections that never register.
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 40 && entry === undefined; i++) {
      if (i % 2 === 0) {
        const s = engine.guard!.connect('10.2.0.2', 'native', () => {})
        if (s !== false && typeof s !== 'string') s.closed()
      }
      tick()
      entry = find(engine, 'address', '10.2.0.2')
    }
    expect(entry).toMatchObject({ kind: 'address', level: 'throttled' })
  })

  it('counts churn of throw-away identities, not a phone reconnecting with its own', () => {
    const { engine, tick, wait } = setup()
    // A phone: the same identity every 3 s.
    for (let i = 0; i < 30; i++) {
      const s = peer(engine, '10.3.0.1', 'phone')
      for (let k = 0; k < 11; k++) tick()
      s.closed()
      wait(100)
      tick()
    }
    expect(engine.flagged()).toEqual([])
    // Throw-away identities, 2 a second, each gone within half a second.
    let n = 0
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 80 && entry === undefined; i++) {
      if (i % 2 === 0) {
        const s = engine.guard!.connect('10.3.0.2', 'native', () => {})
        if (s !== false && typeof s !== 'string') {
          s.registered(`sybil${n++}`)
          tick()
          s.closed()
        }
      } else tick()
      entry = find(engine, 'address', '10.3.0.2')
    }
    expect(entry).toMatchObject({ level: 'throttled' })
    expect(entry!.reasons.map((r) => r.feature)).toContain('short-lived connections/s per member')
  })

  it('refuses a blocked address with a reason at most once a second, with 429 beyond', () => {
    const { engine, tick } = setup()
    const sockets = Array.from({ length: 40 }, () => socket('10.4.0.1'))
    for (const so of sockets) engine.socketOpened(so)
    for (let i = 0; i < 12 && find(engine, 'address', '10.4.0.1')?.level !== 'blocked'; i++) tick()
    expect(find(engine, 'address', '10.4.0.1')?.level).toBe('blocked')
    const verdicts = Array.from({ length: 5 }, () => engine.guard!.connect('10.4.0.1', 'y-webrtc', () => {}))
    expect(verdicts.filter((v) => typeof v === 'string')).toHaveLength(2) // a burst of 2, then 1 a second
    expect(verdicts[0]).toMatch(/^blocked: [a-z -]+; retry in 30 s$/)
    expect(verdicts.slice(2)).toEqual([false, false, false])
    expect(sockets.every((so) => so.destroyed)).toBe(true)
  })

  it('flags the prefix of an attacker spread over a /24, and holds back its addresses that carry no member', () => {
    const { engine, tick } = setup()
    const member = peer(engine, '10.5.0.200', 'neighbour')
    // 20 addresses of one /24, two idle raw sockets each: under every per-address threshold.
    const held = Array.from({ length: 20 }, (_, k) => [
      socket(`10.5.0.${k + 1}`),
      socket(`10.5.0.${k + 1}`),
    ]).flat()
    for (const so of held) engine.socketOpened(so)
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 20 && entry?.level !== 'blocked'; i++) {
      tick()
      entry = find(engine, 'prefix', '10.5.0.0/24')
    }
    expect(entry).toMatchObject({ kind: 'prefix', level: 'blocked' })
    expect(engine.flagged().filter((e) => e.kind === 'address')).toEqual([])
    expect(held.every((so) => so.destroyed)).toBe(true)
    expect(typeof engine.guard!.connect('10.5.0.77', 'native', () => {})).not.toBe('object')
    // The member of the same /24 keeps its standing.
    expect(member.frame('ping', 30, undefined)).toBe(true)
    const more = engine.guard!.connect('10.5.0.200', 'native', () => {})
    expect(typeof more).toBe('object')
  })
})

describe('createAiEngine: raw sockets', () => {
  it('blocks an address holding sockets open without upgrading them, and destroys those sockets', () => {
    const { engine, tick } = setup()
    // IPv4-mapped IPv6, as a dual-stack server reports it: the address is the IPv4 one.
    const sockets = Array.from({ length: 12 }, () => socket('::ffff:10.6.0.7'))
    for (const so of sockets) expect(engine.socketOpened(so)).toBe(true)
    engine.socketUpgraded(sockets[0]!)
    engine.socketUpgraded(sockets[1]!)
    sockets[2]!.destroy() // closed by the peer: no longer pending
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 16 && entry?.level !== 'blocked'; i++) {
      tick()
      entry = find(engine, 'address', '10.6.0.7')
    }
    expect(entry!.level).toBe('blocked')
    expect(sockets.slice(3).every((so) => so.destroyed)).toBe(true)
    expect(sockets[0]!.destroyed || sockets[1]!.destroyed).toBe(false) // upgraded: the guard handles those
    expect(engine.socketOpened(socket('10.6.0.7'))).toBe(false)
    expect(engine.socketOpened(socket('10.6.0.70'))).toBe(true)
  })

  it("does not follow a trusted proxy's raw sockets: they are every client's", () => {
    const resolver = Object.assign(() => '203.0.113.9', {
      trustsProxies: true,
      isTrustedProxy: (a: string) => a === '10.7.0.1',
    })
    const { engine, tick } = setup({}, { clientAddress: resolver })
    const sockets = Array.from({ length: 40 }, () => socket('10.7.0.1'))
    for (const so of sockets) expect(engine.socketOpened(so)).toBe(true)
    for (let i = 0; i < 20; i++) tick()
    expect(engine.flagged()).toEqual([])
  })
})

describe('createAiEngine: CRDT connections', () => {
  it('flags an address pushing oversized updates, and a connection flood', () => {
    const { engine, tick } = setup()
    for (let i = 0; i < NODE_SETTLE_MS / AI_TICK_MS; i++) tick()
    const editor = engine.crdtConnect('10.8.0.1', () => {})
    if (editor === false || typeof editor === 'string') throw new Error('refused')
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 20 && entry === undefined; i++) {
      editor.data(2_000_000)
      tick()
      entry = find(engine, 'address', '10.8.0.1')
    }
    expect(entry!.reasons[0]!.feature).toBe('CRDT bytes/s per member')
    for (let i = 0; i < 20 && find(engine, 'address', '10.8.0.2') === undefined; i++) {
      for (let k = 0; k < 5; k++) {
        const c = engine.crdtConnect('10.8.0.2', () => {})
        if (c !== false && typeof c !== 'string') c.data(100)
      }
      tick()
    }
    expect(find(engine, 'address', '10.8.0.2')!.reasons[0]!.feature).toBe('connections/s per member')
  })
})

describe('createAiEngine: DHT requests', () => {
  it('blocks an address sending 300 stores/s, then refuses its requests', () => {
    const { engine, tick } = setup()
    const admit = engine.admitDht!
    for (let i = 0; i < 8; i++) {
      for (let f = 0; f < 75; f++) admit({ from: '10.9.0.9:4000', kind: 'store', bytes: 200 })
      tick()
    }
    const entry = find(engine, 'address', '10.9.0.9')
    expect(entry).toMatchObject({ kind: 'address', address: '10.9.0.9', level: 'blocked' })
    expect(admit({ from: '10.9.0.9:4000', kind: 'store', bytes: 200 })).toBe(false)
    expect(admit({ from: '10.9.0.9:4001', kind: 'ping', bytes: 40 })).toBe(false)
    expect(admit({ from: '10.9.0.8:4000', kind: 'store', bytes: 200 })).toBe(true)
  })

  it('admits malformed datagrams but counts them against their address', () => {
    const { engine, tick } = setup()
    const admit = engine.admitDht!
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 24 && entry?.level !== 'blocked'; i++) {
      for (let f = 0; f < 10; f++)
        expect(admit({ from: '[2001:db8::7]:4000', kind: 'malformed', bytes: 3 })).toBe(true)
      tick()
      entry = find(engine, 'address', '2001:db8::7')
    }
    expect(entry).toMatchObject({ level: 'blocked' })
    expect(entry!.reasons.map((r) => r.feature)).toEqual(['bad datagrams/s'])
    expect(admit({ from: '[2001:db8::7]:4000', kind: 'find_node', bytes: 60 })).toBe(false)
  })

  it('holds back new sources during a surge of new DHT sources, not the sources it knew before', () => {
    const { engine, tick } = setup()
    const admit = engine.admitDht!
    const known = Array.from({ length: 5 }, (_, k) => `10.10.${k}.1:6881`)
    // The node settles, its neighbours ask now and then.
    for (let i = 0; i < (NODE_SETTLE_MS + 120_000) / AI_TICK_MS; i++) {
      if (i % 4 === 0) for (const from of known) admit({ from, kind: 'find_node', bytes: 60 })
      tick()
    }
    // 60 new sources within a few seconds, a lookup each per second.
    const sybils = Array.from({ length: 60 }, (_, k) => `10.11.${k}.7:7000`)
    let held = 0
    for (let i = 0; i < 40; i++) {
      for (const from of sybils.slice(0, Math.min(60, (i + 1) * 6)))
        if (!admit({ from, kind: 'find_node', bytes: 60 })) held++
      for (const from of known) expect(admit({ from, kind: 'find_node', bytes: 60 })).toBe(true)
      tick()
    }
    expect(held).toBeGreaterThan(1_000)
    const flagged = engine.flagged().filter((e) => e.kind === 'address')
    expect(flagged.length).toBeGreaterThanOrEqual(30)
    expect(flagged.every((e) => e.id.startsWith('10.11.'))).toBe(true)
    expect(flagged[0]!.reasons[0]!.feature).toBe('new DHT source during a surge of new sources')
  })
})

describe('createAiEngine: state, reports and lifecycle', () => {
  it('persists its learned baselines: a restarted engine is trained at once', async () => {
    const first = setup()
    const peers = Array.from({ length: 40 }, (_, k) => peer(first.engine, `10.12.${k}.1`, `p${k}`))
    for (let i = 0; i < 200; i++) {
      peers.forEach((s, k) => {
        s.frame('ping', 30, undefined)
        first.engine.admitDht!({ from: `10.12.${k}.1:1`, kind: 'ping', bytes: 40 })
      })
      first.tick()
    }
    expect(first.engine.health()).toMatchObject({ training: 'trained' })
    await first.engine.persist()
    expect(first.store.get(AI_STATE_KEY)).toBeInstanceOf(Uint8Array)

    const second = setup()
    second.store.set(AI_STATE_KEY, first.store.get(AI_STATE_KEY)!)
    expect(await second.engine.restore()).toBe(true)
    expect(second.engine.health()).toMatchObject({ training: 'trained' })
    // stop() persists too.
    second.store.delete(AI_STATE_KEY)
    await second.engine.stop()
    expect(second.store.has(AI_STATE_KEY)).toBe(true)

    const broken = setup()
    broken.store.set(AI_STATE_KEY, new TextEncoder().encode('{"v":1,"models":{"sessions":{"bins":3}}}'))
    expect(await broken.engine.restore()).toBe(false)
    broken.store.set(AI_STATE_KEY, new TextEncoder().encode('not json'))
    expect(await broken.engine.restore()).toBe(false)
    expect(broken.engine.health()).toMatchObject({ training: 'learning' })
  })

  it('reports health and the flagged list', () => {
    const { engine, tick } = setup()
    expect(engine.enabled).toBe(true)
    expect(engine.health()).toEqual({
      status: 'ok',
      model: 'robust-baselines',
      training: 'learning',
      samples: { sessions: 0, addresses: 0 },
      scored: 0,
      scoredTotal: 0,
      throttled: 0,
      blocked: 0,
      pressure: [],
      flooded: 0,
    })
    const a = peer(engine, '10.13.0.1', 'peerA')
    for (let i = 0; i < 12 && find(engine, 'peer', 'peerA') === undefined; i++) {
      for (let f = 0; f < 10; f++) a.frame('candidate', 300, 'nobody')
      tick()
    }
    for (let i = 0; i < 8; i++) {
      for (let f = 0; f < 75; f++) engine.admitDht!({ from: '10.13.0.3:1', kind: 'store', bytes: 1 })
      tick()
    }
    expect(engine.health()).toMatchObject({ status: 'ok', throttled: 0, blocked: 2 })
    expect(engine.flagged().map((e) => `${e.level} ${e.kind} ${e.id}`)).toEqual([
      'blocked address 10.13.0.3',
      'blocked peer peerA',
    ])
  })

  it('is off when disabled: no hooks, health disabled, nothing flagged', async () => {
    const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn() }
    const engine = createAiEngine({ logger }, { enabled: false })
    expect(engine.enabled).toBe(false)
    expect(engine.guard).toBeUndefined()
    expect(engine.admitDht).toBeUndefined()
    expect(engine.health()).toMatchObject({ status: 'disabled' })
    expect(engine.crdtConnect('10.0.0.1', () => {})).toMatchObject({})
    expect(await engine.restore()).toBe(false)
    engine.start()
    engine.tick()
    await engine.stop()
    expect(engine.flagged()).toEqual([])
  })

  it('rejects a bad tickMs', () => {
    const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn() }
    expect(() => createAiEngine({ logger }, { tickMs: 0 })).toThrow(RangeError)
    expect(() => createAiEngine({ logger }, { tickMs: Number.NaN })).toThrow(/"tickMs"/)
  })

  it('ticks every tickMs once started, and stop() clears the timers', async () => {
    vi.useFakeTimers()
    const { engine } = setup()
    const s = connect(engine, '10.14.0.1')
    s.frame('ping', 100, undefined)
    expect(vi.getTimerCount()).toBe(0)
    engine.start()
    engine.start() // idempotent
    expect(vi.getTimerCount()).toBe(2) // scoring, and persisting (a store was given)
    vi.advanceTimersByTime(AI_TICK_MS - 1)
    expect(engine.health()).toMatchObject({ scoredTotal: 0 })
    vi.advanceTimersByTime(1)
    expect(engine.health()).toMatchObject({ scored: 3, scoredTotal: 3 })
    await engine.stop()
    expect(vi.getTimerCount()).toBe(0)
    vi.advanceTimersByTime(10 * AI_TICK_MS)
    expect(engine.health()).toMatchObject({ scoredTotal: 3 })
  })
})

describe('hostOf, prefixOf', () => {
  it('takes the host of host:port and [v6]:port, and leaves a bare IPv6 address alone', () => {
    expect(hostOf('a.b.c.d:1')).toBe('a.b.c.d')
    expect(hostOf('10.0.0.9:4000')).toBe('10.0.0.9')
    expect(hostOf('[::1]:5')).toBe('::1')
    expect(hostOf('::1')).toBe('::1')
    expect(hostOf('10.0.0.9')).toBe('10.0.0.9')
  })

  it('groups IPv4 by /24 and IPv6 by /64', () => {
    expect(prefixOf('192.0.2.77')).toBe('192.0.2.0/24')
    expect(prefixOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(prefixOf('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(prefixOf('2001:DB8:0001:0002::9')).toBe('2001:db8:1:2::/64')
  })
})
