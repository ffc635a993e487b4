import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import wrtc from '@roamhq/wrtc'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createSignalingServer, type SignalingServer } from '../src/index'
import { components, RawClient } from './helpers'

let server: SignalingServer | undefined
const cleanups: (() => unknown)[] = []

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
  await server?.close()
  server = undefined
})

async function start(): Promise<number> {
  server = createSignalingServer(components)
  return (await server.listen({ port: 0 })).port
}

describe('/y-webrtc with the real y-webrtc client', () => {
  it('two docs sync over a real WebRTC data channel', async () => {
    const port = await start()
    const url = `ws://127.0.0.1:${port}/y-webrtc`
    ;(globalThis as { WebSocket?: unknown }).WebSocket = WebSocket
    const Y = await import('yjs')
    const { WebrtcProvider } = await import('y-webrtc')
    const doc = new Y.Doc()
    const provider = new WebrtcProvider('x-room', doc, {
      signaling: [url],
      peerOpts: { wrtc, config: { iceServers: [] } },
    })
    cleanups.push(() => {
      provider.destroy()
      doc.destroy()
    })
    doc.getText('t').insert(0, 'hello from the parent')
    const reply = new Promise<string>((resolve) =>
      doc.getMap('m').observe(() => resolve(String(doc.getMap('m').get('reply')))),
    )
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('fixtures/y-webrtc-peer.mjs', import.meta.url)), url, 'x-room'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    cleanups.push(() => child.kill())
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const exitCode = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    expect(JSON.parse(out.trim())).toMatchObject({ ok: true, webrtcConns: 1 })
    expect(exitCode).toBe(0)
    expect(await reply).toBe('hi back over 1 webrtc conn(s)')
    expect(server!.getStats().relayed).toBeGreaterThan(2)
  })

  it('refuses publishing to a topic the connection has not subscribed, and survives garbage', async () => {
    const port = await start()
    const url = `ws://127.0.0.1:${port}/y-webrtc`
    const sub = new RawClient(url)
    const intruder = new RawClient(url)
    cleanups.push(
      () => sub.close(),
      () => intruder.close(),
    )
    await Promise.all([sub.open(), intruder.open()])
    sub.send({ type: 'subscribe', topics: ['room'] })
    intruder.send('{"type":')
    intruder.send({ type: 'publish', topic: 'room', data: 'spam' })
    intruder.send({ type: 'ping' })
    expect(await intruder.next()).toEqual({ type: 'pong' })
    sub.send({ type: 'publish', topic: 'room', data: 'legit' })
    expect(await sub.next()).toEqual({ type: 'publish', topic: 'room', data: 'legit', clients: 1 })
    expect(server!.getStats().rejected).toBe(2)
  })
})

describe('/peerjs with the real peerjs client', () => {
  it('two peers message over a real data channel; ID-TAKEN, bad key and REST id behave as PeerJS', async () => {
    const port = await start()
    const g = globalThis as Record<string, unknown>
    g.RTCPeerConnection = wrtc.RTCPeerConnection
    g.RTCSessionDescription = wrtc.RTCSessionDescription
    g.RTCIceCandidate = wrtc.RTCIceCandidate
    const { Peer } = await import('peerjs')
    const options = {
      host: '127.0.0.1',
      port,
      path: '/',
      key: 'peerjs',
      secure: false,
      config: { iceServers: [] },
    }

    const restId = await (await fetch(`http://127.0.0.1:${port}/peerjs/id?ts=1`)).text()
    expect(restId).toMatch(/^[0-9a-f]{32}$/)

    const a = new Peer('alice-1', options)
    const b = new Peer(options) // asks GET /peerjs/id
    cleanups.push(
      () => a.destroy(),
      () => b.destroy(),
    )
    const openA = new Promise<string>((resolve, reject) => {
      a.on('open', resolve)
      a.on('error', reject)
    })
    const openB = new Promise<string>((resolve, reject) => {
      b.on('open', resolve)
      b.on('error', reject)
    })
    expect(await openA).toBe('alice-1')
    const idB = await openB
    expect(idB).toMatch(/^[0-9a-f]{32}$/)
    const got = new Promise<unknown>((resolve) =>
      b.on('connection', (conn) => conn.on('data', (data) => resolve(data))),
    )
    const conn = a.connect(idB)
    conn.on('open', () => void conn.send({ hello: 'peerjs over a real data channel' }))
    expect(await got).toEqual({ hello: 'peerjs over a real data channel' })

    // Same ID, other token: ID-TAKEN, as the PeerJS server answers.
    const taken = new RawClient(`ws://127.0.0.1:${port}/peerjs?key=peerjs&id=alice-1&token=other`)
    cleanups.push(() => taken.close())
    expect(await taken.next()).toEqual({ type: 'ID-TAKEN', payload: { msg: 'ID is taken' } })

    // Wrong key: ERROR, as PeerJS.
    const badKey = new RawClient(`ws://127.0.0.1:${port}/peerjs?key=nope&id=x1&token=t`)
    cleanups.push(() => badKey.close())
    expect(await badKey.next()).toEqual({ type: 'ERROR', payload: { msg: 'Invalid key provided' } })
  })

  it('holds a signal for an offline PeerJS peer, delivers it when the peer comes, else answers EXPIRE', async () => {
    server = createSignalingServer(components, { holdMs: 100 })
    const { port } = await server.listen({ port: 0 })
    const base = `ws://127.0.0.1:${port}/peerjs?key=peerjs`
    const a = new RawClient(`${base}&id=a&token=ta`)
    cleanups.push(() => a.close())
    expect(await a.next()).toEqual({ type: 'OPEN' })
    a.send({ type: 'OFFER', dst: 'late', payload: { sdp: 'x' } })
    await expect.poll(() => server!.getStats().held).toBe(1)
    const late = new RawClient(`${base}&id=late&token=tl`)
    cleanups.push(() => late.close())
    expect(await late.next()).toEqual({ type: 'OPEN' })
    expect(await late.next()).toEqual({ type: 'OFFER', src: 'a', dst: 'late', payload: { sdp: 'x' } })
    expect(server.listPeers().map((p) => [p.id, p.protocol, p.state])).toEqual([
      ['a', 'peerjs', 'open'],
      ['late', 'peerjs', 'open'],
    ])
    a.send({ type: 'CANDIDATE', dst: 'ghost', payload: {} })
    expect(await a.next()).toEqual({ type: 'EXPIRE', src: 'ghost', dst: 'a' })
    a.send({ type: 'HEARTBEAT' })
    a.send({ type: 'NOPE' })
    expect(await a.next()).toMatchObject({ type: 'ERROR' })
  })
})
