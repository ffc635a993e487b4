import { mergeConfig } from 'vitest/config'
import { projectConfig } from '../../vitest.shared'

// End-to-end tests start real nodes and processes: longer timeouts, and one file at a time on a 2-core machine.
export default mergeConfig(projectConfig('@x/node', { testTimeout: 60_000 }), {
  test: { fileParallelism: false },
})
