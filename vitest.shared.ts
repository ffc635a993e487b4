import { defineConfig } from 'vitest/config'

/**
 * Shared vitest settings for every workspace project. The `@x/source` export condition makes a package's
 * tests (and apps/node's) run against TypeScript sources, so no build is needed before testing.
 */
export function projectConfig(name: string, overrides: { testTimeout?: number } = {}) {
  return defineConfig({
    resolve: { conditions: ['@x/source'] },
    test: {
      name,
      include: ['test/**/*.test.ts'],
      testTimeout: overrides.testTimeout ?? 30_000,
      hookTimeout: 30_000,
      pool: 'forks',
    },
  })
}
