/**
 * The bundled-app path: a user bundles their Node app with this package into one file (esbuild, ESM and CJS),
 * puts it in a directory with no node_modules and runs it with node. The worker pool cannot find
 * `@noble/post-quantum` for its workers there; it must still sign and verify for real: in native workers
 * when this Node has ML-DSA (>= 24.7), inline otherwise. Before the fix, `createPqcWorkerPool()` threw
 * "Cannot find module" in such an app.
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { build } from 'esbuild'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Identity, verify } from '../src/index'

const run = promisify(execFile)
const SRC = fileURLToPath(new URL('../src/index.ts', import.meta.url))

/** The tiny app: real work through the pool, then one JSON line on stdout. */
const APP = `
import {
  createPqcWorkerPool, deriveSigningSubkey, Identity, verify, verifySubkeySignature,
} from ${JSON.stringify(SRC)}

const warnings = []
const logger = {
  debug() {}, info() {}, error() {}, warn(o, m) { warnings.push(m) }, child() { return logger },
}
const pool = createPqcWorkerPool({ logger }, { size: 2 })
const id = Identity.generate(new Uint8Array(32).fill(21))
const subkey = deriveSigningSubkey(id, { label: 'bundle-test/records' })
const ctx = new TextEncoder().encode('bundle-test/v1')
const msgs = Array.from({ length: 4 }, (_, i) => new TextEncoder().encode('message ' + i))
const sigs = await Promise.all(msgs.map((m) => pool.sign(id, m, ctx)))
const subSigs = await Promise.all(msgs.map((m) => pool.signWithSubkey(subkey, m, ctx)))
const verified = await Promise.all(msgs.map((m, i) => pool.verify(id.publicKey, m, sigs[i], ctx)))
const subVerified = await Promise.all(
  msgs.map((m, i) => pool.verifySubkeySignature(subkey.publicKey, m, subSigs[i], ctx)),
)
const crossed = await pool.verify(id.publicKey, msgs[0], sigs[1], ctx)
const out = {
  stats: pool.stats(),
  warnings,
  publicKey: Buffer.from(id.publicKey).toString('hex'),
  signature: Buffer.from(sigs[0]).toString('hex'),
  syncOk: sigs.every((s, i) => verify(id.publicKey, msgs[i], s, ctx)) &&
    subSigs.every((s, i) => verifySubkeySignature(subkey.publicKey, msgs[i], s, ctx)),
  verified, subVerified, crossed,
}
await pool.close()
console.log(JSON.stringify(out))
`

function nodeHasMlDsa(): boolean {
  try {
    generateKeyPairSync('ml-dsa-44' as 'x25519')
    generateKeyPairSync('ml-dsa-87' as 'x25519')
    return true
  } catch {
    return false
  }
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pqc-bundle-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('worker pool in an app bundled into one file', () => {
  for (const format of ['esm', 'cjs'] as const) {
    it(`signs and verifies for real from a ${format} bundle with no node_modules beside it`, async () => {
      const file = join(dir, format === 'esm' ? 'app.mjs' : 'app.cjs')
      const appFile = join(dir, `app-${format}.ts`)
      // CJS has no top-level await: the app body runs inside an async function there.
      await writeFile(
        appFile,
        format === 'esm' ? APP : APP.replace(/^(const warnings)/m, 'void (async () => {\n$1') + '})()\n',
      )
      const result = await build({
        entryPoints: [appFile],
        bundle: true,
        platform: 'node',
        format,
        target: 'node20',
        outfile: file,
        logLevel: 'silent',
        metafile: true,
      })
      expect(result.errors).toEqual([])
      // Nothing but Node built-ins is left outside the one file.
      const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports)
      expect(imports.filter((i) => !i.path.startsWith('node:'))).toEqual([])
      expect(Object.keys(result.metafile.inputs).some((p) => p.includes('@noble/post-quantum'))).toBe(true)

      // pnpm's shims set NODE_PATH to its package store, which a deployed app does not have.
      const env = { ...process.env }
      delete env.NODE_PATH
      const { stdout } = await run(process.execPath, [file], { cwd: dir, env, timeout: 60_000 })
      const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
        stats: { mode: string; backend: string; workers: number; completed: number; failed: number }
        warnings: string[]
        publicKey: string
        signature: string
        syncOk: boolean
        verified: boolean[]
        subVerified: boolean[]
        crossed: boolean
      }
      // The bundle's own keys and signatures are the same bytes as this process makes.
      const id = Identity.generate(new Uint8Array(32).fill(21))
      expect(out.publicKey).toBe(Buffer.from(id.publicKey).toString('hex'))
      const ctx = new TextEncoder().encode('bundle-test/v1')
      expect(
        verify(id.publicKey, new TextEncoder().encode('message 0'), Buffer.from(out.signature, 'hex'), ctx),
      ).toBe(true)
      expect(out.syncOk).toBe(true)
      expect(out.verified).toEqual([true, true, true, true])
      expect(out.subVerified).toEqual([true, true, true, true])
      expect(out.crossed).toBe(false)
      expect(out.stats.completed).toBe(17)
      expect(out.stats.failed).toBe(0)
      if (nodeHasMlDsa()) {
        // Native ML-DSA needs no module: real worker threads even though noble cannot be located.
        expect(out.stats).toMatchObject({ mode: 'worker_threads', backend: 'native', workers: 2 })
        expect(out.warnings).toEqual([])
      } else {
        expect(out.stats).toMatchObject({ mode: 'inline', workers: 0 })
        expect(out.warnings.join('\n')).toMatch(/runs inline/)
      }
    }, 120_000)
  }
})
