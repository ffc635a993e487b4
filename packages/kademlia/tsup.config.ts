import { defineConfig } from 'tsup'

export default defineConfig({
  // bin/sim is the `kademlia-sim` bin (dist/bin/sim.js; its hashbang makes tsup mark it executable).
  entry: { index: 'src/index.ts', testing: 'src/testing.ts', 'bin/sim': 'bin/sim.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts', testing: 'src/testing.ts' } },
  clean: true,
  sourcemap: true,
  target: 'node20',
})
