import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createSignalingClient, type SignalingClient } from '../src/client'
import { createSignalingServer, type SignalingServer } from '../src/index'
import { components, ed25519Identity, type TestIdentity } from './helpers'

const servers: SignalingServer[] = []
const clients: SignalingClient[] = []

async function start(port = 0): Promise<{ url: string; port: number }> {
  const server = createSignalingServer(components)
  servers.push(server)
  const address = await server.listen({ port, host: '127.0.0.1' })
  return { url: `ws://127.0.0.1:${address.port}/p2p-signaling`, port: address.port }
}

function client(url: string, identity: TestIdentity = ed25519Identity()): SignalingClient {
  const c = createSignalingClient(
    { publicKey: identity.publicKey, sign: identity.sign, WebSocket: WebSocket as never },
    { url, minReconnectDelayMs: 20, maxReconnectDelayMs: 200 },
  )
  clients.push(c)
  return c
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await Promise.all(servers.splice(0).map((s) => s.close()))
})

describe('client', () => {
  it('registers, signals, joins and discovers', async () => {
    const { url } = await start()
    const ia = ed25519Identity()
    const a = client(url, ia)
    const b = client(url)
    expect(await a.connect()).toBe(ia.id)
    const idB = await b.connect()
    const received = new Promise((resolve) => b.on('signal', resolve))
    a.signal('offer', idB, { type: 'offer', sdp: 'v=0' })
    expect(await received).toEqual({ type: 'offer', from: ia.id, data: { type: 'offer', sdp: 'v=0' } })
    await a.join('room')
    expect(await b.discover('room')).toEqual([ia.id])
    await a.leave('room')
    expect(await b.discover('room')).toEqual([])
  })

  it('reports PEER_NOT_FOUND and expire as events', async () => {
    const server = createSignalingServer(components, { holdMs: 0 })
    servers.push(server)
    const { port } = await server.listen({ port: 0 })
    const a = client(`ws://127.0.0.1:${port}/p2p-signaling`)
    await a.connect()
    const error = new Promise<{ code: string; to?: string }>((resolve) => a.on('error', resolve))
    a.signal('offer', 'nobody', {})
    expect(await error).toMatchObject({ code: 'X_SIG_PEER_NOT_FOUND', to: 'nobody' })
  })

  it('reconnects with back-off after the server goes away and re-joins its topics', async () => {
    const first = await start()
    const ia = ed25519Identity()
    const a = client(first.url, ia)
    await a.connect()
    await a.join('room')
    const attempts: number[] = []
    a.on('reconnecting', (r) => attempts.push(r.delayMs))
    const reopened = new Promise((resolve) => a.on('open', resolve))
    await servers.shift()!.close()
    await new Promise((resolve) => setTimeout(resolve, 100))
    await start(first.port)
    expect(await reopened).toEqual({ id: ia.id })
    expect(attempts.length).toBeGreaterThanOrEqual(1)
    for (const d of attempts) expect(d).toBeLessThanOrEqual(200)
    const b = client(first.url)
    await b.connect()
    await expect.poll(() => b.discover('room')).toEqual([ia.id])
  })

  it('rejects connect when authentication fails for good', async () => {
    const { url } = await start()
    const id = ed25519Identity()
    const c = createSignalingClient(
      { publicKey: id.publicKey, sign: () => new Uint8Array(64), WebSocket: WebSocket as never },
      { url, reconnect: false },
    )
    clients.push(c)
    await expect(c.connect()).rejects.toMatchObject({ code: 'X_SIG_UNAUTHENTICATED' })
  })
})
