// One signaling server per process, so process.cpuUsage() is the server's alone.
// Usage: node --expose-gc --conditions=@x/source --import tsx server.ts <ours|peerjs|y-webrtc|floor>
// Commands on stdin, one per line: "stats" → one JSON line; "exit".
import http from 'node:http'
import v8 from 'node:v8'
import { createInterface } from 'node:readline'
import { loadMlDsa87, peerIdFromPublicKey, type Kind } from './common'

const kind = process.argv[2] as Kind
let close: () => Promise<void> = () => Promise.resolve()
let port: number

if (kind === 'ours') {
  const { createSignalingServer } = await import('@x/signaling')
  const ml = await loadMlDsa87()
  const server = createSignalingServer(
    { verify: (pk, msg, sig) => ml.verify(sig, msg, pk), peerIdFromPublicKey },
    // Rate limiting stays on, sized for the load: 200 senders at up to a few hundred frames/s each. Every client
    // comes from 127.0.0.1, so the per-address cap is the global one.
    {
      rateLimitPerSec: 2_000,
      rateLimitBurst: 4_000,
      authTimeoutMs: 600_000,
      maxConnections: 20_000,
      maxConnectionsPerAddress: 20_000,
    },
  )
  port = (await server.listen({ port: 0, host: '127.0.0.1' })).port
  close = () => server.close()
} else if (kind === 'floor') {
  port = await (await import('./floor')).startFloor()
} else if (kind === 'peerjs') {
  const { PeerServer } = await import('peer')
  port = await new Promise<number>((resolve) => {
    PeerServer({ port: 0, host: '127.0.0.1', path: '/', concurrent_limit: 20_000 }, (server) => {
      const address = server.address()
      resolve(typeof address === 'object' && address !== null ? address.port : 0)
    })
  })
  close = () => Promise.resolve()
} else {
  // The y-webrtc signaling server is a script that listens on process.env.PORT on all interfaces; pin it to
  // 127.0.0.1 and learn the port by wrapping http.Server#listen before importing it.
  // eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound with .call below
  const original = http.Server.prototype.listen
  const listening = new Promise<number>((resolve) => {
    http.Server.prototype.listen = function (this: http.Server, ..._args: unknown[]) {
      this.once('listening', () => {
        const a = this.address()
        resolve(typeof a === 'object' && a !== null ? a.port : 0)
      })
      return (original as (...a: unknown[]) => http.Server).call(this, 0, '127.0.0.1')
    } as typeof original
  })
  process.env.PORT = '0'
  const log = console.log
  console.log = () => {}
  // the bin is not in y-webrtc's exports map: import it by file URL
  await import(new URL('../node_modules/y-webrtc/bin/server.js', import.meta.url).href)
  port = await listening
  console.log = log
}

process.stdout.write(JSON.stringify({ port }) + '\n')
const rl = createInterface({ input: process.stdin })
rl.on('close', () => process.exit(0)) // the orchestrator went away
rl.on('line', (line) => {
  if (line === 'stats') {
    ;(globalThis as { gc?: () => void }).gc?.()
    const m = process.memoryUsage()
    process.stdout.write(
      JSON.stringify({ cpu: process.cpuUsage(), rss: m.rss, heap: m.heapUsed + m.external }) + '\n',
    )
  } else if (line.startsWith('snap ')) {
    // heap snapshot for per-connection analysis (HEAP_SNAPSHOT_DIR=… in compare.ts)
    const file = v8.writeHeapSnapshot(line.slice(5))
    process.stdout.write(JSON.stringify({ file }) + '\n')
  } else if (line === 'exit') {
    void close().then(() => process.exit(0))
  }
})
