import { generateKeyPairSync } from 'node:crypto'
import os from 'node:os'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  createPqcWorkerPool,
  deriveSigningSubkey,
  Identity,
  isPqcError,
  verify,
  verifySubkeySignature,
  type PqcWorkerPool,
} from '../src/index'

const enc = new TextEncoder()
const nodeHasMlDsa = ((): boolean => {
  try {
    generateKeyPairSync('ml-dsa-44' as 'x25519')
    return true
  } catch {
    return false
  }
})()
let pool: PqcWorkerPool | undefined
afterEach(async () => {
  vi.restoreAllMocks()
  await pool?.close()
  pool = undefined
})

describe('worker pool', () => {
  it('signs in worker threads; signatures verify on the main thread', async () => {
    pool = createPqcWorkerPool({}, { size: 2 })
    const id = Identity.generate(new Uint8Array(32).fill(5))
    const ctx = enc.encode('x/pool/v1')
    const msgs = Array.from({ length: 8 }, (_, i) => enc.encode(`message ${i}`))
    const sigs = await Promise.all(msgs.map((m) => pool!.sign(id, m, ctx)))
    sigs.forEach((s, i) => expect(verify(id.publicKey, msgs[i]!, s, ctx)).toBe(true))
    expect(verify(id.publicKey, msgs[0]!, sigs[1]!, ctx)).toBe(false)
    const st = pool.stats()
    expect(st.mode).toBe('worker_threads')
    expect(st.workers).toBe(2)
    expect(st.completed).toBe(8)
    expect(st.pending).toBe(0)
  })

  it('generates identities in a worker that equal the synchronous ones', async () => {
    pool = createPqcWorkerPool({}, { size: 1, backend: 'noble' })
    const seed = new Uint8Array(32).fill(6)
    const a = await pool.generateIdentity(seed)
    expect(a.idString).toBe(Identity.generate(seed).idString)
    const sig = a.sign(enc.encode('sync after async keygen'))
    expect(verify(a.publicKey, enc.encode('sync after async keygen'), sig)).toBe(true)
    expect(await pool.verify(a.publicKey, enc.encode('sync after async keygen'), sig)).toBe(true)
  })

  // 'native' runs OpenSSL in the workers on Node >= 24.7 and falls back to noble elsewhere.
  for (const backend of ['noble', 'native'] as const) {
    it(`verifies ML-DSA-87 signatures in the workers (${backend}): true, false for wrong ones, false for malformed bytes`, async () => {
      pool = createPqcWorkerPool({}, { size: 2, backend })
      const id = Identity.generate(new Uint8Array(32).fill(7))
      const ctx = enc.encode('x/pool/v1')
      const msg = enc.encode('verify me')
      const sig = id.sign(msg, ctx)
      const bad = sig.slice()
      bad[100]! ^= 1
      expect(
        await Promise.all([
          pool.verify(id.publicKey, msg, sig, ctx),
          pool.verify(id.publicKey, msg, bad, ctx),
          pool.verify(id.publicKey, msg, sig), // other context
          pool.verify(id.publicKey, enc.encode('verify mE'), sig, ctx),
          pool.verify(Identity.generate(new Uint8Array(32).fill(8)).publicKey, msg, sig, ctx),
        ]),
      ).toEqual([true, false, false, false, false])
      // Hostile bytes of the right length reach a worker and come back false, never as a rejection.
      expect(await pool.verify(new Uint8Array(2592).fill(0xff), msg, sig, ctx)).toBe(false)
      expect(await pool.verify(id.publicKey, msg, new Uint8Array(4627).fill(0xff), ctx)).toBe(false)
      // Wrong lengths and types are answered without a worker.
      const before = pool.stats().completed
      expect(await pool.verify(id.publicKey.subarray(1), msg, sig, ctx)).toBe(false)
      expect(await pool.verify(id.publicKey, msg, sig.subarray(1), ctx)).toBe(false)
      expect(await pool.verify('key' as never, msg, sig, ctx)).toBe(false)
      expect(pool.stats().completed).toBe(before)
      expect(pool.stats()).toMatchObject({
        mode: 'worker_threads',
        backend: backend === 'native' && nodeHasMlDsa ? 'native' : 'noble',
      })
      await expect(pool.verify(id.publicKey, 'msg' as never, sig)).rejects.toThrow(TypeError)
      await expect(pool.verify(id.publicKey, msg, sig, new Uint8Array(256))).rejects.toThrow(RangeError)
    })

    it(`signs and verifies with a signing subkey in the workers (${backend})`, async () => {
      pool = createPqcWorkerPool({}, { size: 1, backend })
      const id = Identity.generate(new Uint8Array(32).fill(9))
      const subkey = deriveSigningSubkey(id, { label: 'x/pool-test/records' })
      const ctx = enc.encode('x/pool/records/v1')
      const msgs = Array.from({ length: 4 }, (_, i) => enc.encode(`record ${i}`))
      const sigs = await Promise.all(msgs.map((m) => pool!.signWithSubkey(subkey, m, ctx)))
      sigs.forEach((s, i) => {
        expect(s.length).toBe(2420)
        expect(verifySubkeySignature(subkey.publicKey, msgs[i]!, s, ctx)).toBe(true)
      })
      expect(await pool.verifySubkeySignature(subkey.publicKey, msgs[0]!, sigs[0]!, ctx)).toBe(true)
      expect(await pool.verifySubkeySignature(subkey.publicKey, msgs[0]!, sigs[1]!, ctx)).toBe(false)
      expect(await pool.verifySubkeySignature(subkey.publicKey, msgs[0]!, subkey.sign(msgs[0]!), ctx)).toBe(
        false,
      )
      expect(await pool.verifySubkeySignature(new Uint8Array(1312).fill(1), msgs[0]!, sigs[0]!, ctx)).toBe(
        false,
      )
      expect(await pool.verifySubkeySignature(subkey.publicKey, msgs[0]!, sigs[0]!.subarray(1), ctx)).toBe(
        false,
      )
      await expect(pool.signWithSubkey({} as never, msgs[0]!)).rejects.toThrow(TypeError)
    })
  }

  it('sizes itself from os.availableParallelism() (Node 20 has no navigator), one thread left, at most 4', async () => {
    const id = Identity.generate(new Uint8Array(32).fill(10))
    const spy = vi.spyOn(os, 'availableParallelism')
    for (const [cpus, workers] of [
      [3, 2],
      [64, 4],
      [1, 1],
    ] as const) {
      spy.mockReturnValue(cpus)
      pool = createPqcWorkerPool({}, { size: undefined })
      await pool.sign(id, enc.encode('size'))
      expect(pool.stats().workers).toBe(workers)
      await pool.close()
    }
    expect(spy).toHaveBeenCalled()
  })

  it('rejects pending and later jobs with X_PQC_CLOSED after close()', async () => {
    pool = createPqcWorkerPool({}, { size: 1 })
    const id = Identity.generate()
    const p = pool.sign(id, enc.encode('x')).catch((e: unknown) => e)
    await pool.close()
    expect(isPqcError(await p, 'X_PQC_CLOSED')).toBe(true)
    await expect(pool.sign(id, enc.encode('y'))).rejects.toSatisfy((e: unknown) =>
      isPqcError(e, 'X_PQC_CLOSED'),
    )
  })

  it('bounds its queue', async () => {
    pool = createPqcWorkerPool({}, { size: 1, maxPending: 1 })
    const id = Identity.generate()
    const first = pool.sign(id, enc.encode('a'))
    await expect(pool.sign(id, enc.encode('b'))).rejects.toSatisfy((e: unknown) =>
      isPqcError(e, 'X_PQC_WORKER_FAILED'),
    )
    await first
  })

  it.runIf(process.platform === 'linux')(
    'lowers the priority of its worker threads only, never the main thread (Linux)',
    async () => {
      const { readdirSync, readFileSync } = await import('node:fs')
      const { getPriority } = await import('node:os')
      const niceOfThreads = (): number[] =>
        readdirSync('/proc/self/task').map((tid) => {
          const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
        })
      const callerNice = getPriority()
      expect(callerNice).toBeLessThan(13) // the test assumes a caller running below nice 13
      const before = niceOfThreads().filter((n) => n === 13).length
      pool = createPqcWorkerPool({}, { size: 2, workerNice: 13 })
      const id = Identity.generate(new Uint8Array(32).fill(9))
      await Promise.all([pool.sign(id, enc.encode('a')), pool.sign(id, enc.encode('b'))])
      expect(pool.stats().workerNice).toBe(13)
      expect(niceOfThreads().filter((n) => n === 13).length - before).toBe(2)
      expect(getPriority()).toBe(callerNice)
    },
  )

  it('rejects a workerNice outside 0..19', () => {
    expect(() => createPqcWorkerPool({}, { workerNice: 20 })).toThrow(RangeError)
    expect(() => createPqcWorkerPool({}, { workerNice: -1 })).toThrow(RangeError)
    expect(() => createPqcWorkerPool({}, { workerNice: 1.5 })).toThrow(RangeError)
  })

  it('checks arguments as programmer errors', async () => {
    pool = createPqcWorkerPool()
    await expect(pool.sign(new Uint8Array(3), enc.encode('a'))).rejects.toThrow(RangeError)
    await expect(pool.sign(Identity.generate(), enc.encode('a'), new Uint8Array(256))).rejects.toThrow(
      RangeError,
    )
  })
})
