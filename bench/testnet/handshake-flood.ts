/**
 * REST liveness during a flood of link handshakes (benchmark, not a test): `cd bench && pnpm handshake-flood`.
 *
 * Starts one built node (`apps/node/dist/server.js`), measures `GET /api/health/live` latency (one request every
 * 10 ms) for `--seconds` (10) without load, then again while `--rate` (100) new WebSocket connections per second,
 * each from its own 127.0.0.x address, upgrade at `/p2p-node` and send a first KEM handshake message whose
 * certificate is well formed but whose signature is random: the most a first message can cost a node (one
 * ML-DSA-87 verification, which the node runs in its worker pool, after its rate limits admitted it). Prints a
 * table and, as its last line, one JSON object. Bar (issue 17): liveness p99 ≤ 20 ms during the flood.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { HANDSHAKE_MESSAGE_BYTES, HANDSHAKE_VERSION, HYBRID_PUBLIC_KEY_BYTES, hybridKeygen } from '@x/pqc'

const APP = join(dirname(fileURLToPath(import.meta.url)), '../../apps/node')
const SERVER = join(APP, 'dist/server.js')
const argv = process.argv.slice(2)
const num = (name: string, fallback: number): number => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? Number(argv[i + 1]) : fallback
}
const RATE = num('rate', 100)
const SECONDS = num('seconds', 10)

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

/** A KEM message 1: a real ephemeral hybrid key, then a certificate with a random identity key and signature. */
function floodMessage(): Uint8Array {
  const m = new Uint8Array(HANDSHAKE_MESSAGE_BYTES.kem[0]!)
  m.set([HANDSHAKE_VERSION, 1, 1])
  m.set(hybridKeygen().publicKey, 3)
  const cert = randomBytes(m.length - 3 - HYBRID_PUBLIC_KEY_BYTES)
  cert[0] = 1 // certificate version
  m.set(cert, 3 + HYBRID_PUBLIC_KEY_BYTES)
  return m
}

async function liveness(url: string, seconds: number): Promise<number[]> {
  const out: number[] = []
  const end = performance.now() + seconds * 1000
  while (performance.now() < end) {
    const t = performance.now()
    const res = await fetch(url)
    await res.arrayBuffer()
    out.push(performance.now() - t)
    await new Promise((r) => setTimeout(r, 10))
  }
  return out.sort((a, b) => a - b)
}

async function main(): Promise<void> {
  if (!existsSync(SERVER) || argv.includes('--build')) {
    const r = spawnSync('pnpm', ['--filter', '@x/node', 'build'], { stdio: 'inherit' })
    if (r.status !== 0) throw new Error('build failed')
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'x-flood-'))
  const proc: ChildProcess = spawn(
    process.execPath,
    [SERVER, '--host', '127.0.0.1', '--rest-port', '0', '--ws-port', '0', '--dht-port', '0'].concat([
      '--data-dir',
      dataDir,
      '--log-level',
      'warn',
      // The flood comes from loopback addresses: keep the AI engine from blocking them so the link layer's own
      // limits are what is measured.
      '--ai',
      'off',
    ]),
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  try {
    const ready = await new Promise<{ rest: number; ws: number }>((resolve, reject) => {
      let buf = ''
      // The READY line is on stderr (stdout carries the logs).
      proc.stderr!.on('data', (d: Buffer) => {
        buf += d.toString()
        const m = /^READY (.*)$/m.exec(buf)
        if (m) resolve(JSON.parse(m[1]!) as { rest: number; ws: number })
      })
      proc.once('exit', (code) => reject(new Error(`node exited with ${code}`)))
    })
    const live = `http://127.0.0.1:${ready.rest}/api/health/live`
    const baseline = await liveness(live, SECONDS)
    const counts = { attempted: 0, upgraded: 0, refused: 0, errors: 0 }
    const messages = Array.from({ length: 32 }, floodMessage)
    let source = 0
    const timer = setInterval(() => {
      for (let i = 0; i < RATE / 20; i++) {
        counts.attempted++
        const ws = new WebSocket(`ws://127.0.0.1:${ready.ws}/p2p-node`, {
          localAddress: `127.0.0.${2 + (source++ % 250)}`,
          perMessageDeflate: false,
        })
        ws.on('unexpected-response', (_req, res) => {
          if (res.statusCode === 429 || res.statusCode === 503) counts.refused++
          else counts.errors++
          ws.terminate()
        })
        ws.on('error', () => undefined)
        ws.on('open', () => {
          counts.upgraded++
          ws.send(messages[counts.upgraded % messages.length]!)
          setTimeout(() => ws.terminate(), 500)
        })
      }
    }, 50)
    const flooded = await liveness(live, SECONDS)
    clearInterval(timer)
    const row = (name: string, s: number[]) => ({
      phase: name,
      requests: s.length,
      p50Ms: Math.round(pct(s, 50) * 10) / 10,
      p99Ms: Math.round(pct(s, 99) * 10) / 10,
      maxMs: Math.round((s.at(-1) ?? NaN) * 10) / 10,
    })
    console.table([row('idle', baseline), row(`${RATE} handshakes/s`, flooded)])
    console.table([counts])
    console.log(
      JSON.stringify({
        rate: RATE,
        seconds: SECONDS,
        ...counts,
        idleP99Ms: row('', baseline).p99Ms,
        liveP50Ms: row('', flooded).p50Ms,
        liveP99Ms: row('', flooded).p99Ms,
      }),
    )
  } finally {
    proc.kill('SIGTERM')
    await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)))
    rmSync(dataDir, { recursive: true, force: true })
  }
}

void main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
