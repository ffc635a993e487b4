/**
 * The browser path: bundle the package with esbuild for platform 'browser' (fails on any Node-only import),
 * then run the bundle in a bare V8 context that has only WebCrypto's getRandomValues and TextEncoder (no
 * `process`, no `require`, no `Buffer`) and check that identities, the hybrid KEM and sealed boxes work there
 * and match the bytes made on Node.
 */
import { describe, expect, it } from 'vitest'
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { runInNewContext } from 'node:vm'
import { webcrypto } from 'node:crypto'
import { hybridKeygen, Identity, openBox } from '../src/index'
import type * as Pqc from '../src/index'

describe('browser bundle', () => {
  it('bundles for platform browser and works without any Node global', async () => {
    const result = await build({
      entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
      bundle: true,
      platform: 'browser',
      format: 'iife',
      globalName: 'pqc',
      write: false,
      logLevel: 'silent',
      target: 'es2022',
      metafile: true,
    })
    expect(result.errors).toEqual([])
    const code = result.outputFiles[0]?.text ?? ''
    expect(code.length).toBeGreaterThan(10_000)
    // No module is left external (a Node built-in would be): every import was bundled.
    const outputs = Object.values(result.metafile.outputs)
    expect(outputs.flatMap((o) => o.imports)).toEqual([])
    expect(Object.keys(result.metafile.inputs).filter((p) => p.startsWith('node:'))).toEqual([])

    const sandbox: Record<string, unknown> = {
      crypto: { getRandomValues: (a: Uint8Array) => webcrypto.getRandomValues(a) },
      TextEncoder,
      TextDecoder,
      // Share typed-array constructors with the test realm so byte arrays pass instanceof checks both ways.
      Uint8Array,
      Uint16Array,
      Uint32Array,
      Int8Array,
      Int16Array,
      Int32Array,
      BigUint64Array,
      BigInt64Array,
      Float32Array,
      Float64Array,
      ArrayBuffer,
      DataView,
      setTimeout,
    }
    sandbox.globalThis = sandbox
    runInNewContext(`${code}\nglobalThis.pqc = pqc`, sandbox)
    const api = sandbox.pqc as typeof Pqc
    const seed = new Uint8Array(32).fill(11)
    const id = api.Identity.generate(seed)
    expect(id.idString).toBe(Identity.generate(seed).idString)
    const msg = new TextEncoder().encode('from the browser')
    expect(api.verify(id.publicKey, msg, id.sign(msg))).toBe(true)
    const kp = hybridKeygen(new Uint8Array(32).fill(12))
    const box = api.sealBox(kp.publicKey, msg, msg)
    expect(openBox(kp.secretKey, box, msg)).toEqual(msg) // sealed in the "browser", opened on Node
    expect(api.getStatus().backend).toBe('noble')
    expect(api.getStatus().production).toBe(false)
    const pool = api.createPqcWorkerPool()
    expect(api.verify(id.publicKey, msg, await pool.sign(id, msg))).toBe(true)
    expect(pool.stats().mode).toBe('inline')
    await pool.close()
  })
})
