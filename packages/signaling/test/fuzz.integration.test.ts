import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createSignalingServer, type SignalingServer } from '../src/index'
import { connected, registered, RawClient } from './helpers'

// Seeded, so a failure is reproducible: re-run with FUZZ_SEED=<printed seed>.
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)
const PATHS = ['/p2p-signaling', '/y-webrtc', '/peerjs?key=peerjs&id=fuzz&token=t'] as const

let server: SignalingServer
let base: string

beforeAll(async () => {
  server = createSignalingServer(
    { verify: () => false, peerIdFromPublicKey: () => 'fuzz-peer' },
    { maxFrameBytes: 4096, rateLimitPerSec: 1e6, rateLimitBurst: 1e6 },
  )
  const { port } = await server.listen({ port: 0 })
  base = `ws://127.0.0.1:${port}`
})
afterAll(() => server.close())

/** Sends every frame on a fresh connection, then proves the connection (if still open) and the server answer. */
async function blast(path: string, frames: (string | Uint8Array)[], asText = false): Promise<void> {
  const c = await connected(base + path)
  for (const f of frames) {
    if (c.ws.readyState !== WebSocket.OPEN) break
    c.ws.send(f, { binary: typeof f !== 'string' && !asText })
  }
  if (c.ws.readyState === WebSocket.OPEN) {
    // A probe answered after every earlier frame proves the server handled them all without dying.
    const peerjs = path.startsWith('/peerjs')
    c.ws.send(peerjs ? '{"type":"OFFER","dst":"fuzz","payload":"probe"}' : '{"type":"ping"}')
    for (;;) {
      const m = (await Promise.race([c.next(), c.closed.then(() => 'closed')])) as
        Record<string, unknown> | string
      if (m === 'closed' || (typeof m === 'object' && (m.type === 'pong' || m.payload === 'probe'))) break
    }
  }
  c.close()
  await c.closed
}

const fuzzyMessage = fc.record(
  {
    type: fc.oneof(
      fc.constantFrom('offer', 'answer', 'candidate', 'register', 'join', 'leave', 'discover', 'ping'),
      fc.constantFrom(
        'subscribe',
        'unsubscribe',
        'publish',
        'OFFER',
        'CANDIDATE',
        'LEAVE',
        'EXPIRE',
        'HEARTBEAT',
      ),
      fc.string(),
      fc.jsonValue(),
    ),
    to: fc.oneof(fc.string(), fc.jsonValue()),
    dst: fc.oneof(fc.string(), fc.jsonValue()),
    data: fc.jsonValue(),
    topic: fc.oneof(fc.string(), fc.jsonValue()),
    topics: fc.oneof(fc.array(fc.string()), fc.jsonValue()),
    publicKey: fc.oneof(fc.base64String(), fc.jsonValue()),
    signature: fc.oneof(fc.base64String(), fc.jsonValue()),
    rid: fc.jsonValue(),
    v: fc.jsonValue(),
  },
  { requiredKeys: [] },
)

describe(`fuzz against a live server (seed ${SEED})`, () => {
  it('survives random bytes as text and binary frames', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS),
        fc.array(fc.uint8Array({ maxLength: 6000 }), { maxLength: 8 }),
        fc.array(fc.string({ unit: 'binary', maxLength: 300 }), { maxLength: 8 }),
        fc.boolean(),
        async (path, bytes, texts, bytesAsText) => blast(path, [...bytes, ...texts], bytesAsText),
      ),
      { seed: SEED, numRuns: 60 },
    )
  })

  it('survives random JSON and shape-aware random messages', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS),
        fc.array(fc.oneof(fc.jsonValue(), fuzzyMessage), { maxLength: 12 }),
        async (path, msgs) =>
          blast(
            path,
            msgs.map((m) => JSON.stringify(m) ?? 'null'),
          ),
      ),
      { seed: SEED, numRuns: 120 },
    )
  })

  it('survives huge frames: TOO_LARGE under the hard limit, 1009 above it', async () => {
    const c = await connected(base + '/p2p-signaling')
    await c.next()
    c.send('{"type":"ping","x":"' + 'a'.repeat(8000) + '"}')
    expect(await c.next()).toMatchObject({ code: 'TOO_LARGE' })
    c.ws.send(Buffer.alloc(8 * 1024 * 1024, 0x7b))
    expect(await c.closed).toBe(1009)
    const pj = new RawClient(base + '/y-webrtc')
    await pj.open()
    pj.send('x'.repeat(1 << 20))
    expect(await pj.closed).toBe(1009)
  })

  it('still serves a well-behaved peer afterwards, and counted the rejects', async () => {
    const ok = createSignalingServer({ verify: () => true, peerIdFromPublicKey: () => 'p1' }, {})
    const { port } = await ok.listen({ port: 0 })
    const a = await registered(`ws://127.0.0.1:${port}/p2p-signaling`)
    a.send({ type: 'ping' })
    expect(await a.next()).toEqual({ type: 'pong' })
    a.close()
    await ok.close()
    expect(server.getStats().rejected).toBeGreaterThan(100)
    const c = await connected(base + '/p2p-signaling')
    c.send({ type: 'ping' })
    await c.next() // challenge
    expect(await c.next()).toEqual({ type: 'pong' })
    c.close()
  })
})
