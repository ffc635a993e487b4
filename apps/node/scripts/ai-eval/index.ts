/**
 * Evaluation of the AI engine: `pnpm --filter @x/node ai:eval` runs every scenario of both sets (see
 * `scenarios.ts`) at every intensity with 5 seeds each (tuned: seeds 1–5; held-out: 101–105) and prints the
 * report the README quotes: per scenario and intensity, detection within the bar, time to detect, what the attack
 * achieved, false positives; then the bars, per set; then one JSON line.
 *
 *   pnpm --filter @x/node ai:eval [--set tuned|held-out|all] [--seeds 5] [--only <name part>] [--ai off]
 *                                 [--quick] [--json <file>]
 *   pnpm --filter @x/node ai:eval --summary <file>[,<file>]   (the per-scenario table of earlier --json runs)
 *
 * `--quick` runs one seed and the lowest and highest intensity of each sweep (a smoke run while developing).
 * `--live` runs the older end-to-end check instead: a real node process, real sockets (see `live.ts`).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { barMs, runTrial, type TrialResult } from './run'
import { SCENARIOS, splitPair, type Category, type Scenario, type ScenarioSet } from './scenarios'

export interface SuiteOptions {
  sets?: readonly ScenarioSet[]
  seeds?: number
  only?: string
  ai?: boolean
  quick?: boolean
  log?: (line: string) => void
}

export interface RowReport {
  scenario: string
  set: ScenarioSet
  category: string
  intensity: string
  underThreshold: boolean
  trials: number
  detected: number
  inTime: number
  ttdP50Ms: number | undefined
  ttdMaxMs: number | undefined
  drivenBy: Record<string, number>
  falsePositives: number
  normalEntities: number
  blockedNormalPeers: number
  achieved: Record<string, number>
  failures: string[]
}

export interface SetSummary {
  set: ScenarioSet
  attackTrials: number
  /** Attack trials at or above their scenario's threshold, and how many were detected within the bar. */
  judgedTrials: number
  detectedInTime: number
  detectionRate: number
  /** Scenarios (with intensity) below 95 % within the bar. */
  missing: string[]
  normalTrials: number
  normalEntities: number
  falsePositives: number
  falsePositiveRate: number
  /** Over every trial (attacks too: the base mix runs beside them). */
  falsePositivesAll: number
  normalEntitiesAll: number
  blockedNormalPeers: number
  innocentFailures: string[]
}

export interface SuiteReport {
  rows: RowReport[]
  sets: SetSummary[]
  wallMs: number
}

function intensityLabel(s: Scenario, v: number): string {
  if (s.unit === '') return '—'
  if (s.unit.includes('×')) {
    const [a, b] = splitPair(v)
    return `${a} × ${b}`
  }
  return `${v} ${s.unit}`
}

function quantile(sorted: number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

export async function runSuite(options: SuiteOptions = {}): Promise<SuiteReport> {
  const t0 = Date.now()
  const log = options.log ?? (() => {})
  const sets = options.sets ?? ['tuned', 'held-out']
  const seeds = options.seeds ?? 5
  const scenarios = SCENARIOS.filter(
    (s) => sets.includes(s.set) && (options.only === undefined || s.name.includes(options.only)),
  )
  const rows: RowReport[] = []
  const all: TrialResult[] = []
  for (const s of scenarios) {
    const sweep = options.quick === true && s.sweep.length > 2 ? [s.sweep[0]!, s.sweep.at(-1)!] : s.sweep
    for (const v of sweep) {
      const trials: TrialResult[] = []
      for (let k = 0; k < (options.quick === true ? 1 : seeds); k++) {
        const seed = (s.set === 'tuned' ? 1 : 101) + k
        const r = await runTrial(s, v, seed, { ai: options.ai, log })
        trials.push(r)
        all.push(r)
        log(
          `${s.set} | ${s.name} | ${intensityLabel(s, v)} | seed ${seed}: ` +
            (r.attack
              ? r.detected
                ? `detected in ${r.ttdMs} ms (${r.drivenBy ?? '?'})`
                : 'missed'
              : 'normal') +
            `, FP ${r.falsePositives.length}/${r.normalEntities}` +
            (r.falsePositives.length > 0 ? ` [${r.falsePositives.slice(0, 3).join(', ')}]` : '') +
            (r.failures.length > 0 ? `, FAIL ${r.failures.join('; ')}` : '') +
            `, ${JSON.stringify(r.achieved)} (${(r.wallMs / 1000).toFixed(1)} s)`,
        )
      }
      const ttds = trials
        .map((t) => t.ttdMs)
        .filter((t): t is number => t !== undefined)
        .sort((a, b) => a - b)
      const achieved: Record<string, number> = {}
      for (const t of trials) {
        for (const [k, n] of Object.entries(t.achieved)) achieved[k] = (achieved[k] ?? 0) + n / trials.length
      }
      for (const k of Object.keys(achieved)) achieved[k] = Math.round(achieved[k]! * 10) / 10
      const drivenBy: Record<string, number> = {}
      for (const t of trials)
        if (t.drivenBy !== undefined) drivenBy[t.drivenBy] = (drivenBy[t.drivenBy] ?? 0) + 1
      rows.push({
        scenario: s.name,
        set: s.set,
        category: s.category,
        intensity: intensityLabel(s, v),
        underThreshold: s.threshold !== undefined && v < s.threshold,
        trials: trials.length,
        detected: trials.filter((t) => t.detected).length,
        inTime: trials.filter((t) => t.inTime).length,
        ttdP50Ms: quantile(ttds, 0.5),
        ttdMaxMs: ttds.at(-1),
        drivenBy,
        falsePositives: trials.reduce((n, t) => n + t.falsePositives.length, 0),
        normalEntities: trials.reduce((n, t) => n + t.normalEntities, 0),
        blockedNormalPeers: trials.reduce((n, t) => n + t.blockedNormalPeers.length, 0),
        achieved,
        failures: trials.flatMap((t) => t.failures),
      })
    }
  }
  const summaries: SetSummary[] = sets.map((set) => {
    const mine = rows.filter((r) => r.set === set)
    const judged = mine.filter((r) => r.category !== 'normal' && !r.underThreshold)
    const normal = mine.filter((r) => r.category === 'normal')
    const judgedTrials = judged.reduce((n, r) => n + r.trials, 0)
    const detectedInTime = judged.reduce((n, r) => n + r.inTime, 0)
    const normalEntities = normal.reduce((n, r) => n + r.normalEntities, 0)
    const falsePositives = normal.reduce((n, r) => n + r.falsePositives, 0)
    return {
      set,
      attackTrials: mine.filter((r) => r.category !== 'normal').reduce((n, r) => n + r.trials, 0),
      judgedTrials,
      detectedInTime,
      detectionRate: judgedTrials === 0 ? 0 : detectedInTime / judgedTrials,
      missing: judged.filter((r) => r.inTime < 0.95 * r.trials).map((r) => `${r.scenario} @ ${r.intensity}`),
      normalTrials: normal.reduce((n, r) => n + r.trials, 0),
      normalEntities,
      falsePositives,
      falsePositiveRate: normalEntities === 0 ? 0 : falsePositives / normalEntities,
      falsePositivesAll: mine.reduce((n, r) => n + r.falsePositives, 0),
      normalEntitiesAll: mine.reduce((n, r) => n + r.normalEntities, 0),
      blockedNormalPeers: mine.reduce((n, r) => n + r.blockedNormalPeers, 0),
      innocentFailures: mine.flatMap((r) => r.failures.map((f) => `${r.scenario}: ${f}`)),
    }
  })
  return { rows, sets: summaries, wallMs: Date.now() - t0 }
}

const pct = (x: number): string => `${(x * 100).toFixed(1)} %`

export function formatReport(report: SuiteReport): string {
  const lines: string[] = []
  for (const set of report.sets) {
    lines.push(`\n${set.set === 'tuned' ? 'Tuned set' : 'Held-out set'}`)
    lines.push(
      '| scenario | category | intensity | detected within bar | time to detect p50 / max | false positives | achieved | first flagged for |',
    )
    lines.push('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for (const r of report.rows.filter((x) => x.set === set.set)) {
      const det =
        r.category === 'normal'
          ? '—'
          : `${r.inTime}/${r.trials}${r.detected > r.inTime ? ` (+${r.detected - r.inTime} later)` : ''}${r.underThreshold ? ' (under threshold)' : ''}`
      const ttd =
        r.ttdP50Ms === undefined
          ? '—'
          : `${(r.ttdP50Ms / 1000).toFixed(1)} / ${((r.ttdMaxMs ?? 0) / 1000).toFixed(1)} s`
      const fp = `${r.falsePositives}/${r.normalEntities}${r.blockedNormalPeers > 0 ? `, ${r.blockedNormalPeers} blocked` : ''}`
      const achieved = Object.entries(r.achieved)
        .map(([k, v]) => `${k}: ${v}`)
        .join('; ')
      const driven = Object.entries(r.drivenBy)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ')
      lines.push(
        `| ${r.scenario} | ${r.category} | ${r.intensity} | ${det} | ${ttd} | ${fp} | ${achieved || '—'} | ${driven || '—'} |`,
      )
    }
    lines.push(
      `\n${set.set}: detection within the bar ${set.detectedInTime}/${set.judgedTrials} (${pct(set.detectionRate)}) of attack trials at or above threshold` +
        (set.missing.length > 0 ? `; under 95 %: ${set.missing.join(', ')}` : '; every scenario ≥ 95 %'),
    )
    lines.push(
      `${set.set}: false positives in normal groups ${set.falsePositives}/${set.normalEntities} normal addresses and peers (${pct(set.falsePositiveRate)}); ` +
        `in all trials ${set.falsePositivesAll}/${set.normalEntitiesAll} (${pct(set.normalEntitiesAll === 0 ? 0 : set.falsePositivesAll / set.normalEntitiesAll)}); ` +
        `normal peers blocked: ${set.blockedNormalPeers}` +
        (set.innocentFailures.length > 0
          ? `; innocent harmed: ${set.innocentFailures.join('; ')}`
          : '; no innocent party harmed'),
    )
  }
  const [a, b] = report.sets
  if (a !== undefined && b !== undefined) {
    lines.push(
      `\nheld-out vs tuned: detection ${pct(b.detectionRate)} vs ${pct(a.detectionRate)} (${((b.detectionRate - a.detectionRate) * 100).toFixed(1)} points), ` +
        `false positives ${pct(b.falsePositiveRate)} vs ${pct(a.falsePositiveRate)}`,
    )
  }
  lines.push(`wall time ${(report.wallMs / 1000).toFixed(0)} s`)
  return lines.join('\n')
}

/**
 * One row per scenario (the README's table): detection within the bar at and above the threshold, and below it,
 * per intensity; the range of the per-intensity medians of time to detect and the largest; false positives.
 */
export function formatSummary(report: SuiteReport): string {
  const lines = [
    '| scenario | set | kind (bar) | detected within the bar, per intensity | time to detect: p50 range / max | false positives (blocked) | achieved per trial, per intensity |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ]
  const names = [...new Set(report.rows.map((r) => `${r.set}\u0000${r.scenario}`))]
  const order: Record<string, number> = {
    normal: 0,
    single: 1,
    innocent: 2,
    distributed: 3,
    ramp: 4,
    long: 5,
  }
  const groups = names.map((n) => report.rows.filter((r) => `${r.set}\u0000${r.scenario}` === n))
  const setRank = (r: RowReport) => (r.set === 'tuned' ? 0 : 1)
  // Array.prototype.sort is stable: within a kind and set, scenarios keep their order.
  groups.sort((a, b) => order[a[0]!.category]! - order[b[0]!.category]! || setRank(a[0]!) - setRank(b[0]!))
  for (const rows of groups) {
    const r0 = rows[0]!
    const bar = r0.category === 'normal' ? '' : ` (${barMs(r0.category as Category) / 1000} s)`
    const fp = rows.reduce((n, r) => n + r.falsePositives, 0)
    const entities = rows.reduce((n, r) => n + r.normalEntities, 0)
    const blocked = rows.reduce((n, r) => n + r.blockedNormalPeers, 0)
    const fps = `${fp}/${entities}${blocked > 0 ? ` (${blocked} blocked)` : ''}`
    if (r0.category === 'normal') {
      lines.push(`| ${r0.scenario} | ${r0.set} | normal | — | — | ${fps} | — |`)
      continue
    }
    const det = rows
      .map((r) => {
        const at = r.intensity === '—' ? '' : `${r.intensity}: `
        return `${r.underThreshold ? '_' : ''}${at}${r.inTime}/${r.trials}${r.underThreshold ? '_' : ''}`
      })
      .join(' · ')
    const p50s = rows.map((r) => r.ttdP50Ms).filter((t): t is number => t !== undefined)
    const maxes = rows.map((r) => r.ttdMaxMs).filter((t): t is number => t !== undefined)
    const s = (ms: number) => (ms / 1000).toFixed(1)
    const ttd =
      p50s.length === 0
        ? '—'
        : `${s(Math.min(...p50s))}${s(Math.max(...p50s)) !== s(Math.min(...p50s)) ? `–${s(Math.max(...p50s))}` : ''} / ${s(Math.max(...maxes))} s`
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r.achieved)))]
    const achieved =
      keys.map((k) => `${k}: ${rows.map((r) => r.achieved[k] ?? '—').join(' · ')}`).join('; ') || '—'
    lines.push(
      `| ${r0.scenario} | ${r0.set} | ${r0.category}${bar} | ${det} | ${ttd} | ${fps} | ${achieved} |`,
    )
  }
  return lines.join('\n')
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      set: { type: 'string', default: 'all' },
      seeds: { type: 'string', default: '5' },
      only: { type: 'string' },
      ai: { type: 'string', default: 'on' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      live: { type: 'boolean', default: false },
      summary: { type: 'string' },
    },
  })
  if (values.summary !== undefined) {
    // Reprints the per-scenario table of earlier runs (`--json` files, comma-separated).
    const reports = await Promise.all(
      values.summary.split(',').map(async (f) => JSON.parse(await readFile(f, 'utf8')) as SuiteReport),
    )
    console.log(
      formatSummary({
        rows: reports.flatMap((r) => r.rows),
        sets: reports.flatMap((r) => r.sets),
        wallMs: 0,
      }),
    )
    return
  }
  if (values.live) {
    const { main: live } = await import('./live')
    return live()
  }
  const report = await runSuite({
    sets: values.set === 'all' ? ['tuned', 'held-out'] : [values.set as ScenarioSet],
    seeds: Number(values.seeds),
    only: values.only,
    ai: values.ai !== 'off',
    quick: values.quick,
    log: (l) => console.error(`[ai-eval] ${l}`),
  })
  console.log(formatReport(report))
  console.log(`\n${formatSummary(report)}`)
  if (values.json !== undefined) await writeFile(values.json, JSON.stringify(report, null, 1))
  console.log(JSON.stringify({ sets: report.sets, wallMs: report.wallMs }))
}

export { barMs }

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
}
