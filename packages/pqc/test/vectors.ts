/** Loads a gzipped JSON vector file from test/vectors; a missing or empty file throws (fails the run). */
import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

export interface VectorGroup<T> {
  tests: T[]
  [k: string]: unknown
}

export function loadVectors<T>(file: string): VectorGroup<T>[] {
  const path = fileURLToPath(new URL(`./vectors/${file}`, import.meta.url))
  const raw = readFileSync(path)
  if (raw.length === 0) throw new Error(`vector file ${file} is empty`)
  const json = JSON.parse((file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8')) as {
    testGroups?: VectorGroup<T>[]
  }
  const groups = json.testGroups ?? []
  const n = groups.reduce((a, g) => a + g.tests.length, 0)
  if (n === 0) throw new Error(`vector file ${file} holds no test cases`)
  return groups
}

export function h(hex: string | undefined): Uint8Array {
  return Uint8Array.from(Buffer.from(hex ?? '', 'hex'))
}

export function hexOf(b: Uint8Array): string {
  return Buffer.from(b).toString('hex')
}
