import { describe, expect, it } from 'vitest'
import { encodeMessage, MessageType, StoreStatus, decodeMessage } from '../src/codec'
import { createKademlia, type KademliaNode } from '../src/kademlia'
import { idEquals, toHex } from '../src/id'
import { createMemoryNetwork, createTestNetwork, SeededRandom, VirtualClock } from '../src/testing'

const text = new TextEncoder()

function setup(seed = 1, latencyMs = 10) {
  const random = new SeededRandom(seed)
  const clock = new VirtualClock()
  const network = createMemoryNetwork({ clock, latencyMs, random: () => random.next() })
  const make = (address: string, init: Parameters<typeof createKademlia>[1] = {}, extra = {}) =>
    createKademlia(
      { transport: network.createTransport(address), clock, random: (n) => random.bytes(n), ...extra },
      { id: random.bytes(20), ...init },
    )
  return { random, clock, network, make }
}

describe('createKademlia on the memory transport', () => {
  it('three nodes started with seeds find each other by themselves (timer bootstrap)', async () => {
    const { clock, make } = setup()
    const a = make('a')
    const b = make('b', { bootstrap: ['a'] })
    const c = make('c', { bootstrap: ['b'] })
    // c starts before b exists: its first attempts fail and are retried with back-off.
    await c.start()
    await clock.advance(5_000)
    expect(c.getStats().maintenance.bootstrapFailures).toBeGreaterThan(0)
    await a.start()
    await b.start()
    await clock.advance(120_000)
    for (const n of [a, b, c]) expect(n.table.size).toBe(2)
    expect(c.getStats()).toMatchObject({ totalNodes: 2, bootstrapNodes: 1, healthy: true })
    for (const n of [a, b, c]) await n.stop()
    expect(clock.pending).toBe(0)
  })

  it('every node of a 40-node network finds every other node', async () => {
    const net = await createTestNetwork(40, { seed: 7 })
    for (const from of net.nodes) {
      const target = net.nodes[(net.nodes.indexOf(from) * 7 + 3) % 40]!
      if (target === from) continue
      const found = await net.clock.runUntilSettled(from.findNode(target.id))
      expect(found.some((c) => idEquals(c.id, target.id))).toBe(true)
    }
    await net.stop()
  })

  it('put then get from another node; select keeps the best value', async () => {
    const net = await createTestNetwork(30, { seed: 3 })
    const key = new Uint8Array(20).fill(5)
    const stored = await net.clock.runUntilSettled(net.nodes[1]!.put(key, text.encode('v1')))
    expect(stored).toBeGreaterThanOrEqual(10)
    const got = await net.clock.runUntilSettled(net.nodes[20]!.get(key))
    expect(new TextDecoder().decode(got)).toBe('v1')
    const missing = await net.clock.runUntilSettled(net.nodes[20]!.get(new Uint8Array(20).fill(6)))
    expect(missing).toBeUndefined()
    await net.stop()
  })

  it('validate() rejects bad values everywhere; select() picks among values', async () => {
    const { clock, make } = setup(4)
    const validate = (_k: Uint8Array, v: Uint8Array) => v[0] !== 0xff
    // Highest first byte wins, like a sequence number.
    const select = (_k: Uint8Array, vs: Uint8Array[]) =>
      vs.reduce((best, v, i) => (v[0]! > vs[best]![0]! ? i : best), 0)
    const nodes: KademliaNode[] = []
    for (let i = 0; i < 8; i++)
      nodes.push(make(`n${i}`, { bootstrap: i === 0 ? [] : ['n0'] }, { validate, select }))
    for (const n of nodes) await n.start()
    await clock.advance(10_000)
    const key = new Uint8Array(20).fill(1)
    await expect(clock.runUntilSettled(nodes[1]!.put(key, Uint8Array.of(0xff)))).rejects.toMatchObject({
      code: 'X_KAD_INVALID_RECORD',
    })
    await clock.runUntilSettled(nodes[1]!.put(key, Uint8Array.of(2)))
    await clock.runUntilSettled(nodes[2]!.put(key, Uint8Array.of(1)))
    const got = await clock.runUntilSettled(nodes[5]!.get(key))
    expect(got).toEqual(Uint8Array.of(2))
    for (const n of nodes) await n.stop()
  })

  it('STORE needs a write token issued to the same address', async () => {
    const { clock, network, make, random } = setup(5)
    const victim = make('victim')
    await victim.start()
    const attacker = network.createTransport('attacker')
    const replies: number[] = []
    attacker.onMessage((bytes) => {
      const m = decodeMessage(bytes)
      if (m?.type === MessageType.STORED) replies.push(m.status)
      if (m?.type === MessageType.NODES) {
        // A token obtained by 'attacker', replayed from another address, must fail.
        const thief = network.createTransport('thief')
        thief.onMessage((b) => {
          const r = decodeMessage(b)
          if (r?.type === MessageType.STORED) replies.push(r.status)
        })
        thief.send(store(m.token), 'victim')
        attacker.send(store(m.token), 'victim')
      }
    })
    const sender = random.bytes(20)
    const store = (token: Uint8Array) =>
      encodeMessage({
        type: MessageType.STORE,
        requestId: 9,
        senderId: sender,
        key: new Uint8Array(20),
        token,
        ttlMs: 60_000,
        value: Uint8Array.of(1),
      })
    attacker.send(store(new Uint8Array(8)), 'victim')
    attacker.send(
      encodeMessage({ type: MessageType.FIND_NODE, requestId: 1, senderId: sender, target: sender }),
      'victim',
    )
    await clock.advance(1_000)
    expect(replies.sort()).toEqual([StoreStatus.OK, StoreStatus.BAD_TOKEN, StoreStatus.BAD_TOKEN].sort())
    expect(victim.getStats().store).toMatchObject({ badToken: 2, accepted: 1 })
    await victim.stop()
  })

  it('drops and counts malformed datagrams and rate-limits a flooding source', async () => {
    const { clock, network, make, random } = setup(6)
    const node = make('node', { rateLimitPerSecond: 10, rateLimitBurst: 20 })
    await node.start()
    const flood = network.createTransport('flood')
    let answers = 0
    flood.onMessage(() => answers++)
    for (let i = 0; i < 100; i++) flood.send(random.bytes(i % 50), 'node')
    const ping = encodeMessage({ type: MessageType.PING, requestId: 1, senderId: random.bytes(20) })
    for (let i = 0; i < 100; i++) flood.send(ping, 'node')
    await clock.advance(100)
    const stats = node.getStats().rpc
    expect(stats.malformed).toBe(100)
    expect(answers).toBe(20)
    expect(stats.rateLimited).toBe(80)
    await node.stop()
  })

  it('asks the admission hook for every request and drops what it refuses; a throwing hook admits', async () => {
    const { clock, network, make, random } = setup(7)
    const seen: string[] = []
    let verdict: 'admit' | 'refuse' | 'throw' = 'refuse'
    const node = make(
      'node',
      {},
      {
        admit: (r: { from: string; kind: string; bytes: number }) => {
          seen.push(`${r.from}:${r.kind}:${r.bytes > 0}`)
          if (verdict === 'throw') throw new Error('hook bug')
          return verdict === 'admit'
        },
      },
    )
    await node.start()
    const client = network.createTransport('client')
    let answers = 0
    client.onMessage(() => answers++)
    const ping = (requestId: number) =>
      encodeMessage({ type: MessageType.PING, requestId, senderId: random.bytes(20) })
    client.send(ping(1), 'node')
    client.send(random.bytes(7), 'node')
    await clock.advance(100)
    expect(answers).toBe(0)
    expect(node.getStats().rpc).toMatchObject({ refused: 1, malformed: 1 })
    verdict = 'admit'
    client.send(ping(2), 'node')
    client.send(
      encodeMessage({
        type: MessageType.FIND_NODE,
        requestId: 3,
        senderId: random.bytes(20),
        target: random.bytes(20),
      }),
      'node',
    )
    verdict = 'throw'
    client.send(ping(4), 'node')
    await clock.advance(100)
    expect(answers).toBe(3)
    expect(seen).toEqual([
      'client:ping:true',
      'client:malformed:true',
      'client:ping:true',
      'client:find_node:true',
      'client:ping:true',
    ])
    await node.stop()
    expect(() => make('x', {}, { admit: 'yes' })).toThrow(TypeError)
  })

  it('evicts the least-recently-seen contact only when it fails a ping', async () => {
    const { clock, network, make, random } = setup(8)
    const self = new Uint8Array(20)
    const node = make('node', { id: self, k: 2 })
    await node.start()
    const peers = ['p1', 'p2', 'p3'].map((address, i) => {
      const id = new Uint8Array(20)
      id[0] = 0x80
      id[19] = i + 1
      const t = network.createTransport(address)
      let alive = true
      t.onMessage((bytes, from) => {
        const m = decodeMessage(bytes)
        if (alive && m?.type === MessageType.PING)
          t.send(encodeMessage({ type: MessageType.PONG, requestId: m.requestId, senderId: id }), from)
      })
      return {
        id,
        t,
        kill: () => (alive = false),
        ping: () => t.send(encodeMessage({ type: MessageType.PING, requestId: 7, senderId: id }), 'node'),
      }
    })
    peers[0]!.ping()
    peers[1]!.ping()
    await clock.advance(100)
    expect(node.table.size).toBe(2)
    // p1 is alive: p3 waits in the replacement cache.
    peers[2]!.ping()
    await clock.advance(10_000)
    expect(node.table.has(peers[0]!.id)).toBe(true)
    expect(node.table.has(peers[2]!.id)).toBe(false)
    // p2 is now the oldest; when it dies, p3 takes its place.
    peers[1]!.kill()
    peers[2]!.ping()
    await clock.advance(10_000)
    expect(node.table.has(peers[1]!.id)).toBe(false)
    expect(node.table.has(peers[2]!.id)).toBe(true)
    expect(node.getStats().maintenance.evictions).toBe(1)
    void random
    await node.stop()
  })

  it('retries lost requests and adapts the timeout to the RTT', async () => {
    const net = await createTestNetwork(10, { seed: 9, latencyMs: 5, loss: 0.2, init: { retries: 4 } })
    const found = await net.clock.runUntilSettled(net.nodes[3]!.findNode(net.nodes[8]!.id))
    expect(found.some((c) => idEquals(c.id, net.nodes[8]!.id))).toBe(true)
    expect(net.nodes[3]!.getStats().rpc.retries + net.nodes[0]!.getStats().rpc.retries).toBeGreaterThan(0)
    await net.stop()
  })

  it('aborts lookups with X_KAD_ABORTED', async () => {
    const net = await createTestNetwork(10, { seed: 10 })
    const controller = new AbortController()
    const p = net.nodes[2]!.findNode(new Uint8Array(20).fill(3), { signal: controller.signal })
    controller.abort()
    await expect(net.clock.runUntilSettled(p)).rejects.toMatchObject({ code: 'X_KAD_ABORTED' })
    await net.stop()
  })

  it('exportState / importState: warm restart, only live contacts trusted, corrupt input rejected', async () => {
    const net = await createTestNetwork(12, { seed: 11 })
    const key = new Uint8Array(20).fill(9)
    await net.clock.runUntilSettled(net.nodes[4]!.put(key, text.encode('x')))
    const state = JSON.parse(JSON.stringify(net.nodes[4]!.exportState()))
    expect(state.version).toBe(1)
    expect(state.contacts.length).toBe(11)
    // One contact is dead when we come back.
    await net.nodes[7]!.stop()
    const fresh = createKademlia(
      {
        transport: net.network.createTransport('restarted'),
        clock: net.clock,
        random: (n) => net.random.bytes(n),
      },
      { id: net.nodes[4]!.id },
    )
    await fresh.start()
    const imported = await net.clock.runUntilSettled(fresh.importState(state))
    expect(imported).toEqual({ contacts: 10, records: 1 })
    expect(fresh.table.has(net.nodes[7]!.id)).toBe(false)
    const found = await net.clock.runUntilSettled(fresh.findNode(net.nodes[11]!.id))
    expect(found.some((c) => idEquals(c.id, net.nodes[11]!.id))).toBe(true)
    for (const bad of [
      null,
      1,
      {},
      { ...state, version: 2 },
      { ...state, contacts: [{ id: 'zz', address: 'a' }] },
      { ...state, records: [{ key: state.records[0].key, value: 'xyz', expiresAt: 1 }] },
    ]) {
      await expect(fresh.importState(bad)).rejects.toMatchObject({ code: 'X_KAD_BAD_STATE' })
    }
    await fresh.stop()
    await net.stop()
  })

  it('republishes its records before they expire and the network drops expired ones', async () => {
    const net = await createTestNetwork(10, {
      seed: 12,
      init: { recordTtlMs: 60_000, refreshIntervalMs: 10_000 },
    })
    const key = new Uint8Array(20).fill(2)
    await net.clock.runUntilSettled(net.nodes[0]!.put(key, text.encode('keep')))
    await net.clock.advance(200_000)
    expect(net.nodes[0]!.getStats().maintenance.republished).toBeGreaterThan(2)
    expect(await net.clock.runUntilSettled(net.nodes[6]!.get(key))).toEqual(text.encode('keep'))
    net.nodes[0]!.unpublish(key)
    await net.clock.advance(200_000)
    const holders = net.nodes.slice(1).filter((n) => n.getStats().records > 0)
    expect(holders.length).toBe(0)
    await net.stop()
  })

  it('rejects bad arguments with TypeError/RangeError naming them', () => {
    const { make } = setup()
    expect(() => createKademlia({} as never)).toThrow(/components.transport/)
    expect(() => make('x', { k: 0 })).toThrow(/'k'/)
    expect(() => make('y', { id: new Uint8Array(5) })).toThrow(/init.id/)
    const n = make('z')
    return expect(n.findNode(new Uint8Array(20))).rejects.toMatchObject({ code: 'X_KAD_NOT_STARTED' })
  })
})

describe('seed addresses, readiness and lifecycle', () => {
  /** A memory network with IP-style addresses (as UDP has them) and a resolver from a fixed table. */
  function ipSetup(seed = 20, names: Record<string, string[]> = {}) {
    const random = new SeededRandom(seed)
    const clock = new VirtualClock()
    const network = createMemoryNetwork({ clock, latencyMs: 10, random: () => random.next(), ip: true })
    const asked: string[] = []
    const resolve = (host: string) => {
      asked.push(host)
      const found = names[host]
      if (found === undefined) {
        return Promise.reject(Object.assign(new Error(`ENOTFOUND ${host}`), { code: 'ENOTFOUND' }))
      }
      return Promise.resolve(found)
    }
    const make = (address: string, init: Parameters<typeof createKademlia>[1] = {}) =>
      createKademlia(
        { transport: network.createTransport(address), clock, random: (n) => random.bytes(n), resolve },
        { id: random.bytes(20), ...init },
      )
    return { clock, network, make, asked }
  }

  it('bootstrap() resolves host names through the injected resolver and joins', async () => {
    const { clock, make, asked } = ipSetup(20, { 'seed.test': ['10.0.0.1'] })
    const a = make('10.0.0.1:4000')
    const b = make('10.0.0.2:4000')
    await a.start()
    await b.start()
    await clock.runUntilSettled(b.bootstrap(['seed.test:4000']))
    expect(asked).toEqual(['seed.test'])
    expect(b.table.get(a.id)?.address).toBe('10.0.0.1:4000')
    expect(a.table.has(b.id)).toBe(true)
    for (const n of [a, b]) await n.stop()
  })

  it('seeds given as names in init.bootstrap are resolved on every attempt; ready() waits for the join', async () => {
    const names: Record<string, string[]> = {}
    const { clock, make, asked } = ipSetup(21, names)
    const a = make('10.0.0.1:4000')
    const b = make('10.0.0.2:4000', { bootstrap: ['seed.test:4000'] })
    await b.start()
    let ready = false
    const waiting = b.ready().then(() => (ready = true))
    await clock.advance(5_000)
    // The name does not resolve yet: attempts fail fast and are retried, ready() keeps waiting.
    expect(b.getStats().maintenance.bootstrapFailures).toBeGreaterThan(1)
    expect(ready).toBe(false)
    names['seed.test'] = ['10.0.0.1']
    await a.start()
    await clock.runUntilSettled(waiting)
    expect(b.table.has(a.id)).toBe(true)
    expect(asked.length).toBe(b.getStats().maintenance.bootstrapAttempts)
    // Once joined, ready() answers at once.
    await b.ready()
    for (const n of [a, b]) await n.stop()
  })

  it('an unresolvable name is X_KAD_UNRESOLVED at once, not a timeout', async () => {
    const { clock, make } = ipSetup(22)
    const b = make('10.0.0.2:4000')
    await b.start()
    const before = clock.now()
    await expect(clock.runUntilSettled(b.bootstrap(['nowhere.test:4000']))).rejects.toMatchObject({
      code: 'X_KAD_UNRESOLVED',
      message: expect.stringMatching(/nowhere\.test:4000/),
      cause: { code: 'X_KAD_UNRESOLVED', cause: { code: 'ENOTFOUND' } },
    })
    expect(clock.now()).toBe(before)
    await expect(clock.runUntilSettled(b.ping('nowhere.test:4000'))).rejects.toMatchObject({
      code: 'X_KAD_UNRESOLVED',
    })
    await b.stop()
  })

  it('one seed that does not resolve does not stop the others', async () => {
    const { clock, make } = ipSetup(23, { 'seed.test': ['10.0.0.1'] })
    const a = make('10.0.0.1:4000')
    const b = make('10.0.0.2:4000')
    await a.start()
    await b.start()
    await clock.runUntilSettled(b.bootstrap(['nowhere.test:1', 'seed.test:4000']))
    expect(b.table.has(a.id)).toBe(true)
    for (const n of [a, b]) await n.stop()
  })

  it('malformed addresses are a TypeError, an empty list a RangeError, before anything is sent', async () => {
    const { clock, make, network } = ipSetup(24)
    const b = make('10.0.0.2:4000')
    await b.start()
    for (const bad of ['localhost', '10.0.0.1', '::1:4000', '[::1]', 'seed.test:0', 'a b:1']) {
      await expect(b.bootstrap(['10.0.0.1:4000', bad])).rejects.toThrow(TypeError)
      await expect(b.bootstrap([bad])).rejects.toThrow(/'addresses\[0\]'/)
      await expect(b.ping(bad)).rejects.toThrow(TypeError)
    }
    await expect(b.bootstrap([])).rejects.toThrow(RangeError)
    await expect(b.bootstrap('10.0.0.1:4000' as never)).rejects.toThrow(TypeError)
    await clock.advance(10_000)
    expect(network.stats.sent).toBe(0)
    // Seeds in the options are checked when the node is created.
    expect(() => make('10.0.0.3:4000', { bootstrap: ['localhost'] })).toThrow(/'init.bootstrap\[0\]'/)
    expect(() => make('10.0.0.4:4000', { bootstrap: [42 as never] })).toThrow(TypeError)
    await b.stop()
  })

  it('a memory network with IP addresses refuses endpoint names that are not IP literals', () => {
    const { network } = ipSetup(25)
    expect(() => network.createTransport('node-1')).toThrow(RangeError)
    expect(network.createTransport('[::1]:5').families).toEqual([4, 6])
  })

  it('transports without IP addresses (memory names) still take any name', async () => {
    const { clock, make } = setup(26)
    const a = make('a')
    const b = make('b', { bootstrap: ['a'] })
    await a.start()
    await b.start()
    await clock.runUntilSettled(b.ready())
    expect(b.table.has(a.id)).toBe(true)
    await expect(b.bootstrap([])).rejects.toThrow(RangeError)
    await expect(b.bootstrap([''])).rejects.toThrow(TypeError)
    for (const n of [a, b]) await n.stop()
  })

  it('ready(): at once for a network of one; rejects before start, on abort (with the last error) and on stop', async () => {
    const { clock, make } = ipSetup(27)
    const alone = make('10.0.0.1:4000')
    await expect(alone.ready()).rejects.toMatchObject({ code: 'X_KAD_NOT_STARTED' })
    await alone.start()
    await alone.ready()
    const b = make('10.0.0.2:4000', { bootstrap: ['nowhere.test:4000'] })
    await b.start()
    const controller = new AbortController()
    const aborted = b.ready({ signal: controller.signal })
    await clock.advance(3_000)
    controller.abort()
    await expect(aborted).rejects.toMatchObject({
      code: 'X_KAD_ABORTED',
      cause: { code: 'X_KAD_UNRESOLVED' },
    })
    await expect(b.ready({ signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'X_KAD_ABORTED' })
    const stopped = b.ready()
    await b.stop()
    await expect(stopped).rejects.toMatchObject({ code: 'X_KAD_STOPPED' })
    await alone.stop()
  })

  it('start() after stop() rejects with X_KAD_STOPPED instead of leaving a deaf node', async () => {
    const { make } = setup(28)
    const a = make('a')
    await a.start()
    await a.stop()
    await expect(a.start()).rejects.toMatchObject({ code: 'X_KAD_STOPPED' })
    expect(a.started).toBe(false)
  })

  it('maxValueBytes above the wire limit is a RangeError, not a silent clamp', () => {
    const { make } = setup(29)
    expect(() => make('a', { maxValueBytes: 4097 })).toThrow(RangeError)
    expect(() => make('b', { maxValueBytes: 4097 })).toThrow(/'maxValueBytes'.*4096/)
    expect(() => make('c', { maxValueBytes: 4096 })).not.toThrow()
  })

  it('results are copies: writing into returned IDs, tokens and values changes no table or store', async () => {
    const net = await createTestNetwork(30, { seed: 30 })
    const tables = () => net.nodes.map((n) => [...n.table].map((e) => toHex(e.id)).sort())
    const before = tables()
    const node = net.nodes[5]!
    const found = await net.clock.runUntilSettled(node.findNode(net.nodes[17]!.id))
    const looked = await net.clock.runUntilSettled(node.lookup(net.nodes[23]!.id))
    expect(found.length).toBeGreaterThan(0)
    for (const c of found) c.id.fill(0xee)
    for (const r of looked.closest) {
      r.contact.id.fill(0xdd)
      r.token?.fill(0)
    }
    const pinged = await net.clock.runUntilSettled(node.ping(net.addresses[9]!))
    pinged.id.fill(0xcc)
    expect(tables()).toEqual(before)
    for (const n of net.nodes) for (const e of n.table) expect(n.table.get(e.id)).toBe(e)
    const id = node.id
    id.fill(0)
    expect(node.id).not.toEqual(id)
    const key = new Uint8Array(20).fill(4)
    await net.clock.runUntilSettled(node.put(key, text.encode('mine')))
    const got = (await net.clock.runUntilSettled(node.get(key)))!
    got.fill(0)
    expect(await net.clock.runUntilSettled(node.get(key))).toEqual(text.encode('mine'))
    await net.stop()
  })
})

describe('metrics', () => {
  /** A registry that records what it is told, shaped like @x/node-monitor's. */
  function recordingMetrics() {
    const series = new Map<string, number>()
    const observed: { name: string; value: number; labels: object }[] = []
    const key = (name: string, labels: object = {}) => `${name}${JSON.stringify(labels)}`
    return {
      series,
      observed,
      counter: (name: string) => ({
        inc: (labels: object = {}, value = 1) =>
          void series.set(key(name, labels), (series.get(key(name, labels)) ?? 0) + value),
      }),
      histogram: (name: string, _help: string, _labels?: readonly string[], buckets?: readonly number[]) => {
        expect(buckets?.length).toBeGreaterThan(0)
        return {
          observe: (value: number, labels: object = {}) => void observed.push({ name, value, labels }),
        }
      },
    }
  }

  it('counts requests sent and received by type and outcome, and times lookups in seconds', async () => {
    const { clock, make } = setup(3)
    const metrics = recordingMetrics()
    const a = make('a', { metricsPrefix: 'x_' }, { metrics })
    const b = make('b', { bootstrap: ['a'] })
    await a.start()
    await b.start()
    await clock.advance(5_000)
    await clock.runUntilSettled(a.findNode(b.id))
    await b.stop()
    const lookup = a.findNode(new Uint8Array(20).fill(9))
    await clock.runUntilSettled(lookup.catch(() => undefined))
    expect(
      metrics.series.get('x_kademlia_rpc_received_total{"type":"ping","outcome":"answered"}'),
    ).toBeGreaterThan(0)
    expect(
      metrics.series.get('x_kademlia_rpc_sent_total{"type":"find_node","outcome":"ok"}'),
    ).toBeGreaterThan(0)
    expect(
      metrics.series.get('x_kademlia_rpc_sent_total{"type":"find_node","outcome":"timeout"}'),
    ).toBeGreaterThan(0)
    const durations = metrics.observed.filter((o) => o.name === 'x_kademlia_lookup_duration_seconds')
    expect(durations.length).toBeGreaterThanOrEqual(2)
    // In seconds: the lookup that waited for the stopped node's timeouts took 0.1 s or more (10 ms latency
    // each way for the others).
    const values = durations.map((d) => d.value)
    expect(Math.max(...values)).toBeGreaterThanOrEqual(0.1)
    expect(Math.max(...values)).toBeLessThan(60)
    expect(Math.min(...values)).toBeLessThan(0.1)
    await a.stop()
  })

  it('refuses a metrics registry without counter() and histogram(), and a bad prefix', () => {
    const { make } = setup()
    expect(() => make('m1', {}, { metrics: {} })).toThrow(/counter\(\) and histogram/)
    expect(() => make('m2', { metricsPrefix: '1-bad' }, { metrics: recordingMetrics() })).toThrow(
      /metricsPrefix/,
    )
  })
})
