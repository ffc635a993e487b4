// One server of the Hocuspocus comparison in its own process (memory and CPU measured per server), driven over
// IPC by hocuspocus-compare.ts. Both persist to LevelDB: ours through its store (on disk before a change is
// relayed or acknowledged), @hocuspocus/server 3.4.4 through its onLoadDocument / onStoreDocument hooks as the
// Database extension of its README does (the whole state, debounced: its defaults, 2 s / at most 10 s).
// Usage: node --expose-gc --import tsx --conditions=@x/source crdt/hocuspocus-server.ts <ours|hocuspocus> <dir>
import { createServer, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { Level } from 'level'
import * as Y from 'yjs'

const [impl, dir] = process.argv.slice(2)
if ((impl !== 'ours' && impl !== 'hocuspocus') || !dir)
  throw new Error('usage: hocuspocus-server.ts <ours|hocuspocus> <dir>')

type Command = { id: number; cmd: 'mem' | 'cpu' | 'openDocs' | 'close' }
let openDocs: () => number
let shutdown: () => Promise<void>
let port: number
const level = new Level<string, Uint8Array>(dir, { valueEncoding: 'view' })
await level.open()

if (impl === 'ours') {
  const { createDocStore, createSyncServer } = await import('@x/crdt-sync')
  const db = level.sublevel<string, Uint8Array>('crdt', { keyEncoding: 'utf8', valueEncoding: 'view' })
  const store = createDocStore({ db }, { idleTimeoutMs: 1_000, evictionIntervalMs: 250 })
  // The bench's clients write far faster than a person, all from 127.0.0.1 (500 documents x 3 clients): neither
  // the per-connection write rate nor the per-address shares of sessions and token checks are what is measured.
  const server = createSyncServer(
    { store },
    { writeBytesPerSecond: 1e9, maxSessionsPerAddress: 1e6, authAttemptsPerAddressPerSecond: 1e6 },
  )
  const http = createServer()
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    server.handleHocuspocusUpgrade(req, socket, head),
  )
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  port = (http.address() as { port: number }).port
  openDocs = () => store.getStats().openDocuments
  shutdown = async () => {
    await server.close()
    await store.close()
    http.close()
  }
} else {
  const { Server } = await import('@hocuspocus/server')
  const db = level.sublevel<string, Uint8Array>('hp', { keyEncoding: 'utf8', valueEncoding: 'view' })
  const server = new Server({
    port: 0,
    address: '127.0.0.1',
    quiet: true,
    async onLoadDocument({ document, documentName }) {
      const saved = await db.get(documentName)
      if (saved !== undefined) Y.applyUpdate(document, saved)
      return document
    },
    async onStoreDocument({ document, documentName }) {
      await db.put(documentName, Y.encodeStateAsUpdate(document))
    },
  })
  await server.listen()
  port = server.address.port
  openDocs = () => server.hocuspocus.getDocumentsCount()
  shutdown = async () => {
    await server.destroy()
  }
}

let cpuMark = process.cpuUsage()
process.on('message', (m: Command) => {
  void (async () => {
    if (m.cmd === 'mem') {
      for (let i = 0; i < 3; i++) {
        globalThis.gc?.()
        await new Promise((r) => setTimeout(r, 20))
      }
      const mu = process.memoryUsage()
      process.send!({ id: m.id, heapUsed: mu.heapUsed, rss: mu.rss })
    } else if (m.cmd === 'cpu') {
      // CPU time (user + system) since the previous 'cpu' command, in ms.
      const d = process.cpuUsage(cpuMark)
      cpuMark = process.cpuUsage()
      process.send!({ id: m.id, cpuMs: (d.user + d.system) / 1000 })
    } else if (m.cmd === 'openDocs') {
      process.send!({ id: m.id, openDocs: openDocs() })
    } else {
      await shutdown()
      await level.close()
      process.send!({ id: m.id })
      process.exit(0)
    }
  })()
})
process.send!({ port })
