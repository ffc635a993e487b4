import wrtc from '@roamhq/wrtc'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { attachPerfectNegotiation, createSignalingClient, type SignalingClient } from '../src/client'
import { createSignalingServer, type SignalingServer } from '../src/index'
import { startTestFederation, type TestFederation } from '../src/testing'
import { components, ed25519Identity } from './helpers'

const cleanups: (() => unknown)[] = []

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

async function peer(url: string) {
  const identity = ed25519Identity()
  const client = createSignalingClient(
    { publicKey: identity.publicKey, sign: identity.sign, WebSocket: WebSocket as never },
    { url },
  )
  cleanups.push(() => client.close())
  await client.connect()
  // No STUN/TURN: host candidates on 127.0.0.1 are enough on one machine.
  const pc = new wrtc.RTCPeerConnection({ iceServers: [] })
  cleanups.push(() => pc.close())
  return { id: identity.id, client, pc }
}

function wire(self: { id: string; client: SignalingClient; pc: RTCPeerConnection }, remoteId: string): void {
  const negotiation = attachPerfectNegotiation(self.pc as never, {
    polite: self.id < remoteId,
    send: (type, data) => self.client.signal(type, remoteId, data),
  })
  self.client.on('signal', (s) => {
    if (s.from === remoteId) void negotiation.handle(s.type, s.data)
  })
}

async function exchange(urlA: string, urlB: string): Promise<string> {
  const a = await peer(urlA)
  const b = await peer(urlB)
  wire(a, b.id)
  wire(b, a.id)
  const received = new Promise<string>((resolve) => {
    b.pc.ondatachannel = (ev) => {
      ev.channel.onmessage = (m) => resolve(String(m.data))
    }
  })
  const channel = a.pc.createDataChannel('chat')
  channel.onopen = () => channel.send('hello over a real data channel')
  return received
}

describe('real WebRTC through the server (@roamhq/wrtc)', () => {
  it('two peers on one server open a data channel and exchange a message', async () => {
    const server: SignalingServer = createSignalingServer(components)
    cleanups.push(() => server.close())
    const { port } = await server.listen({ port: 0 })
    const url = `ws://127.0.0.1:${port}/p2p-signaling`
    expect(await exchange(url, url)).toBe('hello over a real data channel')
    expect(server.getStats().relayed).toBeGreaterThanOrEqual(2)
  })

  it('two peers on two federated servers do the same', async () => {
    const fed: TestFederation = await startTestFederation(2, components)
    cleanups.push(() => fed.close())
    expect(await exchange(`${fed.urls[0]}/p2p-signaling`, `${fed.urls[1]}/p2p-signaling`)).toBe(
      'hello over a real data channel',
    )
    expect(fed.servers[0]!.getStats().forwarded).toBeGreaterThanOrEqual(1)
    expect(fed.servers[1]!.getStats().forwarded).toBeGreaterThanOrEqual(1)
  })
})
