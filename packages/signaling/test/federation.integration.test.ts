import { afterEach, describe, expect, it } from 'vitest'
import { startTestFederation, type TestFederation } from '../src/testing'
import { components, registered, type RawClient } from './helpers'

let fed: TestFederation | undefined
const clients: RawClient[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await fed?.close()
  fed = undefined
})

async function peerOn(i: number) {
  const c = await registered(`${fed!.urls[i]}/p2p-signaling`)
  clients.push(c)
  return c
}

describe('federation', () => {
  it('a peer on server A reaches a peer on server C, and back', async () => {
    fed = await startTestFederation(3, components)
    const a = await peerOn(0)
    await peerOn(1)
    const c = await peerOn(2)
    await expect.poll(() => fed!.directory.records.get(c.id)).toBe('node-2')
    a.send({ type: 'offer', to: c.id, data: { sdp: 'offer-from-a' } })
    expect(await c.next()).toEqual({ type: 'offer', from: a.id, to: c.id, data: { sdp: 'offer-from-a' } })
    c.send({ type: 'answer', to: a.id, data: { sdp: 'answer-from-c' } })
    expect(await a.next()).toEqual({ type: 'answer', from: c.id, to: a.id, data: { sdp: 'answer-from-c' } })
    // a burst keeps its order across the lookup and the relay
    for (let i = 0; i < 20; i++) a.send({ type: 'candidate', to: c.id, data: { i } })
    for (let i = 0; i < 20; i++) expect((await c.next()).data).toEqual({ i })
    expect(fed.servers[0]!.getStats().forwarded).toBe(21)
  })

  it('discovers topic members across servers', async () => {
    fed = await startTestFederation(3, components)
    const a = await peerOn(0)
    const c = await peerOn(2)
    a.send({ type: 'join', topic: 'room' })
    await a.next()
    c.send({ type: 'discover', topic: 'room' })
    expect(await c.next()).toEqual({ type: 'peers', topic: 'room', peers: [a.id] })
  })

  it('withdraws a departed peer and answers PEER_NOT_FOUND through the relay', async () => {
    fed = await startTestFederation(3, components)
    const a = await peerOn(0)
    const c = await peerOn(2)
    a.send({ type: 'offer', to: c.id, data: {} })
    await c.next() // route to node-2 is now cached on node-0
    c.close()
    await expect.poll(() => fed!.directory.records.has(c.id)).toBe(false)
    a.send({ type: 'offer', to: c.id, data: {} })
    expect(await a.next()).toMatchObject({ type: 'error', code: 'PEER_NOT_FOUND', to: c.id })
  })
})
