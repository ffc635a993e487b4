import { describe, expect, it } from 'vitest'
import { pino } from 'pino'
import type { KademliaNode } from '@x/kademlia'
import { Identity } from '@x/pqc'
import { RECORD_TTL_MS, RecordSigner, recordKey, type RecordBody } from '../src/adapters/dht-records'
import { DhtPeerDirectory } from '../src/adapters/peer-directory'
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
  const dht = {
    get: (key: Uint8Array) => {
      gets++
      const hex = Buffer.from(key).toString('hex')
      onGet(hex)
      return Promise.resolve(values.get(hex))
    },
    put: () => Promise.resolve(),
    unpublish: () => undefined,
    getStats: () => ({ totalNodes: 0, bucketsUsed: 0 }),
  } as unknown as KademliaNode
  const links = { addresses: new Map<string, string>() } as unknown as LinkManager
  const dir = new DhtPeerDirectory(
    { dht, signer: new RecordSigner(self), links, logger: pino({ level: 'silent' }) },
    { nodeId: self.idString, address: 'ws://127.0.0.1:4001', lookupRetryDelaysMs: [1, 1, 1] },
  )
  return { dir, gets: () => gets }
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
