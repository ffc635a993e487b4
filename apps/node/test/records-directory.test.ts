import { describe, expect, it } from 'vitest'
import { pino } from 'pino'
import { Identity } from '@x/pqc'
import { statementText, type Registration } from '@x/signaling'
import {
  MAX_RECORD_BYTES,
  RECORD_TTL_MS,
  RecordSigner,
  parseRecord,
  recordKey,
  type RecordBody,
} from '../src/records/format'
import {
  DhtPeerDirectory,
  RESIGN_BEFORE_EXPIRY_MS,
  WITHDRAWAL_TTL_MS,
  type HostedProofs,
  type RecordStore,
} from '../src/records/directory'
import type { Clock } from '../src/records/util'

// The DHT's network side is covered by the integration tests; here a table of stored values stands in for the
// record store, so the directory's retry and publishing logic can be driven step by step.
const host = Identity.generate(new Uint8Array(32).fill(21))
const hostSigner = new RecordSigner(host)
const self = Identity.generate(new Uint8Array(32).fill(22))
const selfSigner = new RecordSigner(self)
const peer = Identity.generate(new Uint8Array(32).fill(23))
const NOW = 1_700_000_000_000
const hex = (key: Uint8Array) => Buffer.from(key).toString('hex')

function clock(): Clock & { t: number } {
  const c = {
    t: NOW,
    now: () => c.t,
    // Lookup retries wait on the clock: here they run at once.
    setTimeout: (fn: () => void) => {
      queueMicrotask(fn)
      return 0
    },
    clearTimeout: () => undefined,
  }
  return c
}

const statement = { h: '127.0.0.1:4021', t: NOW - 1_000, c: 'bm9uY2Utbm9uY2U=' }

function record(extra: Partial<RecordBody> & Pick<RecordBody, 't' | 'k'>): Uint8Array {
  return hostSigner.sign({
    v: 1,
    n: host.idString,
    a: 'ws://127.0.0.1:4021',
    e: NOW + RECORD_TTL_MS,
    q: NOW,
    ...(extra.t === 'peer' ? { p: statement } : {}),
    ...extra,
  })
}

function registration(time = NOW - 500): Registration {
  const text = statementText({
    node: self.idString,
    host: '127.0.0.1:4001',
    time,
    nonce: 'cmVnaXN0ZXItbm9uY2U=',
  })
  return {
    peerId: peer.idString,
    publicKey: peer.publicKey,
    statement: text,
    signature: peer.sign(new TextEncoder().encode(text)),
    node: self.idString,
    host: '127.0.0.1:4001',
    time,
  }
}

/** A record store over a map (the narrow interface the directory needs from the DHT). */
class MapStore implements RecordStore {
  gets = 0
  readonly puts: { key: string; value: Uint8Array; ttlMs: number }[] = []
  readonly unpublished: string[] = []
  constructor(
    readonly values = new Map<string, Uint8Array>(),
    readonly onGet: (key: string) => void = () => undefined,
  ) {}
  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.gets++
    this.onGet(hex(key))
    return Promise.resolve(this.values.get(hex(key)))
  }
  put(key: Uint8Array, value: Uint8Array, options: { ttlMs: number }): Promise<void> {
    this.puts.push({ key: hex(key), value, ttlMs: options.ttlMs })
    return Promise.resolve()
  }
  unpublish(key: Uint8Array): void {
    this.unpublished.push(hex(key))
  }
  getStats() {
    return { totalNodes: 0, bucketsUsed: 0 }
  }
}

/** Hosted proofs, recorded. */
class ProofLog implements HostedProofs {
  readonly hosted: string[] = []
  readonly released: { peerId: string; until: number }[] = []
  host(r: Registration): void {
    this.hosted.push(r.peerId)
  }
  release(peerId: string, until: number): void {
    this.released.push({ peerId, until })
  }
}

function directory(store = new MapStore(), c = clock()) {
  const proofs = new ProofLog()
  const dir = new DhtPeerDirectory(
    {
      store,
      signer: { sign: (body) => Promise.resolve(selfSigner.sign(body)) },
      proofs,
      clock: c,
      logger: pino({ level: 'silent' }),
    },
    { nodeId: self.idString, address: 'ws://127.0.0.1:4001', lookupRetryDelaysMs: [1, 1, 1] },
  )
  return { dir, store, proofs, clock: c }
}

describe('DhtPeerDirectory.lookup', () => {
  it('retries a peer record that is not stored yet (a peer that registered a moment ago)', async () => {
    const peerKey = hex(recordKey('peer', 'p1'))
    let peerGets = 0
    const store = new MapStore(new Map(), (key) => {
      // The record is stored in the DHT only by the time of the second read.
      if (key === peerKey && ++peerGets === 2) store.values.set(peerKey, record({ t: 'peer', k: 'p1' }))
    })
    const { dir } = directory(store)
    await expect(dir.lookup('p1')).resolves.toBe(host.idString)
    expect(peerGets).toBe(2)
    expect(dir.stats.lookupRetryHits).toBe(1)
  })

  it('never answers from a topic record: a node listing a peer as a member proves nothing about where it is', async () => {
    const store = new MapStore()
    store.values.set(hex(recordKey('topic', 'room', 3)), record({ t: 'topic', k: 'room', i: 3, m: ['p2'] }))
    const { dir } = directory(store)
    await expect(dir.findTopic('room', 10)).resolves.toEqual(['p2'])
    await expect(dir.lookup('p2')).resolves.toBeUndefined()
  })

  it('gives up after the retries (and at once on a withdrawn record)', async () => {
    const { dir, store } = directory()
    await expect(dir.lookup('nobody')).resolves.toBeUndefined()
    expect(store.gets).toBe(4) // first read + 3 retries
    store.values.set(hex(recordKey('peer', 'left')), record({ t: 'peer', k: 'left', w: 1 }))
    const before = store.gets
    await expect(dir.lookup('left')).resolves.toBeUndefined()
    expect(store.gets - before).toBe(1)
  })
})

describe('DhtPeerDirectory publishing', () => {
  it("a peer record carries the peer's own statement, and its proof is hosted while the record lives", async () => {
    const { dir, store, proofs } = directory()
    const reg = registration()
    await dir.announce(peer.idString, self.idString, reg)
    const r = parseRecord(store.puts[0]!.value)!
    expect(r).toMatchObject({ t: 'peer', k: peer.idString, n: self.idString })
    expect(r.p).toEqual({ h: reg.host, t: reg.time, c: 'cmVnaXN0ZXItbm9uY2U=' })
    expect(proofs.hosted).toEqual([peer.idString])
    // Withdrawn: the same statement with a newer sequence number, the proof kept until the withdrawal expires.
    await dir.withdraw(peer.idString, self.idString)
    const w = parseRecord(store.puts[1]!.value)!
    expect(w).toMatchObject({ w: 1, p: r.p })
    expect(w.q).toBeGreaterThanOrEqual(r.q)
    expect(proofs.released).toEqual([{ peerId: peer.idString, until: NOW + WITHDRAWAL_TTL_MS }])
    expect(store.unpublished).toContain(hex(recordKey('peer', peer.idString)))
  })

  it("publishes nothing for another node's peer or a registration that does not match", async () => {
    const { dir, store, proofs } = directory()
    await dir.announce(peer.idString, host.idString, registration())
    await dir.announce('someone-else', self.idString, registration())
    await dir.announce(peer.idString, self.idString, { ...registration(), node: host.idString })
    await dir.withdraw('never-announced', self.idString)
    expect(store.puts).toEqual([])
    expect(proofs.hosted).toEqual([])
  })

  it('re-announcing an unchanged statement re-uses the signed record; a change or an ageing record is re-signed', async () => {
    const { dir, store, clock: c } = directory()
    const reg = registration()
    await dir.announce(peer.idString, self.idString, reg)
    await dir.announce(peer.idString, self.idString, reg) // signaling's 60 s re-announce
    c.t += 60_000
    await dir.announce(peer.idString, self.idString, reg)
    expect(dir.stats).toMatchObject({ signed: 1, signReused: 2 })
    expect(store.puts[2]!.value).toBe(store.puts[0]!.value)
    expect(store.puts[2]!.ttlMs).toBe(RECORD_TTL_MS - 60_000) // the DHT keeps it no longer than it is valid
    // Withdrawn, then back with a new registration: both are new statements.
    await dir.withdraw(peer.idString, self.idString)
    await dir.announce(peer.idString, self.idString, registration(c.t))
    expect(dir.stats.signed).toBe(3)
    const [withdrawn, back] = store.puts.slice(3).map((p) => parseRecord(p.value)!)
    expect(withdrawn!.w).toBe(1)
    expect(back!.w).toBeUndefined()
    // Once less than RESIGN_BEFORE_EXPIRY_MS is left the record is signed afresh.
    c.t += RECORD_TTL_MS - RESIGN_BEFORE_EXPIRY_MS + 1
    await dir.announce(peer.idString, self.idString, registration(NOW + 60_000))
    expect(dir.stats.signed).toBe(4)
    expect(parseRecord(store.puts.at(-1)!.value)!.e).toBe(c.t + RECORD_TTL_MS)
  })

  it('a topic record lists the members that fit in 4096 bytes, and never exceeds it', async () => {
    const { dir, store } = directory()
    for (let i = 0; i < 24; i++) await dir.join('room', `${i}`.padStart(128, '~'))
    for (const p of store.puts) expect(p.value.length).toBeLessThanOrEqual(MAX_RECORD_BYTES)
    const last = parseRecord(store.puts.at(-1)!.value)!
    expect(last.m!.length).toBeGreaterThan(5)
    expect(last.m!.length).toBeLessThan(24)
    expect(dir.stats.topicMembersUnlisted).toBeGreaterThan(0)
    expect(dir.stats.failures).toBe(0)
  })
})
