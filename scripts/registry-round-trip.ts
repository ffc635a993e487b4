/**
 * The release, proved against a real registry (`pnpm test:registry`, part of `pnpm test`):
 *
 * 1. starts Verdaccio on 127.0.0.1 (random port, temporary storage, no uplinks: scripts/registry-server.ts) and
 *    creates an htpasswd user through the registry's own adduser endpoint;
 * 2. copies this working tree (tracked and untracked files, no build output, no node_modules) into a temporary
 *    git repository, installs it from the pnpm store, runs `changeset version` there as a maintainer would and
 *    checks that every package that was unreleased (0.0.0) becomes 0.1.0 with a one-entry changelog;
 * 3. runs the real `pnpm release` in the copy against the registry, and checks what the registry now holds;
 * 4. in a fresh temporary project, installs every published package from the registry with plain npm (only `@x`
 *    is routed there; third-party packages come from the usual registry), and runs each package README's Usage
 *    example, taken from the README (scripts/lib/readme-usage.ts), as ESM and as CommonJS, after type-checking it
 *    with tsc under `node16` and `bundler` resolution (and its CommonJS form under `node20`);
 * 5. checks that one copy of `@x/pqc` serves `import` and `require` in that project.
 *
 * The registry process and every temporary directory are removed at the end, pass or fail
 * (`X_KEEP_ROUND_TRIP=1` keeps the directories for a look, `X_KEEP_ROUND_TRIP=on-failure` only after a failure).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { transform } from 'esbuild'
import { extractUsage, importedPackages, wrapForCommonJs } from './lib/readme-usage'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const STEP_TIMEOUT_MS = 10 * 60_000
const EXAMPLE_TIMEOUT_MS = 120_000
const FIRST_VERSION = '0.1.0'

interface PackageJson {
  name: string
  version: string
  private?: boolean
  dependencies?: Record<string, string>
  devDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
}

const started = Date.now()
function log(message: string): void {
  process.stdout.write(`[registry round trip ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`)
}

/** Runs a command, printing it; on failure throws with its output. */
async function sh(
  cmd: string,
  args: readonly string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<string> {
  log(`$ ${cmd} ${args.join(' ')}   (in ${opts.cwd})`)
  try {
    const { stdout } = await run(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? cleanEnv(),
      timeout: opts.timeoutMs ?? STEP_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    })
    return stdout
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string }
    throw new Error(
      `${cmd} ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`,
    )
  }
}

/** The environment minus what pnpm's shims add (NODE_PATH points into this workspace's store). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra }
  delete env.NODE_PATH
  return env
}

function fail(message: string): never {
  throw new Error(message)
}

async function readJson<T>(file: string): Promise<T> {
  return JSON.parse(await readFile(file, 'utf8')) as T
}

/** Starts the registry; resolves with its port once it listens. */
async function startRegistry(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/registry-server.ts'), dir], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: cleanEnv(),
  })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('registry did not start within 60 s')), 60_000)
    child.once('exit', (code) => reject(new Error(`registry exited with ${code} before listening`)))
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^\{"port":(\d+)\}$/.exec(line.trim())
      if (m === null) return log(`registry: ${line}`)
      clearTimeout(timer)
      resolve(Number(m[1]))
    })
  })
  return { child, port }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}

/** Creates the registry's one user (htpasswd) and returns its token. */
async function addUser(registry: string): Promise<string> {
  const name = 'release-test'
  const res = await fetch(`${registry}-/user/org.couchdb.user:${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, password: `pw-${process.pid}-${Date.now()}` }),
  })
  const body = (await res.json()) as { token?: string }
  if (!res.ok || typeof body.token !== 'string') fail(`adduser failed: ${res.status} ${JSON.stringify(body)}`)
  return body.token
}

/** Copies the working tree as a clone would have it (no ignored files: no dist/, no node_modules). */
async function copyWorkingTree(dest: string): Promise<void> {
  const out = await sh('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })
  const files = out.split('\0').filter((f) => f !== '')
  for (const f of files) {
    const from = join(ROOT, f)
    // Deleted but not yet staged files are listed by --cached; skip them.
    const ok = await readFile(from).then(
      () => true,
      () => false,
    )
    if (!ok) continue
    await mkdir(dirname(join(dest, f)), { recursive: true })
    await cp(from, join(dest, f))
  }
  const git = (args: string[]) =>
    sh('git', ['-c', 'user.name=release test', '-c', 'user.email=release-test@localhost', ...args], {
      cwd: dest,
    })
  await git(['init', '-q', '-b', 'main'])
  await git(['add', '-A'])
  await git(['commit', '-q', '-m', 'snapshot of the working tree'])
}

interface WorkspacePackage {
  dir: string
  json: PackageJson
}

async function publishablePackages(repo: string): Promise<WorkspacePackage[]> {
  const out: WorkspacePackage[] = []
  for (const name of (await readdir(join(repo, 'packages'))).sort()) {
    const json = await readJson<PackageJson>(join(repo, 'packages', name, 'package.json'))
    if (json.private !== true) out.push({ dir: join(repo, 'packages', name), json })
  }
  return out
}

/**
 * After `changeset version`, a package that was unreleased (0.0.0) is at 0.1.0 with a changelog of exactly one
 * release holding one "Initial release" entry.
 */
async function checkFirstRelease(pkgs: readonly WorkspacePackage[]): Promise<void> {
  for (const p of pkgs) {
    const json = p.json
    if (json.version !== FIRST_VERSION)
      fail(`${json.name}: changeset version made ${json.version}, not ${FIRST_VERSION}`)
    const changelog = await readFile(join(p.dir, 'CHANGELOG.md'), 'utf8')
    const releases = changelog.match(/^## .*$/gm) ?? []
    const entries = changelog.match(/^- .*$/gm) ?? []
    if (releases.length !== 1 || releases[0] !== `## ${FIRST_VERSION}`) {
      fail(`${json.name}: CHANGELOG.md lists ${JSON.stringify(releases)}, expected only ## ${FIRST_VERSION}`)
    }
    if (entries.length !== 1 || !/^- [0-9a-f]+: Initial release\b/.test(entries[0] ?? '')) {
      fail(
        `${json.name}: CHANGELOG.md should hold one "Initial release" entry, has ${JSON.stringify(entries)}`,
      )
    }
  }
}

/**
 * What the registry (empty before the release) holds: each package once, at the version `changeset version`
 * gave it, on `latest`, with no exact versions in its dependencies.
 */
async function checkPublished(registry: string, pkgs: readonly WorkspacePackage[]): Promise<void> {
  for (const p of pkgs) {
    const res = await fetch(`${registry}${p.json.name.replace('/', '%2f')}`)
    if (!res.ok) fail(`${p.json.name} is not in the registry (${res.status})`)
    const doc = (await res.json()) as {
      'dist-tags': Record<string, string>
      versions: Record<string, PackageJson & { dist: { tarball: string } }>
    }
    const versions = Object.keys(doc.versions)
    if (versions.join() !== p.json.version || doc['dist-tags'].latest !== p.json.version) {
      fail(
        `${p.json.name}: registry has versions ${versions.join()} and latest ${doc['dist-tags'].latest}, ` +
          `expected ${p.json.version}`,
      )
    }
    const manifest = doc.versions[p.json.version]!
    for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies'] as const) {
      for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
        if (/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(range) || range.startsWith('workspace:')) {
          fail(`${p.json.name}@${p.json.version} ${field} pins ${dep} to '${range}': use a caret range`)
        }
      }
    }
  }
}

/** Waits until host:port accepts a TCP connection, or the process exits (then throws). */
async function waitForListening(
  child: ChildProcess,
  host: string,
  port: number,
  label: string,
): Promise<void> {
  const deadline = Date.now() + EXAMPLE_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      fail(`${label} exited with ${child.exitCode} before listening on ${host}:${port}`)
    const up = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port }, () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (up) return
    await new Promise((r) => setTimeout(r, 100))
  }
  fail(`${label} did not listen on ${host}:${port} within ${EXAMPLE_TIMEOUT_MS / 1000} s`)
}

/** Runs one example file with node; a serving example is stopped with SIGTERM once it listens. */
async function runExample(
  app: string,
  file: string,
  serves: { host: string; port: number } | undefined,
): Promise<void> {
  log(
    `$ node ${file}${serves === undefined ? '' : `   (serves ${serves.host}:${serves.port} until SIGTERM)`}`,
  )
  const child = spawn(process.execPath, [file], {
    cwd: app,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString()
    stderr += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const timer = setTimeout(() => child.kill('SIGKILL'), EXAMPLE_TIMEOUT_MS)
  try {
    if (serves !== undefined) {
      await waitForListening(child, serves.host, serves.port, file)
      child.kill('SIGTERM')
    }
    const code = await exited
    if (code !== 0) fail(`${file} exited with ${code} (signal ${child.signalCode}):\n${output}`)
    // A clean run prints no warning: "Yjs was already imported" (two copies of a dependency), deprecations.
    if (stderr.trim() !== '') fail(`${file} wrote to stderr:\n${stderr}`)
  } finally {
    clearTimeout(timer)
    await stopProcess(child)
  }
  for (const line of output.trimEnd().split('\n')) if (line !== '') log(`  | ${line.slice(0, 160)}`)
}

async function main(): Promise<void> {
  const rootJson = await readJson<PackageJson>(join(ROOT, 'package.json'))
  const tmp = await mkdtemp(join(tmpdir(), 'x-registry-round-trip-'))
  let registryChild: ChildProcess | undefined
  let ok = false
  try {
    const { child, port } = await startRegistry(join(tmp, 'registry'))
    registryChild = child
    const registry = `http://127.0.0.1:${port}/`
    log(`Verdaccio on ${registry} (storage ${join(tmp, 'registry')}, no uplinks)`)
    const token = await addUser(registry)
    const npmrc = join(tmp, 'publish.npmrc')
    await writeFile(npmrc, `registry=${registry}\n//127.0.0.1:${port}/:_authToken=${token}\n`)
    // Every registry setting npm, pnpm and changesets read points at the local registry, and the user config
    // with the token is the temporary one, so no credential or package of the machine takes part.
    const releaseEnv = cleanEnv({
      npm_config_registry: registry,
      pnpm_config_registry: registry,
      npm_config_userconfig: npmrc,
      CI: 'true',
    })

    const repo = join(tmp, 'repo')
    await copyWorkingTree(repo)
    await sh('pnpm', ['install', '--frozen-lockfile', '--prefer-offline'], { cwd: repo, env: releaseEnv })
    const unreleased = new Set(
      (await publishablePackages(repo)).filter((p) => p.json.version === '0.0.0').map((p) => p.json.name),
    )

    // The maintainer's two steps: version (then commit), release.
    await sh('pnpm', ['exec', 'changeset', 'version'], { cwd: repo, env: releaseEnv })
    const pkgs = await publishablePackages(repo)
    if (pkgs.length === 0) fail('no publishable packages found')
    await checkFirstRelease(pkgs.filter((p) => unreleased.has(p.json.name)))
    const git = ['-c', 'user.name=release test', '-c', 'user.email=release-test@localhost']
    await sh('git', [...git, 'add', '-A'], { cwd: repo })
    await sh('git', [...git, 'commit', '-qm', 'Version packages'], { cwd: repo })

    await sh('pnpm', ['run', 'release'], { cwd: repo, env: releaseEnv })
    await checkPublished(registry, pkgs)
    log(`published: ${pkgs.map((p) => `${p.json.name}@${p.json.version}`).join(', ')}`)

    // The fresh project. Only the @x scope is routed to the local registry.
    const app = join(tmp, 'app')
    await mkdir(app)
    await writeFile(
      join(app, 'package.json'),
      JSON.stringify({ name: 'x-release-app', version: '1.0.0', private: true, type: 'module' }, null, 2),
    )
    await writeFile(join(app, '.npmrc'), `@x:registry=${registry}\n`)

    const examples: { name: string; dir: string; code: string; serves?: { host: string; port: number } }[] =
      []
    for (const p of pkgs) {
      const usage = extractUsage(await readFile(join(p.dir, 'README.md'), 'utf8'))
      if (usage === undefined) fail(`${p.json.name}: README.md has no \`## Usage\` with a \`\`\`ts block`)
      examples.push({ name: p.json.name, dir: p.dir.split('/').pop()!, ...usage })
    }
    // Third-party packages an example imports, at the versions this workspace uses (and their @types/*).
    const known: Record<string, string> = { ...rootJson.devDependencies }
    for (const p of pkgs) Object.assign(known, p.json.devDependencies, p.json.dependencies)
    const install = new Set(pkgs.map((p) => `${p.json.name}@${p.json.version}`))
    install.add(`typescript@${known.typescript ?? fail('no typescript version')}`)
    install.add(`@types/node@${known['@types/node'] ?? fail('no @types/node version')}`)
    for (const e of examples) {
      for (const dep of importedPackages(e.code)) {
        if (dep.startsWith('@x/')) continue
        const version =
          known[dep] ?? fail(`${e.name}'s example imports ${dep}, which no workspace package uses`)
        install.add(`${dep}@${version}`)
        const types = `@types/${dep.replace(/^@(.*)\/(.*)$/, '$1__$2')}`
        if (known[types] !== undefined) install.add(`${types}@${known[types]}`)
      }
    }
    await sh(
      'npm',
      ['install', '--no-audit', '--no-fund', '--loglevel=error', '--prefer-offline', ...install],
      {
        cwd: app,
        timeoutMs: STEP_TIMEOUT_MS,
      },
    )

    // Each example: as written (.ts, ESM), and its CommonJS form (.cts); both stripped of types by esbuild.
    for (const e of examples) {
      await writeFile(join(app, `${e.dir}.ts`), e.code)
      await writeFile(join(app, `${e.dir}.cts`), wrapForCommonJs(e.code))
      const esm = await transform(e.code, { loader: 'ts', format: 'esm', target: 'node20' })
      await writeFile(join(app, `${e.dir}.mjs`), esm.code)
      const cjs = await transform(wrapForCommonJs(e.code), { loader: 'ts', format: 'cjs', target: 'node20' })
      await writeFile(join(app, `${e.dir}.cjs`), cjs.code)
    }
    // DOM: yjs and y-websocket declare DOM types in their .d.ts; our own .d.ts files are checked too.
    const base = {
      strict: true,
      target: 'ES2022',
      lib: ['ES2023', 'DOM'],
      types: ['node'],
      noEmit: true,
      skipLibCheck: false,
    }
    const tsconfigs = {
      'tsconfig.node16.json': {
        compilerOptions: { ...base, module: 'node16', moduleResolution: 'node16' },
        include: ['*.ts'],
      },
      'tsconfig.bundler.json': {
        compilerOptions: { ...base, module: 'esnext', moduleResolution: 'bundler' },
        include: ['*.ts'],
      },
      // CommonJS that requires an ES-module-only package type-checks under TypeScript's node20 module mode.
      'tsconfig.cjs.json': {
        compilerOptions: { ...base, module: 'node20', moduleResolution: 'node16' },
        include: ['*.cts'],
      },
    }
    for (const [file, config] of Object.entries(tsconfigs)) {
      await writeFile(join(app, file), JSON.stringify(config, null, 2))
      await sh(join(app, 'node_modules/.bin/tsc'), ['-p', file], { cwd: app })
    }
    for (const e of examples) {
      await runExample(app, `${e.dir}.mjs`, e.serves)
      await runExample(app, `${e.dir}.cjs`, e.serves)
    }

    // One copy of @x/pqc for import and require (the package's own fixture, resolved from node_modules here).
    await cp(join(ROOT, 'packages/pqc/test/fixtures/one-module-copy.mjs'), join(app, 'one-module-copy.mjs'))
    const oneCopy = JSON.parse(
      (await sh('node', ['one-module-copy.mjs'], { cwd: app })).trim().split('\n').pop()!,
    ) as {
      cjs: { initialized: boolean }
      sameFunction: boolean
      backendAfterCjsForce: string
    }
    if (!oneCopy.cjs.initialized || !oneCopy.sameFunction || oneCopy.backendAfterCjsForce !== 'noble') {
      fail(`@x/pqc loads twice in one process: ${JSON.stringify(oneCopy)}`)
    }
    // The bin the kademlia README documents.
    await sh(join(app, 'node_modules/.bin/kademlia-sim'), ['--help'], { cwd: app })

    ok = true
    log(
      `passed: ${examples.length} README examples as ESM and CJS, type-checked under node16, bundler and node20 (CJS)`,
    )
  } finally {
    if (registryChild !== undefined) await stopProcess(registryChild)
    if (process.env.X_KEEP_ROUND_TRIP === '1' || (!ok && process.env.X_KEEP_ROUND_TRIP === 'on-failure')) {
      log(`kept ${tmp}`)
    } else {
      await rm(tmp, { recursive: true, force: true })
    }
  }
}

await main()
