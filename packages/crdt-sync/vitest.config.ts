import { projectConfig } from '../../vitest.shared'

export default projectConfig('@x/crdt-sync')
