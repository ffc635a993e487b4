/**
 * The routing table as the links' trust anchor (issue 17): a node is dialed only on the host it answered this node
 * from over UDP, and routing-table nodes are preferred for link slots. Real DHT nodes on 127.0.0.1 (UDP, port 0).
 */
import { createServer, type Server } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKademlia, createUdpTransport, type KademliaNode } from '@x/kademlia'
import { createDialPolicy, createLinkManager, createWsTransport } from '@x/node-link'
import { createTestSecure } from '@x/node-link/testing'
import { routingTableTrust, tableHost } from '../src/adapters/routing-table'
import { cleanups, runCleanups, waitFor } from './helpers'

let a: KademliaNode
let b: KademliaNode
const idOf = (n: KademliaNode) => Buffer.from(n.id).toString('hex')

beforeAll(async () => {
  const start = async (seed: number, bootstrap: string[]) => {
    const transport = await createUdpTransport({ host: '127.0.0.1', port: 0 })
    const node = createKademlia({ transport }, { id: new Uint8Array(20).fill(seed), bootstrap })
    await node.start()
    cleanups.push(() => node.stop())
    return { node, address: `127.0.0.1:${transport.port}` }
  }
  const first = await start(1, [])
  a = first.node
  b = (await start(2, [first.address])).node
  await b.bootstrap([first.address], { signal: AbortSignal.timeout(5_000) })
  await waitFor(() => a.table.get(b.id) !== undefined, 'a to know b')
})
afterAll(runCleanups)

describe('routing-table trust', () => {
  it('knows a node’s host only from the routing table, and prefers table nodes and their addresses', () => {
    const trust = routingTableTrust(a)
    expect(trust.hostOf(idOf(b))).toBe('127.0.0.1')
    expect(trust.hostOf('ff'.repeat(20))).toBeUndefined()
    expect(trust.hostOf('not an id')).toBeUndefined()
    expect(trust.isPreferred(idOf(b), '10.9.9.9')).toBe(true)
    expect(trust.isPreferred('ff'.repeat(20), '10.9.9.9')).toBe(false)
    expect(trust.isPreferred(undefined, '127.0.0.1')).toBe(true)
    expect(trust.isPreferred(undefined, '::ffff:127.0.0.1')).toBe(true)
    expect(trust.isPreferred(undefined, '10.9.9.9')).toBe(false)
    expect(tableHost('[::ffff:127.0.0.1]:5')).toBe('127.0.0.1')
    expect(tableHost('[2001:db8::1]:5')).toBe('2001:db8::1')
  })

  it('an address another node announces on any other host is never dialed (the SSRF of issue 17, by host)', async () => {
    const requests: string[] = []
    const trap: Server = createServer((socket) => socket.on('data', (d) => requests.push(d.toString())))
    await new Promise<void>((r) => trap.listen(0, '127.0.0.2', r))
    cleanups.push(() => new Promise((r) => trap.close(r)))
    const port = (trap.address() as { port: number }).port
    const trust = routingTableTrust(a)
    const policy = createDialPolicy({ allowPrivate: true, hostOf: trust.hostOf })
    await expect(policy(idOf(b), `ws://127.0.0.2:${port}`)).resolves.toMatchObject({ allow: false })
    await expect(policy(idOf(b), 'ws://127.0.0.1:4001')).resolves.toEqual({
      allow: true,
      address: 'ws://127.0.0.1:4001',
    })
    await expect(policy('ff'.repeat(20), 'ws://127.0.0.1:4001')).resolves.toMatchObject({ allow: false })
    // Through a link manager with that policy: the dial is refused before any byte leaves.
    const links = createLinkManager(
      { transport: createWsTransport(), secure: createTestSecure(idOf(a)), dialPolicy: policy },
      { nodeId: idOf(a) },
    )
    cleanups.push(() => links.close())
    await expect(links.connect(idOf(b), `ws://127.0.0.2:${port}`)).rejects.toMatchObject({
      code: 'X_LINK_DIAL_REFUSED',
    })
    await new Promise((r) => setTimeout(r, 50))
    expect(requests).toEqual([])
  })
})
