import { afterEach, describe, expect, it } from 'vitest'
import { pino } from 'pino'
import WebSocket from 'ws'
import { Identity } from '@x/pqc'
import { createSignalingClient } from '@x/signaling/client'
import { parseConfig } from '../src/config'
import { createNode, type XNode } from '../src/node'
import { localArgs } from '../scripts/spawn-node'
import { cleanups, getJson, runCleanups, schemaErrors, tempDir } from './helpers'

afterEach(runCleanups)

async function startNode(extra: string[] = []): Promise<XNode> {
  const dataDir = await tempDir()
  const parsed = parseConfig({ argv: localArgs(dataDir, extra) })
  if (parsed.help) throw new Error('help')
  const node = createNode(parsed.config, { logger: pino({ level: 'silent' }) })
  cleanups.push(() => node.stop())
  await node.start()
  return node
}

describe('one node: every REST endpoint returns its documented shape', () => {
  it('serves health, peers, crypto, dht, metrics and docs, validated against the response schemas', async () => {
    const node = await startNode()
    const base = `http://127.0.0.1:${node.addresses.rest.port}`

    const health = await getJson(`${base}/api/health`)
    expect(health.status).toBe(200)
    expect(schemaErrors('HealthReport', health.body)).toEqual([])
    expect(health.body.status).toBe('ok')
    expect(Object.keys(health.body.components).sort()).toEqual(
      ['ai', 'crdt', 'crypto', 'dht', 'p2p', 'signaling', 'storage'].sort(),
    )
    expect(health.body.components.ai).toMatchObject({
      status: 'ok',
      model: 'robust-baselines',
      training: 'learning',
      throttled: 0,
      blocked: 0,
    })

    const live = await getJson(`${base}/api/health/live`)
    expect(live.status).toBe(200)
    expect(schemaErrors('Liveness', live.body)).toEqual([])
    const ready = await getJson(`${base}/api/health/ready`)
    expect(ready.status).toBe(200)
    expect(schemaErrors('Readiness', ready.body)).toEqual([])
    expect(ready.body.ready).toBe(true)

    const peers = await getJson(`${base}/api/peers`)
    expect(peers.status).toBe(200)
    expect(schemaErrors('Peers', peers.body)).toEqual([])

    const crypto = await getJson(`${base}/api/crypto/status`)
    expect(crypto.status).toBe(200)
    expect(schemaErrors('CryptoStatus', crypto.body)).toEqual([])
    expect(crypto.body).toMatchObject({
      initialized: true,
      algorithm: 'ML-KEM-1024+ML-DSA-87',
      kyberKeySize: 1568,
      dilithiumKeySize: 2592,
      nodeId: node.nodeId,
    })

    const dht = await getJson(`${base}/api/dht/nodes`)
    expect(dht.status).toBe(200)
    expect(schemaErrors('DhtNodes', dht.body)).toEqual([])

    const flagged = await getJson(`${base}/api/ai/flagged`)
    expect(flagged.status).toBe(200)
    expect(schemaErrors('AiFlagged', flagged.body)).toEqual([])
    expect(flagged.body).toEqual({ enabled: true, flagged: [] })

    const metrics = await fetch(`${base}/metrics`)
    expect(metrics.status).toBe(200)
    expect(metrics.headers.get('content-type')).toContain('text/plain')
    expect(await metrics.text()).toMatch(/^# HELP /m)

    const openapi = await getJson(`${base}/docs/json`)
    expect(openapi.status).toBe(200)
    expect(Object.keys(openapi.body.paths)).toEqual(
      expect.arrayContaining([
        '/api/health',
        '/api/peers',
        '/api/crypto/status',
        '/api/dht/nodes',
        '/api/ai/flagged',
        '/metrics',
      ]),
    )
    expect((await fetch(`${base}/docs/`)).status).toBe(200)

    const missing = await getJson(`${base}/api/nope`)
    expect(missing.status).toBe(404)
    expect(schemaErrors('Error', missing.body)).toEqual([])
    expect(missing.body.code).toBe('X_NODE_NOT_FOUND')
  })

  it('with --ai off the AI engine reports disabled, never a fake ok, and flags nothing', async () => {
    const node = await startNode(['--ai', 'off'])
    const base = `http://127.0.0.1:${node.addresses.rest.port}`
    const health = await getJson(`${base}/api/health`)
    expect(health.status).toBe(200)
    expect(health.body.status).toBe('ok')
    expect(health.body.components.ai).toMatchObject({ status: 'disabled', required: false })
    expect(health.body.components.ai.reason).toMatch(/off/)
    expect((await getJson(`${base}/api/ai/flagged`)).body).toEqual({ enabled: false, flagged: [] })
  })

  it('/api/peers lists registered signaling peers beside the P2P links, bounded by ?limit, addresses for the admin only', async () => {
    const node = await startNode(['--admin-token', 'the-admin-token'])
    const base = `http://127.0.0.1:${node.addresses.rest.port}`
    const ids = await Promise.all(
      [0, 1].map(async () => {
        const identity = Identity.generate()
        const client = createSignalingClient(
          { publicKey: identity.publicKey, sign: (m) => identity.sign(m), WebSocket: WebSocket as never },
          { url: `ws://127.0.0.1:${node.addresses.ws.port}/p2p-signaling` },
        )
        cleanups.push(() => client.close())
        return client.connect()
      }),
    )
    const admin = { authorization: 'Bearer the-admin-token' }
    const peers = await getJson(`${base}/api/peers`, admin)
    expect(peers.status).toBe(200)
    expect(schemaErrors('Peers', peers.body)).toEqual([])
    const listed = peers.body.list.filter((p: { kind: string }) => p.kind === 'signaling-peer')
    expect(listed.map((p: { id: string }) => p.id).sort()).toEqual([...ids].sort())
    for (const p of listed) {
      expect(p.state).toBe('open')
      expect(p.address).toBe('127.0.0.1')
    }
    // Everyone else sees IDs and kinds, no addresses (a wrong token is no token).
    const others: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: 'the-admin-token' },
    ]
    for (const headers of others) {
      const anonymous = await getJson(`${base}/api/peers`, headers)
      expect(anonymous.body.list.map((p: { id: string }) => p.id).sort()).toEqual([...ids].sort())
      expect(anonymous.body.list.every((p: { address?: string }) => p.address === undefined)).toBe(true)
    }
    expect(peers.body).toMatchObject({ connected: 2, total: 2, signaling: { peers: 2, connectedPeers: 2 } })

    const one = await getJson(`${base}/api/peers?limit=1`)
    expect(one.body.list).toHaveLength(1)
    expect(one.body.signaling.peers).toBe(2)
    const bad = await getJson(`${base}/api/peers?limit=-3`)
    expect(bad.status).toBe(400)
    expect(schemaErrors('Error', bad.body)).toEqual([])
    expect(bad.body.message).toMatch(/limit/)
  })

  it('/metrics has every component, named by Prometheus conventions (counters _total, durations in seconds)', async () => {
    const node = await startNode()
    const identity = Identity.generate()
    const client = createSignalingClient(
      { publicKey: identity.publicKey, sign: (m) => identity.sign(m), WebSocket: WebSocket as never },
      { url: `ws://127.0.0.1:${node.addresses.ws.port}/p2p-signaling` },
    )
    cleanups.push(() => client.close())
    await client.connect()
    const text = await (await fetch(`http://127.0.0.1:${node.addresses.rest.port}/metrics`)).text()
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]))
    for (const family of [
      'x_signaling_connections',
      'x_signaling_registrations_total',
      'x_signaling_signals_relayed_total',
      'x_signaling_frames_rejected_total',
      'x_dht_routing_table_contacts',
      'x_kademlia_rpc_sent_total',
      'x_kademlia_rpc_received_total',
      'x_kademlia_lookup_duration_seconds',
      'x_crdt_documents_open',
      'x_crdt_stored_bytes',
      'x_crdt_updates_total',
      'x_link_handshakes_total',
      'x_link_connected_nodes',
      'x_ai_flagged',
      'x_ai_actions_total',
      'x_system_cpu_usage_percent',
    ]) {
      expect(types.has(family), family).toBe(true)
    }
    expect(text).toMatch(/^x_signaling_registrations_total\{outcome="ok"\} 1$/m)
    expect(text).toMatch(/^x_signaling_connections 1$/m)
    for (const [name, type] of types) {
      if (type === 'counter') expect(name).toMatch(/_total$/)
      if (type === 'histogram') expect(name).toMatch(/_seconds$/)
    }
  })

  it('/api/health and /api/health/ready go to 503 when a required component fails (the database closes)', async () => {
    const node = await startNode()
    const base = `http://127.0.0.1:${node.addresses.rest.port}`
    expect((await getJson(`${base}/api/health`)).status).toBe(200)
    await node.internals.storage?.db.close()
    // The health result is cached for healthCacheMs (1 s by default): wait for the next round.
    await new Promise((r) => setTimeout(r, 1_100))
    const health = await getJson(`${base}/api/health`)
    expect(health.status).toBe(503)
    expect(schemaErrors('HealthReport', health.body)).toEqual([])
    expect(health.body.status).toBe('down')
    expect(health.body.components.storage.status).toBe('down')
    const ready = await getJson(`${base}/api/health/ready`)
    expect(ready.status).toBe(503)
    expect(ready.body.failing).toContain('storage')
    expect((await getJson(`${base}/api/health/live`)).status).toBe(200)
  })
})
