import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts', 'src/testing.ts'],
  // ESM and CommonJS, unlike the other packages (ESM only): this package keeps no module state, so two builds
  // cannot split any, and its peer yjs ships both formats: a CommonJS app that require()s yjs must get this
  // package's CommonJS build, or Yjs loads twice (ESM and CJS copies) and its constructor checks break.
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
})
