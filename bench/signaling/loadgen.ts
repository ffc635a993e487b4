// Load generator, in its own process. Usage: loadgen.ts <kind> <port>; commands on stdin (see compare.ts).
import type { Socket } from 'node:net'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { registerFrame, statementBytes } from '@x/signaling'
import { loadMlDsa87, peerIdFromPublicKey, type Kind } from './common'

// The floor relay speaks the PeerJS wire protocol.
const kind = (process.argv[2] === 'floor' ? 'peerjs' : process.argv[2]) as Exclude<Kind, 'floor'>
const port = Number(process.argv[3])
const PAIRS = Number(process.env.PAIRS ?? 100)
const N = PAIRS * 2
const base = `ws://127.0.0.1:${port}`
setTimeout(() => process.exit(2), 600_000).unref() // hard stop, whatever happens

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n')
const partner = (i: number) => (i % 2 === 0 ? i + 1 : i - 1)

interface Client {
  ws: WebSocket
  id: string
  prefix: string
}
const clients: Client[] = []
let onDeliver: (receiver: number, sender: number, t: number) => void = () => {}
let errors = 0

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
}

const T_KEY = Buffer.from('"t":')
const S_KEY = Buffer.from('"s":')

/** Reads the non-negative decimal number that follows `key` in `buf` without decoding the frame. */
function numberAfter(buf: Buffer, key: Buffer): number {
  const at = buf.lastIndexOf(key)
  if (at === -1) return NaN
  let value = 0
  let scale = 0
  for (let k = at + key.length; k < buf.length; k++) {
    const c = buf[k]!
    if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48)
      if (scale !== 0) scale *= 10
    } else if (c === 46 && scale === 0) scale = 1
    else break
  }
  return scale > 1 ? value / scale : value
}

/**
 * Per received frame: no JSON.parse and no string decoding, so the generator's own CPU stays small next to the
 * server's. Signals carry `"s":<sender>,"t":<send time>` as their last fields (frames are precomputed).
 */
function handle(i: number, data: Buffer): void {
  const t = numberAfter(data, T_KEY)
  if (Number.isNaN(t)) {
    const text = data.toString()
    if (text.includes('"type":"error"') || text.includes('"type":"ERROR"')) errors++
    return
  }
  const s = numberAfter(data, S_KEY)
  if (s === i) return // y-webrtc echoes publishes to the sender
  onDeliver(i, s, t)
}

const PAD = 'x'.repeat(180)

async function setup(): Promise<unknown> {
  const t0 = performance.now()
  if (kind === 'ours') {
    const ml = await loadMlDsa87()
    // A distinct seed per client, also beyond 255 clients (a byte fill would repeat keys, and so peer IDs).
    const keys = Array.from({ length: N }, (_, i) => {
      const seed = new Uint8Array(32).fill(7)
      new DataView(seed.buffer).setUint32(0, i + 1)
      return ml.keygen(seed)
    })
    const tKeys = performance.now()
    const ids = keys.map((k) => peerIdFromPublicKey(k.publicKey))
    const tReg = performance.now()
    await Promise.all(
      keys.map(async (k, i) => {
        // The challenge can arrive in the same chunk as the upgrade response: listen before 'open'.
        const ws = new WebSocket(`${base}/p2p-signaling`, { perMessageDeflate: false })
        await new Promise<void>((resolve, reject) => {
          ws.once('error', reject)
          ws.on('message', function first(data: Buffer) {
            const m = JSON.parse(data.toString())
            if (m.type === 'challenge') {
              const statement = { node: m.node, host: new URL(base).host, time: Date.now(), nonce: m.nonce }
              ws.send(registerFrame(statement, k.publicKey, ml.sign(statementBytes(statement), k.secretKey)))
            } else if (m.type === 'registered') {
              ws.off('message', first)
              resolve()
            } else reject(new Error(JSON.stringify(m)))
          })
        })
        clients[i] = { ws, id: ids[i]!, prefix: '' }
      }),
    )
    for (let i = 0; i < N; i++) {
      clients[i]!.prefix =
        `{"type":"candidate","to":"${ids[partner(i)]}","data":{"candidate":"candidate:${PAD}","sdpMid":"0","sdpMLineIndex":0,"s":${i},"t":`
    }
    return { keygenMs: tKeys - t0, registerMs: performance.now() - tReg, registrations: N }
  }
  await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const id = `c${i}`
      const ws =
        kind === 'peerjs'
          ? await open(`${base}/peerjs?key=peerjs&id=${id}&token=tok${i}&version=1.5.5`)
          : await open(base)
      const pair = i >> 1
      if (kind === 'y-webrtc') ws.send(JSON.stringify({ type: 'subscribe', topics: [`p${pair}`] }))
      clients[i] = {
        ws,
        id,
        prefix:
          kind === 'peerjs'
            ? `{"type":"CANDIDATE","dst":"c${partner(i)}","payload":{"candidate":"candidate:${PAD}","sdpMid":"0","sdpMLineIndex":0,"s":${i},"t":`
            : `{"type":"publish","topic":"p${pair}","data":{"candidate":"candidate:${PAD}","sdpMid":"0","sdpMLineIndex":0,"s":${i},"t":`,
      }
    }),
  )
  if (kind === 'peerjs') {
    setInterval(() => {
      for (const c of clients) c.ws.send('{"type":"HEARTBEAT"}')
    }, 5_000).unref()
  }
  return { registerMs: performance.now() - t0, registrations: N }
}

/** One frame: a precomputed prefix plus the send time (ms, 3 decimals); no per-message JSON.stringify. */
function send(i: number): void {
  const c = clients[i]!
  c.ws.send(c.prefix + performance.now().toFixed(3) + '}}')
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

/** Runs `warmupS` unmeasured then `seconds` measured; prints {"measuring":true} at the window start. */
async function phase(seconds: number, start: () => void, stopSending: () => void): Promise<unknown> {
  const latencies = new Float64Array(2_000_000)
  let n = 0
  let measuring = false
  let delivered = 0
  const base = onDeliver
  onDeliver = (r, s, t) => {
    base(r, s, t)
    if (!measuring) return
    delivered++
    if (n < latencies.length) latencies[n++] = performance.now() - t
  }
  start()
  await new Promise((r) => setTimeout(r, 1_000))
  out({ measuring: true })
  await new Promise((r) => setTimeout(r, 50)) // let the orchestrator sample the server CPU
  measuring = true
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  await new Promise((r) => setTimeout(r, seconds * 1000))
  measuring = false
  const elapsed = (performance.now() - t0) / 1000
  const c1 = process.cpuUsage(c0)
  out({ measured: true })
  stopSending()
  await new Promise((r) => setTimeout(r, 500)) // drain
  onDeliver = () => {}
  const sorted = latencies.subarray(0, n).sort()
  return {
    delivered,
    perSec: delivered / elapsed,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    generatorCpuCore: (c1.user + c1.system) / 1e6 / elapsed,
    errors,
  }
}

/** `rate` frames/s for `seconds`; `burst` > 1 sends k frames from one client in one TCP write, then the next client. */
async function fixedRate(rate: number, seconds: number, burst: number): Promise<unknown> {
  let timer: ReturnType<typeof setInterval> | undefined
  return phase(
    seconds,
    () => {
      const t0 = performance.now()
      let sent = 0
      let next = 0
      timer = setInterval(() => {
        const due = Math.floor((rate * (performance.now() - t0)) / 1000 / burst) * burst - sent
        for (let k = 0; k < due; k += burst) {
          if (burst === 1) send(next)
          else {
            const socket = (clients[next]!.ws as unknown as { _socket: Socket })._socket
            socket.cork()
            for (let b = 0; b < burst; b++) send(next)
            socket.uncork()
          }
          next = (next + 1) % N
        }
        sent += due
      }, 2)
    },
    () => clearInterval(timer),
  )
}

async function saturate(seconds: number): Promise<unknown> {
  const WINDOW = 8 // frames in flight per client
  let running = true
  onDeliver = (r) => {
    if (running) send(r) // bounce back to the sender: closed loop
  }
  return phase(
    seconds,
    () => {
      for (let w = 0; w < WINDOW; w++) for (let i = 0; i < N; i++) send(i)
    },
    () => {
      running = false
    },
  )
}

const idle: WebSocket[] = []
async function openIdle(count: number): Promise<unknown> {
  const t0 = performance.now()
  for (let b = 0; b < count; b += 250) {
    await Promise.all(
      Array.from({ length: Math.min(250, count - b) }, async (_, k) => {
        const i = b + k
        const url =
          kind === 'ours'
            ? `${base}/p2p-signaling`
            : kind === 'peerjs'
              ? `${base}/peerjs?key=peerjs&id=idle${i}&token=t${i}&version=1.5.5`
              : base
        const ws = await open(url)
        ws.on('error', () => {})
        idle.push(ws)
      }),
    )
  }
  return { idle: idle.length, openMs: performance.now() - t0 }
}

const rl = createInterface({ input: process.stdin })
rl.on('close', () => process.exit(0)) // the orchestrator went away
rl.on('line', (line) => {
  const [cmd, a, b, c] = line.split(' ')
  const run = async (): Promise<unknown> => {
    switch (cmd) {
      case 'setup': {
        const r = await setup()
        clients.forEach((c, i) => c.ws.on('message', (d: Buffer) => handle(i, d)))
        return r
      }
      case 'rate':
        return fixedRate(Number(a), Number(b), Number(c ?? 1))
      case 'saturate':
        return saturate(Number(a))
      case 'idle':
        return openIdle(Number(a))
      case 'closeidle':
        for (const ws of idle.splice(0)) ws.terminate()
        return { closed: true }
      case 'exit':
        for (const c of clients) c.ws.terminate()
        setTimeout(() => process.exit(0), 100)
        return { bye: true }
      default:
        return { unknown: cmd }
    }
  }
  run().then(
    (r) => out({ result: r }),
    (err: Error) => out({ error: err.stack }),
  )
})
out({ ready: true })
