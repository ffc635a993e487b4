import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { Identity } from '@x/pqc'
import { createSignalingClient, type SignalingClient } from '@x/signaling/client'
import { APP_DIR, localArgs, spawnNode, type SpawnedNode } from '../scripts/spawn-node'
import { cleanups, getJson, runCleanups, schemaErrors, tempDir, waitFor } from './helpers'

/** Three real node processes on 127.0.0.1, bootstrapped off each other (as `pnpm testnet` does). */
let a: SpawnedNode
let b: SpawnedNode
let c: SpawnedNode

beforeAll(async () => {
  // A closed test network: every node replicates documents with every other (the default is no one).
  const fast = ['--bootstrap-interval-ms', '2000', '--crdt-nodes', '*']
  a = await spawnNode('a', localArgs(await tempDir(), fast))
  cleanups.push(() => a.kill())
  b = await spawnNode('b', localArgs(await tempDir(), [...fast, '--seed-nodes', `127.0.0.1:${a.ready.dht}`]))
  cleanups.push(() => b.kill())
  c = await spawnNode(
    'c',
    localArgs(await tempDir(), [
      ...fast,
      '--seed-nodes',
      `127.0.0.1:${a.ready.dht},127.0.0.1:${b.ready.dht}`,
    ]),
  )
  cleanups.push(() => c.kill())
  // Every node has the other two in its routing table and an authenticated P2P link to each.
  for (const n of [a, b, c]) {
    await waitFor(async () => {
      const peers = (await getJson(`${n.restUrl}/api/peers`)).body
      const linked = new Set(
        peers.list
          .filter((l: { kind: string; state: string }) => l.kind === 'p2p-link' && l.state === 'open')
          .map((l: { id: string }) => l.id),
      )
      return peers.dht.totalNodes >= 2 && linked.size >= 2
    }, `node ${n.name} to see and link both other nodes`)
  }
}, 120_000)

afterAll(runCleanups, 30_000)

function runPeer(url: string, topic: string): Promise<{ code: number | null; lines: string[] }> {
  return new Promise((resolve) => {
    const proc = spawn(
      process.execPath,
      ['--conditions=@x/source', '--import', 'tsx', join(APP_DIR, 'test/fixtures/wrtc-peer.ts'), url, topic],
      { cwd: APP_DIR, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const lines: string[] = []
    proc.stdout.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)))
    proc.stderr.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)))
    proc.once('exit', (code) => resolve({ code, lines }))
    cleanups.push(() => proc.kill('SIGKILL'))
  })
}

describe('three nodes', () => {
  it('list each other in /api/dht/nodes and /api/peers with the documented shapes', async () => {
    for (const n of [a, b, c]) {
      const dht = await getJson(`${n.restUrl}/api/dht/nodes`)
      expect(schemaErrors('DhtNodes', dht.body)).toEqual([])
      const ids = dht.body.nodes.map((x: { id: string }) => x.id)
      for (const other of [a, b, c].filter((o) => o !== n)) expect(ids).toContain(other.ready.nodeId)
      const peers = await getJson(`${n.restUrl}/api/peers`)
      expect(schemaErrors('Peers', peers.body)).toEqual([])
    }
  })

  it('a peer on A and a peer on C (separate Node processes with @roamhq/wrtc) find each other through the DHT and open a data channel', async () => {
    const topic = `room-${Date.now()}`
    const [pa, pc] = await Promise.all([
      runPeer(`${a.wsUrl}/p2p-signaling`, topic),
      runPeer(`${c.wsUrl}/p2p-signaling`, topic),
    ])
    const idA = pa.lines.find((l) => l.startsWith('ID '))?.slice(3)
    const idC = pc.lines.find((l) => l.startsWith('ID '))?.slice(3)
    expect(pa.code, pa.lines.join('\n')).toBe(0)
    expect(pc.code, pc.lines.join('\n')).toBe(0)
    expect(pa.lines).toContain(`FOUND ${idC}`)
    expect(pc.lines).toContain(`FOUND ${idA}`)
    expect(pa.lines).toContain(`RECV hello from ${idC}`)
    expect(pc.lines).toContain(`RECV hello from ${idA}`)
  }, 90_000)

  it('peers that just registered on C receive signals sent from A at once (no PEER_NOT_FOUND)', async () => {
    const client = (url: string): SignalingClient => {
      const identity = Identity.generate()
      const cl = createSignalingClient(
        { publicKey: identity.publicKey, sign: (m) => identity.sign(m), WebSocket: WebSocket as never },
        { url },
      )
      cleanups.push(() => cl.close())
      return cl
    }
    const sender = client(`${a.wsUrl}/p2p-signaling`)
    const failures: unknown[] = []
    sender.on('error', (e) => failures.push(e))
    sender.on('expire', (e) => failures.push(e))
    await sender.connect()
    const received = new Map<string, string[]>()
    // Several fresh peers on C; each is signalled the moment its registration is acknowledged, before its
    // DHT record can have spread.
    await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const peer = client(`${c.wsUrl}/p2p-signaling`)
        const got: string[] = []
        peer.on('signal', (s) => got.push(`${s.from}:${s.type}`))
        const id = await peer.connect()
        received.set(id, got)
        sender.signal('offer', id, { sdp: `offer-${i}` })
      }),
    )
    await waitFor(
      () => failures.length > 0 || [...received.values()].every((g) => g.length === 1),
      'every signal to arrive',
    )
    expect(failures).toEqual([])
    for (const got of received.values()) expect(got).toEqual([`${sender.id}:offer`])
  })

  it('a document edited through A and C converges on A, C and a client joining later on B, in both directions', async () => {
    const name = `doc-${Date.now()}`
    const opts = { WebSocketPolyfill: WebSocket as never, disableBc: true }
    const open = (node: SpawnedNode) => {
      const doc = new Y.Doc()
      const provider = new WebsocketProvider(`${node.wsUrl}/crdt`, name, doc, opts)
      cleanups.push(() => provider.destroy())
      return { doc, provider, text: () => doc.getText('t').toJSON() }
    }
    const onA = open(a)
    const onC = open(c)
    await waitFor(() => onA.provider.synced && onC.provider.synced, 'both clients synced')
    onA.doc.getText('t').insert(0, 'edited on A')
    await waitFor(() => onC.text() === 'edited on A', 'the edit to reach C', 30_000)
    onC.doc.getText('t').insert(onC.doc.getText('t').length, ', answered on C')
    await waitFor(() => onA.text() === 'edited on A, answered on C', 'the answer to reach A', 30_000)
    // Concurrent edits on both sides converge to the same text everywhere.
    onA.doc.getText('t').insert(0, '[A] ')
    onC.doc.getText('t').insert(onC.doc.getText('t').length, ' [C]')
    await waitFor(
      () => onA.text() === onC.text() && onA.text().includes('[A]') && onA.text().includes('[C]'),
      'A and C to converge',
      30_000,
    )
    // A fresh client on the third node gets the whole history: B, which never held the document, asks A and C
    // for it by name once its client does.
    const onB = open(b)
    await waitFor(() => onB.provider.synced && onB.text() === onA.text(), 'the late client on B', 30_000)
    onB.doc.getText('t').insert(onB.doc.getText('t').length, ' [B]')
    const all = onB.text()
    await waitFor(() => onA.text() === all && onC.text() === all, 'the edit on B to reach A and C', 30_000)
    expect(all).toBe('[A] edited on A, answered on C [C] [B]')
  }, 60_000)
})
