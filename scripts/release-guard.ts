/**
 * First step of `pnpm release`: refuses to publish before `changeset version` has run. Without it,
 * `changeset publish` would publish whatever versions package.json holds, including 0.0.0 (a package that was
 * never versioned) and versions whose changesets are still pending (a changelog that misses them).
 */
import { fileURLToPath } from 'node:url'
import readChangesets from '@changesets/read'
import { getPackages } from '@manypkg/get-packages'
import { UNRELEASED_VERSION } from './lib/changeset-rules'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

const problems: string[] = []
const pending = await readChangesets(ROOT)
if (pending.length > 0) {
  problems.push(`${pending.length} changesets are pending (${pending.map((c) => c.id).join(', ')})`)
}
const { packages } = await getPackages(ROOT)
for (const p of packages) {
  if (p.packageJson.private !== true && p.packageJson.version === UNRELEASED_VERSION) {
    problems.push(`${p.packageJson.name} is at ${UNRELEASED_VERSION}`)
  }
}
if (problems.length > 0) {
  console.error(`release: not versioned yet: ${problems.join('; ')}.`)
  console.error(
    'Run `pnpm changeset version`, review and commit the versions and changelogs, then `pnpm release`.',
  )
  process.exit(1)
}
