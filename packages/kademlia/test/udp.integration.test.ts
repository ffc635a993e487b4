import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { networkInterfaces } from 'node:os'
import { afterEach, describe, expect, it } from 'vitest'
import { createKademlia, createUdpTransport, idEquals, type KademliaNode } from '../src/index'

const started: KademliaNode[] = []
afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.stop()))
})

async function udpNode(host = '127.0.0.1', init: Parameters<typeof createKademlia>[1] = {}) {
  const transport = await createUdpTransport({ host, port: 0 })
  const node = createKademlia({ transport }, { requestTimeoutMs: 500, ...init })
  await node.start()
  started.push(node)
  return { node, address: transport.address, transport }
}

const hasIpv6Loopback = Object.values(networkInterfaces()).some((list) =>
  (list ?? []).some((i) => i.family === 'IPv6' && i.address === '::1'),
)

describe('UDP on loopback', () => {
  it('three nodes bootstrap from seeds and find each other', async () => {
    const a = await udpNode()
    const b = await udpNode('127.0.0.1', { bootstrap: [a.address] })
    const c = await udpNode('127.0.0.1', { bootstrap: [b.address] })
    await b.node.bootstrap([a.address])
    await c.node.bootstrap([b.address])
    for (const n of [a, b, c]) expect(n.node.table.size).toBe(2)
    const found = await a.node.findNode(c.node.id)
    expect(found.some((x) => idEquals(x.id, c.node.id))).toBe(true)
  })

  it("50 nodes find each other and each other's values", async () => {
    const nodes: Array<Awaited<ReturnType<typeof udpNode>>> = []
    for (let i = 0; i < 50; i++) nodes.push(await udpNode())
    for (let i = 1; i < 50; i++) await nodes[i]!.node.bootstrap([nodes[i - 1]!.address])
    const keys = nodes.map(() => new Uint8Array(randomBytes(20)))
    await Promise.all(nodes.map((n, i) => n.node.put(keys[i]!, Uint8Array.of(i))))
    let foundNodes = 0
    let foundValues = 0
    await Promise.all(
      nodes.map(async (n, i) => {
        const target = nodes[(i * 13 + 7) % 50]!
        const peers = await n.node.findNode(target.node.id)
        if (target === n || peers.some((p) => idEquals(p.id, target.node.id))) foundNodes++
        const j = (i * 17 + 3) % 50
        const value = await n.node.get(keys[j]!)
        if (value?.[0] === j) foundValues++
      }),
    )
    expect(foundNodes).toBe(50)
    expect(foundValues).toBe(50)
  })

  it("bootstrap(['localhost:<port>']) joins through the system resolver", async () => {
    const a = await udpNode()
    const b = await udpNode()
    await b.node.bootstrap([`localhost:${a.transport.port}`])
    expect(b.node.table.get(a.node.id)?.address).toBe(a.address)
    expect(a.node.table.has(b.node.id)).toBe(true)
  })

  it('a node whose configured seed is a host name joins by itself; ready() resolves', async () => {
    const a = await udpNode()
    const b = await udpNode('127.0.0.1', { bootstrap: [`localhost:${a.transport.port}`] })
    await b.node.ready({ signal: AbortSignal.timeout(10_000) })
    expect(b.node.table.has(a.node.id)).toBe(true)
  })

  it('a name that does not resolve fails with X_KAD_UNRESOLVED, not a timeout', async () => {
    const b = await udpNode()
    // RFC 6761: .invalid never resolves.
    await expect(b.node.bootstrap(['seed.invalid:6091'])).rejects.toMatchObject({ code: 'X_KAD_UNRESOLVED' })
    await expect(b.node.bootstrap(['localhost'])).rejects.toThrow(TypeError)
  })

  it.skipIf(!hasIpv6Loopback)('works over IPv6', async () => {
    const a = await udpNode('::1')
    const b = await udpNode('::1')
    await b.node.bootstrap([a.address])
    expect(a.address.startsWith('[::1]:')).toBe(true)
    expect(a.node.table.size).toBe(1)
    expect((await b.node.findNode(a.node.id))[0]!.address).toBe(a.address)
  })

  it.skipIf(!hasIpv6Loopback)(
    'an IPv6 seed written in full joins (answers come from the short form)',
    async () => {
      const a = await udpNode('::1')
      const b = await udpNode('::1')
      await b.node.bootstrap([`[0:0:0:0:0:0:0:1]:${a.transport.port}`])
      expect(b.node.table.get(a.node.id)?.address).toBe(a.address)
    },
  )

  it.skipIf(!hasIpv6Loopback)(
    'a dual-stack node reaches IPv4 seeds and sees IPv4 peers as IPv4',
    async () => {
      const v4 = await udpNode('127.0.0.1')
      const transport = await createUdpTransport({ host: '::', port: 0, dualStack: true })
      const dual = createKademlia({ transport }, { requestTimeoutMs: 500 })
      await dual.start()
      started.push(dual)
      await dual.bootstrap([v4.address])
      expect(dual.table.get(v4.node.id)?.address).toBe(v4.address)
      await v4.node.bootstrap([`127.0.0.1:${transport.port}`])
      expect(v4.node.table.has(dual.id)).toBe(true)
    },
  )

  it('a live node survives a flood of random datagrams and keeps answering', async () => {
    const a = await udpNode()
    const b = await udpNode()
    const socket = createSocket('udp4')
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
    const port = Number(a.address.split(':')[1])
    for (let i = 0; i < 2000; i++) {
      const bytes = randomBytes(i % 3 === 0 ? 26 + (i % 200) : i % 1500)
      if (i % 3 === 0) bytes[0] = 1 // valid version byte: exercises the deep decoder paths
      socket.send(bytes, port, '127.0.0.1')
    }
    // Wait until the socket has delivered what the kernel kept (it may drop some under load).
    let last = -1
    while (a.transport.stats.received !== last) {
      last = a.transport.stats.received
      await new Promise((r) => setTimeout(r, 200))
    }
    socket.close()
    const stats = a.node.getStats().rpc
    expect(stats.received).toBe(a.transport.stats.received - a.transport.stats.oversized)
    expect(stats.malformed).toBeGreaterThan(0)
    // Every datagram was accounted for: dropped as malformed, rate-limited, or (rarely) a valid request.
    expect(stats.malformed + stats.rateLimited + stats.requestsHandled + stats.unexpected).toBe(
      stats.received,
    )
    await b.node.bootstrap([a.address])
    expect(b.node.table.has(a.node.id)).toBe(true)
  })
})
