import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { extractUsage, importedPackages, wrapForCommonJs } from '../lib/readme-usage'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

const README = `# @x/thing

## Install

\`\`\`ts
not this one
\`\`\`

## Usage

Some words.

\`\`\`sh
npm run nothing
\`\`\`

\`\`\`ts
import { a } from '@x/thing'
import WebSocket from 'ws'
import { createServer } from 'node:http'
import { ml_dsa87 } from '@noble/post-quantum/ml-dsa.js'

await a(WebSocket, createServer, ml_dsa87)
\`\`\`

\`\`\`ts
second block
\`\`\`

## API
`

describe('extractUsage', () => {
  it('takes the first ts block under ## Usage, not blocks of other sections or languages', () => {
    const u = extractUsage(README)
    expect(u?.code).toMatch(/^import \{ a \} from '@x\/thing'\n/)
    expect(u?.code).toMatch(/await a\(WebSocket, createServer, ml_dsa87\)\n$/)
    expect(u?.code).not.toMatch(/second block/)
    expect(u?.serves).toBeUndefined()
  })

  it('reads the serves-until-SIGTERM directive right above the block', () => {
    const marked = README.replace(
      '```ts\nimport',
      '<!-- example: serves 127.0.0.1:3001 until SIGTERM -->\n\n```ts\nimport',
    )
    expect(extractUsage(marked)?.serves).toEqual({ host: '127.0.0.1', port: 3001 })
  })

  it('finds nothing without a Usage section or a ts block in it', () => {
    expect(extractUsage('# x\n\n## API\n\n```ts\nx\n```\n')).toBeUndefined()
    expect(extractUsage('# x\n\n## Usage\n\n```sh\nx\n```\n\n## API\n\n```ts\nx\n```\n')).toBeUndefined()
  })

  it('finds a Usage example in every package README', async () => {
    const dirs = await readdir(join(ROOT, 'packages'))
    expect(dirs.length).toBeGreaterThan(0)
    for (const dir of dirs) {
      const md = await readFile(join(ROOT, 'packages', dir, 'README.md'), 'utf8')
      const usage = extractUsage(md)
      expect(usage, dir).toBeDefined()
      expect(importedPackages(usage!.code), dir).toContain(`@x/${dir}`)
    }
  })
})

describe('importedPackages', () => {
  it('names the packages to install, not built-ins or relative files', () => {
    expect(importedPackages(extractUsage(README)!.code)).toEqual(['@x/thing', 'ws', '@noble/post-quantum'])
  })
})

describe('wrapForCommonJs', () => {
  it('keeps imports at the top and runs the rest in an async function that reports failure', () => {
    const out = wrapForCommonJs(extractUsage(README)!.code)
    expect(out).toMatch(/^import \{ a \} from '@x\/thing'\nimport WebSocket from 'ws'\n/)
    expect(out).toMatch(/void \(async \(\) => \{\nawait a\(WebSocket, createServer, ml_dsa87\)\n/)
    expect(out).toMatch(/process\.exitCode = 1/)
  })
})
