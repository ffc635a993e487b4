import { mergeConfig } from 'vitest/config'
import { projectConfig } from '../../vitest.shared'

// The shared config sets `resolve.conditions`; vitest runs tests as SSR modules, whose resolution reads
// `ssr.resolve.conditions` (vite >= 6), so the `@x/source` condition is repeated there. Without it the workspace
// packages would resolve to their (possibly stale or missing) `dist/` builds.
export default mergeConfig(projectConfig('@x/node', { testTimeout: 60_000 }), {
  ssr: { resolve: { conditions: ['@x/source', 'node', 'import', 'default'] } },
  test: { fileParallelism: false },
})
