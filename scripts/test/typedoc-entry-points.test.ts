/**
 * The API reference covers every public entry point: each package's typedoc.json lists exactly the source
 * files its package.json `exports` publish (the `@x/source` targets), so a new export cannot be left out of
 * `pnpm docs` and of the doc-comment check.
 */
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const PACKAGES = fileURLToPath(new URL('../../packages', import.meta.url))

describe('typedoc entry points', () => {
  it('match the exports of every package', async () => {
    const dirs = await readdir(PACKAGES)
    expect(dirs.length).toBeGreaterThan(0)
    for (const dir of dirs) {
      const pkg = JSON.parse(await readFile(join(PACKAGES, dir, 'package.json'), 'utf8')) as {
        exports: Record<string, string | { '@x/source'?: string }>
      }
      const exported = Object.values(pkg.exports)
        .flatMap((t) => (typeof t === 'object' && t['@x/source'] !== undefined ? [t['@x/source']] : []))
        .map((p) => p.replace(/^\.\//, ''))
      const typedoc = JSON.parse(await readFile(join(PACKAGES, dir, 'typedoc.json'), 'utf8')) as {
        entryPoints: string[]
      }
      expect([...typedoc.entryPoints].sort(), dir).toEqual(exported.sort())
    }
  })
})
