/**
 * Builds the dashboard (`/`) and the demo (`/demo`) into `web/dist/`: content-hashed bundles under `assets/`
 * (served as immutable) and the two HTML pages with their asset names filled in. Everything is bundled, so the
 * pages work with no internet access. Workspace packages are bundled from their TypeScript sources (the
 * `@x/source` condition), so no package build is needed first.
 *
 * Usage: `pnpm --filter @x/node build:web` (or `tsx web/build.ts [outDir]`).
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build } from 'esbuild'

const WEB_DIR = dirname(fileURLToPath(import.meta.url))
export const DEFAULT_OUT_DIR = join(WEB_DIR, 'dist')

const ENTRIES = {
  'dashboard.js': join(WEB_DIR, 'src/dashboard.ts'),
  'demo.js': join(WEB_DIR, 'src/demo.ts'),
  'style.css': join(WEB_DIR, 'src/style.css'),
} as const
const PAGES = ['index.html', 'demo.html'] as const

export interface WebBuildResult {
  outDir: string
  /** Logical asset name (`dashboard.js`) → served path (`/assets/dashboard-ABC123.js`). */
  assets: Record<string, string>
  /** Bytes of every emitted file, by path relative to outDir. */
  sizes: Record<string, number>
}

/**
 * Builds the front end into `finalDir`. The build goes to a sibling temporary directory that then replaces
 * `finalDir`, so a server reading the directory meanwhile sees the old build or the new one, not half of one.
 */
export async function buildWeb(
  finalDir: string = DEFAULT_OUT_DIR,
  opts: { minify?: boolean } = {},
): Promise<WebBuildResult> {
  const outDir = `${finalDir}.tmp-${process.pid}-${Date.now()}`
  await mkdir(join(outDir, 'assets'), { recursive: true })
  const result = await build({
    entryPoints: Object.values(ENTRIES),
    outdir: join(outDir, 'assets'),
    entryNames: '[name]-[hash]',
    chunkNames: 'chunk-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16'],
    conditions: ['@x/source'],
    minify: opts.minify ?? true,
    sourcemap: 'linked',
    metafile: true,
    legalComments: 'linked',
    define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' },
    logLevel: 'warning',
    absWorkingDir: WEB_DIR,
  })
  const assets: Record<string, string> = {}
  const sizes: Record<string, number> = {}
  for (const [outPath, meta] of Object.entries(result.metafile.outputs)) {
    const absOut = join(WEB_DIR, outPath)
    sizes[relative(outDir, absOut)] = meta.bytes
    const entry = meta.entryPoint === undefined ? undefined : join(WEB_DIR, meta.entryPoint)
    for (const [logical, source] of Object.entries(ENTRIES)) {
      if (entry === source && !absOut.endsWith('.map')) assets[logical] = `/assets/${basename(absOut)}`
    }
  }
  for (const page of PAGES) {
    const template = await readFile(join(WEB_DIR, 'pages', page), 'utf8')
    const html = template.replace(/%ASSET:([\w.-]+)%/g, (_m, name: string) => {
      const path = assets[name]
      if (path === undefined) throw new Error(`pages/${page} refers to unknown asset "${name}"`)
      return path
    })
    await writeFile(join(outDir, page), html)
    sizes[page] = Buffer.byteLength(html)
  }
  await writeFile(join(outDir, 'manifest.json'), JSON.stringify({ assets }, null, 2) + '\n')
  await rm(finalDir, { recursive: true, force: true })
  await rename(outDir, finalDir)
  return { outDir: finalDir, assets, sizes }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now()
  const res = await buildWeb(process.argv[2] ?? DEFAULT_OUT_DIR)
  const total = Object.values(res.sizes).reduce((a, b) => a + b, 0)
  process.stdout.write(
    `web: built ${Object.keys(res.sizes).length} files (${(total / 1024).toFixed(0)} KiB) into ${relative(process.cwd(), res.outDir) || '.'} in ${Math.round(performance.now() - started)} ms\n`,
  )
}
