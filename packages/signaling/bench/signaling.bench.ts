// In-process micro-benchmark (not a test): relay throughput between registered pairs and ML-DSA-87 registration
// cost. Cross-project comparisons live in /work/main/bench/signaling/compare.ts.
// Run: pnpm --filter @x/signaling bench
import { createHash } from 'node:crypto'
import { ml_dsa87 } from '@noble/post-quantum/ml-dsa.js'
import WebSocket from 'ws'
import { createSignalingServer } from '../src/index'
import { statementBytes } from '../src/protocol'

const MESSAGES = 50_000
const PAIRS = 10
const REGISTRATIONS = 30

const peerIdFromPublicKey = (pk: Uint8Array) => createHash('sha256').update(pk).digest('hex').slice(0, 40)
const server = createSignalingServer(
  { verify: (pk, m, s) => ml_dsa87.verify(s, m, pk), peerIdFromPublicKey },
  { rateLimitPerSec: 1e6, rateLimitBurst: 1e6 },
)
const { port } = await server.listen({ port: 0 })
const url = `ws://127.0.0.1:${port}/p2p-signaling`

async function register(seed: number): Promise<{ ws: WebSocket; id: string }> {
  const keys = ml_dsa87.keygen(new Uint8Array(32).fill(seed))
  const ws = new WebSocket(url, { perMessageDeflate: false })
  return new Promise((resolve, reject) => {
    ws.on('message', function first(data: Buffer) {
      const m = JSON.parse(data.toString())
      if (m.type === 'challenge') {
        const statement = { node: m.node, host: new URL(url).host, time: Date.now(), nonce: m.nonce }
        const signature = ml_dsa87.sign(statementBytes(statement), keys.secretKey)
        ws.send(
          JSON.stringify({
            type: 'register',
            v: 2,
            publicKey: Buffer.from(keys.publicKey).toString('base64'),
            signature: Buffer.from(signature).toString('base64'),
            host: statement.host,
            time: statement.time,
          }),
        )
      } else if (m.type === 'registered') {
        ws.off('message', first)
        resolve({ ws, id: m.id })
      } else reject(new Error(JSON.stringify(m)))
    })
  })
}

const peers: { ws: WebSocket; id: string }[] = []
const cpuReg0 = process.cpuUsage()
const tReg0 = performance.now()
for (let i = 0; i < REGISTRATIONS; i++) peers.push(await register(i + 1))
const regMs = performance.now() - tReg0
const regCpu = process.cpuUsage(cpuReg0)

const pad = 'x'.repeat(180)
let received = 0
const done = new Promise<void>((resolve) => {
  for (const p of peers) {
    p.ws.on('message', () => {
      if (++received === MESSAGES) resolve()
    })
  }
})
const cpu0 = process.cpuUsage()
const t0 = performance.now()
for (let k = 0; k < MESSAGES; k++) {
  const from = peers[(k % PAIRS) * 2]!
  const to = peers[(k % PAIRS) * 2 + 1]!
  from.ws.send(
    `{"type":"candidate","to":"${to.id}","data":{"candidate":"candidate:${pad}","sdpMid":"0","sdpMLineIndex":0}}`,
  )
  if (k % 1000 === 999) await new Promise((r) => setImmediate(r))
}
await done
const ms = performance.now() - t0
const cpu = process.cpuUsage(cpu0)
for (const p of peers) p.ws.close()
await server.close()

const results = {
  relayMsgsPerSec: Math.round((MESSAGES / ms) * 1000),
  relayCpuMicrosPerMsgInclClients: +((cpu.user + cpu.system) / MESSAGES).toFixed(2),
  registrationsPerSecWall: +((REGISTRATIONS / regMs) * 1000).toFixed(1),
  registrationCpuMsEachInclSigning: +((regCpu.user + regCpu.system) / 1000 / REGISTRATIONS).toFixed(2),
  signatureBackend: '@noble/post-quantum 0.7.1 ml_dsa87 (pure JS)',
}
console.log('metric                                   value')
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(40)} ${v}`)
console.log(JSON.stringify({ bench: '@x/signaling', ...results }))
