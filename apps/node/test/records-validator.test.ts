/**
 * Who may say where a peer is (issue 17): a DHT record naming peer P's node is accepted only when P itself said
 * so in its signed registration statement, whatever sequence number its publisher chose. The storing node below
 * runs the validator exactly as `@x/kademlia` does when a STORE arrives (`validate`, then `select` against what it
 * holds), so the scenarios are the ones a real DHT node goes through.
 */
import { describe, expect, it } from 'vitest'
import { pino } from 'pino'
import { Identity, idFromPublicKey, mlDsa44Verify, verify, verifySubkeyCertificate } from '@x/pqc'
import { statementText, type Registration } from '@x/signaling'
import {
  CERT_CONTEXT,
  RECORD_KEY_LABEL,
  RECORD_TTL_MS,
  RecordSigner,
  parseRecord,
  recordKey,
  type PeerStatement,
  type RecordBody,
} from '../src/records/format'
import { RecordKeyBook, BINDING_RETRY_MS, MAX_BINDING_DIALS } from '../src/records/key-book'
import { PeerProofs, PROOF_REQUESTS_PER_SECOND, type ProofLinks } from '../src/records/proofs'
import { createRecordValidator, type RecordKeys } from '../src/records/validator'
import type { Clock } from '../src/records/util'

const silent = pino({ level: 'silent' })
const NOW = 1_700_000_000_000
const enc = new TextEncoder()

/** A clock whose time moves only when told; timers fire on `advance`. */
function manualClock(): Clock & { advance(ms: number): void; t: number } {
  const timers = new Map<number, { at: number; fn: () => void }>()
  let seq = 0
  const c = {
    t: NOW,
    now: () => c.t,
    setTimeout(fn: () => void, ms: number) {
      timers.set(++seq, { at: c.t + ms, fn })
      return seq
    },
    clearTimeout(h: unknown) {
      timers.delete(h as number)
    },
    advance(ms: number) {
      c.t += ms
      for (const [id, t] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at <= c.t) {
          timers.delete(id)
          t.fn()
        }
      }
    },
  }
  return c
}

const pool = {
  verifySubkeySignature: (pk: Uint8Array, m: Uint8Array, s: Uint8Array, ctx?: Uint8Array) =>
    Promise.resolve(mlDsa44Verify(pk, m, s, ctx)),
}
const peerIdOf = (publicKey: Uint8Array) => Buffer.from(idFromPublicKey(publicKey)).toString('hex')

/** A node of the test network: identity, record signer, and its proofs (hosting and checking). */
interface TestNode {
  id: string
  identity: Identity
  signer: RecordSigner
  proofs: PeerProofs
}

/** Nodes whose proof channels are wired to each other in memory (as the links' channel 0x04 would). */
function network(clock: Clock, seeds: number[]): TestNode[] {
  const nodes: TestNode[] = seeds.map((seed) => {
    const identity = Identity.generate(new Uint8Array(32).fill(seed))
    return {
      id: identity.idString,
      identity,
      signer: new RecordSigner(identity),
      proofs: new PeerProofs({
        verify: (pk, m, s) => Promise.resolve(verify(pk, m, s)),
        peerIdFromPublicKey: peerIdOf,
        clock,
        logger: silent,
      }),
    }
  })
  for (const n of nodes) {
    const deliver = (to: string, payload: Uint8Array): boolean => {
      const target = nodes.find((x) => x.id === to)
      if (!target) return false
      queueMicrotask(() => target.proofs.handle(n.id, payload))
      return true
    }
    const links: ProofLinks = {
      send: deliver,
      sendOrDial: (to, payload) =>
        deliver(to, payload) ? Promise.resolve() : Promise.reject(new Error('unreachable')),
    }
    n.proofs.attach(links)
  }
  return nodes
}

/** A peer and its registration at `node` (signed with its own ML-DSA-87 key, as @x/signaling checks it). */
function register(
  peer: Identity,
  node: string,
  time: number,
  nonce = 'bm9uY2Utbm9uY2UtMTIzNA==',
): Registration {
  const statement = statementText({ node, host: '127.0.0.1:3001', time, nonce })
  return {
    peerId: peer.idString,
    publicKey: peer.publicKey,
    statement,
    signature: peer.sign(enc.encode(statement)),
    node,
    host: '127.0.0.1:3001',
    time,
  }
}

const statementOf = (r: Registration): PeerStatement => ({
  h: r.host,
  t: r.time,
  c: /nonce:(.+)$/.exec(r.statement)![1]!,
})

function peerRecord(node: TestNode, peerId: string, p: PeerStatement, extra: Partial<RecordBody> = {}) {
  return node.signer.sign({
    v: 1,
    t: 'peer',
    k: peerId,
    n: node.id,
    a: 'ws://127.0.0.1:3001',
    e: NOW + RECORD_TTL_MS,
    q: NOW,
    p,
    ...extra,
  })
}

/** A DHT node storing one key: validate, then select against what it holds (as `@x/kademlia`'s STORE does). */
function storingNode(validator: ReturnType<typeof createRecordValidator>) {
  let held: Uint8Array | undefined
  return {
    async store(key: Uint8Array, value: Uint8Array): Promise<boolean> {
      if (!(await validator.validate(key, value))) return false
      if (held === undefined || validator.select(key, [held, value]) === 1) held = value
      return true
    },
    /** The hosting node a lookup would answer. */
    host(): string | undefined {
      const r = held && parseRecord(held)
      return r && r.w !== 1 ? r.n : undefined
    },
  }
}

describe('peer records: no node can claim another node’s peer', () => {
  const clock = manualClock()
  const [real, attacker, validatorNode] = network(clock, [31, 32, 33])
  const peer = Identity.generate(new Uint8Array(32).fill(34))
  // The validator knows both nodes' record keys (as it would after linking to them): the attack is not about keys.
  const keys: RecordKeys = {
    get: (id) => [real!, attacker!].find((n) => n.id === id)?.signer.publicKey,
    learn: () => Promise.resolve(undefined),
  }
  const validator = createRecordValidator({
    keys,
    proofs: validatorNode!.proofs,
    verifier: pool,
    self: { nodeId: validatorNode!.id, recordPublicKey: validatorNode!.signer.publicKey },
    clock,
    logger: silent,
  })
  const key = recordKey('peer', peer.idString)

  it('the q = 2^53-1 hijack: a record from a node the peer never registered at is refused, and cannot outlive a re-registration', async () => {
    const dht = storingNode(validator)
    const first = register(peer, real!.id, NOW - 10_000)
    real!.proofs.host(first)
    await expect(dht.store(key, peerRecord(real!, peer.idString, statementOf(first)))).resolves.toBe(true)
    expect(dht.host()).toBe(real!.id)
    // The attacker signs a record for the peer with its own certified key and the highest sequence number.
    const hijack = peerRecord(attacker!, peer.idString, statementOf(first), { q: Number.MAX_SAFE_INTEGER })
    await expect(dht.store(key, hijack)).resolves.toBe(false)
    // Within the clock skew, and even serving the peer's real key and signature (which it can fetch from the
    // real node): the statement the peer signed names the real node, not the attacker.
    attacker!.proofs.host({ ...first })
    const plausible = peerRecord(attacker!, peer.idString, statementOf(first), { q: NOW + 1_000 })
    await expect(dht.store(key, plausible)).resolves.toBe(false)
    expect(dht.host()).toBe(real!.id)
    // The peer registers again (new statement); the real node re-announces: it wins over anything older.
    const again = register(peer, real!.id, NOW - 1_000, 'YWdhaW4tYWdhaW4tYWdhaW4=')
    real!.proofs.host(again)
    await expect(dht.store(key, peerRecord(real!, peer.idString, statementOf(again)))).resolves.toBe(true)
    expect(dht.host()).toBe(real!.id)
    expect(validator.stats.rejected).toBe(2)
  })

  it('a node the peer once registered at cannot win with its old statement (the newest statement wins)', async () => {
    const dht = storingNode(validator)
    // The peer was on the attacker's node first, then moved to the real node.
    const before = register(peer, attacker!.id, NOW - 60_000, 'YmVmb3JlLWJlZm9yZS1iZWZvcmU=')
    attacker!.proofs.host(before)
    const after = register(peer, real!.id, NOW - 5_000, 'YWZ0ZXItYWZ0ZXItYWZ0ZXI=')
    real!.proofs.host(after)
    await expect(dht.store(key, peerRecord(real!, peer.idString, statementOf(after)))).resolves.toBe(true)
    // The attacker republishes its (genuine, older) statement with a higher sequence number: valid, but it loses.
    const stale = peerRecord(attacker!, peer.idString, statementOf(before), { q: NOW + 20_000 })
    await expect(dht.store(key, stale)).resolves.toBe(true)
    expect(dht.host()).toBe(real!.id)
  })

  it('refuses a peer record whose proof is missing, from a key that is not the peer’s, or over other text', async () => {
    const other = Identity.generate(new Uint8Array(32).fill(35))
    const reg = register(peer, real!.id, NOW - 2_000, 'b3RoZXItb3RoZXItb3RoZXI=')
    // The real node serves someone else's key and signature for the peer.
    real!.proofs.host({
      ...reg,
      publicKey: other.publicKey,
      signature: other.sign(enc.encode(reg.statement)),
    })
    await expect(validator.validate(key, peerRecord(real!, peer.idString, statementOf(reg)))).resolves.toBe(
      false,
    )
    // The right key over a different statement.
    const reg2 = register(peer, real!.id, NOW - 3_000, 'dGhpcmQtdGhpcmQtdGhpcmQ=')
    real!.proofs.host({ ...reg2, signature: peer.sign(enc.encode('something else')) })
    await expect(validator.validate(key, peerRecord(real!, peer.idString, statementOf(reg2)))).resolves.toBe(
      false,
    )
    // No proof at all (the node does not host that statement).
    const unknown = { ...statementOf(reg2), t: NOW - 4_000 }
    await expect(validator.validate(key, peerRecord(real!, peer.idString, unknown))).resolves.toBe(false)
  })

  it('checks a statement once: copies of a record and re-announcements cost no further fetch or verification', async () => {
    const reg = register(peer, real!.id, NOW - 7_000, 'b25jZS1vbmNlLW9uY2Utb25jZQ==')
    real!.proofs.host(reg)
    const before = { ...validatorNode!.proofs.stats }
    for (let q = 0; q < 3; q++) {
      await expect(
        validator.validate(key, peerRecord(real!, peer.idString, statementOf(reg), { q: NOW + q })),
      ).resolves.toBe(true)
    }
    expect(validatorNode!.proofs.stats.fetched - before.fetched).toBe(1)
    expect(validatorNode!.proofs.stats.cached - before.cached).toBe(2)
  })

  it('refuses records stamped in the future or living longer than a TTL, from any node', async () => {
    const reg = register(peer, real!.id, NOW - 8_000, 'ZnV0dXJlLWZ1dHVyZS1mdXR1cmU=')
    real!.proofs.host(reg)
    const p = statementOf(reg)
    await expect(
      validator.validate(key, peerRecord(real!, peer.idString, p, { q: Number.MAX_SAFE_INTEGER })),
    ).resolves.toBe(false)
    await expect(
      validator.validate(key, peerRecord(real!, peer.idString, p, { e: NOW + 86_400_000 })),
    ).resolves.toBe(false)
    await expect(
      validator.validate(key, peerRecord(real!, peer.idString, { ...p, t: NOW + 3_600_000 })),
    ).resolves.toBe(false)
    expect(validator.stats.stale).toBeGreaterThanOrEqual(3)
  })
})

describe('peer proofs on the wire', () => {
  it('only the node asked may answer, unknown statements get an empty answer, and requests are rate-limited', async () => {
    const clock = manualClock()
    const [host, asker, intruder] = network(clock, [41, 42, 43])
    const peer = Identity.generate(new Uint8Array(32).fill(44))
    const reg = register(peer, host!.id, NOW)
    host!.proofs.host(reg)
    // An answer from a node that was not asked is dropped.
    const pending = asker!.proofs.verify(host!.id, peer.idString, reg.statement, reg.time)
    intruder!.proofs.handle(asker!.id, enc.encode(JSON.stringify({ type: 'proof', id: 1 })))
    asker!.proofs.handle(intruder!.id, enc.encode(JSON.stringify({ type: 'proof', id: 1 })))
    await expect(pending).resolves.toBe(true)
    expect(asker!.proofs.stats.dropped).toBe(1)
    // Hostile bytes are dropped and counted.
    for (const bad of [
      '',
      'x',
      '{"type":"proof?","id":-1}',
      `{"type":"proof","id":2,"key":"AAAA","sig":"AAAA"}`,
    ]) {
      host!.proofs.handle(asker!.id, enc.encode(bad))
    }
    expect(host!.proofs.stats.dropped).toBe(4)
    // Past the per-node rate, requests go unanswered until the next second.
    for (let i = 0; i < PROOF_REQUESTS_PER_SECOND + 5; i++) {
      host!.proofs.handle(
        intruder!.id,
        enc.encode(JSON.stringify({ type: 'proof?', id: i, peer: 'x', time: 1 })),
      )
    }
    expect(host!.proofs.stats.dropped).toBe(4 + 5)
  })

  it('a released registration is served until its withdrawal expires, then forgotten', async () => {
    const clock = manualClock()
    const [host, asker] = network(clock, [51, 52])
    const peer = Identity.generate(new Uint8Array(32).fill(53))
    const reg = register(peer, host!.id, NOW)
    host!.proofs.host(reg)
    host!.proofs.release(peer.idString, NOW + 60_000)
    await expect(asker!.proofs.verify(host!.id, peer.idString, reg.statement, reg.time)).resolves.toBe(true)
    clock.advance(61_000)
    host!.proofs.release('nobody', 0) // any call prunes
    expect(host!.proofs.hosted).toBe(0)
  })
})

describe('record key book', () => {
  const node = Identity.generate(new Uint8Array(32).fill(61))
  const signer = new RecordSigner(node)
  const verifyCertificate = (idPub: Uint8Array, recordPub: Uint8Array, cert: Uint8Array) =>
    Promise.resolve(verifySubkeyCertificate(idPub, recordPub, cert, RECORD_KEY_LABEL))

  it('keeps a record key only from a hello whose certificate verifies against the link’s identity', async () => {
    const book = new RecordKeyBook({ verifyCertificate, clock: manualClock(), logger: silent })
    const other = Identity.generate(new Uint8Array(32).fill(62))
    await expect(book.acceptHello(node.idString, other.publicKey, signer.helloData())).resolves.toBe(false)
    await expect(
      book.acceptHello(node.idString, node.publicKey, signer.helloData().subarray(1)),
    ).resolves.toBe(false)
    await expect(book.acceptHello(node.idString, node.publicKey, undefined)).resolves.toBe(false)
    expect(book.get(node.idString)).toBeUndefined()
    await expect(book.acceptHello(node.idString, node.publicKey, signer.helloData())).resolves.toBe(true)
    expect(book.get(node.idString)).toEqual(signer.publicKey)
    // The same key again (a second link, a reconnect) costs no certificate verification; another key does.
    let verifications = 0
    const counting = new RecordKeyBook({
      verifyCertificate: (...a) => (verifications++, verifyCertificate(...a)),
      clock: manualClock(),
      logger: silent,
    })
    for (let i = 0; i < 3; i++) await counting.acceptHello(node.idString, node.publicKey, signer.helloData())
    expect(verifications).toBe(1)
    const otherKey = new RecordSigner(Identity.generate(new Uint8Array(32).fill(63))).helloData()
    await expect(counting.acceptHello(node.idString, node.publicKey, otherKey)).resolves.toBe(false)
    expect(verifications).toBe(2)
    expect(CERT_CONTEXT).toEqual(enc.encode(`${RECORD_KEY_LABEL}/v2`))
  })

  it('learns a key by linking (the links decide what may be dialed), waits for the hello, and backs off on failure', async () => {
    const clock = manualClock()
    const book = new RecordKeyBook({ verifyCertificate, clock, logger: silent })
    const dialed: string[] = []
    const answering = new Set<string>()
    book.attach({
      connect(nodeId, address) {
        dialed.push(`${nodeId.slice(0, 4)}@${address ?? '-'}`)
        if (answering.has(nodeId))
          queueMicrotask(() => void book.acceptHello(nodeId, node.publicKey, signer.helloData()))
        return Promise.resolve()
      },
    })
    answering.add(node.idString)
    await expect(book.learn(node.idString, 'ws://1.2.3.4:1')).resolves.toEqual(signer.publicKey)
    await expect(book.learn(node.idString, 'ws://1.2.3.4:1')).resolves.toEqual(signer.publicKey)
    expect(dialed).toEqual([`${node.idString.slice(0, 4)}@ws://1.2.3.4:1`])
    // A node that never says hello: the wait ends at the deadline, and it is not dialed again for a while.
    const silentNode = 'ab'.repeat(20)
    const learning = book.learn(silentNode, undefined)
    clock.advance(5_001)
    await expect(learning).resolves.toBeUndefined()
    await expect(book.learn(silentNode, undefined)).resolves.toBeUndefined()
    expect(dialed).toHaveLength(2)
    clock.advance(BINDING_RETRY_MS)
    void book.learn(silentNode, undefined)
    expect(dialed).toHaveLength(3)
    // Bounded concurrency.
    for (let i = 0; i < MAX_BINDING_DIALS + 2; i++) void book.learn(`${i}`.padStart(40, 'c'), undefined)
    expect(book.stats.refused).toBeGreaterThanOrEqual(3)
  })

  it('without links it learns nothing (before the P2P component started)', async () => {
    const book = new RecordKeyBook({ verifyCertificate, clock: manualClock(), logger: silent })
    await expect(book.learn(node.idString, 'ws://1.2.3.4:1')).resolves.toBeUndefined()
  })
})
