/**
 * The CRDT path's hook on real sockets (127.0.0.1, port 0): `crdtUpgrade` follows a y-websocket connection's
 * bytes, closes it with 4030 and the reason when its address gets blocked, and refuses a blocked address's next
 * upgrade so that the client learns why (4030 and the reason, not 1006), then with 429 beyond one a second.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { AI_TICK_MS, NODE_SETTLE_MS, createAiEngine, type AiEngine } from '../src/ai/engine'
import { parseConfig } from '../src/config'
import { createNode } from '../src/node'
import { localArgs } from '../scripts/spawn-node'
import { cleanups, runCleanups, tempDir } from './helpers'

let server: Server | undefined
/** Waiting for the next whole message to reach the server (its bytes have then all passed the engine). */
const arrived: (() => void)[] = []
const nextMessage = (): Promise<void> => new Promise((resolve) => arrived.push(resolve))
const sockets: WebSocket[] = []

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate()
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())))
  server?.closeAllConnections()
  server = undefined
})

/** A server whose CRDT path asks the engine first, then accepts (standing in for the sync server). */
async function start(engine: AiEngine): Promise<string> {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 })
  server = createServer()
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy())
    if (!engine.crdtUpgrade(req, socket, head)) return
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {})
      ws.on('message', () => arrived.splice(0).forEach((resolve) => resolve()))
    })
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()))
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/crdt/doc`
}

function open(url: string): Promise<{ ws: WebSocket; closed: Promise<[number, string]>; status?: number }> {
  const ws = new WebSocket(url)
  sockets.push(ws)
  const closed = new Promise<[number, string]>((resolve) =>
    ws.on('close', (code, reason) => resolve([code, reason.toString()])),
  )
  return new Promise((resolve) => {
    ws.on('open', () => resolve({ ws, closed }))
    ws.on('unexpected-response', (_req, res) => resolve({ ws, closed, status: res.statusCode }))
    ws.on('error', () => {})
  })
}

describe('crdtUpgrade (real sockets)', () => {
  it('closes a blocked address with 4030 and the reason, then refuses it so that it learns why', async () => {
    let now = 1_700_000_000_000
    const engine = createAiEngine({ logger: { debug() {}, info() {}, warn() {} }, clock: { now: () => now } })
    const url = await start(engine)
    for (let i = 0; i < NODE_SETTLE_MS / AI_TICK_MS; i++) {
      now += AI_TICK_MS
      engine.tick()
    }
    const client = await open(url)
    // 4 MB a round: oversized updates, far above any editor's rate.
    const update = Buffer.alloc(4 * 1024 * 1024, 1)
    for (let i = 0; i < 8 && client.ws.readyState === WebSocket.OPEN; i++) {
      const received = nextMessage()
      client.ws.send(update)
      await Promise.race([received, client.closed]) // once blocked, nothing more arrives
      now += AI_TICK_MS
      engine.tick()
    }
    const [code, reason] = await client.closed
    expect(code).toBe(4030)
    expect(reason).toMatch(/^blocked: CRDT bytes\/s per member; retry in \d+ s$/)
    const entry = engine.flagged().find((e) => e.kind === 'address' && e.id === '127.0.0.1')
    expect(entry).toMatchObject({ level: 'blocked' })

    const refused = await open(url)
    expect(refused.status).toBeUndefined() // opened, to be closed with the reason
    expect(await refused.closed).toEqual([4030, expect.stringMatching(/^blocked: CRDT bytes\/s per member/)])
    const second = await open(url) // the burst allows two reasons
    expect((await second.closed)[0]).toBe(4030)
    const third = await open(url)
    expect(third.status).toBe(429)
  })
})

describe('the CRDT hook on a real node', () => {
  it('guards /hocuspocus as it guards /crdt/<doc>: a refused address gets neither endpoint', async () => {
    const dataDir = await tempDir()
    const parsed = parseConfig({ argv: localArgs(dataDir) })
    if (parsed.help) throw new Error('help')
    const node = createNode(parsed.config, { logger: pino({ level: 'silent' }) })
    cleanups.push(() => node.stop())
    await node.start()
    // The engine's verdict for this address: refused (as it answers a blocked one beyond its reasons).
    const asked: string[] = []
    Object.assign(node.internals.ai!, {
      crdtUpgrade(req: IncomingMessage, socket: Duplex): boolean {
        asked.push(req.url ?? '')
        socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
        return false
      },
    })
    const base = `ws://127.0.0.1:${node.addresses.ws.port}`
    try {
      expect((await open(`${base}/crdt/doc`)).status).toBe(429)
      expect((await open(`${base}/hocuspocus`)).status).toBe(429)
      expect(asked).toEqual(['/crdt/doc', '/hocuspocus'])
    } finally {
      await runCleanups()
    }
  })
})
