import { describe, expect, it } from 'vitest'
import { type Changeset, type WorkspacePackage, changesetProblems } from '../lib/changeset-rules'

const PKGS: WorkspacePackage[] = [
  { name: '@x/a', version: '0.0.0', private: false, dir: 'packages/a' },
  { name: '@x/b', version: '0.3.1', private: false, dir: 'packages/b' },
  { name: '@x/app', version: '0.1.0', private: true, dir: 'apps/app' },
]
const initialA: Changeset = {
  id: 'a-initial',
  summary: 'Initial release of `@x/a`: what it is.',
  releases: [{ name: '@x/a', type: 'minor' }],
}

describe('changeset rules', () => {
  it('accept one initial-release changeset for an unreleased package and ordinary ones for the rest', () => {
    expect(
      changesetProblems(PKGS, [
        initialA,
        { id: 'b-fix', summary: 'Fix.', releases: [{ name: '@x/b', type: 'patch' }] },
        { id: 'app-thing', summary: 'Thing.', releases: [{ name: '@x/app', type: 'minor' }] },
      ]),
    ).toEqual([])
  })

  it('refuse a changeset shared by two packages', () => {
    const shared: Changeset = {
      id: 'shared',
      summary: 'Both.',
      releases: [
        { name: '@x/b', type: 'minor' },
        { name: '@x/app', type: 'minor' },
      ],
    }
    expect(changesetProblems(PKGS, [initialA, shared])).toEqual([
      expect.stringMatching(/^\.changeset\/shared\.md names @x\/b, @x\/app: write one changeset per package/),
    ])
  })

  it('refuse a second changeset for an unreleased package and say where to fold it', () => {
    const later: Changeset = { id: 'a-later', summary: 'More.', releases: [{ name: '@x/a', type: 'patch' }] }
    expect(changesetProblems(PKGS, [initialA, later])).toEqual([
      expect.stringMatching(
        /^\.changeset\/a-later\.md: @x\/a has not been published.*fold .* \.changeset\/a-initial\.md/,
      ),
    ])
  })

  it('require the initial changeset of an unreleased package, as a minor bump that says "Initial release"', () => {
    expect(changesetProblems(PKGS, [])).toEqual([
      expect.stringMatching(/@x\/a is unreleased .* no \.changeset\/a-initial\.md/),
    ])
    const wrong: Changeset = {
      id: 'a-initial',
      summary: 'Adds things.',
      releases: [{ name: '@x/a', type: 'major' }],
    }
    expect(changesetProblems(PKGS, [wrong])).toEqual([
      expect.stringMatching(/bumps @x\/a 'major': the first release is 'minor'/),
      expect.stringMatching(/must start with "Initial release"/),
    ])
  })

  it('refuse an initial-release changeset for a package already published', () => {
    const late: Changeset = {
      id: 'b-initial',
      summary: 'Initial release.',
      releases: [{ name: '@x/b', type: 'minor' }],
    }
    expect(changesetProblems(PKGS, [initialA, late])).toEqual([
      expect.stringMatching(/@x\/b is already released \(0\.3\.1\)/),
    ])
  })
})
