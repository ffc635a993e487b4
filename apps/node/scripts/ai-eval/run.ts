/**
 * Runs the evaluation's trials and judges them. A trial is one scenario at one intensity with one seed: a
 * simulated node (restored from a state the engine learned on the base mix for 20 minutes with that seed, as a
 * node that restarted; or fresh, for poisoning), the base mix, a warm-up, then the scenario. Judged afterwards
 * from what the engine logged and what the clients saw:
 *
 * - detected: an attacker's key, address or prefix (one that holds only attackers) was throttled or blocked; for
 *   distributed attacks, at least `sourceShare` of the source addresses were. Time to detect runs from the
 *   attack's first abusive frame (ramps: from crossing the level a sudden attack is caught at).
 * - false positives: normal addresses and peers the engine throttled or blocked, or whose connections, frames or
 *   DHT requests it refused; blocked normal peers are counted apart.
 * - achieved: what the attack got through (scenario-specific: signals delivered, requests admitted, …).
 */
import { emptyPopulation, startBaseMix } from './normal'
import { AttackTracker, type Category, type Ctx, type Scenario, type ScenarioSet } from './scenarios'
import { World, type FlagEvent } from './world'

/** Pre-training of the restored state: the base mix for this long. */
export const PRETRAIN_MS = 20 * 60_000
export const DEFAULT_WARMUP_MS = 90_000

export function barMs(category: Category): number {
  return category === 'single' || category === 'innocent' ? 5_000 : 10_000
}

export interface TrialResult {
  scenario: string
  set: ScenarioSet
  category: Category
  intensity: number
  seed: number
  attack: boolean
  detected: boolean
  /** Within the category's bar. */
  inTime: boolean
  ttdMs: number | undefined
  drivenBy: string | undefined
  normalEntities: number
  falsePositives: string[]
  blockedNormalPeers: string[]
  achieved: Record<string, number>
  failures: string[]
  wallMs: number
}

const pretrained = new Map<number, Uint8Array>()

/** The learned state of the base mix after PRETRAIN_MS with `seed` (memoised per seed). */
export async function pretrain(seed: number, log: (l: string) => void): Promise<Uint8Array> {
  const cached = pretrained.get(seed)
  if (cached !== undefined) return cached
  const t0 = Date.now()
  const w = new World({ seed: seed * 7_919 + 1 })
  await w.start()
  startBaseMix(w, emptyPopulation())
  await w.run(PRETRAIN_MS)
  await w.engine.persist()
  const state = w.store.get('ai-state')!
  await w.stop()
  pretrained.set(seed, state)
  log(`pre-trained seed ${seed} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  return state
}

function prefixOf(ip: string): string {
  return ip.includes(':') ? ip.split(':').slice(0, 4).join(':') : ip.slice(0, ip.lastIndexOf('.'))
}

export async function runTrial(
  scenario: Scenario,
  intensity: number,
  seed: number,
  options: { ai?: boolean; log?: (l: string) => void } = {},
): Promise<TrialResult> {
  const t0 = Date.now()
  const log = options.log ?? (() => {})
  const state = scenario.fresh === true || options.ai === false ? undefined : await pretrain(seed, log)
  let h = 0
  for (const c of `${scenario.name}/${intensity}`) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0
  const w = new World({ seed: (seed * 1_000_003 + h) >>> 0, ai: options.ai, state })
  await w.start()
  const pop = emptyPopulation()
  startBaseMix(w, pop)
  const atk = new AttackTracker(w)
  const ctx: Ctx = { w, pop, atk, stash: {}, failures: [] }
  // Up to 2 s more, so that seeds do not all start the attack in the same phase of the scoring rounds.
  const warmup = (scenario.warmupMs ?? DEFAULT_WARMUP_MS) + Math.floor(w.rand() * 2_000)
  if (scenario.startsInWarmup === true) scenario.run(ctx, intensity)
  await w.run(warmup)
  if (scenario.startsInWarmup !== true) scenario.run(ctx, intensity)
  await w.run(scenario.durationMs)
  const achieved = scenario.achieved?.(ctx) ?? {}
  const attack = scenario.category !== 'normal'
  const detection = attack ? judgeDetection(w.flags, atk, w, scenario) : undefined
  const fp = judgeFalsePositives(w, pop)
  await w.stop()
  return {
    scenario: scenario.name,
    set: scenario.set,
    category: scenario.category,
    intensity,
    seed,
    attack,
    detected: detection?.at !== undefined,
    // Framing and reflection are judged by whether the innocent party was harmed (flagging the senders is
    // reported, not required: one offer each is no abuse of theirs).
    inTime:
      scenario.category === 'innocent'
        ? ctx.failures.length === 0
        : detection?.ttd !== undefined && detection.ttd <= barMs(scenario.category),
    ttdMs: detection?.ttd,
    drivenBy: detection?.drivenBy,
    normalEntities: fp.entities,
    falsePositives: fp.flagged,
    blockedNormalPeers: fp.blocked,
    achieved,
    failures: ctx.failures,
    wallMs: Date.now() - t0,
  }
}

/** Which attacker addresses a flag covers. */
function covered(f: FlagEvent, atk: AttackTracker, w: World): string[] {
  if (f.key.startsWith('addr:')) {
    const ip = f.key.slice(5)
    return atk.ips.has(ip) ? [ip] : []
  }
  if (f.key.startsWith('net:')) {
    // A prefix counts only if it holds attackers and no normal address.
    const net = f.key.slice(4)
    const base = net.endsWith('/24') ? net.slice(0, net.lastIndexOf('.')) : net.slice(0, net.indexOf('::'))
    const ips = [...atk.ips].filter((ip) => prefixOf(ip) === base)
    for (const [k, role] of w.roles)
      if (role === 'normal' && !k.includes(':') && prefixOf(k) === base) return []
    return ips
  }
  const ip =
    atk.keys.get(f.key) ?? (f.address !== undefined && atk.ips.has(f.address) ? f.address : undefined)
  return ip === undefined ? [] : [ip]
}

function judgeDetection(
  flags: readonly FlagEvent[],
  atk: AttackTracker,
  w: World,
  scenario: Scenario,
): { at: number | undefined; ttd: number | undefined; drivenBy: string | undefined } {
  const from = atk.judgeFrom ?? atk.startAt
  if (from === undefined) return { at: undefined, ttd: undefined, drivenBy: undefined }
  const need =
    scenario.category === 'distributed'
      ? Math.max(1, Math.ceil((scenario.sourceShare ?? 0.5) * atk.ips.size))
      : 1
  const flagged = new Set<string>()
  for (const f of flags) {
    if (f.to === 'normal') continue
    for (const ip of covered(f, atk, w)) flagged.add(ip)
    if (flagged.size >= need) {
      return { at: f.at, ttd: Math.max(0, f.at - from), drivenBy: f.reason }
    }
  }
  return { at: undefined, ttd: undefined, drivenBy: undefined }
}

function judgeFalsePositives(
  w: World,
  pop: ReturnType<typeof emptyPopulation>,
): { entities: number; flagged: string[]; blocked: string[] } {
  const normal = new Set<string>()
  for (const [k, role] of w.roles) if (role === 'normal') normal.add(k)
  const flagged = new Set<string>()
  const blocked = new Set<string>()
  for (const f of w.flags) {
    if (f.to === 'normal') continue
    let entity: string | undefined
    if (normal.has(f.key)) entity = f.key
    else if (f.key.startsWith('addr:') && normal.has(f.key.slice(5))) entity = f.key.slice(5)
    else if (f.key.startsWith('conn:') && f.address !== undefined && normal.has(f.address)) entity = f.address
    if (entity === undefined) continue
    flagged.add(entity)
    if (f.to === 'blocked' && (f.key.startsWith('peer:') || f.key.startsWith('pj:'))) blocked.add(entity)
  }
  // Refused or cut off by the engine, whether or not a key of its own was flagged (a flagged prefix, …).
  const harmed = (ip: string, key: string | undefined, h: { refusals: number; blockedCloses: string[] }) => {
    if (h.refusals > 0 || h.blockedCloses.length > 0) flagged.add(key ?? ip)
  }
  for (const p of pop.peers) harmed(p.ip, p.key, p.harm)
  for (const y of pop.y) harmed(y.ip, undefined, y.harm)
  for (const p of pop.pj) harmed(p.ip, p.key, p.harm)
  for (const c of pop.crdt) harmed(c.ip, undefined, c.harm)
  for (const [ip, st] of w.ipStats) {
    if (!normal.has(ip)) continue
    if (st.refused > 0 || st.framesDropped > 0 || st.dhtRefused > 0) flagged.add(ip)
  }
  for (const k of flagged) if (!normal.has(k)) flagged.delete(k)
  return { entities: normal.size, flagged: [...flagged], blocked: [...blocked] }
}
