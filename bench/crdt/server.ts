// One benchmark server in its own process (so memory is measured per server), driven over IPC by compare.ts.
// Usage: node --expose-gc --import tsx --conditions=@x/source crdt/server.ts <ours|reference> <leveldb-dir>
import { createServer, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'

const [impl, dir] = process.argv.slice(2)
if ((impl !== 'ours' && impl !== 'reference') || !dir)
  throw new Error('usage: server.ts <ours|reference> <dir>')

type Command = { id: number; cmd: 'mem' | 'openDocs' | 'close' | 'snapshot'; path?: string }
let openDocs: () => number
let shutdown: () => Promise<void>
const http = createServer()

if (impl === 'ours') {
  const { Level } = await import('level')
  const { createDocStore, createSyncServer } = await import('@x/crdt-sync')
  const level = new Level<string, Uint8Array>(dir, { valueEncoding: 'view' })
  await level.open()
  const db = level.sublevel<string, Uint8Array>('crdt', { keyEncoding: 'utf8', valueEncoding: 'view' })
  // Idle eviction shortened from the 30 s default so scenario (c) finishes quickly.
  const store = createDocStore({ db }, { idleTimeoutMs: 1_000, evictionIntervalMs: 250 })
  // Every client of the bench is on 127.0.0.1: the per-address share of sessions is not what is measured.
  const server = createSyncServer({ store }, { maxSessionsPerAddress: 1e6 })
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    server.handleUpgrade(req, socket, head, decodeURIComponent((req.url ?? '/').slice(1).split('?')[0]!)),
  )
  openDocs = () => store.getStats().openDocuments
  shutdown = async () => {
    await server.close()
    await store.close()
    await level.close()
  }
} else {
  // @y/websocket-server reads YPERSISTENCE when its module loads: set it first (y-leveldb persistence).
  process.env.YPERSISTENCE = dir
  const utils = await import('@y/websocket-server/utils')
  const wss = new WebSocketServer({ noServer: true })
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    wss.handleUpgrade(req, socket, head, (ws) => utils.setupWSConnection(ws, req)),
  )
  openDocs = () => utils.docs.size
  shutdown = async () => {
    wss.close()
    const p = utils.getPersistence() as { provider: { destroy(): Promise<void> } } | null
    await p?.provider.destroy()
  }
}

await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
const address = http.address()
if (address === null || typeof address === 'string') throw new Error('no address')

process.on('message', (m: Command) => {
  void (async () => {
    if (m.cmd === 'mem') {
      for (let i = 0; i < 3; i++) {
        globalThis.gc?.()
        await new Promise((r) => setTimeout(r, 20))
      }
      const mu = process.memoryUsage()
      process.send!({ id: m.id, heapUsed: mu.heapUsed, rss: mu.rss })
    } else if (m.cmd === 'snapshot') {
      // Heap snapshot for leak hunting (memory.ts): gc first so only reachable objects are in it.
      globalThis.gc?.()
      const { writeHeapSnapshot } = await import('node:v8')
      process.send!({ id: m.id, written: writeHeapSnapshot(m.path) ? 1 : 0 })
    } else if (m.cmd === 'openDocs') {
      process.send!({ id: m.id, openDocs: openDocs() })
    } else {
      await shutdown()
      http.close()
      process.send!({ id: m.id })
      process.exit(0)
    }
  })()
})
process.send!({ port: address.port })
