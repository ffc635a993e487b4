/**
 * Real nodes for the browser tests: `createNode` from apps/node on 127.0.0.1 with port 0 everywhere, a fresh data
 * directory each, and the web front end built (once, only when stale) so that `buildApp` serves it.
 */
import { mkdtempSync, rmSync, statSync, readdirSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseConfig } from '../../src/config'
import { createNode, type XNode } from '../../src/node'
import { buildWeb, DEFAULT_OUT_DIR } from '../../web/build'

const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url))

function newestMtime(dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)
  }
  return newest
}

const PACKAGES_DIR = fileURLToPath(new URL('../../../../packages/', import.meta.url))

/** Builds `web/dist` unless it is newer than every source (pages, src, build script, the packages it bundles). */
export async function ensureWebBuilt(): Promise<void> {
  const manifest = join(DEFAULT_OUT_DIR, 'manifest.json')
  const sources = Math.max(
    newestMtime(join(WEB_DIR, 'src')),
    newestMtime(join(WEB_DIR, 'pages')),
    statSync(join(WEB_DIR, 'build.ts')).mtimeMs,
    ...readdirSync(PACKAGES_DIR).map((p) => newestMtime(join(PACKAGES_DIR, p, 'src'))),
  )
  if (existsSync(manifest) && statSync(manifest).mtimeMs >= sources) return
  await buildWeb()
}

export interface WebNode {
  node: XNode
  /** `http://127.0.0.1:<rest port>` */
  url: string
  dhtAddress: string
  stop(): Promise<void>
}

export async function startWebNode(seedNodes: string[] = [], extra: string[] = []): Promise<WebNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'x-web-node-'))
  const argv = ['--rest-port', '0', '--ws-port', '0', '--dht-port', '0', '--host', '127.0.0.1']
  argv.push('--allow-private-addresses', 'on')
  argv.push(
    '--data-dir',
    dataDir,
    '--log-level',
    process.env.X_WEB_TEST_LOG ?? 'silent',
    '--health-cache-ms',
    '1',
  )
  if (seedNodes.length > 0) argv.push('--seed-nodes', seedNodes.join(','))
  argv.push(...extra)
  const parsed = parseConfig({ argv })
  if (parsed.help) throw new Error('unexpected --help')
  const node = createNode(parsed.config)
  await node.start()
  const { rest, dht } = node.addresses
  return {
    node,
    url: `http://127.0.0.1:${rest.port}`,
    dhtAddress: `127.0.0.1:${dht.port}`,
    async stop() {
      await node.stop().catch(() => undefined)
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** Polls `check` every 100 ms until it returns true; rejects after `timeoutMs` with `what`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
