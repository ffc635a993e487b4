import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { registered, RawClient } from './helpers'

describe('close() under load', () => {
  it('closes every socket with 1001, leaves no handle, and the process exits on its own', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('fixtures/close-under-load.ts', import.meta.url))],
      { stdio: ['pipe', 'pipe', 'inherit'], cwd: fileURLToPath(new URL('..', import.meta.url)) },
    )
    const lines: Record<string, unknown>[] = []
    let waiter: (() => void) | undefined
    let buffer = ''
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString()
      let nl: number
      while ((nl = buffer.indexOf('\n')) !== -1) {
        lines.push(JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>)
        buffer = buffer.slice(nl + 1)
        waiter?.()
      }
    })
    const nextLine = async () => {
      while (lines.length === 0) await new Promise<void>((r) => (waiter = r))
      return lines.shift()!
    }
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const { port } = (await nextLine()) as { port: number }

    const native = await Promise.all(
      Array.from({ length: 100 }, () => registered(`ws://127.0.0.1:${port}/p2p-signaling`)),
    )
    const others = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const c = new RawClient(
          i % 2 === 0
            ? `ws://127.0.0.1:${port}/y-webrtc`
            : `ws://127.0.0.1:${port}/peerjs?key=peerjs&id=p${i}&token=t`,
        )
        await c.open()
        if (i % 2 === 0) c.send({ type: 'subscribe', topics: ['room'] })
        return c
      }),
    )
    // Load: every native peer streams candidates to its neighbour, y-webrtc clients publish, until closed.
    let stop = false
    const pump = () => {
      if (stop) return
      for (let i = 0; i < native.length; i++) {
        const c = native[i]!
        if (c.ws.readyState === c.ws.OPEN) {
          c.send({
            type: 'candidate',
            to: native[(i + 1) % native.length]!.id,
            data: { candidate: 'x'.repeat(200) },
          })
        }
      }
      for (const c of others)
        if (c.ws.readyState === c.ws.OPEN) c.send({ type: 'publish', topic: 'room', data: 'x' })
      setImmediate(pump)
    }
    pump()
    await new Promise((r) => setTimeout(r, 300))
    child.stdin.write('close\n')
    const report = (await nextLine()) as {
      before: { connections: number; relayed: number }
      after: { connections: number; peers: number }
      resources: string[]
    }
    stop = true
    expect(report.before.connections).toBe(150)
    expect(report.before.relayed).toBeGreaterThan(1000)
    expect(report.after).toMatchObject({ connections: 0, peers: 0 })
    expect(report.resources).toEqual([])
    expect(await exited).toBe(0)
    const codes = await Promise.all([...native, ...others].map((c) => c.closed))
    expect(new Set(codes)).toEqual(new Set([1001]))
  }, 60_000)
})
