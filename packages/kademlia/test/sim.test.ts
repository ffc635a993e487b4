import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import tsup from '../tsup.config'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const run = (args: string[]) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', join(root, 'bin/sim.ts'), ...args], {
    cwd: root,
  })

describe('the kademlia-sim bin', () => {
  it('is built by tsup to the path package.json names, and that path is published', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      bin: Record<string, string>
      files: string[]
    }
    const config = tsup as { entry: Record<string, string> }
    expect(config.entry['bin/sim']).toBe('bin/sim.ts')
    expect(pkg.bin['kademlia-sim']).toBe('./dist/bin/sim.js')
    expect(pkg.files).toContain('dist')
    expect(readFileSync(join(root, 'bin/sim.ts'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true)
  })

  it('runs a small simulation and ends with one JSON line', { timeout: 60_000 }, async () => {
    const { stdout } = await run(['--nodes', '30', '--lookups', '5', '--join-refresh', '2', '--quiet'])
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { nodes: number; successRate: number }
    expect(result).toMatchObject({ nodes: 30, successRate: 1 })
  })

  it('refuses a bad option with exit code 1 and the usage', { timeout: 60_000 }, async () => {
    const err = await run(['--hostile-mode', 'evil']).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 1, stderr: expect.stringMatching(/--hostile-mode.*\n.*Usage/) })
  })
})
