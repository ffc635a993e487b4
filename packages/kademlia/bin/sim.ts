#!/usr/bin/env node
/**
 * Simulator CLI, shipped as the `kademlia-sim` bin (built to dist/bin/sim.js) and run in this repository
 * with `pnpm sim --nodes 10000 --lookups 1000 --churn 0.2 --hostile 0.2 --disjoint 4 --seed 1`.
 * Prints a table and, as its last line, one JSON object with the same figures.
 */
import { parseArgs } from 'node:util'
import { runSimulation } from '../src/simulator'

const USAGE = `Usage: kademlia-sim [--nodes 1000] [--lookups 1000] [--churn 0] [--rounds n] [--round-ms 600000]
  [--hostile 0] [--hostile-mode fake|collude] [--disjoint 1] [--join-disjoint n] [--seed 1] [--k 20]
  [--alpha 3] [--latency 50] [--jitter 20] [--loss 0] [--refresh-ms 600000] [--join-refresh 16] [--quiet]
A deterministic simulation of @x/kademlia nodes on a virtual network: prints a table, then one JSON line.
For 10,000 nodes give Node a larger heap: NODE_OPTIONS=--max-old-space-size=1024 kademlia-sim ...`

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      nodes: { type: 'string', default: '1000' },
      lookups: { type: 'string', default: '1000' },
      churn: { type: 'string', default: '0' },
      rounds: { type: 'string' },
      'round-ms': { type: 'string', default: '600000' },
      hostile: { type: 'string', default: '0' },
      'hostile-mode': { type: 'string', default: 'fake' },
      disjoint: { type: 'string', default: '1' },
      'join-disjoint': { type: 'string' },
      seed: { type: 'string', default: '1' },
      k: { type: 'string', default: '20' },
      alpha: { type: 'string', default: '3' },
      latency: { type: 'string', default: '50' },
      jitter: { type: 'string', default: '20' },
      loss: { type: 'string', default: '0' },
      'refresh-ms': { type: 'string', default: '600000' },
      'join-refresh': { type: 'string', default: '16' },
      quiet: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    console.log(USAGE)
    return
  }
  const mode = values['hostile-mode']
  if (mode !== 'fake' && mode !== 'collude') throw new RangeError('--hostile-mode must be fake or collude')

  const num = (name: string, v: string | undefined): number => {
    const x = Number(v)
    if (!Number.isFinite(x)) throw new RangeError(`--${name} must be a number`)
    return x
  }

  const result = await runSimulation({
    nodes: num('nodes', values.nodes),
    lookups: num('lookups', values.lookups),
    churn: num('churn', values.churn),
    rounds: values.rounds === undefined ? undefined : num('rounds', values.rounds),
    roundMs: num('round-ms', values['round-ms']),
    hostile: num('hostile', values.hostile),
    hostileMode: mode,
    disjoint: num('disjoint', values.disjoint),
    joinDisjoint:
      values['join-disjoint'] === undefined ? undefined : num('join-disjoint', values['join-disjoint']),
    seed: num('seed', values.seed),
    k: num('k', values.k),
    alpha: num('alpha', values.alpha),
    latencyMs: num('latency', values.latency),
    jitterMs: num('jitter', values.jitter),
    loss: num('loss', values.loss),
    refreshIntervalMs: num('refresh-ms', values['refresh-ms']),
    joinRefresh: num('join-refresh', values['join-refresh']),
    onProgress: values.quiet ? undefined : (m) => console.error(`[sim] ${m}`),
  })

  const rows: Array<[string, string]> = [
    ['nodes (hostile, mode)', `${result.nodes} (${result.hostileNodes}, ${result.hostileMode})`],
    [
      'k / alpha / disjoint paths (lookups, joins)',
      `${result.k} / ${result.alpha} / ${result.disjoint}, ${result.joinDisjoint}`,
    ],
    ['churn per round', `${result.churn * 100}%`],
    ['lookups', String(result.lookups)],
    ['success', `${(result.successRate * 100).toFixed(2)}% (${result.succeeded}/${result.lookups})`],
    ['hops mean / p50 / p99', `${result.hops.mean} / ${result.hops.p50} / ${result.hops.p99}`],
    ['RPCs per lookup mean / p50 / p99', `${result.rpcs.mean} / ${result.rpcs.p50} / ${result.rpcs.p99}`],
    [
      'virtual latency ms mean / p50 / p99',
      `${result.latencyMs.mean} / ${result.latencyMs.p50} / ${result.latencyMs.p99}`,
    ],
    ['avg table size', String(result.avgTableSize)],
    ['datagrams while forming', String(result.joinRpcs)],
    ['events', String(result.events)],
    ['wall time', `${(result.wallMs / 1000).toFixed(1)} s`],
    ['peak RSS', `${result.peakRssMiB} MiB`],
  ]
  const width = Math.max(...rows.map((r) => r[0].length))
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`)
  console.log(JSON.stringify(result))
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err)
  console.error(USAGE)
  process.exitCode = 1
})
