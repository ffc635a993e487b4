import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import { SCHEMAS } from '../src/schemas'

export const cleanups: (() => unknown)[] = []

export async function runCleanups(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      await fn()
    } catch {
      // best effort
    }
  }
}

export async function tempDir(prefix = 'x-node-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Polls `fn` until it returns a truthy value (bounded; the condition, not the delay, decides). */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  what: string,
  timeoutMs = 20_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const ajv = new Ajv({ strict: false, allErrors: true })
for (const schema of SCHEMAS) ajv.addSchema(schema)

/** Validates `body` against the response schema `$id`; returns the errors (empty when valid). */
export function schemaErrors(id: string, body: unknown): string[] {
  const validate = ajv.getSchema(id)
  if (!validate) throw new Error(`no schema ${id}`)
  return validate(body) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`)
}

export async function getJson(
  url: string,
  headers: Record<string, string> = {},
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked by schema
): Promise<{ status: number; body: any }> {
  // Bounded, so a polling caller (waitFor) gets control back even when a request is stuck.
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5_000) })
  return { status: res.status, body: await res.json() }
}
