/**
 * `pnpm check:changesets`: fails (exit 1) with one line per broken rule of lib/changeset-rules.ts, so that a
 * changeset added later cannot reintroduce a shared changeset or a second entry for an unreleased package.
 */
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import readChangesets from '@changesets/read'
import { getPackages } from '@manypkg/get-packages'
import { changesetProblems } from './lib/changeset-rules'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

const { packages } = await getPackages(ROOT)
const problems = changesetProblems(
  packages.map((p) => ({
    name: p.packageJson.name,
    version: p.packageJson.version,
    private: p.packageJson.private === true,
    dir: relative(ROOT, p.dir),
  })),
  await readChangesets(ROOT),
)
if (problems.length > 0) {
  for (const p of problems) console.error(`changesets: ${p}`)
  process.exit(1)
}
console.log(`changesets: ${packages.length} packages, rules hold (see CONTRIBUTING.md)`)
