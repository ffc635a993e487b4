import { createHash } from 'node:crypto'
import { ml_dsa87 } from '@noble/post-quantum/ml-dsa.js'
import { afterEach, describe, expect, it } from 'vitest'
import { createSignalingServer, type SignalingServer } from '../src/index'
import { connected, registered, type RawClient } from './helpers'

// What the node injects: ML-DSA-87 verification and a 40-hex-char peer ID derived from the public key.
const verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) =>
  ml_dsa87.verify(signature, message, publicKey)
const peerIdFromPublicKey = (publicKey: Uint8Array) => {
  if (publicKey.length !== 2592) throw new Error('not an ML-DSA-87 public key')
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 40)
}

let server: SignalingServer | undefined
const clients: RawClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await server?.close()
})

describe('registration with real ML-DSA-87 (@noble/post-quantum)', () => {
  it('accepts a valid signature, rejects a signature by another key, and relays between PQ peers', async () => {
    server = createSignalingServer({ verify, peerIdFromPublicKey })
    const { port } = await server.listen({ port: 0 })
    const url = `ws://127.0.0.1:${port}/p2p-signaling`
    const keys = ml_dsa87.keygen(new Uint8Array(32).fill(1))
    const identity = {
      publicKey: keys.publicKey,
      id: peerIdFromPublicKey(keys.publicKey),
      sign: (m: Uint8Array) => ml_dsa87.sign(m, keys.secretKey),
    }
    const a = await registered(url, identity)
    clients.push(a)
    expect(a.id).toMatch(/^[0-9a-f]{40}$/)

    const other = ml_dsa87.keygen(new Uint8Array(32).fill(2))
    const intruder = await connected(url)
    clients.push(intruder)
    await intruder.challenge()
    // Claims a's public key, signs with another key.
    intruder.send(
      intruder.registerFrame({
        publicKey: keys.publicKey,
        id: identity.id,
        sign: (m: Uint8Array) => ml_dsa87.sign(m, other.secretKey),
      }),
    )
    expect(await intruder.next()).toMatchObject({ type: 'error', code: 'ID_TAKEN' })

    const bKeys = ml_dsa87.keygen(new Uint8Array(32).fill(3))
    const b = await registered(url, {
      publicKey: bKeys.publicKey,
      id: peerIdFromPublicKey(bKeys.publicKey),
      sign: (m: Uint8Array) => ml_dsa87.sign(m, bKeys.secretKey),
    })
    clients.push(b)
    b.send({ type: 'offer', to: a.id, data: { sdp: 'pq' } })
    expect(await a.next()).toEqual({ type: 'offer', from: b.id, to: a.id, data: { sdp: 'pq' } })
  })
})
