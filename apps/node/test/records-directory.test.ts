import { describe, expect, it, vi } from 'vitest'
import { pino } from 'pino'
import type { KademliaNode } from '@x/kademlia'
import { Identity } from '@x/pqc'
import {
  MAX_RECORD_BYTES,
  RECORD_TTL_MS,
  RecordSigner,
  parseRecord,
  recordKey,
  type RecordBody,
} from '../src/adapters/dht-records'
import {
  DhtPeerDirectory,
  RESIGN_BEFORE_EXPIRY_MS,
  createRecordValidator,
  onContactHost,
} from '../src/adapters/peer-directory'
import type { LinkManager } from '../src/adapters/p2p-links'

// The DHT's network side is covered by the integration tests; here a table of stored values stands in for
// `get` so the directory's retry and fallback logic can be driven step by step.
const host = Identity.generate(new Uint8Array(32).fill(21))
const hostSigner = new RecordSigner(host)
const self = Identity.generate(new Uint8Array(32).fill(22))

function record(extra: Partial<RecordBody> & Pick<RecordBody, 't' | 'k'>): Uint8Array {
  const now = Date.now()
  return hostSigner.sign({
    v: 1,
    n: host.idString,
    a: 'ws://127.0.0.1:4021',
    e: now + RECORD_TTL_MS,
    q: now,
    ...extra,
  })
}

function directory(values: Map<string, Uint8Array>, onGet: (key: string) => void = () => undefined) {
  let gets = 0
  const puts: { key: string; value: Uint8Array; ttlMs: number }[] = []
  const dht = {
    get: (key: Uint8Array) => {
      gets++
      const hex = Buffer.from(key).toString('hex')
      onGet(hex)
      return Promise.resolve(values.get(hex))
    },
    put: (key: Uint8Array, value: Uint8Array, opts: { ttlMs: number }) => {
      puts.push({ key: Buffer.from(key).toString('hex'), value, ttlMs: opts.ttlMs })
      return Promise.resolve()
    },
    unpublish: () => undefined,
    getStats: () => ({ totalNodes: 0, bucketsUsed: 0 }),
  } as unknown as KademliaNode
  const links = { addresses: new Map<string, string>() } as unknown as LinkManager
  const dir = new DhtPeerDirectory(
    { dht, signer: new RecordSigner(self), links, logger: pino({ level: 'silent' }) },
    { nodeId: self.idString, address: 'ws://127.0.0.1:4001', lookupRetryDelaysMs: [1, 1, 1] },
  )
  return { dir, gets: () => gets, puts }
}

const hex = (key: Uint8Array) => Buffer.from(key).toString('hex')

describe('DhtPeerDirectory.lookup', () => {
  it('retries a peer record that is not stored yet (a peer that registered a moment ago)', async () => {
    const values = new Map<string, Uint8Array>()
    const peerKey = hex(recordKey('peer', 'p1'))
    let peerGets = 0
    const { dir } = directory(values, (key) => {
      // The record is stored in the DHT only by the time of the second read.
      if (key === peerKey && ++peerGets === 2) values.set(peerKey, record({ t: 'peer', k: 'p1' }))
    })
    await expect(dir.lookup('p1')).resolves.toBe(host.idString)
    expect(peerGets).toBe(2)
    expect(dir.stats.lookupRetryHits).toBe(1)
  })

  it('answers from a topic record already read when the peer record is missing', async () => {
    const values = new Map<string, Uint8Array>()
    values.set(hex(recordKey('topic', 'room', 3)), record({ t: 'topic', k: 'room', i: 3, m: ['p2'] }))
    const { dir, gets } = directory(values)
    await expect(dir.findTopic('room', 10)).resolves.toEqual(['p2'])
    const before = gets()
    await expect(dir.lookup('p2')).resolves.toBe(host.idString)
    expect(gets() - before).toBe(1) // one read of the peer record, no retries
    expect(dir.stats.lookupTopicHits).toBe(1)
  })

  it('gives up after the retries (and at once on a withdrawn record)', async () => {
    const values = new Map<string, Uint8Array>()
    const { dir, gets } = directory(values)
    await expect(dir.lookup('nobody')).resolves.toBeUndefined()
    expect(gets()).toBe(4) // first read + 3 retries
    values.set(hex(recordKey('peer', 'left')), record({ t: 'peer', k: 'left', w: 1 }))
    const before = gets()
    await expect(dir.lookup('left')).resolves.toBeUndefined()
    expect(gets() - before).toBe(1)
  })
})

describe('DhtPeerDirectory publishing: ML-DSA-44 signing off the refresh path', () => {
  it('re-announcing an unchanged statement re-uses the signed record; a change or an ageing record is re-signed', async () => {
    vi.useFakeTimers({ now: 1_700_000_000_000, toFake: ['Date'] })
    try {
      const { dir, puts } = directory(new Map())
      await dir.announce('p1', self.idString)
      await dir.announce('p1', self.idString) // signaling's 60 s re-announce
      vi.advanceTimersByTime(60_000)
      await dir.announce('p1', self.idString)
      expect(dir.stats).toMatchObject({ signed: 1, signReused: 2 })
      expect(puts[2]!.value).toBe(puts[0]!.value)
      expect(puts[2]!.ttlMs).toBe(RECORD_TTL_MS - 60_000) // the DHT keeps it no longer than it is valid
      // Withdrawn, then back: both are new statements, signed with a newer sequence number.
      await dir.withdraw('p1', self.idString)
      await dir.announce('p1', self.idString)
      expect(dir.stats.signed).toBe(3)
      const [withdrawn, back] = puts.slice(3).map((p) => parseRecord(p.value)!)
      expect(withdrawn!.w).toBe(1)
      expect(back!.w).toBeUndefined()
      // Once less than RESIGN_BEFORE_EXPIRY_MS is left the record is signed afresh.
      vi.advanceTimersByTime(RECORD_TTL_MS - RESIGN_BEFORE_EXPIRY_MS + 1)
      await dir.announce('p1', self.idString)
      expect(dir.stats.signed).toBe(4)
      expect(parseRecord(puts.at(-1)!.value)!.e).toBe(Date.now() + RECORD_TTL_MS)
    } finally {
      vi.useRealTimers()
    }
  })

  it('a topic record lists the members that fit in 4096 bytes, and never exceeds it', async () => {
    const { dir, puts } = directory(new Map())
    for (let i = 0; i < 24; i++) await dir.join('room', `${i}`.padStart(128, '~'))
    for (const p of puts) expect(p.value.length).toBeLessThanOrEqual(MAX_RECORD_BYTES)
    const last = parseRecord(puts.at(-1)!.value)!
    expect(last.m!.length).toBeGreaterThan(5)
    expect(last.m!.length).toBeLessThan(24)
    expect(dir.stats.topicMembersUnlisted).toBeGreaterThan(0)
    expect(dir.stats.failures).toBe(0)
  })
})

describe('record validator: which nodes it dials to learn a record key', () => {
  function setup(tableAddress: string | undefined) {
    const dialed: string[] = []
    const bindings = new Map<string, Uint8Array>()
    const lm = {
      nodeId: self.idString,
      recordPublicKey: new RecordSigner(self).publicKey,
      bindings,
      addresses: new Map<string, string>(),
      connect: (nodeId: string, address: string) => {
        dialed.push(address)
        // A real dial would deliver the hello with the certificate; here the node answers or it does not.
        if (address.includes(':4021')) bindings.set(nodeId, hostSigner.publicKey)
        else return Promise.reject(new Error('unreachable'))
        return Promise.resolve({})
      },
    } as unknown as LinkManager
    const dht = {
      table: {
        get: (id: Uint8Array) =>
          tableAddress !== undefined && Buffer.from(id).toString('hex') === host.idString
            ? { address: tableAddress }
            : undefined,
      },
    } as unknown as KademliaNode
    const validator = createRecordValidator(
      () => lm,
      () => dht,
      pino({ level: 'silent' }),
    )
    return { validator, dialed }
  }
  const peerRecord = (a: string) => {
    const now = Date.now()
    return hostSigner.sign({ v: 1, t: 'peer', k: 'p9', n: host.idString, a, e: now + 60_000, q: now })
  }
  const key = recordKey('peer', 'p9')

  it('never dials a node that is not in the routing table, whatever address its record names', async () => {
    const { validator, dialed } = setup(undefined)
    await expect(validator.validate(key, peerRecord('ws://127.0.0.1:4021'))).resolves.toBe(false)
    expect(dialed).toEqual([])
    expect(validator.stats.refused).toBe(1)
  })

  it('never dials a host other than the one the routing table has for the node', async () => {
    const { validator, dialed } = setup('127.0.0.1:4021')
    await expect(validator.validate(key, peerRecord('ws://10.9.8.7:4021'))).resolves.toBe(false)
    expect(dialed).toEqual([])
  })

  it('dials a routing-table node on its own host, learns the key, validates, and does not redial', async () => {
    const { validator, dialed } = setup('127.0.0.1:4021')
    await expect(validator.validate(key, peerRecord('ws://127.0.0.1:4021'))).resolves.toBe(true)
    await expect(validator.validate(key, peerRecord('ws://127.0.0.1:4021'))).resolves.toBe(true)
    expect(dialed).toEqual(['ws://127.0.0.1:4021'])
  })

  it("rejects a record claiming the node but signed by another node's record key, and an expired one", async () => {
    const { validator } = setup('127.0.0.1:4021')
    const now = Date.now()
    const forged = new RecordSigner(self).sign({
      v: 1,
      t: 'peer',
      k: 'p9',
      n: host.idString,
      a: 'ws://127.0.0.1:4021',
      e: now + 60_000,
      q: now,
    })
    await expect(validator.validate(key, forged)).resolves.toBe(false)
    const expired = hostSigner.sign({
      v: 1,
      t: 'peer',
      k: 'p9',
      n: host.idString,
      a: 'ws://127.0.0.1:4021',
      e: now - 1,
      q: now,
    })
    await expect(validator.validate(key, expired)).resolves.toBe(false)
    expect(validator.stats.verified).toBe(0)
  })

  it('verifies the same stored bytes once (copies returned by several DHT nodes)', async () => {
    const { validator } = setup('127.0.0.1:4021')
    const value = peerRecord('ws://127.0.0.1:4021')
    for (let i = 0; i < 3; i++) await expect(validator.validate(key, value)).resolves.toBe(true)
    expect(validator.stats).toMatchObject({ verified: 1, verifiedCached: 2 })
    // A copy with a flipped bit is not the cached one.
    const flipped = value.slice()
    flipped[100]! ^= 1
    await expect(validator.validate(key, flipped)).resolves.toBe(false)
  })

  it('does not dial a node again soon after a failed dial', async () => {
    const { validator, dialed } = setup('127.0.0.1:5000')
    await expect(validator.validate(key, peerRecord('ws://127.0.0.1:5000'))).resolves.toBe(false)
    await expect(validator.validate(key, peerRecord('ws://127.0.0.1:5000'))).resolves.toBe(false)
    expect(dialed).toEqual(['ws://127.0.0.1:5000'])
  })
})

describe('onContactHost', () => {
  it('accepts only the host the routing table has for the node (names resolved)', async () => {
    await expect(onContactHost('ws://127.0.0.1:4001', '127.0.0.1:4001')).resolves.toBe(true)
    await expect(onContactHost('ws://127.0.0.1:9999', '127.0.0.1:4001')).resolves.toBe(true) // any port
    await expect(onContactHost('ws://10.1.2.3:4001', '127.0.0.1:4001')).resolves.toBe(false)
    await expect(onContactHost('ws://[::1]:4001', '[::1]:4001')).resolves.toBe(true)
    await expect(onContactHost('ws://[::1]:4001', '127.0.0.1:4001')).resolves.toBe(false)
    await expect(onContactHost('ws://localhost:4001', '127.0.0.1:4001')).resolves.toBe(true)
    await expect(onContactHost('not a url', '127.0.0.1:4001')).resolves.toBe(false)
  })
})
