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

describe('P2P links dialed from both sides at once', () => {
  it('agree on one link per pair, and lose or reorder no frame sent from the first moment on', async () => {
    const nodes = await Promise.all([11, 12, 13, 14].map((seed) => linkNode(seed)))
    const enc = new TextEncoder()
    const dec = new TextDecoder()
    const FRAMES = 300
    // received[receiver][sender] = sequence numbers in arrival order
    const received = nodes.map(() => new Map<string, number[]>())
    nodes.forEach((n, i) =>
      n.lm.onChannel(CHANNEL_SIGNALING, (from, payload) => {
        const seqs = received[i]!.get(from) ?? []
        received[i]!.set(from, seqs)
        seqs.push(Number(dec.decode(payload)))
      }),
    )
    const pairs: [number, number][] = []
    for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) pairs.push([i, j])
    // Every pair dials in both directions in the same tick, then each side streams numbered frames through
    // sendOrDial as fast as it can while the duplicate links are being resolved.
    const stream = async (from: number, to: number) => {
      const target = nodes[to]!
      for (let k = 0; k < FRAMES; k++) {
        await nodes[from]!.lm.sendOrDial(target.identity.idString, CHANNEL_SIGNALING, enc.encode(String(k)))
        if (k % 10 === 0) await new Promise((r) => setImmediate(r))
      }
    }
    await Promise.all(
      pairs.flatMap(([i, j]) => {
        const a = nodes[i]!
        const b = nodes[j]!
        a.lm.addresses.set(b.identity.idString, b.url)
        b.lm.addresses.set(a.identity.idString, a.url)
        return [stream(i, j), stream(j, i)]
      }),
    )
    const expected = Array.from({ length: FRAMES }, (_, k) => k)
    await waitFor(
      () =>
        pairs.every(
          ([i, j]) =>
            (received[j]!.get(nodes[i]!.identity.idString)?.length ?? 0) >= FRAMES &&
            (received[i]!.get(nodes[j]!.identity.idString)?.length ?? 0) >= FRAMES,
        ),
      'every frame',
    )
    for (const [i, j] of pairs) {
      expect(received[j]!.get(nodes[i]!.identity.idString)).toEqual(expected)
      expect(received[i]!.get(nodes[j]!.identity.idString)).toEqual(expected)
    }
    // Both dials completed; one link per pair survives on both sides, the same one.
    await waitFor(
      () => nodes.every((n) => n.lm.list().length === nodes.length - 1),
      'duplicate links to be closed',
    )
    for (const n of nodes) {
      expect(n.lm.list().every((l) => l.state === 'open')).toBe(true)
      expect(n.lm.connectedNodes()).toHaveLength(nodes.length - 1)
    }
    const retired = nodes.reduce((sum, n) => sum + n.lm.stats.linksRetired, 0)
    const handshakes = nodes.reduce((sum, n) => sum + n.lm.stats.handshakes, 0)
    // The race happened (both dials of a pair authenticated), and each link beyond one per pair was retired
    // on both ends.
    expect(handshakes).toBeGreaterThan(2 * pairs.length)
    expect(retired).toBe(handshakes - 2 * pairs.length)
  })

  it('sendOrDial rejects (visibly) when the node cannot be reached', async () => {
    const a = await linkNode(15)
    const gone = Identity.generate(new Uint8Array(32).fill(16)).idString
    a.lm.addresses.set(gone, 'ws://127.0.0.1:1')
    await expect(a.lm.sendOrDial(gone, CHANNEL_SIGNALING, Uint8Array.of(1))).rejects.toThrow()
    await expect(a.lm.sendOrDial('f'.repeat(40), CHANNEL_SIGNALING, Uint8Array.of(1))).rejects.toThrow(
      /no address/,
    )
  })
})
