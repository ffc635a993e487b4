/**
 * A reconnect storm against the built node (not a test): `cd bench && pnpm node:storm` (builds apps/node first if
 * needed). `NODE_BIN` picks the runtime of the node under test (default: this one; e.g. the path printed by
 * `npx -y node@24 -p process.execPath`).
 *
 * While 100 pairs of registered peers relay 5,000 signals/s (bench/signaling/loadgen.ts), `STORM` (5,000) native
 * peers connect at once and register (a node restarted behind a load balancer sees this). The storm's peers run
 * in their own process under Node 24 when available (their ML-DSA-87 signing must not be what is measured).
 * Reports the time until every peer is registered (or failed, and why), the node's CPU over the storm (from /proc)
 * less what the relay alone used in the seconds before it, hence CPU per registration and registrations per second
 * per core of node CPU, and the relay p99 measured during the storm. On a 2-core machine the storm's one signing
 * process bounds the wall-clock rate (each peer signs its statement after its challenge arrives); a peer whose
 * signature comes after the node's 10 s auth timeout is closed (4008) and counted as failed. The AI engine is off (one address
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
/** Extra options for the node under test, e.g. NODE_ARGS=--cpu-prof to profile it. */
const NODE_ARGS = (process.env.NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
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
    ...NODE_ARGS,
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
// The node's CPU for the relay alone, over a few seconds before the storm: subtracted from the storm's CPU so
// that the per-registration cost is the registrations' own.
const BASELINE_S = 3
const b0 = cpuSeconds(node.pid!)
await new Promise((r) => setTimeout(r, BASELINE_S * 1000))
const relayCores = (cpuSeconds(node.pid!) - b0) / BASELINE_S
const c0 = cpuSeconds(node.pid!)
peers.stdin.write('go\n')
const storm = (JSON.parse(await peersOut.next()) as { result: Record<string, unknown> & { wallMs: number } })
  .result
const c1 = cpuSeconds(node.pid!)
await loadOut.next() // measured
const relay = (JSON.parse(await loadOut.next()) as { result: { perSec: number; p50: number; p99: number } })
  .result
const stormCpu = c1 - c0
const registrationCpu = Math.max(0.001, stormCpu - relayCores * (storm.wallMs / 1000))
const summary = {
  node: nodeVersion,
  storm,
  nodeCpuSeconds: +stormCpu.toFixed(2),
  relayCpuCores: +relayCores.toFixed(3),
  registrationCpuMsEach: +((registrationCpu * 1000) / (storm.registered as number)).toFixed(3),
  registrationsPerSecPerCore: Math.round((storm.registered as number) / registrationCpu),
  registrationsPerSecWall: Math.round(((storm.registered as number) * 1000) / storm.wallMs),
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
  `  storm over in ${storm.wallMs} ms (${String(storm.registered)} ok, ${String(storm.refused)} refused)`,
)
console.log(
  `  node CPU over the storm ${summary.nodeCpuSeconds} s, of which the relay ${summary.relayCpuCores} cores: ` +
    `${summary.registrationCpuMsEach} ms per registration, ${summary.registrationsPerSecPerCore} registrations/s per core ` +
    `(${summary.registrationsPerSecWall}/s by the wall clock, which the storm's own signing bounds on a small machine)`,
)
if ((storm.refused as number) > 0) console.log('  failed:', JSON.stringify(storm.failures))
console.log(
  `  relay during the storm: p50 ${summary.relay.p50Ms} ms, p99 ${summary.relay.p99Ms} ms, ${summary.relay.deliveredPerSec} msg/s`,
)
console.log(JSON.stringify(summary))
process.exit(0)
