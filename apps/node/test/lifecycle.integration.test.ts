import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { connect, type Socket } from 'node:net'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, type OnTestFinishedHandler } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { localArgs, spawnNode, type SpawnedNode } from '../scripts/spawn-node'
import { getJson, waitFor } from './helpers'

/**
 * Cleanups of one test (tests of the `independent nodes` block run concurrently, so no shared list): run in
 * reverse order when the test finishes.
 */
type Scope = (() => unknown)[]
function scope(onTestFinished: (fn: OnTestFinishedHandler, timeout?: number) => void): Scope {
  const list: Scope = []
  onTestFinished(async () => {
    for (const fn of list.splice(0).reverse()) {
      try {
        await fn()
      } catch {
        // best effort
      }
    }
  }, 30_000)
  return list
}

async function tempDir(c: Scope): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'x-node-'))
  c.push(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function node(c: Scope, name: string, dataDir?: string, extra: string[] = []): Promise<SpawnedNode> {
  const n = await spawnNode(name, localArgs(dataDir ?? (await tempDir(c)), extra))
  c.push(() => n.kill('SIGKILL'))
  return n
}

function openWs(url: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)))
    ws.once('open', () => resolve({ ws, closed }))
    ws.once('error', reject)
  })
}

/** Completes a WebSocket handshake on /crdt/stuck, then never reads again (so never answers a close frame). */
async function stuckClient(port: number): Promise<Socket> {
  const stuck = connect(port, '127.0.0.1')
  stuck.on('error', () => undefined)
  await new Promise<void>((resolve) => {
    stuck.write(
      'GET /crdt/stuck HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    )
    stuck.once('data', () => {
      stuck.pause()
      resolve()
    })
  })
  return stuck
}

const yOpts = { WebSocketPolyfill: WebSocket as never, disableBc: true }

describe('graceful shutdown', () => {
  it('SIGTERM under load exits 0 within 10 s and closes every WebSocket client with 1001', async ({
    onTestFinished,
  }) => {
    const c = scope(onTestFinished)
    const n = await node(c, 'load')
    const clients = await Promise.all([
      ...Array.from({ length: 8 }, (_, i) => openWs(`${n.wsUrl}/crdt/doc-${i % 3}`)),
      ...Array.from({ length: 6 }, () => openWs(`${n.wsUrl}/p2p-signaling`)),
      ...Array.from({ length: 6 }, () => openWs(`${n.wsUrl}/y-webrtc`)),
    ])
    for (const c of clients) c.ws.on('error', () => undefined)
    // Plus a client that never answers the close handshake: it must not hold the shutdown past 10 s.
    const stuck = await stuckClient(n.ready.ws)
    c.push(() => stuck.destroy())
    // HTTP load: keep 16 requests in flight until the process is gone.
    let running = true
    let served = 0
    const load = Array.from({ length: 16 }, async () => {
      while (running) {
        try {
          const res = await fetch(`${n.restUrl}/api/peers`)
          await res.arrayBuffer()
          served++
        } catch {
          await new Promise((r) => setTimeout(r, 5))
        }
      }
    })
    await waitFor(() => served > 200, 'load to be flowing')
    const exit = await n.kill('SIGTERM')
    running = false
    await Promise.all(load)
    expect(exit.code).toBe(0)
    expect(exit.ms).toBeLessThan(10_000)
    const codes = await Promise.all(clients.map((c) => c.closed))
    expect(codes).toEqual(codes.map(() => 1001))
    // Every component stopped, in the reverse of the start order (the P2P component withdraws the DHT records,
    // the DHT persists the routing table, the CRDT store flushes, then the database closes).
    const log = n.lines.join('\n')
    const order = ['signaling', 'rest', 'monitor', 'ai', 'p2p', 'dht', 'crdt', 'storage', 'crypto']
    const at = order.map((step) => log.indexOf(`"stopped ${step}"`))
    expect(at.every((i) => i >= 0)).toBe(true)
    expect([...at].sort((x, y) => x - y)).toEqual(at)
  }, 60_000)

  it('a SIGTERM during the shutdown lets it finish; a second Ctrl-C (SIGINT) exits at once', async ({
    onTestFinished,
  }) => {
    const c = scope(onTestFinished)
    const n = await node(c, 'twice')
    // A client that completes the WebSocket handshake and then never answers the close frame keeps the graceful
    // shutdown busy (waiting for the close handshake), so the later signals land while it runs.
    const stuck = await stuckClient(n.ready.ws)
    c.push(() => stuck.destroy())
    // What a terminal's Ctrl-C and then a supervisor (or the testnet script) send: one graceful shutdown.
    n.proc.kill('SIGINT')
    await waitFor(() => n.lines.some((l) => l.includes('shutting down')), 'the first shutdown to begin')
    n.proc.kill('SIGTERM')
    await waitFor(() => n.lines.some((l) => l.includes('already shutting down')), 'the SIGTERM to be noted')
    expect(n.proc.exitCode).toBe(null)
    n.proc.kill('SIGINT')
    const exit = await n.exited
    expect(exit.code).toBe(130)
    expect(n.lines.join('\n')).toContain('second interrupt')
  }, 30_000)
})

/** `running` while process `pid` exists and has not exited (Linux `/proc`; a zombie has exited). */
function procState(pid: number): 'running' | 'exited' {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z') ? 'exited' : 'running'
  } catch {
    return 'exited'
  }
}

describe('started by a package manager', () => {
  it('stops gracefully when the wrapper a supervisor signalled is gone (pnpm/npx do not forward SIGTERM)', async ({
    onTestFinished,
  }) => {
    const c = scope(onTestFinished)
    const dir = await tempDir(c)
    const appDir = fileURLToPath(new URL('..', import.meta.url))
    // What `pnpm start` amounts to: a shell (the wrapper) whose child is the node, with npm_lifecycle_event set.
    const args = ['--conditions=@x/source', '--import', 'tsx', 'src/server.ts', ...localArgs(dir)]
    const wrapper = spawn(
      'sh',
      ['-c', `"${process.execPath}" ${args.map((a) => `'${a}'`).join(' ')} & wait`],
      {
        cwd: appDir,
        env: { ...process.env, npm_lifecycle_event: 'start' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let out = ''
    let err = ''
    wrapper.stdout.on('data', (d: Buffer) => (out += d.toString()))
    wrapper.stderr.on('data', (d: Buffer) => (err += d.toString()))
    // The node keeps the pipes open after the wrapper is gone: they close when the node exits.
    const pipesClosed = new Promise<void>((resolve) => wrapper.stdout.once('close', () => resolve()))
    await waitFor(() => err.includes('READY '), 'the node to be ready', 30_000)
    const nodePid = (JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { pid: number }).pid
    c.push(() => {
      try {
        process.kill(nodePid, 'SIGKILL')
      } catch {
        // already gone
      }
    })
    wrapper.kill('SIGTERM') // what a supervisor sends to the process it started
    await pipesClosed
    expect(out).toContain('the package manager that started the node exited')
    expect(out).toContain('node stopped')
    // No orphaned node left running (gone, or a zombie waiting for whoever adopted it to reap it).
    await waitFor(() => procState(nodePid) !== 'running' || undefined, 'the node process to end', 5_000)
  }, 45_000)
})

// Each test below has its own nodes and data directories: they run concurrently (the file's wall time was the
// sum of ten process start-ups).
describe.concurrent('independent nodes', () => {
  describe('start-up', () => {
    it('a seed node that does not answer is a warning: the node runs alone, degraded, and keeps retrying', async ({
      onTestFinished,
    }) => {
      const c = scope(onTestFinished)
      const dead = createSocket('udp4') // bound but silent: a bootstrap node that never answers
      await new Promise<void>((r) => dead.bind(0, '127.0.0.1', r))
      c.push(() => dead.close())
      const n = await node(c, 'alone', undefined, ['--seed-nodes', `127.0.0.1:${dead.address().port}`])
      // Joining goes on in the background: the DHT step (and so the REST port after it) does not wait for the
      // silent seed (a 3 s bootstrap timeout before).
      const dhtStep = n.lines
        .map((l) => JSON.parse(l.startsWith('{') ? l : '{}') as { step?: string; durationMs?: number })
        .find((l) => l.step === 'dht' && l.durationMs !== undefined)
      expect(dhtStep?.durationMs).toBeLessThan(1_000)
      await waitFor(
        () => n.lines.some((l) => l.includes('no bootstrap node answered')),
        'the bootstrap warning',
      )
      const health = await getJson(`${n.restUrl}/api/health`)
      expect(health.status).toBe(200)
      expect(health.body.status).toBe('degraded')
      expect(health.body.components.dht.status).toBe('degraded')
      expect(health.body.components.p2p).toMatchObject({
        status: 'degraded',
        reason: 'no link although seed nodes are configured',
      })
    }, 60_000)

    it('a bad setting stops start-up with exit code 2 and a message naming the setting and the allowed values', async () => {
      await Promise.all([
        expect(spawnNode('bad', ['--rest-port', '99999'])).rejects.toThrow(
          /exited with 2[\s\S]*invalid setting 'restPort' from flag --rest-port[\s\S]*allowed: an integer from 0 to 65535/,
        ),
        expect(spawnNode('bad-env', [], { env: { X_NODE_LOG_LEVEL: 'loud' } })).rejects.toThrow(
          /exited with 2[\s\S]*'logLevel' from environment variable X_NODE_LOG_LEVEL/,
        ),
      ])
    }, 30_000)
  })

  describe('restart', () => {
    it('keeps identity, routing table and documents', async ({ onTestFinished }) => {
      const c = scope(onTestFinished)
      const dirA = await tempDir(c)
      let a = await node(c, 'a', dirA)
      const b = await node(c, 'b', undefined, ['--seed-nodes', `127.0.0.1:${a.ready.dht}`])
      await waitFor(async () => {
        const nodes = (await getJson(`${a.restUrl}/api/dht/nodes`)).body.nodes as { id: string }[]
        return nodes.some((x) => x.id === b.ready.nodeId)
      }, 'a to learn b')

      const doc = new Y.Doc()
      const prov = new WebsocketProvider(`${a.wsUrl}/crdt`, 'kept', doc, yOpts)
      c.push(() => prov.destroy())
      await waitFor(() => prov.synced, 'sync')
      doc.getText('t').insert(0, 'survives a restart')
      // A second client seeing the edit proves it is durable (the server relays only what is on disk).
      const doc2 = new Y.Doc()
      const prov2 = new WebsocketProvider(`${a.wsUrl}/crdt`, 'kept', doc2, yOpts)
      c.push(() => prov2.destroy())
      await waitFor(() => doc2.getText('t').toJSON() === 'survives a restart', 'second client')
      prov.destroy()
      prov2.destroy()

      const before = a.ready
      const stopped = await a.kill('SIGTERM')
      if (stopped.code !== 0) console.log(a.lines.slice(-30).join('\n'))
      expect(stopped.code).toBe(0)
      a = await node(c, 'a2', dirA)
      expect(a.ready.nodeId).toBe(before.nodeId)
      const crypto = (await getJson(`${a.restUrl}/api/crypto/status`)).body
      expect(crypto.nodeId).toBe(before.nodeId)
      // No seed nodes this time: b can only be known from the persisted routing table (restored in the
      // background: its contacts are pinged first).
      await waitFor(async () => {
        const nodes = (await getJson(`${a.restUrl}/api/dht/nodes`)).body.nodes as { id: string }[]
        return nodes.some((x) => x.id === b.ready.nodeId)
      }, 'the restored routing table to hold b')

      const doc3 = new Y.Doc()
      const prov3 = new WebsocketProvider(`${a.wsUrl}/crdt`, 'kept', doc3, yOpts)
      c.push(() => prov3.destroy())
      await waitFor(() => doc3.getText('t').toJSON() === 'survives a restart', 'document after restart')
    }, 90_000)

    it('encrypts the identity at rest with a passphrase and refuses a wrong one', async ({
      onTestFinished,
    }) => {
      const c = scope(onTestFinished)
      const dir = await tempDir(c)
      const first = await spawnNode('enc', localArgs(dir), { env: { X_NODE_PASSPHRASE: 'correct horse' } })
      c.push(() => first.kill('SIGKILL'))
      expect((await getJson(`${first.restUrl}/api/crypto/status`)).body.keyFileEncrypted).toBe(true)
      expect((await first.kill('SIGTERM')).code).toBe(0)
      await expect(
        spawnNode('enc2', localArgs(dir), { env: { X_NODE_PASSPHRASE: 'wrong' } }),
      ).rejects.toThrow(/exited with 1[\s\S]*X_PQC_KEYFILE_BAD_PASSPHRASE|exited with 1[\s\S]*passphrase/i)
    }, 60_000)
  })

  describe('hostile input at every port', () => {
    it('random UDP, random WebSocket frames on every path and malformed HTTP leave the node serving with health ok', async ({
      onTestFinished,
    }) => {
      const c = scope(onTestFinished)
      // A 1 ms health cache: the health read after the attack is a fresh report, no wait needed.
      const n = await node(c, 'hostile', undefined, ['--health-cache-ms', '1'])
      // UDP: random datagrams of random sizes to the DHT port.
      const udp = createSocket('udp4')
      for (let i = 0; i < 500; i++) {
        udp.send(randomBytes(1 + Math.floor(Math.random() * 9000)), n.ready.dht, '127.0.0.1')
      }
      await new Promise((r) => setTimeout(r, 200))
      udp.close()

      // WebSocket: random binary and text frames, and an oversized one, on every path.
      for (const path of [
        '/p2p-signaling',
        '/y-webrtc',
        '/peerjs?id=x&token=y&key=peerjs',
        '/crdt/hostile',
        '/p2p-node',
      ]) {
        const c = await openWs(`${n.wsUrl}${path}`).catch(() => undefined)
        if (!c) continue
        c.ws.on('error', () => undefined)
        for (let i = 0; i < 50; i++) {
          if (c.ws.readyState !== WebSocket.OPEN) break
          c.ws.send(randomBytes(1 + Math.floor(Math.random() * 2000)))
          c.ws.send(randomBytes(64).toString('latin1'))
          c.ws.send('{"type":"offer","to":' + '['.repeat(100))
        }
        if (c.ws.readyState === WebSocket.OPEN) c.ws.send(Buffer.alloc(3 * 1024 * 1024))
        c.ws.terminate()
      }

      // Malformed HTTP to the REST and WebSocket ports.
      const garbage = [
        randomBytes(4096),
        Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nX: ' + 'a'.repeat(100_000) + '\r\n\r\n'),
        Buffer.from('GET /p2p-node HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
        Buffer.from('POST /api/health HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nabc'),
        Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'),
      ]
      for (const port of [n.ready.rest, n.ready.ws]) {
        for (const bytes of garbage) {
          await new Promise<void>((resolve) => {
            const s = connect(port, '127.0.0.1', () => s.end(bytes))
            s.on('error', () => resolve())
            s.on('close', () => resolve())
            s.resume()
            setTimeout(() => {
              s.destroy()
              resolve()
            }, 2_000).unref()
          })
        }
      }
      const bad = await fetch(`${n.restUrl}/api/health`, {
        method: 'POST',
        body: '{not json',
        headers: { 'content-type': 'application/json' },
      })
      expect(bad.status).toBeGreaterThanOrEqual(400)
      expect(bad.status).toBeLessThan(500)

      expect(n.proc.exitCode).toBeNull()
      const health = await getJson(`${n.restUrl}/api/health`)
      expect(health.status).toBe(200)
      expect(health.body.status).toBe('ok')
      // The node still serves new WebSocket clients.
      const ok = await openWs(`${n.wsUrl}/crdt/after`)
      ok.ws.close()
    }, 60_000)
  })
})
