/**
 * A reconnect storm against the built node (not a test): `cd bench && pnpm node:storm` (builds apps/node first if
 * needed). `NODE_BIN` picks the runtime of the node under test (default: this one; e.g. the path printed by
 * `npx -y node@24 -p process.execPath`).
 *
 * While 100 pairs of registered peers relay 5,000 signals/s (bench/signaling/loadgen.ts), `STORM` (5,000) native
 * peers connect at once and register (a node restarted behind a load balancer sees this). The storm's peers run
 * in their own process under Node 24 when available (their ML-DSA-87 signing must not be what is measured).
 * Reports the time until every peer is registered, the node's CPU over the storm (from /proc), registrations per
 * second per core of node CPU, and the relay p99 measured during the storm. The AI engine is off (one address
 * opening 5,000 connections is what it exists to stop), and the per-address connection cap is raised for the
 * same reason. Prints a table, and as its last line one JSON object.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const SERVER = join(HERE, '../../apps/node/dist/server.js')
const NODE_BIN = process.env.NODE_BIN ?? process.execPath
const STORM = Number(process.env.STORM ?? 5_000)
const RATE = Number(process.env.RATE ?? 5_000)
const PAIRS = Number(process.env.PAIRS ?? 100)
const CLK_TCK = 100

const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})

function cpuSeconds(pid: number): number {
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
  async next(match: (line: string) => boolean = () => true, timeoutMs = 600_000): Promise<string> {
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

/** Node 24 for the storm's peers when npx can fetch it, else this runtime. */
function generatorNode(): string {
  try {
    return execFileSync('npx', ['-y', 'node@24', '-p', 'process.execPath'], { encoding: 'utf8' }).trim()
  } catch {
    return process.execPath
  }
}

if (!existsSync(SERVER)) {
  const b = spawnSync('pnpm', ['--filter', '@x/node', 'build'], { stdio: 'inherit' })
  if (b.status !== 0) throw new Error('building apps/node failed')
}
const dataDir = mkdtempSync(join(tmpdir(), 'x-storm-'))
const node = spawn(
  NODE_BIN,
  [
    SERVER,
    ...['--host', '127.0.0.1', '--rest-port', '0', '--ws-port', '0', '--dht-port', '0'],
    ...['--data-dir', dataDir, '--log-level', 'warn', '--ai', 'off'],
    ...['--max-connections', String(STORM + 2 * PAIRS + 100), '--max-connections-per-address', '100000'],
  ],
  { stdio: ['ignore', 'inherit', 'pipe'], detached: true },
)
children.add(node)
const ready = JSON.parse((await new Lines(node.stderr).next((l) => l.startsWith('READY '))).slice(6)) as {
  ws: number
}
const nodeVersion = execFileSync(NODE_BIN, ['--version'], { encoding: 'utf8' }).trim()

const tsx = ['--conditions=@x/source', '--import', 'tsx']
const load = spawn(
  process.execPath,
  [...tsx, join(HERE, '../signaling/loadgen.ts'), 'ours', String(ready.ws)],
  {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, PAIRS: String(PAIRS) },
  },
)
children.add(load)
const loadOut = new Lines(load.stdout)
await loadOut.next()
load.stdin.write('setup\n')
await loadOut.next()

const peers = spawn(
  generatorNode(),
  [...tsx, join(HERE, 'storm-peers.ts'), String(ready.ws), String(STORM)],
  {
    stdio: ['pipe', 'pipe', 'inherit'],
    cwd: HERE,
  },
)
children.add(peers)
const peersOut = new Lines(peers.stdout)
const prepared = JSON.parse(await peersOut.next()) as { ready: { keygenMs: number } }

// Relay load first, then the storm inside its measured phase: the phase's p99 is the relay p99 during the storm.
const phaseSeconds = Number(process.env.PHASE_SECONDS ?? 20)
load.stdin.write(`rate ${RATE} ${phaseSeconds} 1\n`)
await loadOut.next() // measuring
const c0 = cpuSeconds(node.pid!)
peers.stdin.write('go\n')
const storm = (JSON.parse(await peersOut.next()) as { result: Record<string, unknown> & { wallMs: number } })
  .result
const c1 = cpuSeconds(node.pid!)
await loadOut.next() // measured
const relay = (JSON.parse(await loadOut.next()) as { result: { perSec: number; p50: number; p99: number } })
  .result
const stormCpu = c1 - c0
const summary = {
  node: nodeVersion,
  storm,
  nodeCpuSeconds: +stormCpu.toFixed(2),
  registrationsPerSecPerCore: Math.round((storm.registered as number) / stormCpu),
  relay: {
    offeredPerSec: RATE,
    deliveredPerSec: Math.round(relay.perSec),
    p50Ms: +relay.p50.toFixed(2),
    p99Ms: +relay.p99.toFixed(2),
  },
  phaseSeconds,
  generatorKeygenMs: prepared.ready.keygenMs,
  load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
}
peers.stdin.write('exit\n')
load.stdin.write('exit\n')
node.kill('SIGTERM')
await new Promise((r) => node.once('exit', r))
rmSync(dataDir, { recursive: true, force: true })
console.log(`reconnect storm on ${nodeVersion}: ${STORM} peers while ${PAIRS} pairs relay ${RATE} msg/s`)
console.log(
  `  all registered in ${storm.wallMs} ms (${String(storm.registered)} ok, ${String(storm.refused)} refused)`,
)
console.log(
  `  node CPU over the storm ${summary.nodeCpuSeconds} s: ${summary.registrationsPerSecPerCore} registrations/s per core`,
)
console.log(
  `  relay during the storm: p50 ${summary.relay.p50Ms} ms, p99 ${summary.relay.p99Ms} ms, ${summary.relay.deliveredPerSec} msg/s`,
)
console.log(JSON.stringify(summary))
process.exit(0)
