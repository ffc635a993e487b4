/**
 * The repository's changeset rules (CONTRIBUTING.md, "Changesets"), as a pure function so that they are tested.
 *
 * 1. One package per changeset: a changeset's text lands in the changelog of every package it names, so a shared
 *    one puts one package's notes in another's changelog.
 * 2. A publishable package that was never published stays at version 0.0.0 with exactly one changeset,
 *    `.changeset/<dir>-initial.md`: a `minor` bump (0.0.0 → 0.1.0, its first published version) whose text starts
 *    with "Initial release" and describes the package as it is. A change made before that first publish is folded
 *    into that text, not added as another changeset: a second entry would describe a change against a version
 *    nobody had, and a second bump would skip 0.1.0.
 * 3. Once published (version above 0.0.0) a package takes ordinary changesets; an `-initial` one is a mistake.
 */

/** The version a publishable package keeps until its first publish. */
export const UNRELEASED_VERSION = '0.0.0'

/** The bump that takes an unreleased package to its first version, 0.1.0. */
const INITIAL_BUMP = 'minor'

export interface WorkspacePackage {
  readonly name: string
  readonly version: string
  readonly private: boolean
  /** Directory relative to the repository root, `packages/pqc`. */
  readonly dir: string
}

export interface Changeset {
  /** File name without `.md`. */
  readonly id: string
  readonly summary: string
  readonly releases: readonly { readonly name: string; readonly type: string }[]
}

/** The id (file name without `.md`) of a package's initial-release changeset: `packages/pqc` → `pqc-initial`. */
export function initialChangesetId(pkg: Pick<WorkspacePackage, 'dir'>): string {
  return `${pkg.dir.split('/').pop() ?? pkg.dir}-initial`
}

/** Every broken rule, as one sentence each that says what to do; empty when the changesets are in order. */
export function changesetProblems(
  packages: readonly WorkspacePackage[],
  changesets: readonly Changeset[],
): string[] {
  const problems: string[] = []
  for (const cs of changesets) {
    const names = [...new Set(cs.releases.map((r) => r.name))]
    if (names.length !== 1) {
      problems.push(
        `.changeset/${cs.id}.md names ${names.length === 0 ? 'no package' : names.join(', ')}: ` +
          'write one changeset per package so that each changelog gets only its own notes',
      )
    }
  }
  for (const pkg of packages) {
    if (pkg.private) continue
    const initialId = initialChangesetId(pkg)
    const naming = changesets.filter((cs) => cs.releases.some((r) => r.name === pkg.name))
    if (pkg.version !== UNRELEASED_VERSION) {
      if (naming.some((cs) => cs.id === initialId)) {
        problems.push(
          `.changeset/${initialId}.md: ${pkg.name} is already released (${pkg.version}); ` +
            'describe the change in an ordinary changeset instead',
        )
      }
      continue
    }
    const initial = naming.find((cs) => cs.id === initialId)
    if (initial === undefined) {
      problems.push(
        `${pkg.name} is unreleased (${UNRELEASED_VERSION}) and has no .changeset/${initialId}.md: add one, ` +
          `'${pkg.name}': ${INITIAL_BUMP}, whose text starts with "Initial release" and describes the package`,
      )
    } else {
      const bump = initial.releases.find((r) => r.name === pkg.name)?.type
      if (bump !== INITIAL_BUMP) {
        problems.push(
          `.changeset/${initialId}.md bumps ${pkg.name} '${bump}': the first release is '${INITIAL_BUMP}' ` +
            `(${UNRELEASED_VERSION} → 0.1.0)`,
        )
      }
      if (!/^Initial release\b/.test(initial.summary.trim())) {
        problems.push(`.changeset/${initialId}.md must start with "Initial release" and describe ${pkg.name}`)
      }
    }
    for (const cs of naming) {
      if (cs.id === initialId) continue
      problems.push(
        `.changeset/${cs.id}.md: ${pkg.name} has not been published yet, so this change belongs in its first ` +
          `release: fold what it says into .changeset/${initialId}.md (as part of what the package is) and delete it`,
      )
    }
  }
  return problems
}
