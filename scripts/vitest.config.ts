import { projectConfig } from '../vitest.shared'

// The repository's own tools (release checks, README example extraction).
export default projectConfig('scripts')
