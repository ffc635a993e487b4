/**
 * What the AI engine costs (not a test): `cd bench && pnpm node:ai-cost` (builds apps/node first if needed).
 *
 * Starts the built node with the engine on and off, alternately, and drives its `/p2p-signaling` endpoint at a
 * fixed 20,000 candidate-sized (≈ 300 B) messages/s with the signaling load generator (`signaling/loadgen.ts`,
 * 200 pairs of ML-DSA-87-registered clients, 50 messages/s each). Measures the node process's CPU (user + system,
 * from /proc) over the 10 s phase, per 100,000 delivered messages. With the engine on, the generator's address is
 * on the allow-list: it is still featured and scored (the full cost), but not throttled, since one address
 * sending 20,000 messages/s is exactly what the engine exists to stop.
 *
 * Prints a table, and as its last line one JSON object.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const APP = join(HERE, '../../apps/node')
const SERVER = join(APP, 'dist/server.js')
const RUNS = Number(process.env.RUNS ?? 3)
const RATE = Number(process.env.RATE ?? 20_000)
const SECONDS = Number(process.env.RATE_SECONDS ?? 10)
const PAIRS = Number(process.env.PAIRS ?? 200)
const CLK_TCK = 100 // USER_HZ on Linux

const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of children) c.kill()
})

function cpuSeconds(pid: number): number {
  // /proc/<pid>/stat: fields 14 and 15 are utime and stime in clock ticks (after the parenthesised name).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

class Lines {
  readonly #lines: string[] = []
  #waiter: (() => void) | undefined
  constructor(stream: NodeJS.ReadableStream) {
    let buf = ''
    stream.on('data', (d: Buffer) => {
      buf += d.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) !== -1) {
        this.#lines.push(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        this.#waiter?.()
      }
    })
  }
  async next(match: (line: string) => boolean = () => true, timeoutMs = 120_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = this.#lines.findIndex(match)
      if (i !== -1) return this.#lines.splice(i, 1)[0]!
      if (Date.now() > deadline) throw new Error('timed out waiting for a line')
      await new Promise<void>((resolve) => {
        this.#waiter = resolve
        setTimeout(resolve, 1_000).unref()
      })
    }
  }
}

async function run(ai: boolean) {
  const dataDir = mkdtempSync(join(tmpdir(), 'x-ai-cost-'))
  const node = spawn(
    process.execPath,
    [
      SERVER,
      ...['--host', '127.0.0.1', '--rest-port', '0', '--ws-port', '0', '--dht-port', '0'],
      ...['--data-dir', dataDir, '--log-level', 'warn'],
      ...(ai ? ['--ai', 'on', '--ai-allow-list', '127.0.0.1'] : ['--ai', 'off']),
    ],
    { stdio: ['ignore', 'inherit', 'pipe'], detached: true },
  )
  children.add(node)
  const nodeOut = new Lines(node.stderr) // the READY line is on stderr
  const ready = JSON.parse((await nodeOut.next((l) => l.startsWith('READY '))).slice(6)) as { ws: number }
  const load = spawn(
    process.execPath,
    [
      '--conditions=@x/source',
      '--import',
      'tsx',
      join(HERE, '../signaling/loadgen.ts'),
      'ours',
      String(ready.ws),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, PAIRS: String(PAIRS) }, detached: true },
  )
  children.add(load)
  const loadOut = new Lines(load.stdout)
  try {
    await loadOut.next() // ready
    load.stdin.write('setup\n')
    await loadOut.next()
    load.stdin.write(`rate ${RATE} ${SECONDS} 1\n`)
    await loadOut.next() // measuring
    const c0 = cpuSeconds(node.pid!)
    await loadOut.next() // measured
    const c1 = cpuSeconds(node.pid!)
    const result = (
      JSON.parse(await loadOut.next()) as {
        result: { delivered: number; perSec: number; p50: number; p99: number; errors: number }
      }
    ).result
    const cpu = c1 - c0
    return {
      ai,
      deliveredPerSec: Math.round(result.perSec),
      cpuCore: +(cpu / SECONDS).toFixed(3),
      cpuSecPer100k: +((cpu / result.delivered) * 100_000).toFixed(3),
      p50Ms: +result.p50.toFixed(2),
      p99Ms: +result.p99.toFixed(2),
      errors: result.errors,
    }
  } finally {
    load.stdin.write('exit\n')
    load.kill()
    node.kill('SIGTERM')
    await new Promise((r) => node.once('exit', r))
    children.delete(node)
    children.delete(load)
    rmSync(dataDir, { recursive: true, force: true })
  }
}

if (!existsSync(SERVER)) {
  const b = spawnSync('pnpm', ['--filter', '@x/node', 'build'], { stdio: 'inherit' })
  if (b.status !== 0) throw new Error('building apps/node failed')
}
const rows: Awaited<ReturnType<typeof run>>[] = []
for (let i = 0; i < RUNS; i++) {
  // Interleaved, so that both settings see the same machine load.
  for (const ai of i % 2 === 0 ? [false, true] : [true, false]) {
    const r = await run(ai)
    rows.push(r)
    console.error(`[ai-cost] run ${i + 1} ai ${ai ? 'on ' : 'off'}: ${JSON.stringify(r)}`)
  }
}
/** Median: one run on a noisy shared machine can be off by a fifth either way. */
const median = (ai: boolean, key: 'cpuSecPer100k' | 'cpuCore' | 'p99Ms') => {
  const xs = rows
    .filter((r) => r.ai === ai)
    .map((r) => r[key])
    .sort((a, b) => a - b)
  const m = xs.length >> 1
  return xs.length % 2 === 1 ? xs[m]! : (xs[m - 1]! + xs[m]!) / 2
}
const off = median(false, 'cpuSecPer100k')
const on = median(true, 'cpuSecPer100k')
const summary = {
  rate: RATE,
  seconds: SECONDS,
  pairs: PAIRS,
  runs: RUNS,
  load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  off: {
    cpuSecPer100k: +off.toFixed(3),
    cpuCore: +median(false, 'cpuCore').toFixed(3),
    p99Ms: +median(false, 'p99Ms').toFixed(2),
  },
  on: {
    cpuSecPer100k: +on.toFixed(3),
    cpuCore: +median(true, 'cpuCore').toFixed(3),
    p99Ms: +median(true, 'p99Ms').toFixed(2),
  },
  overheadPct: +(((on - off) / off) * 100).toFixed(1),
  rows,
}
console.log(
  `AI engine cost at ${RATE} signaling messages/s (${PAIRS} pairs, ${SECONDS} s, ${RUNS} runs each, interleaved; medians)`,
)
console.log(
  `engine off: ${summary.off.cpuSecPer100k} CPU-s per 100k messages (${summary.off.cpuCore} of a core), p99 ${summary.off.p99Ms} ms`,
)
console.log(
  `engine on:  ${summary.on.cpuSecPer100k} CPU-s per 100k messages (${summary.on.cpuCore} of a core), p99 ${summary.on.p99Ms} ms`,
)
console.log(`overhead: ${summary.overheadPct} % (load average at the end: ${summary.load})`)
console.log(JSON.stringify(summary))
process.exit(0)
