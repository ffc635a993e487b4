// Runs every package's tests from the root: `pnpm test:unit` or `pnpm vitest run --project @x/pqc`.
// Each project's own vitest.config.ts sets its name and the `@x/source` condition.
export default ['packages/*', 'apps/*', 'scripts']
