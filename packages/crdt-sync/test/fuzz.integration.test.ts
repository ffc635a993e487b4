import { afterAll, beforeAll, expect, it } from 'vitest'
import fc from 'fast-check'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { createDocStore, createSyncServer, type DocStore, type SyncServer } from '../src/index'
import { tempLevel, type TempLevel } from './helpers'
import { connect, synced } from './ws-client'

let level: TempLevel
let store: DocStore
let server: SyncServer
let port: number
let ws: WebSocket
let waiting: { marker: string; resolve: () => void } | undefined
let barrierClock = 1_000_000_000
const BARRIER_CLIENT = 4242424

function frame(write: (e: encoding.Encoder) => void): Uint8Array {
  const e = encoding.createEncoder()
  write(e)
  return encoding.toUint8Array(e)
}

async function open(): Promise<WebSocket> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/precious`)
  socket.on('message', (data: Buffer) => {
    if (waiting && data[0] === 1 && data.toString('latin1').includes(waiting.marker)) waiting.resolve()
  })
  await new Promise((r) => socket.once('open', r))
  return socket
}

/** Messages are handled in order: once our marked awareness update is echoed, every earlier frame was processed. */
async function barrier(): Promise<void> {
  if (ws.readyState !== WebSocket.OPEN) ws = await open()
  const clock = ++barrierClock
  const marker = `"b":${clock}`
  const echoed = new Promise<void>((resolve) => (waiting = { marker, resolve }))
  const state = new TextEncoder().encode(`{${marker}}`)
  const awareness = frame((e) => {
    encoding.writeVarUint(e, 1) // one client
    encoding.writeVarUint(e, BARRIER_CLIENT)
    encoding.writeVarUint(e, clock)
    encoding.writeVarUint8Array(e, state)
  })
  ws.send(frame((e) => (encoding.writeVarUint(e, 1), encoding.writeVarUint8Array(e, awareness))))
  await echoed
}

const original = new Y.Doc()
original.getText('t').insert(0, 'precious')
const validUpdate = Y.encodeStateAsUpdate(original)
const templates = [
  frame(
    (e) => (
      encoding.writeVarUint(e, 0),
      encoding.writeVarUint(e, 0),
      encoding.writeVarUint8Array(e, Y.encodeStateVector(original))
    ),
  ),
  frame(
    (e) => (
      encoding.writeVarUint(e, 0),
      encoding.writeVarUint(e, 2),
      encoding.writeVarUint8Array(e, validUpdate)
    ),
  ),
  frame(
    (e) => (encoding.writeVarUint(e, 1), encoding.writeVarUint8Array(e, new TextEncoder().encode('{"x":'))),
  ),
  frame(
    (e) => (encoding.writeVarUint(e, 0), encoding.writeVarUint(e, 2), encoding.writeVarUint(e, 0xffffffff)),
  ),
  new Uint8Array([0, 1]),
  new Uint8Array([9]),
]

beforeAll(async () => {
  level = await tempLevel()
  store = createDocStore({ db: level.db })
  server = createSyncServer({ store }, { maxBadMessages: 1e9 })
  port = (await server.listen({ port: 0 })).port
  await store.applyUpdate('precious', validUpdate)
  ws = await open()
})

afterAll(async () => {
  ws.terminate()
  await server.close()
  await store.close()
  await level.dispose()
})

it('survives malformed sync frames with typed errors, leaving the document unharmed', async () => {
  const arbFrame = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 64 }),
    // a valid frame's prefix (truncation) followed by random bytes
    fc
      .tuple(fc.constantFrom(...templates), fc.nat(), fc.uint8Array({ maxLength: 16 }))
      .map(([t, cut, tail]) => {
        const head = t.subarray(0, cut % (t.length + 1))
        return Uint8Array.from([...head, ...tail])
      }),
    // a message type and sync type that exist, with a random payload
    fc
      .tuple(fc.constantFrom(0, 1, 3), fc.constantFrom(0, 1, 2), fc.uint8Array({ maxLength: 48 }))
      .map(([t, s, p]) =>
        frame(
          (e) => (
            encoding.writeVarUint(e, t),
            encoding.writeVarUint(e, s),
            encoding.writeVarUint8Array(e, p)
          ),
        ),
      ),
  )
  await fc.assert(
    fc.asyncProperty(fc.array(arbFrame, { minLength: 1, maxLength: 8 }), async (frames) => {
      for (const f of frames) if (ws.readyState === WebSocket.OPEN) ws.send(f)
      await barrier()
      expect(store.get('precious')?.getText('t').toJSON()).toBe('precious')
    }),
    { numRuns: 300 },
  )
  const errors = server.getStats().errors
  expect(errors.X_CRDT_BAD_MESSAGE ?? 0).toBeGreaterThan(0)
  // A fresh, real client still gets the intact document.
  const p = connect(port, 'precious')
  await synced(p)
  expect(p.doc.getText('t').toJSON()).toBe('precious')
  p.destroy()
})

it('closes a connection with 1007 after maxBadMessages malformed frames', async () => {
  const strict = createSyncServer({ store }, { maxBadMessages: 3 })
  const { port: p } = await strict.listen({ port: 0 })
  const socket = new WebSocket(`ws://127.0.0.1:${p}/precious`)
  await new Promise((r) => socket.once('open', r))
  const closed = new Promise<number>((r) => socket.once('close', (c: number) => r(c)))
  for (let i = 0; i < 3; i++) socket.send(new Uint8Array([0, 7]))
  expect(await closed).toBe(1007)
  await strict.close()
})
