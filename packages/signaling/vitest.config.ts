import { projectConfig } from '../../vitest.shared'

export default projectConfig('@x/signaling')
