/**
 * Secure-session benchmark: full mutual-auth handshake (both sides, CPU ms via process.cpuUsage) for the two
 * authentication designs on every loaded backend (mean over >= 30 handshakes and ~1 s per design), and record
 * throughput at 1 KiB and 64 KiB.
 * Standalone: `pnpm exec tsx bench/session.bench.ts` (prints a table, then one JSON line).
 * Node 24 (native ML-KEM/ML-DSA): `npx -y node@24 ../../node_modules/tsx/dist/cli.mjs bench/session.bench.ts`.
 */
import { loadavg } from 'node:os'
import { pathToFileURL } from 'node:url'
import {
  activeBackend,
  initPqc,
  isInitialized,
  loadedBackends,
  _useBackendForTesting,
} from '../src/backend/registry'
import { Identity } from '../src/identity'
import { CertificateCache, defaultStaticKeys } from '../src/session/certificate'
import { type AuthMode, type Handshake, createInitiator, createResponder } from '../src/session/handshake'
import type { SecureSession } from '../src/session/secure-session'
import { nodeCrypto } from '../src/runtime'

/** At least this many measured handshakes per design, and more until HANDSHAKE_BUDGET_MS of wall time. */
const HANDSHAKE_ROUNDS = 30
const HANDSHAKE_BUDGET_MS = 1_000
const HANDSHAKE_MAX_ROUNDS = 500
const HANDSHAKE_WARMUP = 3
const THROUGHPUT_BUDGET_MS = 600
const SIZES = [1024, 65_536] as const

interface HandshakeFigures {
  /** Mean CPU time (user + system) of one full handshake, both sides, ms. */
  cpuMs: number
  /** Median wall time of one handshake, ms. */
  p50Ms: number
  rounds: number
  messages: number
  bytes: number
}

function drive(i: Handshake, r: Handshake): { messages: number; bytes: number } {
  let m: Uint8Array | undefined = i.start()
  let to = r
  let messages = 0
  let bytes = 0
  while (m !== undefined) {
    messages++
    bytes += m.length
    m = to.receive(m)
    to = to === r ? i : r
  }
  return { messages, bytes }
}

function measureHandshake(
  a: Identity,
  b: Identity,
  auth: AuthMode,
  cache: CertificateCache | false,
): HandshakeFigures {
  const once = () => {
    const i = createInitiator({ identity: a, auth, expectedPeerId: b.id, certificateCache: cache })
    const r = createResponder({ identity: b, expectedPeerId: a.id, certificateCache: cache })
    const shape = drive(i, r)
    if (i.status !== 'done' || r.status !== 'done') throw new Error('handshake did not finish')
    return shape
  }
  for (let k = 0; k < HANDSHAKE_WARMUP; k++) once()
  const walls: number[] = []
  let shape = { messages: 0, bytes: 0 }
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  while (
    walls.length < HANDSHAKE_ROUNDS ||
    (walls.length < HANDSHAKE_MAX_ROUNDS && performance.now() - start < HANDSHAKE_BUDGET_MS)
  ) {
    const t = performance.now()
    shape = once()
    walls.push(performance.now() - t)
  }
  const cpu = process.cpuUsage(cpu0)
  walls.sort((x, y) => x - y)
  return {
    cpuMs: round((cpu.user + cpu.system) / 1000 / walls.length),
    rounds: walls.length,
    p50Ms: round(walls[Math.floor(walls.length / 2)]!),
    ...shape,
  }
}

function sessionPair(a: Identity, b: Identity): [SecureSession, SecureSession] {
  const i = createInitiator({ identity: a })
  const r = createResponder({ identity: b })
  drive(i, r)
  return [i.result().session, r.result().session]
}

interface RecordFigures {
  /** MiB/s over wall time (affected by other processes on a shared machine). */
  sealMiBps: number
  sealChunksMiBps: number
  openMiBps: number
  /** Raw OpenSSL AES-256-GCM (cached key object, update + final + tag, no record layer), for comparison. */
  rawAesGcmMiBps: number
  /** MiB/s over this process's CPU time (user + system): the cost of the work itself. */
  sealCpuMiBps: number
  sealChunksCpuMiBps: number
  openCpuMiBps: number
  rawAesGcmCpuMiBps: number
}

const cpuMs = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/**
 * MiB/s of raw AES-256-GCM, seal, sealChunks and open for one record size. The four are interleaved in
 * rounds (a batch of each per round) for ~THROUGHPUT_BUDGET_MS each, so that a change in machine load
 * lands on all of them alike; the figure is total bytes over total time.
 */
function measureRecords(a: Identity, b: Identity, size: number): RecordFigures {
  const [tx] = sessionPair(a, b)
  const [twinTx, rx] = sessionPair(a, b)
  const payload = new Uint8Array(size).fill(0x5a)
  const batch = Math.max(8, Math.floor((4 * 1024 * 1024) / size))
  const c = nodeCrypto()
  const rawKey = c?.createSecretKey(new Uint8Array(32).fill(7))
  const iv = new Uint8Array(12)
  const header = new Uint8Array(13)
  const rawSeal = (): unknown => {
    if (c === undefined || rawKey === undefined) return undefined
    const cipher = c.createCipheriv('aes-256-gcm', rawKey, iv)
    cipher.setAAD(header)
    const body = cipher.update(payload)
    cipher.final()
    return [body, cipher.getAuthTag()]
  }
  const records: Uint8Array[] = []
  const wall = { seal: 0, chunks: 0, open: 0, raw: 0 }
  const cpu = { seal: 0, chunks: 0, open: 0, raw: 0 }
  const time = (k: keyof typeof wall, fn: () => void): void => {
    const t = performance.now()
    const u = cpuMs()
    fn()
    wall[k] += performance.now() - t
    cpu[k] += cpuMs() - u
  }
  let n = 0
  while (wall.seal + wall.chunks + wall.open + wall.raw < THROUGHPUT_BUDGET_MS * 4) {
    time('raw', () => {
      for (let k = 0; k < batch; k++) rawSeal()
    })
    // seal: records are dropped right away, as a sender hands them to the socket.
    time('seal', () => {
      for (let k = 0; k < batch; k++) tx.seal(payload)
    })
    time('chunks', () => {
      for (let k = 0; k < batch; k++) tx.sealChunks(payload)
    })
    // open: the receiver must see every sequence number, so seal a batch for it (not timed) from a twin session.
    for (let k = 0; k < batch; k++) records.push(twinTx.seal(payload))
    time('open', () => {
      for (const rec of records) rx.open(rec)
    })
    n += batch
    records.length = 0
  }
  const mib = (ms: number) => round((n * size) / (1024 * 1024) / (ms / 1000))
  return {
    sealMiBps: mib(wall.seal),
    sealChunksMiBps: mib(wall.chunks),
    openMiBps: mib(wall.open),
    rawAesGcmMiBps: c === undefined ? 0 : mib(wall.raw),
    sealCpuMiBps: mib(cpu.seal),
    sealChunksCpuMiBps: mib(cpu.chunks),
    openCpuMiBps: mib(cpu.open),
    rawAesGcmCpuMiBps: c === undefined ? 0 : mib(cpu.raw),
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100
}

/** Run the session benchmark; returns the JSON-able figures (also used by bench/index.ts). */
export async function runSessionBench(): Promise<Record<string, unknown>> {
  if (!isInitialized()) await initPqc()
  const previous = activeBackend()
  const load0 = round(loadavg()[0]!)
  const a = Identity.generate()
  const b = Identity.generate()
  const handshakes: Record<string, Record<string, HandshakeFigures>> = {}
  try {
    for (const backend of loadedBackends()) {
      _useBackendForTesting(backend)
      // Static keys are certified once per identity (one signature each), outside the measured handshakes.
      defaultStaticKeys(a)
      defaultStaticKeys(b)
      handshakes[backend.name] = {
        'kem (certificates cached)': measureHandshake(a, b, 'kem', new CertificateCache()),
        'kem (verify certificates)': measureHandshake(a, b, 'kem', false),
        sig: measureHandshake(a, b, 'sig', false),
      }
    }
  } finally {
    _useBackendForTesting(previous)
  }
  const records: Record<string, RecordFigures> = {}
  for (const size of SIZES) records[`${size / 1024} KiB`] = measureRecords(a, b, size)
  return {
    node: process.versions.node,
    /** 1-minute load average at the start and at the end of the run (`uptime`): 2 cores here. */
    loadAverage1m: [load0, round(loadavg()[0]!)],
    activeBackend: previous.name,
    handshakeCpuMs: handshakes,
    recordThroughput: records,
  }
}

/** Print the figures of {@link runSessionBench} as a table (also used by bench/index.ts). */
export function printTable(result: Record<string, unknown>): void {
  const hs = result.handshakeCpuMs as Record<string, Record<string, HandshakeFigures>>
  console.log(
    `Node ${String(result.node)}; active backend ${String(result.activeBackend)}; load average (1 min, start/end) ${String(result.loadAverage1m)}`,
  )
  console.log('backend   design                      CPU ms (both sides)  wall p50 ms  messages  bytes')
  for (const [backend, modes] of Object.entries(hs)) {
    for (const [mode, f] of Object.entries(modes)) {
      console.log(
        `${backend.padEnd(9)} ${mode.padEnd(27)} ${String(f.cpuMs).padStart(19)}  ${String(f.p50Ms).padStart(11)}  ${String(f.messages).padStart(8)}  ${f.bytes}`,
      )
    }
  }
  console.log('record size  MiB/s, wall / CPU:   raw AES-GCM          seal   sealChunks         open')
  for (const [size, f] of Object.entries(result.recordThroughput as Record<string, RecordFigures>)) {
    const col = (w: number, c: number) => `${Math.round(w)} / ${Math.round(c)}`.padStart(12)
    console.log(
      `${size.padEnd(11)}  ${' '.repeat(18)}${col(f.rawAesGcmMiBps, f.rawAesGcmCpuMiBps)} ${col(f.sealMiBps, f.sealCpuMiBps)} ${col(f.sealChunksMiBps, f.sealChunksCpuMiBps)} ${col(f.openMiBps, f.openCpuMiBps)}`,
    )
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runSessionBench()
  printTable(result)
  console.log(JSON.stringify({ session: result }))
}
