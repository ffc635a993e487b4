/**
 * A package README's Usage example, taken from the README itself so that the README and the package cannot
 * drift: the first ```ts block under `## Usage`. The registry round trip (scripts/registry-round-trip.ts) runs
 * it as ESM and as CommonJS and type-checks it against the installed package.
 *
 * An example that serves until it is stopped says so in an HTML comment right above its block:
 * `<!-- example: serves 127.0.0.1:3001 until SIGTERM -->`. The round trip then waits for that address to
 * accept a connection, sends SIGTERM and expects a clean exit; any other example must end by itself.
 */
import { builtinModules } from 'node:module'
import ts from 'typescript'

export interface UsageExample {
  /** The TypeScript source of the block, as written. */
  readonly code: string
  /** Set when the example runs until SIGTERM: where it listens once it is up. */
  readonly serves?: { readonly host: string; readonly port: number }
}

const SERVES = /^<!--\s*example:\s*serves\s+([\w.:-]+):(\d+)\s+until\s+SIGTERM\s*-->$/

/** The Usage example of a README, or `undefined` when it has no `## Usage` section with a ```ts block. */
export function extractUsage(markdown: string): UsageExample | undefined {
  const lines = markdown.split(/\r?\n/)
  const start = lines.findIndex((l) => /^##\s+Usage\s*$/.test(l))
  if (start < 0) return undefined
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i] ?? ''
    if (/^##\s/.test(line)) return undefined
    if (!/^```(ts|typescript)\s*$/.test(line)) continue
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l))
    if (end < 0) throw new Error(`unterminated code block at line ${i + 1}`)
    const code = lines.slice(i + 1, end).join('\n') + '\n'
    const directive = SERVES.exec((lines[i - 1] ?? '').trim()) ?? SERVES.exec((lines[i - 2] ?? '').trim())
    return directive === null
      ? { code }
      : { code, serves: { host: directive[1] ?? '', port: Number(directive[2]) } }
  }
  return undefined
}

/** The packages an example imports (`ws`, `@x/pqc`; `@noble/post-quantum/ml-dsa.js` → `@noble/post-quantum`). */
export function importedPackages(code: string): string[] {
  const sf = ts.createSourceFile('usage.ts', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const out = new Set<string>()
  for (const st of sf.statements) {
    if (!ts.isImportDeclaration(st) || !ts.isStringLiteral(st.moduleSpecifier)) continue
    const spec = st.moduleSpecifier.text
    if (spec.startsWith('node:') || spec.startsWith('.') || builtinModules.includes(spec)) continue
    const parts = spec.split('/')
    out.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? spec))
  }
  return [...out]
}

/**
 * The same example as a CommonJS module body: CommonJS has no top-level `await`, so the import declarations stay
 * at the top (a compiler turns them into `require` calls) and everything else runs inside an async function
 * whose failure sets a non-zero exit code.
 */
export function wrapForCommonJs(code: string): string {
  const sf = ts.createSourceFile('usage.ts', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const imports: string[] = []
  const body: string[] = []
  for (const st of sf.statements) (ts.isImportDeclaration(st) ? imports : body).push(st.getFullText(sf))
  return (
    `${imports.join('').trim()}\n\n` +
    `void (async () => {\n${body.join('').replace(/^\n+/, '')}\n})().catch((e: unknown) => {\n` +
    `  console.error(e)\n  process.exitCode = 1\n})\n`
  )
}
