/** Smoke test of the `ws` transport on 127.0.0.1 (real sockets, port 0); the protocol itself is covered in memory. */
import { createServer, type Server } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import {
  createDialPolicy,
  createLinkManager,
  createWsTransport,
  LINK_PATH,
  type LinkManager,
  type LinkManagerInit,
} from '../src/index'
import { createTestSecure } from '../src/testing'
import { encodeControl, encodeFrame, CONTROL_CHANNEL } from '../src/wire'
import { enc, nodeIdOf } from './helpers'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

async function waitFor(fn: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 10))
  if (!fn()) throw new Error(`timed out waiting for ${what}`)
}

async function wsNode(
  n: number,
  init: Partial<LinkManagerInit> = {},
): Promise<{ id: string; url: string; links: LinkManager }> {
  const id = nodeIdOf(n)
  const transport = createWsTransport({ port: 0 })
  // The address is known once listening; announce it by creating the manager after a first listen.
  const links = createLinkManager(
    { transport, secure: createTestSecure(id), dialPolicy: createDialPolicy({ allowPrivate: true }) },
    { nodeId: id, ...init },
  )
  await links.start()
  cleanups.push(() => links.close())
  return { id, url: `ws://127.0.0.1:${transport.port!}`, links }
}

describe('links over real WebSockets', () => {
  it('link two nodes on 127.0.0.1 and carry frames both ways', async () => {
    const a = await wsNode(1)
    const b = await wsNode(2)
    const got: string[] = []
    b.links.onChannel(2, (from, p) => got.push(`${from.slice(-1)}:${new TextDecoder().decode(p)}`))
    const back: number[] = []
    a.links.onChannel(3, (_f, p) => back.push(p[0]!))
    await a.links.sendOrDial(b.id, 2, enc.encode('one'), { address: b.url })
    await waitFor(() => got.length === 1, 'the first frame')
    expect(b.links.send(a.id, 3, Uint8Array.of(7))).toBe(true)
    await waitFor(() => back.length === 1, 'the answer')
    expect(got).toEqual(['1:one'])
    expect(back).toEqual([7])
  })

  it('answers 429 before the WebSocket upgrade when the handshake rate is spent', async () => {
    const b = await wsNode(3, { handshakeBurstPerAddress: 1, handshakesPerAddressPerSecond: 0.001 })
    const status = (): Promise<number | 'open'> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`${b.url}${LINK_PATH}`)
        ws.on('open', () => {
          ws.terminate()
          resolve('open')
        })
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
        ws.on('error', () => undefined)
      })
    expect(await status()).toBe('open')
    expect(await status()).toBe(429)
  })

  it('never dials an address a peer announced with a path or query (the blind SSRF of issue 17)', async () => {
    // A plain TCP server that records every request it gets: the victim must never send it one.
    const requests: string[] = []
    const trap: Server = createServer((socket) => socket.on('data', (d) => requests.push(d.toString())))
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r))
    cleanups.push(() => new Promise((r) => trap.close(r)))
    const trapPort = (trap.address() as { port: number }).port
    const victim = await wsNode(4)
    // The attacker links to the victim over a raw WebSocket and announces a hostile address in its hello.
    const attackerId = nodeIdOf(5)
    const ws = new WebSocket(`${victim.url}${LINK_PATH}`)
    cleanups.push(() => ws.terminate())
    await new Promise((r) => ws.once('open', r))
    let handler: ((b: Uint8Array) => void) | undefined
    ws.on('message', (d: Buffer) => handler?.(new Uint8Array(d)))
    const channel = await createTestSecure(attackerId)(
      {
        send: (b) => ws.send(b),
        onMessage: (h) => {
          handler = h
          return () => (handler = undefined)
        },
      },
      {
        role: 'initiator',
        expectedPeerId: victim.id,
        prologue: new Uint8Array(0),
        signal: new AbortController().signal,
      },
    )
    const evil = `ws://127.0.0.1:${trapPort}/attacker-chosen-path?x=`
    ws.send(
      channel.seal(
        encodeFrame(CONTROL_CHANNEL, encodeControl({ type: 'hello', address: evil, data: undefined })),
      ),
    )
    await waitFor(() => victim.links.connectedNodes().length === 1, 'the attacker link')
    ws.terminate()
    await waitFor(() => victim.links.connectedNodes().length === 0, 'the drop')
    expect(victim.links.addressOf(attackerId)).toBeUndefined()
    await expect(victim.links.sendOrDial(attackerId, 2, enc.encode('x'))).rejects.toMatchObject({
      code: 'X_LINK_NO_ADDRESS',
    })
    await expect(victim.links.connect(attackerId, evil)).rejects.toMatchObject({
      code: 'X_LINK_DIAL_REFUSED',
    })
    await new Promise((r) => setTimeout(r, 100))
    expect(requests).toEqual([])
  })
})
