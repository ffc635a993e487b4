/**
 * One module copy per process. The package is ESM only (Node >= 20.19 can `require()` ES modules), so an app
 * that imports it from ESM and requires it from CommonJS (its own code, or a dependency) shares one module state:
 * `initPqc()` through `import` is observed through `require`. The dual ESM/CJS build this replaces loaded two
 * copies, and the CJS one stayed uninitialised. Runs on the built package (dist/, through package.json
 * "exports"), in a child process with plain node.
 */
import { execFile } from 'node:child_process'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const PKG = fileURLToPath(new URL('..', import.meta.url))

/** Newest mtime under `dir` (ms). */
async function newest(dir: string): Promise<number> {
  let max = 0
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) max = Math.max(max, (await stat(join(e.parentPath, e.name))).mtimeMs)
  }
  return max
}

beforeAll(async () => {
  // `pnpm test` builds first; a lone `vitest --project @x/pqc` builds here when dist/ is missing or older
  // than the sources or the build config.
  const built = await stat(join(PKG, 'dist/index.js')).then(
    (s) => s.mtimeMs,
    () => 0,
  )
  const inputs = Math.max(
    await newest(join(PKG, 'src')),
    (await stat(join(PKG, 'tsup.config.ts'))).mtimeMs,
    (await stat(join(PKG, 'package.json'))).mtimeMs,
  )
  if (built < inputs) await run('pnpm', ['run', 'build'], { cwd: PKG, timeout: 120_000 })
}, 130_000)

describe('module format', () => {
  it('ships ES modules only: every export resolves to one ESM file, with no require branch', async () => {
    const pkg = JSON.parse(await readFile(join(PKG, 'package.json'), 'utf8')) as {
      type: string
      exports: Record<string, string | Record<string, string>>
    }
    expect(pkg.type).toBe('module')
    for (const [sub, target] of Object.entries(pkg.exports)) {
      if (sub === './package.json') continue
      expect(Object.keys(target as object), sub).toEqual(['@x/source', 'types', 'default'])
    }
    expect((await readdir(join(PKG, 'dist'))).filter((f) => /\.c[jt]s$/.test(f))).toEqual([])
  })

  it('initPqc() through import is seen through require, and ./testing acts on the same state', async () => {
    const { stdout } = await run(process.execPath, ['test/fixtures/one-module-copy.mjs'], {
      cwd: PKG,
      timeout: 60_000,
    })
    const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
      beforeInit: boolean
      esm: { initialized: boolean; backend: string }
      cjs: { initialized: boolean; backend: string }
      sameFunction: boolean
      sameTestingExport: boolean
      backendAfterCjsForce: string
      resolved: { esm: string; cjs: string }
    }
    expect(out.resolved.esm).toMatch(/\/dist\/index\.js$/)
    expect(out.resolved.cjs).toMatch(/\/dist\/index\.js$/)
    expect(out.beforeInit).toBe(false)
    expect(out.cjs.initialized).toBe(true)
    expect(out.cjs.backend).toBe(out.esm.backend)
    expect(out.sameFunction).toBe(true)
    expect(out.sameTestingExport).toBe(true)
    expect(out.backendAfterCjsForce).toBe('noble')
  })
})
