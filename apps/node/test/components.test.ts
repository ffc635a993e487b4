import { describe, expect, it } from 'vitest'
import { p2pHealth } from '../src/components/p2p'
import { signalingHealth } from '../src/components/signaling'
import { nodeSystem } from '../src/node'

describe('the node as an ordered list of components', () => {
  it("starts in the seed's order (and stops in reverse)", () => {
    expect(nodeSystem().names).toEqual([
      'config',
      'crypto',
      'storage',
      'crdt',
      'dht',
      'p2p',
      'ai',
      'monitor',
      'rest',
      'signaling',
    ])
  })
})

describe('health checks say when something is wrong', () => {
  it('p2p: down when the WebSocket port is closed, degraded without a link when it should have one', () => {
    const base = { listening: true, seedNodes: 0, knownNodes: 0, openLinks: 0, stats: { handshakes: 3 } }
    expect(p2pHealth(base)).toEqual({ status: 'ok', handshakes: 3, links: 0 })
    expect(p2pHealth({ ...base, seedNodes: 2 })).toMatchObject({
      status: 'degraded',
      reason: 'no link although seed nodes are configured',
    })
    expect(p2pHealth({ ...base, knownNodes: 5 })).toMatchObject({ status: 'degraded' })
    expect(p2pHealth({ ...base, seedNodes: 2, openLinks: 1 }).status).toBe('ok')
    expect(p2pHealth({ ...base, listening: false, openLinks: 3 })).toMatchObject({ status: 'down' })
  })

  it('signaling: down once closed or when its port is closed', () => {
    expect(signalingHealth({ closed: false, listening: true, stats: { peers: 1 } })).toEqual({
      status: 'ok',
      peers: 1,
    })
    expect(signalingHealth({ closed: true, listening: true, stats: {} })).toMatchObject({
      status: 'down',
      reason: 'closed',
    })
    expect(signalingHealth({ closed: false, listening: false, stats: {} }).status).toBe('down')
  })
})
