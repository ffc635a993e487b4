import { createServer, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { pino } from 'pino'
import { Identity, createStaticKeys } from '@x/pqc'
import { RecordSigner } from '../src/adapters/dht-records'
import { CHANNEL_CRDT, CHANNEL_SIGNALING, LinkManager, P2P_PATH } from '../src/adapters/p2p-links'
import { cleanups, runCleanups, waitFor } from './helpers'

afterEach(runCleanups)

const silent = pino({ level: 'silent' })

/** A LinkManager behind a real HTTP server on 127.0.0.1 (port 0) that routes /p2p-node upgrades to it. */
async function linkNode(
  seed: number,
): Promise<{ lm: LinkManager; identity: Identity; url: string; server: Server; dropAll(): void }> {
  const identity = Identity.generate(new Uint8Array(32).fill(seed))
  const server = createServer()
  const holder: { lm?: LinkManager } = {}
  const sockets = new Set<Duplex>()
  server.on('upgrade', (req, socket, head) => {
    sockets.add(socket)
    if (req.url === P2P_PATH && holder.lm) holder.lm.handleUpgrade(req, socket, head)
    else socket.destroy()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
  const lm = new LinkManager(
    {
      identity,
      staticKeys: createStaticKeys(identity),
      logger: silent,
      recordKey: new RecordSigner(identity),
    },
    { address: url, handshakeTimeoutMs: 5_000 },
  )
  holder.lm = lm
  cleanups.push(async () => {
    await lm.close()
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })
  return { lm, identity, url, server, dropAll: () => sockets.forEach((s) => s.destroy()) }
}

describe('P2P links over real WebSockets', () => {
  it('authenticate both ends, learn each other’s record key, and carry channels in both directions', async () => {
    const a = await linkNode(1)
    const b = await linkNode(2)
    const got: string[] = []
    b.lm.onChannel(CHANNEL_SIGNALING, (from, payload) =>
      got.push(`${from}:${new TextDecoder().decode(payload)}`),
    )
    const crdt: Uint8Array[] = []
    a.lm.onChannel(CHANNEL_CRDT, (_from, payload) => crdt.push(payload))

    const link = await a.lm.connect(b.identity.idString, b.url)
    expect(link.nodeId).toBe(b.identity.idString)
    await waitFor(
      () => a.lm.bindings.has(b.identity.idString) && b.lm.bindings.has(a.identity.idString),
      'hello',
    )
    expect(b.lm.connectedNodes()).toEqual([a.identity.idString])
    expect(a.lm.send(b.identity.idString, CHANNEL_SIGNALING, new TextEncoder().encode('frame-1'))).toBe(true)
    expect(b.lm.send(a.identity.idString, CHANNEL_CRDT, Uint8Array.of(1, 2, 3))).toBe(true)
    await waitFor(() => got.length === 1 && crdt.length === 1, 'frames')
    expect(got[0]).toBe(`${a.identity.idString}:frame-1`)
    expect([...crdt[0]!]).toEqual([1, 2, 3])
  })

  it('refuses a node whose handshake identity is not the node ID the dialer expected (from the DHT)', async () => {
    const a = await linkNode(3)
    const b = await linkNode(4)
    const impostorId = Identity.generate(new Uint8Array(32).fill(5)).idString
    await expect(a.lm.connect(impostorId, b.url)).rejects.toMatchObject({ code: 'X_PQC_IDENTITY_MISMATCH' })
    expect(a.lm.connectedNodes()).toEqual([])
    expect(a.lm.stats.handshakeFailures).toBe(1)
  })

  it('reconnects a wanted link after it drops', async () => {
    const a = await linkNode(6)
    const b = await linkNode(7)
    a.lm.want(b.identity.idString, b.url)
    await waitFor(() => a.lm.connectedNodes().length === 1, 'first link')
    b.dropAll() // drop every accepted socket on b's side
    await waitFor(() => a.lm.connectedNodes().length === 0, 'the drop to be seen')
    await waitFor(() => a.lm.connectedNodes().length === 1, 'the reconnect (back-off 1 s)', 15_000)
    expect(a.lm.stats.handshakes).toBeGreaterThanOrEqual(2)
  })
})
