// The reconnect storm's peers, in their own process: `storm-peers.ts <ws port> <count>`. Makes `count` ML-DSA-87
// identities first (with @x/pqc: OpenSSL on Node 24), then, on the `go` line from stdin, opens every connection at
// once and registers each one as soon as its challenge arrives. Prints JSON lines: `{"ready":…}` after the
// identities exist, `{"result":…}` when every peer is registered or failed (or the deadline passed); `failures` counts why.
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { Identity, initPqc } from '@x/pqc'
import { registerFrame, statementBytes } from '@x/signaling'

const port = Number(process.argv[2])
const count = Number(process.argv[3] ?? 5_000)
const deadlineMs = Number(process.env.STORM_DEADLINE_MS ?? 300_000)
setTimeout(() => process.exit(2), deadlineMs + 120_000).unref()
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n')

await initPqc()
const t0 = performance.now()
const identities = Array.from({ length: count }, (_, i) => {
  const seed = new Uint8Array(32)
  new DataView(seed.buffer).setUint32(0, i + 1)
  seed[31] = 0x5a
  return Identity.generate(seed)
})
out({ ready: { identities: count, keygenMs: Math.round(performance.now() - t0) } })

const sockets: WebSocket[] = []
async function storm(): Promise<unknown> {
  const host = `127.0.0.1:${port}`
  const start = performance.now()
  let registered = 0
  let refused = 0
  const failures: Record<string, number> = {}
  const latencies: number[] = []
  await new Promise<void>((resolve) => {
    const deadline = setTimeout(resolve, deadlineMs)
    const done = () => {
      if (registered + refused === count) {
        clearTimeout(deadline)
        resolve()
      }
    }
    identities.forEach((identity) => {
      const opened = performance.now()
      const ws = new WebSocket(`ws://${host}/p2p-signaling`, { perMessageDeflate: false })
      sockets.push(ws)
      let settled = false
      const fail = (why: string) => {
        if (settled) return
        settled = true
        refused++
        failures[why] = (failures[why] ?? 0) + 1
        done()
      }
      ws.on('error', (err) => fail(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`))
      // Closed before it registered (e.g. 4008 when the auth timeout passed): failed, not pending for ever.
      ws.on('close', (code) => fail(`close ${code}`))
      ws.on('message', (data: Buffer) => {
        const m = JSON.parse(data.toString()) as { type: string; nonce?: string; node?: string }
        if (m.type === 'challenge') {
          const statement = { node: m.node!, host, time: Date.now(), nonce: m.nonce! }
          ws.send(registerFrame(statement, identity.publicKey, identity.sign(statementBytes(statement))))
        } else if (m.type === 'registered') {
          if (settled) return
          settled = true
          registered++
          latencies.push(performance.now() - opened)
          done()
        } else if (m.type === 'error') {
          fail(`error frame ${String((m as { code?: string }).code)}`)
        }
      })
    })
  })
  latencies.sort((a, b) => a - b)
  const q = (p: number) =>
    +(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN).toFixed(1)
  return {
    count,
    registered,
    refused,
    failures,
    wallMs: Math.round(performance.now() - start),
    registrationMs: { p50: q(0.5), p99: q(0.99), max: q(1) },
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'go') void storm().then((result) => out({ result }))
  if (line === 'exit') {
    for (const ws of sockets) ws.terminate()
    process.exit(0)
  }
})
