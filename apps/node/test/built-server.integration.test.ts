// The built server (`dist/server.js`, what `pnpm start`, the `x-node` bin and production run) as a real process:
// its bundle must find the optional crypto backends installed beside it.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { localArgs } from '../scripts/spawn-node'
import { getJson, waitFor } from './helpers'

const APP_DIR = fileURLToPath(new URL('..', import.meta.url))
const SERVER = join(APP_DIR, 'dist/server.js')
const nativeMlDsa = Number(process.versions.node.split('.')[0]) >= 24
let dataDir = ''

beforeAll(() => {
  if (!existsSync(SERVER)) {
    const built = spawnSync('pnpm', ['build'], { cwd: APP_DIR, stdio: 'ignore' })
    if (built.status !== 0) throw new Error('building apps/node failed')
  }
  dataDir = mkdtempSync(join(tmpdir(), 'x-built-'))
}, 120_000)
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

describe('the built server', () => {
  it('uses OpenSSL on Node 24 and finds @oqs/liboqs-js (installed beside it) on older Node, never falling back to pure JS', async () => {
    const proc = spawn(process.execPath, [SERVER, ...localArgs(dataDir)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()))
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()))
    try {
      const ready = await waitFor(() => /READY (.*)/.exec(err)?.[1], 'the built server to be ready', 30_000)
      const { rest } = JSON.parse(ready) as { rest: number }
      const status = await getJson(`http://127.0.0.1:${rest}/api/crypto/status`)
      expect(status.body).toMatchObject(
        nativeMlDsa ? { backend: 'node', production: true } : { backend: 'liboqs', production: false },
      )
      expect(out).not.toContain('is not installed')
      // The worker pool finds its ML-DSA code beside the bundle: signatures are checked off the event loop.
      expect(out).not.toContain('runs inline')
    } finally {
      proc.kill('SIGTERM')
      await new Promise((resolve) => proc.once('exit', resolve))
    }
  }, 60_000)
})
