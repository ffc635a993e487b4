import { copyFileSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:https'
import { connect, type TLSSocket } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { loadTlsOptions, PQ_TLS_GROUP, pqTlsSupported, reloadTls, tlsGroups, tlsStatus } from '../src/tls'
import { createTestCa, type TestCa } from './helpers/test-ca'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const fn of cleanups.splice(0).reverse()) fn()
})

function ca(): TestCa {
  const made = createTestCa()
  cleanups.push(() => rmSync(made.dir, { recursive: true, force: true }))
  return made
}

async function listen(options: ReturnType<typeof loadTlsOptions>) {
  const server = createServer(options, (_req, res) => res.end('ok'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => server.close())
  return { server, port: (server.address() as { port: number }).port }
}

function handshake(port: number, caPem: Buffer, ecdhCurve?: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: caPem,
      servername: 'localhost',
      ecdhCurve,
      minVersion: 'TLSv1.3',
    })
    socket.once('secureConnect', () => resolve(socket))
    socket.once('error', reject)
    cleanups.push(() => socket.destroy())
  })
}

describe('TLS with a post-quantum key exchange where the runtime has it', () => {
  it('offers X25519MLKEM768 first when OpenSSL has it (Node >= 24.7), the classical groups otherwise', () => {
    const groups = tlsGroups()
    if (pqTlsSupported()) expect(groups[0]).toBe(PQ_TLS_GROUP)
    else expect(groups).not.toContain(PQ_TLS_GROUP)
    expect(groups).toContain('X25519')
    expect(tlsStatus(true)).toEqual({ enabled: true, groups, postQuantum: pqTlsSupported() })
    expect(tlsStatus(false)).toEqual({ enabled: false, groups: [], postQuantum: false })
  })

  it.runIf(pqTlsSupported())('a client limited to X25519MLKEM768 connects (Node 24)', async () => {
    const made = ca()
    const leaf = made.issue('node')
    const { port } = await listen(loadTlsOptions({ tlsCert: leaf.cert, tlsKey: leaf.key }))
    const socket = await handshake(port, readFileSync(made.caCert), PQ_TLS_GROUP)
    expect(socket.authorized).toBe(true)
    expect(socket.getProtocol()).toBe('TLSv1.3')
    expect(socket.getEphemeralKeyInfo()).toMatchObject({ name: PQ_TLS_GROUP })
  })

  it('a classical client still connects, and the certificate is swapped on reload without a restart', async () => {
    const made = ca()
    const first = made.issue('first')
    const second = made.issue('second')
    const live = { tlsCert: `${made.dir}/live.pem`, tlsKey: `${made.dir}/live.key` }
    copyFileSync(first.cert, live.tlsCert)
    copyFileSync(first.key, live.tlsKey)
    const { server, port } = await listen(loadTlsOptions(live))
    const before = await handshake(port, readFileSync(made.caCert), 'X25519')
    expect(before.getPeerCertificate().subject.CN).toBe('first')
    copyFileSync(second.cert, live.tlsCert)
    copyFileSync(second.key, live.tlsKey)
    reloadTls([server], live)
    const after = await handshake(port, readFileSync(made.caCert), 'X25519')
    expect(after.getPeerCertificate().subject.CN).toBe('second')
  })

  it('names the setting when a file is missing or the pair does not match, and keeps the old context', async () => {
    const made = ca()
    const a = made.issue('a')
    const b = made.issue('b')
    expect(() => loadTlsOptions({ tlsCert: '/nope.pem', tlsKey: a.key })).toThrow(
      expect.objectContaining({ setting: 'tlsCert' }),
    )
    expect(() => loadTlsOptions({ tlsCert: a.cert, tlsKey: '/nope.key' })).toThrow(
      expect.objectContaining({ setting: 'tlsKey' }),
    )
    expect(() => loadTlsOptions({ tlsCert: a.cert, tlsKey: b.key })).toThrow(/not usable together/)
    const { server, port } = await listen(loadTlsOptions({ tlsCert: a.cert, tlsKey: a.key }))
    expect(() => reloadTls([server], { tlsCert: a.cert, tlsKey: b.key })).toThrow()
    const socket = await handshake(port, readFileSync(made.caCert))
    expect(socket.getPeerCertificate().subject.CN).toBe('a')
  })
})
