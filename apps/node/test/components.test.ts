import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tokenInit } from '../src/components/crdt'
import { DEFAULT_CONFIG } from '../src/config'
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

describe('document-token settings', () => {
  it('reads the secret and key files, and names the setting of an unusable one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'x-node-tokens-'))
    await writeFile(join(dir, 'short'), 'too short\n')
    await writeFile(join(dir, 'good'), `${'s'.repeat(40)}\n`)
    await writeFile(join(dir, 'jwks'), '{"keys":[]}')
    const base = { ...DEFAULT_CONFIG, crdtNodes: [] as string[] }
    expect(() => tokenInit({ ...base, crdtTokenSecretFile: join(dir, 'short') })).toThrow(
      expect.objectContaining({ code: 'X_NODE_CONFIG_INVALID', setting: 'crdtTokenSecretFile' }),
    )
    expect(() => tokenInit({ ...base, crdtTokenKeysFile: join(dir, 'missing') })).toThrow(
      expect.objectContaining({ setting: 'crdtTokenKeysFile' }),
    )
    const init = tokenInit({
      ...base,
      crdtTokenSecretFile: join(dir, 'good'),
      crdtTokenKeysFile: join(dir, 'jwks'),
      crdtAnonymous: 'off',
    })
    expect(init.secret?.length).toBe(40)
    expect(init.publicKeys).toEqual({ keys: [] })
    expect(init.anonymous).toBe('deny')
    await rm(dir, { recursive: true, force: true })
  })
})
