import { projectConfig } from '../../vitest.shared'

export default projectConfig('@x/node', { testTimeout: 60_000 })
