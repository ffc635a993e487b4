import { defineConfig } from 'tsup'

// The server is bundled with the workspace packages inlined (resolved to their TypeScript sources through the
// `@x/source` condition), so `pnpm start` works without building the packages first. Third-party dependencies
// stay external and load from node_modules.
export default defineConfig({
  entry: ['src/server.ts'],
  format: ['esm'],
  dts: false,
  clean: true,
  sourcemap: true,
  target: 'node20',
  platform: 'node',
  noExternal: [/^@x\//],
  esbuildOptions(o) {
    o.conditions = ['@x/source']
  },
  banner: { js: '#!/usr/bin/env node' },
})
