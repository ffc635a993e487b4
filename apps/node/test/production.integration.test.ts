// Running on the internet: origins, trusted proxies, TLS with reload, and connection caps that hold when the
// process is short of file descriptors. Real nodes, real sockets on 127.0.0.1.
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { Identity } from '@x/pqc'
import { createSignalingClient } from '@x/signaling/client'
import { parseConfig } from '../src/config'
import { createNode, type XNode } from '../src/node'
import { localArgs } from '../scripts/spawn-node'
import { cleanups, getJson, runCleanups, tempDir, waitFor } from './helpers'
import { createTestCa } from './helpers/test-ca'

afterEach(runCleanups)

async function startNode(extra: string[] = []): Promise<XNode> {
  const parsed = parseConfig({ argv: localArgs(await tempDir(), extra) })
  if (parsed.help) throw new Error('help')
  const node = createNode(parsed.config, { logger: pino({ level: 'silent' }) })
  cleanups.push(() => node.stop())
  await node.start()
  return node
}

/** Opens a WebSocket and resolves with 101 (open) or the HTTP status it was refused with. */
function upgradeStatus(url: string, headers: Record<string, string> = {}, ca?: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, ...(ca === undefined ? {} : { ca }) })
    cleanups.push(() => ws.terminate())
    ws.on('open', () => resolve(101))
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.on('error', () => resolve(0))
  })
}

describe('browser WebSocket paths check the Origin', () => {
  it("refuses another site's page (403) on every browser path, lets the node's own pages and non-browsers in", async () => {
    const node = await startNode()
    const ws = `ws://127.0.0.1:${node.addresses.ws.port}`
    for (const path of ['/crdt/doc', '/p2p-signaling', '/y-webrtc', '/peerjs?key=peerjs&id=a&token=t']) {
      expect(await upgradeStatus(`${ws}${path}`, { origin: 'https://evil.example' })).toBe(403)
      expect(
        await upgradeStatus(`${ws}${path}`, { origin: `http://127.0.0.1:${node.addresses.rest.port}` }),
      ).toBe(101)
      expect(await upgradeStatus(`${ws}${path}`)).toBe(101) // no Origin: not a browser
    }
  })

  it('takes an explicit list of origins', async () => {
    const node = await startNode(['--allowed-origins', 'https://app.example'])
    const url = `ws://127.0.0.1:${node.addresses.ws.port}/crdt/doc`
    expect(await upgradeStatus(url, { origin: 'https://app.example' })).toBe(101)
    expect(await upgradeStatus(url, { origin: `http://127.0.0.1:${node.addresses.rest.port}` })).toBe(403)
  })
})

describe('behind a trusted reverse proxy', () => {
  async function registeredAddress(
    node: XNode,
    headers: Record<string, string>,
  ): Promise<string | undefined> {
    const identity = Identity.generate()
    class ProxiedWebSocket extends WebSocket {
      constructor(url: string) {
        super(url, { headers })
      }
    }
    const client = createSignalingClient(
      { publicKey: identity.publicKey, sign: (m) => identity.sign(m), WebSocket: ProxiedWebSocket as never },
      { url: `ws://127.0.0.1:${node.addresses.ws.port}/p2p-signaling`, reconnect: false },
    )
    cleanups.push(() => client.close())
    const id = await client.connect()
    const peers = await getJson(`http://127.0.0.1:${node.addresses.rest.port}/api/peers`, {
      authorization: 'Bearer admin',
    })
    return (peers.body.list as { id: string; address?: string }[]).find((p) => p.id === id)?.address
  }

  it('takes the client address from X-Forwarded-For / Forwarded only when the proxy is trusted', async () => {
    const trusted = await startNode(['--trust-proxy', 'loopback', '--admin-token', 'admin'])
    expect(await registeredAddress(trusted, { 'x-forwarded-for': '203.0.113.7' })).toBe('203.0.113.7')
    expect(await registeredAddress(trusted, { forwarded: 'for="[2001:db8::7]:4711"' })).toBe('2001:db8::7')
    const direct = await startNode(['--admin-token', 'admin'])
    expect(await registeredAddress(direct, { 'x-forwarded-for': '203.0.113.7' })).toBe('127.0.0.1')
  })
})

describe('TLS on both ports', () => {
  it('serves https and wss with the configured certificate, reports its groups, and reloads a new one', async () => {
    const ca = createTestCa()
    cleanups.push(() => rmSync(ca.dir, { recursive: true, force: true }))
    const first = ca.issue('first')
    const second = ca.issue('second')
    const cert = join(ca.dir, 'live.pem')
    const key = join(ca.dir, 'live.key')
    copyFileSync(first.cert, cert)
    copyFileSync(first.key, key)
    const caPem = readFileSync(ca.caCert)
    const node = await startNode(['--tls-cert', cert, '--tls-key', key])

    const get = (path: string) =>
      new Promise<{ status: number; body: Record<string, unknown>; cn: string }>((resolve, reject) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port: node.addresses.rest.port,
            path,
            ca: caPem,
            servername: 'localhost',
            agent: false,
          },
          (res) => {
            let body = ''
            res.on('data', (d: Buffer) => (body += d.toString()))
            res.on('end', () => {
              const cn = (
                res.socket as unknown as { getPeerCertificate(): { subject: { CN: string } } }
              ).getPeerCertificate()?.subject?.CN
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) as Record<string, unknown>, cn })
            })
          },
        )
        req.on('error', reject)
        req.end()
      })
    const status = await get('/api/crypto/status')
    expect(status.status).toBe(200)
    expect(status.cn).toBe('first')
    const pq = Number(process.versions.node.split('.')[0]) >= 24
    expect(status.body.tls).toMatchObject({ enabled: true, postQuantum: pq })
    expect((status.body.tls as { groups: string[] }).groups[0]).toBe(pq ? 'X25519MLKEM768' : 'X25519')
    expect(await upgradeStatus(`wss://localhost:${node.addresses.ws.port}/crdt/doc`, {}, caPem)).toBe(101)

    copyFileSync(second.cert, cert)
    copyFileSync(second.key, key)
    expect(node.reloadTls()).toBe(true)
    expect((await get('/api/health/live')).cn).toBe('second')
  })
})

describe('two nodes serving TLS', () => {
  it('link to each other over wss (the link handshake, not the certificate, authenticates the node)', async () => {
    const ca = createTestCa()
    cleanups.push(() => rmSync(ca.dir, { recursive: true, force: true }))
    const leaf = ca.issue('node')
    const tls = ['--tls-cert', leaf.cert, '--tls-key', leaf.key, '--admin-token', 'admin']
    const a = await startNode(tls)
    const b = await startNode([...tls, '--seed-nodes', `127.0.0.1:${a.addresses.dht.port}`])
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0' // this test's fetch of the REST API only
    cleanups.push(() => delete process.env.NODE_TLS_REJECT_UNAUTHORIZED)
    await waitFor(async () => {
      const peers = await getJson(`https://127.0.0.1:${a.addresses.rest.port}/api/peers`, {
        authorization: 'Bearer admin',
      })
      return (peers.body.list as { id: string; kind: string; state: string }[]).some(
        (l) => l.kind === 'p2p-link' && l.id === b.nodeId && l.state === 'open',
      )
    }, 'a link between the two TLS nodes')
  })
})

describe('short of file descriptors', () => {
  const APP_DIR = fileURLToPath(new URL('..', import.meta.url))
  const SERVER = join(APP_DIR, 'dist/server.js')

  it.runIf(existsSync('/proc/self/limits') && existsSync(SERVER))(
    'under ulimit -n 256, 1,000 connections are refused beyond the caps: the node stays up, its liveness answers, and it recovers',
    async () => {
      const dataDir = await tempDir()
      // The built server, as production runs it, with the systemd default raised no further.
      const args = [SERVER, ...localArgs(dataDir, ['--max-connections-per-address', '1000'])]
      const proc = spawn('bash', ['-c', 'ulimit -n 256 && exec "$0" "$@"', process.execPath, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      cleanups.push(() => proc.kill('SIGKILL'))
      let err = ''
      proc.stderr.on('data', (d: Buffer) => (err += d.toString()))
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
      const ready = JSON.parse(await waitFor(() => /READY (.*)/.exec(err)?.[1], 'the node', 30_000)) as {
        rest: number
        ws: number
      }
      const sockets: Socket[] = []
      cleanups.push(() => sockets.forEach((s) => s.destroy()))
      const seen = { connected: 0, refused: 0 }
      // Fired at once, not awaited: beyond the listen backlog the kernel drops SYNs and clients retry for long.
      for (let i = 0; i < 1_000; i++) {
        const s = connect(ready.ws, '127.0.0.1')
        sockets.push(s)
        s.on('error', () => undefined)
        s.on('connect', () => seen.connected++)
        s.on('data', (d: Buffer) => {
          if (d.toString().startsWith('HTTP/1.1 503')) seen.refused++
        })
      }
      await waitFor(() => seen.connected >= 500 || undefined, 'the flood to connect', 30_000)
      // The process is alive, and a fresh request to its liveness endpoint is answered.
      const live = await waitFor(
        async () =>
          (await getJson(`http://127.0.0.1:${ready.rest}/api/health/live`)).status === 200 || undefined,
        'liveness under the flood',
        10_000,
      )
      expect(live).toBe(true)
      await waitFor(() => seen.refused > 0 || undefined, 'refusals beyond the cap')
      expect(proc.exitCode).toBe(null)
      for (const s of sockets) s.destroy()
      // Recovered: a WebSocket client is served again.
      await waitFor(
        async () => (await upgradeStatus(`ws://127.0.0.1:${ready.ws}/crdt/doc`)) === 101 || undefined,
        'a WebSocket after the flood',
      )
      proc.kill('SIGTERM')
      expect(await exited).toBe(0)
    },
    90_000,
  )
})
