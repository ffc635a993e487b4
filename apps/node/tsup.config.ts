import { defineConfig } from 'tsup'

// `@noble/post-quantum` (knip ignores it) and the optional `@oqs/liboqs-js` are dependencies of the app so that
// they stay outside the bundle: @x/pqc's worker threads and its optional backend load them by name at run time.
// The server is bundled with the workspace packages inlined (resolved to their TypeScript sources through the
// `@x/source` condition), so `pnpm start` works without building the packages first. Third-party dependencies
// of apps/node stay external and load from node_modules; the packages' own dependencies (prom-client,
// @noble/*, …) are bundled with them, and the banner gives their CommonJS `require` calls a real `require`.
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
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __xCreateRequire } from 'node:module'\nconst require = __xCreateRequire(import.meta.url)",
  },
})
