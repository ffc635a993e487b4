/**
 * The AI engine end to end through its hooks (the signaling guard, the DHT admit hook, raw sockets), with an
 * injected clock and `tick()` called by hand: floods, target scans, identity bursts, idle sockets and DHT
 * floods get flagged with the features that drove them, normal and allow-listed traffic does not; probation
 * after a block, health, the flagged list, the disabled engine, the timer, and `hostOf`.
 */
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { GuardSession } from '@x/signaling'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  AI_TICK_MS,
  type AiEngine,
  type AiEngineInit,
  type FlaggedEntry,
  createAiEngine,
  hostOf,
} from '../src/ai/engine'
import { prng } from '../scripts/ai-eval'

const T0 = 1_700_000_000_000 // a realistic epoch: token buckets start full
const SEED = 0x5eed

interface LogRecord {
  level: 'debug' | 'info' | 'warn'
  obj: Record<string, unknown>
  msg: string | undefined
}

function setup(init: AiEngineInit = {}) {
  let t = T0
  const clock = { now: () => t }
  const logs: LogRecord[] = []
  const record =
    (level: LogRecord['level']) =>
    (obj: object, msg?: string): void => {
      logs.push({ level, obj: obj as Record<string, unknown>, msg })
    }
  const logger = { debug: record('debug'), info: record('info'), warn: record('warn') }
  const engine = createAiEngine({ logger, clock }, init)
  return {
    engine,
    logs,
    /** Advances the clock by one tick and scores. */
    tick: (ms = AI_TICK_MS): void => {
      t += ms
      engine.tick()
    },
  }
}

function connect(engine: AiEngine, ip: string, close: (reason: string) => void = () => {}): GuardSession {
  const s = engine.guard!.connect(ip, 'native', close)
  if (s === false) throw new Error(`connection from ${ip} refused`)
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

describe('createAiEngine: signaling sessions', () => {
  it('throttles, then blocks and closes a peer flooding 500 frames/s; its frames are then refused', () => {
    const { engine, logs, tick } = setup()
    const close = vi.fn()
    const s = connect(engine, '10.0.0.1', close)
    s.registered('peerA')
    expect(engine.health()).toMatchObject({ status: 'ok', training: 'learning', throttled: 0, blocked: 0 })

    const levels: string[] = []
    let refusedWhileThrottled = 0
    // 500 frames/s for 1 s of fake time, then one more tick: the sustain timer (1 s) runs out.
    for (let i = 0; i < 5; i++) {
      if (i < 4) {
        for (let f = 0; f < 125; f++) if (!s.frame('candidate', 300, 'peerB')) refusedWhileThrottled++
      }
      tick()
      levels.push(find(engine, 'peer', 'peerA')?.level ?? 'normal')
    }
    expect(levels).toEqual(['throttled', 'throttled', 'throttled', 'throttled', 'blocked'])
    // While throttled the session got a bucket of 10 frames/s (burst 20): most of the flood was refused.
    expect(refusedWhileThrottled).toBeGreaterThan(300)

    const entry = find(engine, 'peer', 'peerA')!
    expect(entry).toMatchObject({ kind: 'peer', id: 'peerA', address: '10.0.0.1', level: 'blocked' })
    expect(entry.until! - entry.since).toBe(30_000)
    expect(entry.firstFlagged).toBe(T0 + AI_TICK_MS)
    expect(entry.peak).toBeGreaterThanOrEqual(entry.score)
    expect(entry.reasons[0]!.feature).toBe('signals/s')
    for (const r of entry.reasons) {
      expect(r.score).toBeGreaterThan(0)
      expect(r.value).toBeGreaterThan(r.p99)
      expect(Math.log2(1 + r.value) - Math.log2(1 + r.p99)).toBeCloseTo(r.score, 1)
    }

    expect(close).toHaveBeenCalled()
    expect(String(close.mock.calls[0]![0])).toMatch(/^blocked/)
    expect(s.frame('candidate', 300, 'peerB')).toBe(false)
    expect(s.frame('offer', 100, 'peerC')).toBe(false)

    expect(logs.filter((l) => l.level === 'warn').map((l) => l.obj)).toContainEqual(
      expect.objectContaining({ key: 'peer:peerA', from: 'normal', to: 'throttled' }),
    )
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        obj: expect.objectContaining({
          key: 'peer:peerA',
          from: 'throttled',
          to: 'blocked',
          untilMs: 30_000,
        }),
      }),
    )
    const health = engine.health()
    expect(health.status === 'ok' && health.blocked).toBeGreaterThanOrEqual(1)

    // Reconnecting under the same peer ID while blocked: closed again on registration.
    const again = vi.fn()
    const s2 = engine.guard!.connect('10.0.0.1', 'native', again)
    if (s2 !== false) {
      s2.registered('peerA')
      expect(again).toHaveBeenCalledWith(expect.stringMatching(/^blocked/))
    }
  })

  it('keeps PeerJS IDs (client-chosen) apart from native peer IDs (proven)', () => {
    const { engine, tick } = setup()
    const close = vi.fn()
    const native = connect(engine, '10.0.0.1', close)
    native.registered('abc')
    const pj = engine.guard!.connect('10.0.0.2', 'peerjs', () => {})
    if (pj === false) throw new Error('refused')
    pj.registered('abc') // the same ID, chosen by a PeerJS client
    for (let i = 0; i < 5; i++) {
      for (let f = 0; f < 125; f++) pj.frame('CANDIDATE', 300, 'victim')
      tick()
    }
    expect(find(engine, 'peerjs', 'abc')?.level).toBe('blocked')
    expect(find(engine, 'peer', 'abc')).toBeUndefined()
    expect(close).not.toHaveBeenCalled()
    expect(native.frame('candidate', 300, 'x')).toBe(true)
  })

  it('puts a blocked peer that comes back after its block on probation: throttled for calmMs, then free', () => {
    const { engine, tick } = setup()
    const s = connect(engine, '10.0.0.1')
    s.registered('peerA')
    for (let i = 0; i < 5; i++) {
      if (i < 4) for (let f = 0; f < 125; f++) s.frame('candidate', 300, 'peerB')
      tick()
    }
    const blocked = find(engine, 'peer', 'peerA')!
    expect(blocked.level).toBe('blocked')
    s.closed() // the server closes a blocked peer's connection
    while (find(engine, 'peer', 'peerA')!.level === 'blocked') tick()
    const probation = find(engine, 'peer', 'peerA')!
    expect(probation).toMatchObject({ level: 'throttled', since: blocked.until, offenses: 1 })

    // Back a second later: throttled to 10 frames/s with a burst of 20.
    for (let i = 0; i < 4; i++) tick()
    const back = connect(engine, '10.0.0.1')
    back.registered('peerA')
    const admitted = Array.from({ length: 25 }, () => back.frame('candidate', 300, 'peerB'))
    expect(admitted.filter(Boolean)).toHaveLength(20)
    // Calm for 10 s since the block ended: normal again, its frames pass.
    while (find(engine, 'peer', 'peerA')!.level === 'throttled') tick()
    const released = find(engine, 'peer', 'peerA')!
    expect(released.level).toBe('normal')
    expect(released.since - blocked.until!).toBe(10_000)
    expect(Array.from({ length: 25 }, () => back.frame('candidate', 300, 'peerB')).every(Boolean)).toBe(true)
  })

  it('never flags a session sending 2 frames/s, and learns from it', () => {
    const { engine, tick } = setup()
    const close = vi.fn()
    const s = connect(engine, '10.0.0.2', close)
    s.registered('peerN')
    for (let i = 0; i < 240; i++) {
      // 60 s: one frame every other tick, signals and topic traffic, a few distinct targets.
      if (i % 2 === 0) expect(s.frame(i % 10 === 0 ? 'join' : 'candidate', 300, `peer${i % 3}`)).toBe(true)
      s.sent(500)
      tick()
      expect(engine.flagged()).toEqual([])
    }
    expect(close).not.toHaveBeenCalled()
    const h = engine.health()
    expect(h).toMatchObject({ status: 'ok', training: 'learning', throttled: 0, blocked: 0, scored: 2 })
    expect(h.status === 'ok' && h.samples.sessions).toBeGreaterThan(200)
    expect(h.status === 'ok' && h.samples.addresses).toBeGreaterThan(200)
  })

  it("flags a session scanning 40 random targets/s, for 'distinct targets'", () => {
    const { engine, tick } = setup()
    const s = connect(engine, '10.0.0.3')
    s.registered('peerS')
    const random = prng(SEED)
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 8 && entry === undefined; i++) {
      for (let f = 0; f < 10; f++) s.frame('offer', 100, random().toString(36).slice(2, 14))
      tick()
      entry = find(engine, 'peer', 'peerS')
    }
    expect(entry).toMatchObject({ kind: 'peer', id: 'peerS', address: '10.0.0.3', level: 'throttled' })
    expect(entry!.reasons.map((r) => r.feature)).toEqual(['distinct targets'])
    // The same rate to one target is fine.
    const one = connect(engine, '10.0.0.4')
    one.registered('peerT')
    for (let i = 0; i < 8; i++) {
      for (let f = 0; f < 10; f++) one.frame('offer', 100, 'peerU')
      tick()
    }
    expect(find(engine, 'peer', 'peerT')).toBeUndefined()
  })

  it('flags an address churning through identities: many short connections, each registering a new ID', () => {
    const { engine, tick } = setup()
    const ADDRESS_REASONS = [
      'registrations/s',
      'distinct identities',
      'connections/s',
      'short-lived connections/s',
    ]
    let n = 0
    let refused = 0
    const levels: string[] = []
    let entry: FlaggedEntry | undefined
    // 12 connections/s, each registering a new peer ID and closing at once, until the address is blocked.
    for (let i = 0; i < 20 && entry?.level !== 'blocked'; i++) {
      for (let c = 0; c < 3; c++) {
        const s = engine.guard!.connect('10.0.0.5', 'native', () => {})
        if (s === false) {
          refused++
          continue
        }
        s.registered(`sybil${n++}`)
        s.closed()
      }
      tick()
      entry = find(engine, 'address', '10.0.0.5')
      if (entry !== undefined && levels.at(-1) !== entry.level) levels.push(entry.level)
    }
    expect(levels).toEqual(['throttled', 'blocked'])
    expect(entry).toMatchObject({ kind: 'address', id: '10.0.0.5', address: '10.0.0.5' })
    expect(entry!.reasons.length).toBeGreaterThan(0)
    for (const r of entry!.reasons) expect(ADDRESS_REASONS).toContain(r.feature)
    // Once throttled the address may open 0.5 connections/s (burst 2): most attempts were refused, and
    // refused attempts still count, so the churn went on to be blocked.
    expect(refused).toBeGreaterThan(n)
    expect(engine.guard!.connect('10.0.0.5', 'native', () => {})).toBe(false)
    expect(engine.guard!.connect('10.0.0.50', 'native', () => {})).not.toBe(false)
    // No single session was flagged: each did nothing wrong on its own.
    expect(engine.flagged().filter((e) => e.kind !== 'address')).toEqual([])
  })

  it('scores but never flags an allow-listed address', () => {
    const { engine, tick } = setup({ allowList: ['10.0.0.1'] })
    const close = vi.fn()
    const s = connect(engine, '10.0.0.1', close)
    s.registered('peerA')
    for (let i = 0; i < 12; i++) {
      for (let f = 0; f < 125; f++) expect(s.frame('candidate', 300, `t${f}`)).toBe(true)
      tick()
    }
    expect(engine.flagged()).toEqual([])
    expect(close).not.toHaveBeenCalled()
    expect(engine.health()).toMatchObject({ scored: 2, throttled: 0, blocked: 0 })
    // Another address doing the same is flagged (the allow list, not the traffic, made the difference).
    const other = connect(engine, '10.0.0.6')
    other.registered('peerO')
    for (let i = 0; i < 2; i++) {
      for (let f = 0; f < 125; f++) other.frame('candidate', 300, `t${f}`)
      tick()
    }
    expect(find(engine, 'peer', 'peerO')).toBeDefined()
  })
})

describe('createAiEngine: raw sockets', () => {
  it('blocks an address holding sockets open without upgrading them, and destroys those sockets', () => {
    const { engine, tick } = setup()
    // IPv4-mapped IPv6, as a dual-stack server reports it: the address is the IPv4 one.
    const sockets = Array.from({ length: 12 }, () => socket('::ffff:10.0.0.7'))
    for (const so of sockets) expect(engine.socketOpened(so)).toBe(true)
    engine.socketUpgraded(sockets[0]!)
    engine.socketUpgraded(sockets[1]!)
    sockets[2]!.destroy() // closed by the peer: no longer pending
    let entry: FlaggedEntry | undefined
    const levels: string[] = []
    for (let i = 0; i < 16 && entry?.level !== 'blocked'; i++) {
      tick()
      entry = find(engine, 'address', '10.0.0.7')
      if (entry !== undefined && levels.at(-1) !== entry.level) levels.push(entry.level)
    }
    expect(levels).toEqual(['throttled', 'blocked'])
    expect(entry!.reasons[0]).toMatchObject({ feature: 'unproductive connections', value: 9 })
    expect(sockets.slice(3).every((so) => so.destroyed)).toBe(true)
    expect(sockets[0]!.destroyed || sockets[1]!.destroyed).toBe(false) // upgraded: the guard handles those
    expect(engine.socketOpened(socket('10.0.0.7'))).toBe(false)
    expect(engine.socketOpened(socket('10.0.0.70'))).toBe(true)
  })
})

describe('createAiEngine: DHT requests', () => {
  it('blocks an address sending 300 stores/s, then refuses its requests', () => {
    const { engine, tick } = setup()
    const admit = engine.admitDht!
    for (let i = 0; i < 75; i++)
      expect(admit({ from: '10.0.0.9:4000', kind: 'store', bytes: 200 })).toBe(true)
    tick()
    const entry = find(engine, 'address', '10.0.0.9')
    expect(entry).toMatchObject({ kind: 'address', address: '10.0.0.9', level: 'blocked' })
    expect(entry!.reasons.map((r) => r.feature)).toContain('DHT stores/s')
    expect(admit({ from: '10.0.0.9:4000', kind: 'store', bytes: 200 })).toBe(false)
    // Any port and any kind: the host is blocked.
    expect(admit({ from: '10.0.0.9:4001', kind: 'ping', bytes: 40 })).toBe(false)
    expect(admit({ from: '10.0.0.8:4000', kind: 'store', bytes: 200 })).toBe(true)
    expect(engine.health()).toMatchObject({ blocked: 1 })
  })

  it('admits malformed datagrams but counts them against their address', () => {
    const { engine, tick } = setup()
    const admit = engine.admitDht!
    let entry: FlaggedEntry | undefined
    for (let i = 0; i < 12; i++) {
      for (let f = 0; f < 10; f++) {
        expect(admit({ from: '[2001:db8::7]:4000', kind: 'malformed', bytes: 3 })).toBe(true)
      }
      tick()
      entry = find(engine, 'address', '2001:db8::7')
    }
    expect(entry).toMatchObject({ level: 'blocked' })
    expect(entry!.reasons.map((r) => r.feature)).toEqual(['bad datagrams/s'])
    expect(admit({ from: '[2001:db8::7]:4000', kind: 'find_node', bytes: 60 })).toBe(false)
  })
})

describe('createAiEngine: reports and lifecycle', () => {
  it('reports health: learning at first, then throttled and blocked counts', () => {
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
    })
    const a = connect(engine, '10.0.0.1')
    a.registered('peerA')
    const b = connect(engine, '10.0.0.2')
    b.registered('peerB')
    for (let f = 0; f < 125; f++) a.frame('candidate', 300, 'x')
    for (let f = 0; f < 75; f++) engine.admitDht!({ from: '10.0.0.3:1', kind: 'store', bytes: 1 })
    tick()
    // peerA throttled; 10.0.0.3 blocked; 10.0.0.1 is not flagged yet (its frames/s needs a second tick).
    expect(engine.health()).toMatchObject({ status: 'ok', training: 'learning', throttled: 1, blocked: 1 })
    expect(engine.flagged().map((e) => `${e.level} ${e.kind} ${e.id}`)).toEqual([
      'blocked address 10.0.0.3',
      'throttled peer peerA',
    ])
  })

  it('is off when disabled: no hooks, health disabled, nothing flagged', () => {
    const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn() }
    const engine = createAiEngine({ logger }, { enabled: false })
    expect(engine.enabled).toBe(false)
    expect(engine.guard).toBeUndefined()
    expect(engine.admitDht).toBeUndefined()
    expect(engine.health()).toMatchObject({ status: 'disabled' })
    engine.start()
    engine.tick()
    engine.stop()
    expect(engine.flagged()).toEqual([])
  })

  it('rejects a bad tickMs', () => {
    const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn() }
    expect(() => createAiEngine({ logger }, { tickMs: 0 })).toThrow(RangeError)
    expect(() => createAiEngine({ logger }, { tickMs: Number.NaN })).toThrow(/"tickMs"/)
  })

  it('ticks every tickMs once started, and stop() clears the timer', () => {
    vi.useFakeTimers()
    const { engine } = setup()
    const s = connect(engine, '10.0.0.1')
    s.frame('candidate', 100, 'x')
    expect(vi.getTimerCount()).toBe(0)
    engine.start()
    engine.start() // idempotent
    expect(vi.getTimerCount()).toBe(1)
    vi.advanceTimersByTime(AI_TICK_MS - 1)
    expect(engine.health()).toMatchObject({ scoredTotal: 0 })
    vi.advanceTimersByTime(1)
    expect(engine.health()).toMatchObject({ scored: 2, scoredTotal: 2 })
    engine.stop()
    expect(vi.getTimerCount()).toBe(0)
    vi.advanceTimersByTime(10 * AI_TICK_MS)
    expect(engine.health()).toMatchObject({ scoredTotal: 2 })
  })
})

describe('policy on its own timer (fake timers, the default Date clock)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('throttles, blocks, releases into probation after 30 s and frees the peer 10 s later', () => {
    vi.useFakeTimers({ now: T0 })
    const engine = createAiEngine({ logger: { debug() {}, info() {}, warn() {} } })
    const close = vi.fn()
    const s = connect(engine, '10.0.0.1', close)
    s.registered('peerT')
    engine.start()
    const level = () => find(engine, 'peer', 'peerT')?.level ?? 'normal'
    // 500 frames/s, 5 frames every 10 ms, until the engine blocks the peer.
    const seen: string[] = []
    for (let ms = 0; ms < 2_000 && level() !== 'blocked'; ms += 10) {
      for (let f = 0; f < 5; f++) s.frame('candidate', 300, 'peerU')
      vi.advanceTimersByTime(10)
      if (seen.at(-1) !== level()) seen.push(level())
    }
    expect(seen).toEqual(['normal', 'throttled', 'blocked'])
    expect(close).toHaveBeenCalledTimes(1)
    const until = find(engine, 'peer', 'peerT')!.until!
    vi.advanceTimersByTime(until - Date.now() - AI_TICK_MS)
    expect(level()).toBe('blocked')
    vi.advanceTimersByTime(2 * AI_TICK_MS)
    expect(level()).toBe('throttled') // probation
    vi.advanceTimersByTime(10_000)
    expect(level()).toBe('normal')
    engine.stop()
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('hostOf', () => {
  it('takes the host of host:port and [v6]:port, and leaves a bare IPv6 address alone', () => {
    expect(hostOf('a.b.c.d:1')).toBe('a.b.c.d')
    expect(hostOf('10.0.0.9:4000')).toBe('10.0.0.9')
    expect(hostOf('[::1]:5')).toBe('::1')
    expect(hostOf('::1')).toBe('::1')
    expect(hostOf('10.0.0.9')).toBe('10.0.0.9')
  })
})
