/* eslint-disable @typescript-eslint/no-explicit-any -- bench-internal JSON lines */
// Signaling servers side by side on 127.0.0.1: @x/signaling, the PeerJS server (npm `peer`) and the y-webrtc
// signaling server, each in its own process, driven by one load generator process.
// Run: cd bench && pnpm signaling   (about 3 minutes per run; RUNS=n repeats, interleaved; every phase is bounded)
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { Kind } from './common'

const HERE = fileURLToPath(new URL('.', import.meta.url))
/**
 * Fixed offered loads: `<msgs/s>` sends one frame per client in turn (evenly spread), `<msgs/s>x<k>` sends the same
 * rate as bursts of k frames per client in one TCP write (trickle ICE emits candidates in bursts like this).
 */
const RATES = (process.env.RATES ?? '5000,20000,20000x5').split(',')
const RATE_SECONDS = Number(process.env.RATE_SECONDS ?? 10)
const SATURATE_SECONDS = 5
const IDLE = Number(process.env.IDLE_CONNECTIONS ?? 10_000)
/** e.g. KINDS=ours SERVER_NODE_ARGS=--cpu-prof to profile one server. */
const KINDS = (process.env.KINDS ?? 'ours,peerjs,y-webrtc,floor').split(',') as Kind[]
/** Writes heap snapshots before and after opening the idle connections into this directory. */
const SNAPSHOT_DIR = process.env.HEAP_SNAPSHOT_DIR
const SERVER_NODE_ARGS = (process.env.SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')

class Proc {
  readonly child: ChildProcessByStdio<Writable, Readable, null>
  #lines: Record<string, any>[] = []
  #waiter: (() => void) | undefined
  #buf = ''
  constructor(args: string[], nodeArgs: string[] = []) {
    this.child = spawn(
      process.execPath,
      ['--expose-gc', '--conditions=@x/source', '--import', 'tsx', ...nodeArgs, ...args],
      {
        cwd: HERE,
        stdio: ['pipe', 'pipe', 'inherit'],
        // Own session each: with Linux autogroup scheduling, processes of one session share one CPU share, so on a
        // machine shared with other jobs the server and the generator would otherwise split one session's slice.
        detached: true,
      },
    )
    this.child.on('exit', (code) => {
      if (code !== 0 && code !== null) this.#lines.push({ error: `child exited with ${code}` })
      this.#waiter?.()
    })
    this.child.stdout.on('data', (d: Buffer) => {
      this.#buf += d.toString()
      let nl: number
      while ((nl = this.#buf.indexOf('\n')) !== -1) {
        const line = this.#buf.slice(0, nl)
        this.#buf = this.#buf.slice(nl + 1)
        try {
          this.#lines.push(JSON.parse(line))
        } catch {
          // a stray log line from a third-party server
        }
        this.#waiter?.()
      }
    })
  }
  async next(): Promise<Record<string, any>> {
    while (this.#lines.length === 0) {
      await new Promise<void>((resolve, reject) => {
        this.#waiter = resolve
        const t = setTimeout(() => reject(new Error('child timed out')), 120_000)
        this.#waiter = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
    const line = this.#lines.shift()!
    if (line.error !== undefined) throw new Error(String(line.error))
    return line
  }
  async cmd(line: string): Promise<Record<string, any>> {
    this.child.stdin.write(line + '\n')
    return this.next()
  }
  kill(): void {
    this.child.kill()
  }
}

const cpuMs = (s: Record<string, any>) => (s.cpu.user + s.cpu.system) / 1000

async function measure(kind: Kind) {
  const server = new Proc(['server.ts', kind], SERVER_NODE_ARGS)
  const { port } = await server.next()
  const load = new Proc(['loadgen.ts', kind, String(port)])
  await load.next() // ready
  const result: Record<string, any> = { kind }
  try {
    let s0 = await server.cmd('stats')
    const setup = (await load.cmd('setup')).result
    let s1 = await server.cmd('stats')
    result.registrations = {
      count: setup.registrations,
      wallMs: Math.round(setup.registerMs),
      serverCpuMsEach: +((cpuMs(s1) - cpuMs(s0)) / setup.registrations).toFixed(3),
    }
    for (const rate of RATES) {
      const [perSec, burst = '1'] = rate.split('x')
      load.child.stdin.write(`rate ${perSec} ${RATE_SECONDS} ${burst}\n`)
      await load.next() // measuring
      s0 = await server.cmd('stats')
      await load.next() // measured
      s1 = await server.cmd('stats')
      const r = (await load.next()).result
      const cpuS = (cpuMs(s1) - cpuMs(s0)) / 1000
      result[`rate${rate}`] = {
        deliveredPerSec: Math.round(r.perSec),
        p50Ms: +r.p50.toFixed(2),
        p99Ms: +r.p99.toFixed(2),
        cpuCore: +(cpuS / RATE_SECONDS).toFixed(3),
        cpuSecPer100k: +((cpuS / r.delivered) * 100_000).toFixed(3),
        sysShare: +((s1.cpu.system - s0.cpu.system) / (cpuS * 1e6)).toFixed(2),
        generatorCpuCore: +r.generatorCpuCore.toFixed(2),
        errors: r.errors,
      }
    }
    load.child.stdin.write(`saturate ${SATURATE_SECONDS}\n`)
    await load.next()
    s0 = await server.cmd('stats')
    await load.next()
    s1 = await server.cmd('stats')
    const sat = (await load.next()).result
    const satCpuS = (cpuMs(s1) - cpuMs(s0)) / 1000
    result.saturation = {
      deliveredPerSec: Math.round(sat.perSec),
      p50Ms: +sat.p50.toFixed(2),
      p99Ms: +sat.p99.toFixed(2),
      cpuCore: +(satCpuS / SATURATE_SECONDS).toFixed(3),
      cpuSecPer100k: +((satCpuS / sat.delivered) * 100_000).toFixed(3),
    }
    await load.cmd('exit')
  } finally {
    server.child.stdin.write('exit\n')
    // a profiled server writes its profile on exit: give it time
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5_000)
      server.child.once('exit', () => {
        clearTimeout(t)
        resolve()
      })
    })
    load.kill()
    server.kill()
  }
  return result
}

/** Idle connections against a fresh server process, so earlier phases' heap growth does not blur the delta. */
async function measureIdle(kind: Kind): Promise<Record<string, number>> {
  const server = new Proc(['server.ts', kind], SERVER_NODE_ARGS)
  const { port } = await server.next()
  const load = new Proc(['loadgen.ts', kind, String(port)])
  await load.next() // ready
  try {
    await new Promise((r) => setTimeout(r, 1_000))
    const m0 = await server.cmd('stats')
    if (SNAPSHOT_DIR !== undefined) await server.cmd(`snap ${SNAPSHOT_DIR}/${kind}-before.heapsnapshot`)
    const opened = (await load.cmd(`idle ${IDLE}`)).result
    await new Promise((r) => setTimeout(r, 2_000))
    const m1 = await server.cmd('stats')
    if (SNAPSHOT_DIR !== undefined) await server.cmd(`snap ${SNAPSHOT_DIR}/${kind}-after.heapsnapshot`)
    await load.cmd('closeidle')
    await load.cmd('exit')
    return {
      connections: opened.idle,
      rssBytesPerConn: Math.round((m1.rss - m0.rss) / opened.idle),
      heapBytesPerConn: Math.round((m1.heap - m0.heap) / opened.idle),
    }
  } finally {
    server.child.stdin.write('exit\n')
    await new Promise((r) => setTimeout(r, 1_000))
    load.kill()
    server.kill()
  }
}

/**
 * RUNS > 1 repeats every server in turn, rotating the order each run (a server is not always first on a cold machine
 * or last on a warm one); cells then read `run 1 · run 2 · …` and the bar lines compare per run and by median.
 */
const RUNS = Number(process.env.RUNS ?? 1)
const byKind = new Map<Kind, Record<string, any>[]>(KINDS.map((k) => [k, []]))
for (let run = 0; run < RUNS; run++) {
  for (let j = 0; j < KINDS.length; j++) {
    const kind = KINDS[(j + run) % KINDS.length]!
    process.stderr.write(`run ${run + 1}/${RUNS}: measuring ${kind}...\n`)
    const result = await measure(kind)
    result.idle = await measureIdle(kind)
    byKind.get(kind)!.push(result)
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const cell = (xs: unknown[]): string =>
  xs.length === 1 ? String(xs[0]) : `${xs.join(' · ')} (median ${+median(xs as number[]).toFixed(3)})`
const rows: string[][] = [['metric', ...KINDS]]
const add = (label: string, f: (r: Record<string, any>) => unknown) =>
  rows.push([label, ...KINDS.map((k) => cell(byKind.get(k)!.map(f)))])
for (const rate of RATES) {
  const label = rate.includes('x') ? `${rate.replace('x', ' msg/s, bursts of ')}` : `${rate} msg/s`
  add(`${label}: delivered/s`, (r) => r[`rate${rate}`].deliveredPerSec)
  add(`${label}: p50 ms`, (r) => r[`rate${rate}`].p50Ms)
  add(`${label}: p99 ms`, (r) => r[`rate${rate}`].p99Ms)
  add(`${label}: server CPU (cores)`, (r) => r[`rate${rate}`].cpuCore)
  add(`${label}: server CPU-s / 100k msgs`, (r) => r[`rate${rate}`].cpuSecPer100k)
  add(`${label}: kernel share of server CPU`, (r) => r[`rate${rate}`].sysShare)
  add(`${label}: load generator CPU (cores)`, (r) => r[`rate${rate}`].generatorCpuCore)
}
add('saturation: delivered/s', (r) => r.saturation.deliveredPerSec)
add('saturation: server CPU-s / 100k msgs', (r) => r.saturation.cpuSecPer100k)
add(`idle x${IDLE}: RSS bytes/conn`, (r) => r.idle.rssBytesPerConn)
add(`idle x${IDLE}: heap+external bytes/conn`, (r) => r.idle.heapBytesPerConn)
add('registration: server CPU ms each', (r) => r.registrations.serverCpuMsEach)
const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
for (const row of rows) console.log(row.map((text, c) => text.padEnd(widths[c]!)).join('  '))

// CPU per message of ours against the cheaper anchor, run by run (the bar is <= 0.667).
const ours = byKind.get('ours')
const anchors = KINDS.filter((k) => k !== 'ours' && k !== 'floor')
if (ours !== undefined && anchors.length > 0) {
  const phases = [...RATES.map((r) => `rate${r}`), 'saturation']
  for (const phase of phases) {
    const ratios = ours.map((o, i) => {
      const best = Math.min(...anchors.map((k) => byKind.get(k)![i]![phase].cpuSecPer100k as number))
      return +((o[phase].cpuSecPer100k as number) / best).toFixed(2)
    })
    console.log(`CPU per message, ours / cheaper anchor, ${phase}: ${cell(ratios)}`)
    const floor = byKind.get('floor')
    if (floor !== undefined) {
      const floorRatios = floor.map((f, i) => {
        const best = Math.min(...anchors.map((k) => byKind.get(k)![i]![phase].cpuSecPer100k as number))
        return +((f[phase].cpuSecPer100k as number) / best).toFixed(2)
      })
      console.log(`CPU per message, floor / cheaper anchor, ${phase}: ${cell(floorRatios)}`)
    }
  }
}
console.log(JSON.stringify({ bench: 'signaling', runs: RUNS, results: [...byKind.values()].flat() }))
