import { defineConfig } from 'vitest/config'

/**
 * Shared vitest settings for every workspace project. The `@x/source` export condition makes a package's
 * tests (and apps/node's) run against TypeScript sources, so no build is needed before testing. Vitest runs
 * tests as SSR modules, whose resolution reads `ssr.resolve.conditions` (vite >= 6), so it is set there too.
 */
const CONDITIONS = ['@x/source', 'node', 'import', 'module', 'default']

export function projectConfig(name: string, overrides: { testTimeout?: number } = {}) {
  return defineConfig({
    resolve: { conditions: CONDITIONS },
    ssr: { resolve: { conditions: CONDITIONS } },
    test: {
      name,
      include: ['test/**/*.test.ts'],
      testTimeout: overrides.testTimeout ?? 30_000,
      hookTimeout: 30_000,
      pool: 'forks',
    },
  })
}
