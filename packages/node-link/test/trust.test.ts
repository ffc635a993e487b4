/**
 * Trust rules (PROTOCOL.md §5): a linked node is authenticated, never trusted. Link slots with per-group caps,
 * idle links evicted, routing-table nodes preferred, handshakes rate-limited per address and globally.
 */
import { describe, expect, it } from 'vitest'
import type { PreferenceFn } from '../src/index'
import { createTestSecure } from '../src/testing'
import { enc, nodeIdOf, settle, testNet, type TestNode } from './helpers'

const REAL = 0x7777

/** A victim node that prefers (as its routing table would) exactly the real node `REAL`. */
const prefersReal =
  (realIp: string): PreferenceFn =>
  (nodeId, address) =>
    nodeId === nodeIdOf(REAL) || address === realIp

describe('link slots', () => {
  it('64+ fresh identities cannot block a real node: they get at most their share, the real node always links', async () => {
    const { make, clock } = testNet()
    const victim = await make(1, {}, { isPreferred: prefersReal('192.0.2.77') })
    // 70 self-made identities, each from an address group of its own (the worst case for group caps), each
    // keeping its link busy so that none is idle.
    const fresh: TestNode[] = []
    for (let i = 0; i < 70; i++) fresh.push(await make(0x1000 + i, {}, {}, `198.51.${i}.1`))
    for (const f of fresh) {
      clock.advance(100) // stay under the global handshake rate, so only slots decide
      await f.links
        .sendOrDial(victim.id, 2, enc.encode('hi'), { address: victim.address })
        .catch(() => undefined)
      await settle(2)
    }
    await settle()
    const linked = fresh.filter((f) => f.links.isOpen(victim.id)).length
    expect(linked).toBe(32) // MAX_UNPREFERRED_LINKS: half the slots
    expect(victim.links.getStats().slotsRefused).toBe(38)
    // The real node, from an address the victim's routing table knows.
    const real = await make(REAL, {}, {}, '192.0.2.77')
    await expect(real.links.connect(victim.id, victim.address)).resolves.toMatchObject({ state: 'open' })
    expect(victim.links.isOpen(real.id)).toBe(true)
  })

  it('when every slot is taken, a preferred node takes the slot of the least recently active other node', async () => {
    const { make, clock } = testNet()
    const victim = await make(
      2,
      { maxLinks: 8, maxUnpreferredLinks: 8, maxLinksPerGroup: 8 },
      { isPreferred: prefersReal('192.0.2.77') },
    )
    const fresh: TestNode[] = []
    for (let i = 0; i < 8; i++) {
      const f = await make(0x2000 + i, {}, {}, `198.51.${i}.1`)
      clock.advance(1_000)
      await f.links.connect(victim.id, victim.address)
      fresh.push(f)
    }
    // Everyone but fresh[3] stays active; fresh[3] sent nothing since it linked.
    for (const [i, f] of fresh.entries()) if (i !== 3) f.links.send(victim.id, 2, enc.encode('busy'))
    await settle()
    const another = await make(0x2100, {}, {}, '198.51.200.1')
    await expect(another.links.connect(victim.id, victim.address)).rejects.toMatchObject({
      code: 'X_LINK_NOT_OPEN',
    })
    const real = await make(REAL, {}, {}, '192.0.2.77')
    await expect(real.links.connect(victim.id, victim.address)).resolves.toMatchObject({ state: 'open' })
    await settle()
    expect(victim.links.getStats().evicted).toBe(1)
    expect(victim.links.isOpen(fresh[3]!.id)).toBe(false)
    expect(fresh.filter((f) => victim.links.isOpen(f.id))).toHaveLength(7)
  })

  it('caps links from one address group (IPv4 /24) of nodes that are not preferred', async () => {
    const { make, clock } = testNet()
    const victim = await make(3)
    let open = 0
    for (let i = 0; i < 10; i++) {
      const f = await make(0x3000 + i, {}, {}, `203.0.113.${i + 1}`)
      clock.advance(2_000)
      if (
        await f.links.connect(victim.id, victim.address).then(
          () => true,
          () => false,
        )
      )
        open++
    }
    expect(open).toBe(4) // MAX_LINKS_PER_GROUP
  })

  it('one identity cannot hold more than a few links at once', async () => {
    const { make, net } = testNet()
    const victim = await make(4)
    const secure = createTestSecure(nodeIdOf(0x4000))
    const transport = net.transport('ws://198.51.100.9:7000')
    let held = 0
    for (let i = 0; i < 8; i++) {
      // No time passes: the links it replaces are still draining (retire grace) when the next one comes.
      const pipe = await transport.dial(victim.address, { signal: new AbortController().signal })
      let handler: ((b: Uint8Array) => void) | undefined
      pipe.onMessage((b) => handler?.(b))
      let closed = false
      pipe.onClose(() => (closed = true))
      await secure(
        {
          send: (b) => pipe.send(b),
          onMessage: (h) => {
            handler = h
            return () => (handler = undefined)
          },
        },
        { role: 'initiator', prologue: new Uint8Array(0), signal: new AbortController().signal },
      )
      await settle(3)
      if (!closed) held++
    }
    expect(held).toBe(4) // MAX_LINKS_PER_NODE
  })

  it('closes idle links of nodes it does not prefer, and keeps preferred and wanted ones', async () => {
    const { make, clock } = testNet()
    const victim = await make(5, { idleTimeoutMs: 60_000 }, { isPreferred: prefersReal('192.0.2.77') })
    const idle = await make(0x5000, {}, {}, '198.51.100.1')
    const busy = await make(0x5001, {}, {}, '198.51.101.1')
    const real = await make(REAL, {}, {}, '192.0.2.77')
    const wanted = await make(0x5002, {}, {}, '198.51.102.1')
    for (const n of [idle, busy, real]) await n.links.connect(victim.id, victim.address)
    victim.links.want(wanted.id, wanted.address)
    await settle()
    expect(victim.links.connectedNodes()).toHaveLength(4)
    for (let t = 0; t < 4; t++) {
      clock.advance(25_000)
      busy.links.send(victim.id, 2, enc.encode('still here'))
      await settle()
    }
    expect(victim.links.isOpen(idle.id)).toBe(false)
    expect(victim.links.isOpen(busy.id)).toBe(true)
    expect(victim.links.isOpen(real.id)).toBe(true)
    expect(victim.links.isOpen(wanted.id)).toBe(true)
    expect(victim.links.getStats().evicted).toBe(1)
  })
})

describe('handshake admission', () => {
  it('rate-limits handshakes per address (burst, then one per second)', async () => {
    const { make, net, clock } = testNet()
    const victim = await make(6)
    const transport = net.transport('ws://198.51.100.20:7000')
    const dial = () =>
      transport.dial(victim.address, { signal: new AbortController().signal }).then(
        (p) => (p.close(), true),
        () => false,
      )
    const burst = await Promise.all(Array.from({ length: 12 }, dial))
    expect(burst.filter(Boolean)).toHaveLength(8) // HANDSHAKE_BURST_PER_ADDRESS
    await settle()
    expect(await dial()).toBe(false)
    clock.advance(1_000)
    expect(await dial()).toBe(true)
    expect(victim.links.getStats().handshakesRefused).toBe(5)
  })

  it('rate-limits handshakes globally, with a reserve a flood cannot spend for preferred addresses', async () => {
    const { make, net } = testNet()
    const victim = await make(7, { maxPendingHandshakes: 1_000 }, { isPreferred: prefersReal('192.0.2.77') })
    const dialFrom = (ip: string) =>
      net
        .transport(`ws://${ip}:7000`)
        .dial(victim.address, { signal: new AbortController().signal })
        .then(
          (p) => (p.close(), true),
          () => false,
        )
    // 100 handshakes from 100 addresses at once: the global burst (64) passes, the rest is refused.
    const flood = await Promise.all(Array.from({ length: 100 }, (_, i) => dialFrom(`198.18.${i}.1`)))
    expect(flood.filter(Boolean)).toHaveLength(64)
    expect(await dialFrom('198.19.0.1')).toBe(false)
    // A node the routing table knows still gets in.
    expect(await dialFrom('192.0.2.77')).toBe(true)
  })

  it('caps handshakes running at once; a stalled one frees its place at the deadline', async () => {
    const { make, net, clock } = testNet()
    const victim = await make(8, { maxPendingHandshakes: 4, handshakeTimeoutMs: 5_000 })
    const pipes = []
    for (let i = 0; i < 4; i++) {
      // Opens the connection and never says a word.
      pipes.push(
        await net
          .transport(`ws://198.18.1.${i + 1}:7000`)
          .dial(victim.address, { signal: new AbortController().signal }),
      )
    }
    await settle()
    expect(victim.links.getStats().pendingHandshakes).toBe(4)
    const late = await make(0x8000, {}, {}, '198.18.2.1')
    await expect(late.links.connect(victim.id, victim.address)).rejects.toMatchObject({
      code: 'X_LINK_DIAL_FAILED',
    })
    clock.advance(5_001)
    await settle()
    expect(victim.links.getStats()).toMatchObject({ pendingHandshakes: 0, handshakeFailures: 4 })
    await expect(late.links.connect(victim.id, victim.address)).resolves.toMatchObject({ state: 'open' })
  })
})
