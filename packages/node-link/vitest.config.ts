import { projectConfig } from '../../vitest.shared'

export default projectConfig('@x/node-link')
