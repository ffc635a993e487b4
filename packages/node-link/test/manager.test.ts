import { describe, expect, it } from 'vitest'
import { createLinkManager, isLinkError, type HelloEvent } from '../src/index'
import { allowAnyAddress, createTestSecure } from '../src/testing'
import { dec, enc, nodeIdOf, settle, testNet } from './helpers'

describe('link manager over the memory transport', () => {
  it('links two nodes, exchanges hellos, and carries channels both ways', async () => {
    const { make } = testNet()
    const hello = Uint8Array.of(9, 8, 7)
    const a = await make(1, { helloData: hello })
    const b = await make(2)
    const hellos: HelloEvent[] = []
    b.links.on('hello', (e) => hellos.push(e))
    const opened: string[] = []
    a.links.on('open', (e) => opened.push(e.nodeId))
    const got: string[] = []
    b.links.onChannel(2, (from, p) => got.push(`${from}:${dec.decode(p)}`))
    const back: number[][] = []
    a.links.onChannel(3, (_from, p) => back.push([...p]))

    const link = await a.links.connect(b.id, b.address)
    expect(link).toMatchObject({ nodeId: b.id, direction: 'outbound', state: 'open' })
    expect(opened).toEqual([b.id])
    expect(a.links.send(b.id, 2, enc.encode('frame-1'))).toBe(true)
    await settle()
    expect(b.links.send(a.id, 3, Uint8Array.of(1, 2, 3))).toBe(true)
    await settle()
    expect(got).toEqual([`${a.id}:frame-1`])
    expect(back).toEqual([[1, 2, 3]])
    expect(hellos).toHaveLength(1)
    expect(hellos[0]).toMatchObject({ nodeId: a.id, address: a.address })
    expect([...hellos[0]!.data!]).toEqual([9, 8, 7])
    expect(b.links.addressOf(a.id)).toBe(a.address)
    expect(b.links.connectedNodes()).toEqual([a.id])
    expect(a.links.getStats()).toMatchObject({ links: 1, connectedNodes: 1, handshakes: 1 })
  })

  it('refuses a node whose handshake proves another identity than the one dialed', async () => {
    const { make } = testNet()
    const a = await make(3)
    const b = await make(4)
    const err: unknown = await a.links.connect(nodeIdOf(5), b.address).catch((e: unknown) => e)
    expect(isLinkError(err, 'X_LINK_HANDSHAKE_FAILED')).toBe(true)
    expect((err as Error).cause).toMatchObject({ code: 'X_TEST_IDENTITY_MISMATCH' })
    expect(a.links.connectedNodes()).toEqual([])
    expect(a.links.getStats().handshakeFailures).toBe(1)
  })

  it('keeps a wanted link up: redials with back-off after the connection drops', async () => {
    const { make, net, clock } = testNet()
    const a = await make(6)
    const b = await make(7)
    const events: string[] = []
    a.links.on('open', () => events.push('open'))
    a.links.on('close', () => events.push('close'))
    a.links.want(b.id, b.address)
    await settle()
    expect(a.links.isOpen(b.id)).toBe(true)
    net.cut(b.address)
    await settle()
    expect(a.links.isOpen(b.id)).toBe(false)
    clock.advance(2_000) // first back-off: 1 s ± 25 %
    await settle()
    expect(a.links.isOpen(b.id)).toBe(true)
    expect(events).toEqual(['open', 'close', 'open'])
    expect(a.links.getStats().handshakes).toBe(2)
  })

  it('sendOrDial rejects visibly: no address, unreachable, and after close()', async () => {
    const { make } = testNet()
    const a = await make(8)
    await expect(a.links.sendOrDial(nodeIdOf(99), 2, Uint8Array.of(1))).rejects.toMatchObject({
      code: 'X_LINK_NO_ADDRESS',
    })
    await expect(
      a.links.sendOrDial(nodeIdOf(99), 2, Uint8Array.of(1), { address: 'ws://10.9.9.9:1' }),
    ).rejects.toMatchObject({ code: 'X_LINK_DIAL_FAILED' })
    await a.links.close()
    await expect(a.links.connect(nodeIdOf(99), 'ws://10.9.9.9:1')).rejects.toMatchObject({
      code: 'X_LINK_CLOSED',
    })
  })

  it('closes a link on a record that does not open (tampered, replayed, reordered)', async () => {
    const { make, net } = testNet()
    const b = await make(11)
    const got: number[] = []
    b.links.onChannel(2, (_f, p) => got.push(p[0]!))
    // A raw peer: dial, run the stand-in handshake by hand, then send one good record and a replay of it.
    const pipe = await net
      .transport('ws://10.0.0.99:7000')
      .dial(b.address, { signal: new AbortController().signal })
    let handler: ((bytes: Uint8Array) => void) | undefined
    pipe.onMessage((bytes) => handler?.(bytes))
    let closed = false
    pipe.onClose(() => (closed = true))
    const channel = await createTestSecure(nodeIdOf(50))(
      {
        send: (bytes) => pipe.send(bytes),
        onMessage: (h) => {
          handler = h
          return () => (handler = undefined)
        },
      },
      {
        role: 'initiator',
        expectedPeerId: b.id,
        prologue: new Uint8Array(0),
        signal: new AbortController().signal,
      },
    )
    const good = channel.seal(Uint8Array.of(2, 42))
    pipe.send(good)
    await settle()
    expect(got).toEqual([42])
    pipe.send(good) // replayed
    await settle()
    expect(b.links.getStats().badRecords).toBe(1)
    expect(b.links.isOpen(nodeIdOf(50))).toBe(false)
    expect(closed).toBe(true)
    expect(got).toEqual([42])
  })

  it('drops a hello address that is not a plain ws:// host and port (no path, query or user info)', async () => {
    const { make } = testNet()
    const a = await make(12)
    // A hello whose address carries a path: the manager refuses it at init for itself…
    expect(() =>
      createLinkManager(
        { transport: {} as never, secure: createTestSecure('x') },
        { nodeId: 'x', address: 'ws://10.0.0.1:1/evil?x=' },
      ),
    ).toThrow(TypeError)
    // …and a peer that announces one anyway is remembered without it (see wire.test.ts for the parser).
    expect(a.links.addressOf(nodeIdOf(13))).toBeUndefined()
  })

  it('a throwing channel or event handler does not break the link', async () => {
    const { make } = testNet()
    const a = await make(14)
    const b = await make(15)
    b.links.onChannel(2, () => {
      throw new Error('boom')
    })
    b.links.on('hello', () => {
      throw new Error('boom')
    })
    const got: number[] = []
    b.links.onChannel(2, (_f, p) => got.push(p[0]!))
    await a.links.sendOrDial(b.id, 2, Uint8Array.of(1), { address: b.address })
    await a.links.sendOrDial(b.id, 2, Uint8Array.of(2))
    await settle()
    expect(got).toEqual([1, 2])
  })

  it('close() closes every link with the peer seeing it, and stops redialing', async () => {
    const { make, clock } = testNet()
    const a = await make(16)
    const b = await make(17)
    a.links.want(b.id, b.address)
    await settle()
    const closed: string[] = []
    b.links.on('close', (e) => closed.push(e.nodeId))
    const done = a.links.close()
    await settle()
    await done
    expect(closed).toEqual([a.id])
    expect(a.links.list()).toEqual([])
    clock.advance(60_000)
    await settle()
    expect(b.links.list()).toEqual([])
  })

  it('checks its arguments (programmer errors are TypeError / RangeError naming the argument)', async () => {
    const { make } = testNet()
    const a = await make(18)
    expect(() => a.links.send(nodeIdOf(1), 1, Uint8Array.of(1))).toThrow(/"channel"/)
    expect(() => a.links.send(nodeIdOf(1), 256, Uint8Array.of(1))).toThrow(RangeError)
    expect(() => a.links.send(nodeIdOf(1), 2, 'x' as never)).toThrow(/"payload"/)
    expect(() => a.links.onChannel(2, 'x' as never)).toThrow(/"handler"/)
    expect(() => a.links.on('nope' as never, () => undefined)).toThrow(TypeError)
    expect(() => a.links.connect('')).toThrow(/"nodeId"/)
    expect(() =>
      createLinkManager({ transport: {} as never, secure: createTestSecure('x') }, { nodeId: 'x' }),
    ).toThrow(/"transport"/)
    expect(() =>
      createLinkManager(
        {
          transport: { listen() {}, dial: () => Promise.reject(new Error()), close() {} },
          secure: createTestSecure('x'),
          dialPolicy: allowAnyAddress,
        },
        { nodeId: 'x', maxLinks: 0 },
      ),
    ).toThrow(/"maxLinks"/)
  })
})
