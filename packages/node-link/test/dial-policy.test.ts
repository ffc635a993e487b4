import { describe, expect, it } from 'vitest'
import { createDialPolicy, isDialableIp, parseLinkAddress } from '../src/index'
import { enc, nodeIdOf, settle, testNet } from './helpers'

describe('parseLinkAddress', () => {
  it('accepts ws:// and wss:// host:port only, in canonical form', () => {
    expect(parseLinkAddress('ws://1.2.3.4:3001')).toBe('ws://1.2.3.4:3001')
    expect(parseLinkAddress('ws://1.2.3.4:3001/')).toBe('ws://1.2.3.4:3001')
    expect(parseLinkAddress('WSS://Node.Example.COM:443')).toBe('wss://node.example.com')
    expect(parseLinkAddress('ws://[2001:db8::1]:3001')).toBe('ws://[2001:db8::1]:3001')
  })

  it('refuses anything that could steer a dial elsewhere: paths, queries, fragments, user info, other schemes', () => {
    for (const bad of [
      'ws://127.0.0.1:3001/attacker-chosen-path?x=',
      'ws://1.2.3.4:3001/p2p-node',
      'ws://1.2.3.4:3001?x=1',
      'ws://1.2.3.4:3001#frag',
      'ws://user:pw@1.2.3.4:3001',
      'ws://evil@1.2.3.4:3001',
      'http://1.2.3.4:3001',
      'ws://1.2.3.4:3001\\@evil',
      'ws:// 1.2.3.4',
      '',
      'x'.repeat(400),
      42,
    ]) {
      expect(parseLinkAddress(bad), String(bad)).toBeUndefined()
    }
  })
})

describe('isDialableIp', () => {
  it('public unicast yes; private ranges only on a testnet; unspecified, multicast and broadcast never', () => {
    expect(isDialableIp('8.8.8.8', false)).toBe(true)
    expect(isDialableIp('2001:4860:4860::8888', false)).toBe(true)
    for (const ip of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '::1',
      'fc00::1',
      'fe80::1',
      '::ffff:127.0.0.1',
      '::ffff:10.0.0.1',
    ]) {
      expect(isDialableIp(ip, false), ip).toBe(false)
      expect(isDialableIp(ip, true), ip).toBe(true)
    }
    for (const ip of ['0.0.0.0', '::', '224.0.0.1', '255.255.255.255', 'ff02::1', '240.0.0.1', 'not-an-ip']) {
      expect(isDialableIp(ip, true), ip).toBe(false)
    }
  })
})

describe('createDialPolicy', () => {
  const node = nodeIdOf(1)

  it('dials only the host the routing table knows for the node, at that IP address', async () => {
    const policy = createDialPolicy({
      allowPrivate: true,
      hostOf: (id) => (id === node ? '127.0.0.1' : undefined),
    })
    await expect(policy(node, 'ws://127.0.0.1:4001')).resolves.toEqual({
      allow: true,
      address: 'ws://127.0.0.1:4001',
    })
    await expect(policy(node, 'ws://127.0.0.2:4001')).resolves.toMatchObject({ allow: false })
    await expect(policy(nodeIdOf(2), 'ws://127.0.0.1:4001')).resolves.toMatchObject({
      allow: false,
      reason: 'node not in the routing table',
    })
  })

  it('refuses private addresses unless allowed, and a host name that resolves to any of them', async () => {
    const resolve = (name: string) =>
      Promise.resolve(name === 'mixed.example' ? ['93.184.216.34', '10.0.0.5'] : ['93.184.216.34'])
    const policy = createDialPolicy({ resolve })
    await expect(policy(node, 'ws://10.0.0.5:4001')).resolves.toMatchObject({ allow: false })
    await expect(policy(node, 'ws://169.254.169.254:80')).resolves.toMatchObject({ allow: false })
    await expect(policy(node, 'ws://mixed.example:4001')).resolves.toMatchObject({ allow: false })
    // A name is dialed at the address that was checked (DNS cannot answer differently at dial time).
    await expect(policy(node, 'ws://ok.example:4001')).resolves.toEqual({
      allow: true,
      address: 'ws://93.184.216.34:4001',
    })
    await expect(policy(node, 'ws://1.2.3.4:4001/attacker-chosen-path?x=')).resolves.toMatchObject({
      allow: false,
    })
  })

  it('refuses a name that does not resolve in time', async () => {
    const policy = createDialPolicy({ resolve: () => new Promise(() => undefined), resolveTimeoutMs: 10 })
    await expect(policy(node, 'ws://slow.example:4001')).resolves.toMatchObject({ allow: false })
  })
})

describe('the manager and the dial policy', () => {
  it('never dials an address the policy refuses, whoever named it (a caller, a hello)', async () => {
    const { make } = testNet()
    const a = await make(
      1,
      {},
      {
        dialPolicy: createDialPolicy({ hostOf: () => '93.184.216.34' }),
      },
    )
    const b = await make(2)
    // The memory transport has no listener at these addresses, so a dial would fail with X_LINK_DIAL_FAILED;
    // X_LINK_DIAL_REFUSED means the policy stopped it before the transport was asked.
    await expect(a.links.connect(b.id, 'ws://127.0.0.1:4001/attacker-chosen-path?x=')).rejects.toMatchObject({
      code: 'X_LINK_DIAL_REFUSED',
    })
    await expect(a.links.connect(b.id, 'ws://10.0.0.2:7000')).rejects.toMatchObject({
      code: 'X_LINK_DIAL_REFUSED',
    })
    expect(a.links.getStats().dialsRefused).toBe(2)
    // b links to a (inbound for a) and announces its address in hello; a remembers it, but a later dial to it
    // still goes through the policy.
    await b.links.sendOrDial(a.id, 2, enc.encode('x'), { address: a.address })
    await settle()
    expect(a.links.addressOf(b.id)).toBe(b.address)
    a.links.disconnect(b.id)
    await settle()
    await expect(a.links.sendOrDial(b.id, 2, enc.encode('y'))).rejects.toMatchObject({
      code: 'X_LINK_DIAL_REFUSED',
    })
  })
})
