import { once } from 'node:events'
import { type AddressInfo, type Socket, createServer, connect } from 'node:net'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { Identity } from '../src/identity'
import { type HandshakePipe, createInitiator, createResponder, handshake } from '../src/session/handshake'

/** Largest frame accepted from the socket (bounded before buffering). */
const MAX_FRAME_BYTES = 2 * 1024 * 1024

/** u32 length-prefixed framing over a TCP socket: the kind of adapter a real link uses. */
function framed(socket: Socket): HandshakePipe & { frames: AsyncIterable<Uint8Array> } {
  let handler: ((b: Uint8Array) => void) | undefined
  let buffer = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk])
    while (buffer.length >= 4) {
      const n = buffer.readUInt32BE(0)
      if (n > MAX_FRAME_BYTES) {
        socket.destroy(new Error('frame too large'))
        return
      }
      if (buffer.length < 4 + n) break
      const frame = new Uint8Array(buffer.subarray(4, 4 + n))
      buffer = buffer.subarray(4 + n)
      handler?.(frame)
    }
  })
  return {
    send(bytes) {
      const head = Buffer.alloc(4)
      head.writeUInt32BE(bytes.length)
      socket.write(Buffer.concat([head, bytes]))
    },
    onMessage(h) {
      handler = h
      return () => {
        if (handler === h) handler = undefined
      }
    },
    frames: {
      [Symbol.asyncIterator]() {
        const queue: Uint8Array[] = []
        let wake: (() => void) | undefined
        handler = (b) => {
          queue.push(b)
          wake?.()
        }
        return {
          async next() {
            while (queue.length === 0) await new Promise<void>((r) => (wake = r))
            return { value: queue.shift()!, done: false }
          },
        }
      },
    },
  }
}

const sockets: Socket[] = []
const servers: ReturnType<typeof createServer>[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
})

describe('secure session over real TCP sockets (127.0.0.1)', () => {
  it.each(['kem', 'sig'] as const)(
    'handshakes (%s) and carries random records both ways, then closes',
    async (auth) => {
      const alice = Identity.generate()
      const bob = Identity.generate()
      const server = createServer()
      servers.push(server)
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      const accepted = once(server, 'connection') as Promise<[Socket]>
      const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
      sockets.push(client)
      const [serverSocket] = await accepted
      sockets.push(serverSocket)
      const cp = framed(client)
      const sp = framed(serverSocket)
      const [ci, si] = await Promise.all([
        handshake(cp, createInitiator({ identity: alice, auth, expectedPeerId: bob.idString })),
        handshake(sp, createResponder({ identity: bob, expectedPeerId: alice.idString })),
      ])
      expect(ci.peer.idString).toBe(bob.idString)
      expect(si.peer.idString).toBe(alice.idString)

      const messages = fc.sample(fc.uint8Array({ maxLength: 100_000 }), { numRuns: 40, seed: 42 })
      const serverFrames = sp.frames[Symbol.asyncIterator]()
      const clientFrames = cp.frames[Symbol.asyncIterator]()
      for (const m of messages) cp.send(ci.session.seal(m))
      for (const m of messages) expect(si.session.open((await serverFrames.next()).value)).toEqual(m)
      // Echo back in the other direction.
      for (const m of messages.slice(0, 10)) sp.send(si.session.seal(m))
      for (const m of messages.slice(0, 10))
        expect(ci.session.open((await clientFrames.next()).value)).toEqual(m)
      cp.send(ci.session.close())
      expect(si.session.open((await serverFrames.next()).value)).toHaveLength(0)
      expect(si.session.remoteClosed).toBe(true)
    },
  )
})
