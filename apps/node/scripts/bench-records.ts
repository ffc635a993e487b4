/**
 * Cost of one DHT record: ML-DSA-44 sign and verify (pure JS, `@noble/post-quantum`), the record key's
 * derivation and certificate, and stored sizes. Not a test. Run from apps/node:
 * `pnpm exec tsx --conditions=@x/source scripts/bench-records.ts`. Last line: one JSON object.
 */
import { Identity } from '@x/pqc'
import {
  RECORD_TTL_MS,
  RecordSigner,
  checkRecord,
  parseRecord,
  recordKey,
  type RecordBody,
} from '../src/records/format'

const RUNS = 200
const identity = Identity.generate(new Uint8Array(32).fill(7))
let t = performance.now()
const signer = new RecordSigner(identity)
const setupMs = performance.now() - t
const now = Date.now()
const body: RecordBody = {
  v: 1,
  t: 'peer',
  k: 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff',
  n: identity.idString,
  a: 'ws://192.168.100.200:3001',
  e: now + RECORD_TTL_MS,
  q: now,
  // The peer's own statement fields (x-signaling/2): what a peer record carries since issue 17.
  p: { h: '192.168.100.200:3001', t: now, c: 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3OA==' },
}
const key = recordKey('peer', body.k)
for (let i = 0; i < 20; i++) signer.sign({ ...body, q: now + i }) // warm-up
const signMs: number[] = []
let bytes: Uint8Array = new Uint8Array(0)
for (let i = 0; i < RUNS; i++) {
  t = performance.now()
  bytes = signer.sign({ ...body, q: now + i })
  signMs.push(performance.now() - t)
}
const record = parseRecord(bytes)!
const verifyMs: number[] = []
for (let i = 0; i < RUNS; i++) {
  t = performance.now()
  const ok = checkRecord(key, record, signer.publicKey, now)
  verifyMs.push(performance.now() - t)
  if (!ok) throw new Error('record did not verify')
}
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]!
const result = {
  runs: RUNS,
  recordBytes: bytes.length,
  signMsP50: +pct(signMs, 0.5).toFixed(2),
  signMsP99: +pct(signMs, 0.99).toFixed(2),
  verifyMsP50: +pct(verifyMs, 0.5).toFixed(2),
  verifyMsP99: +pct(verifyMs, 0.99).toFixed(2),
  keyAndCertificateMs: +setupMs.toFixed(1),
}
process.stdout.write(
  `| measure | p50 | p99 |\n|---|---|---|\n` +
    `| ML-DSA-44 record sign (ms) | ${result.signMsP50} | ${result.signMsP99} |\n` +
    `| ML-DSA-44 record verify incl. parse checks (ms) | ${result.verifyMsP50} | ${result.verifyMsP99} |\n` +
    `record ${result.recordBytes} B; record key derivation + ML-DSA-87 certificate ${result.keyAndCertificateMs} ms\n` +
    `${JSON.stringify(result)}\n`,
)
