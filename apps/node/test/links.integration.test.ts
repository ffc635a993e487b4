/**
 * Smoke test of the node's links as `apps/node` composes them: `@x/node-link` over real WebSockets on 127.0.0.1,
 * secured by `@x/pqc` with the handshake's ML-DSA work in the worker pool, hellos carrying the record-key
 * certificate. The link protocol itself (arbitration, races, trust rules) is tested in packages/node-link.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { pino } from 'pino'
import { Identity, createPqcWorkerPool, createStaticKeys } from '@x/pqc'
import { createDialPolicy, createLinkManager, createWsTransport, type LinkManager } from '@x/node-link'
import { createPqcSecure } from '../src/adapters/pqc-secure'
import { CHANNEL_CRDT, CHANNEL_SIGNALING } from '../src/adapters/channels'
import { CERT_CONTEXT, RecordSigner } from '../src/records/format'
import { RecordKeyBook } from '../src/records/key-book'
import { SYSTEM_CLOCK } from '../src/records/util'
import { cleanups, runCleanups, waitFor } from './helpers'

const pool = createPqcWorkerPool({}, { size: 1 })
afterAll(async () => {
  await runCleanups()
  await pool.close()
})
const silent = pino({ level: 'silent' })

async function linkNode(
  seed: number,
): Promise<{ links: LinkManager; identity: Identity; url: string; keys: RecordKeyBook }> {
  const identity = Identity.generate(new Uint8Array(32).fill(seed))
  const transport = createWsTransport({ port: 0 })
  const keys = new RecordKeyBook({
    verifyCertificate: (id, rec, cert) => pool.verify(id, rec, cert, CERT_CONTEXT),
    clock: SYSTEM_CLOCK,
    logger: silent,
  })
  const links = createLinkManager(
    {
      transport,
      secure: createPqcSecure({
        identity,
        staticKeys: createStaticKeys(identity),
        crypto: pool,
        timeoutMs: 10_000,
      }),
      dialPolicy: createDialPolicy({ allowPrivate: true }),
      logger: silent,
    },
    { nodeId: identity.idString, helloData: new RecordSigner(identity).helloData() },
  )
  links.on('hello', (h) => void keys.acceptHello(h.nodeId, h.publicKey, h.data))
  await links.start()
  cleanups.push(() => links.close())
  return { links, identity, url: `ws://127.0.0.1:${transport.port!}`, keys }
}

describe('node links over real WebSockets, secured by @x/pqc', () => {
  it('authenticate both ends, learn each other’s record key from the hello, and carry channels both ways', async () => {
    const a = await linkNode(1)
    const b = await linkNode(2)
    const got: string[] = []
    b.links.onChannel(CHANNEL_SIGNALING, (from, p) => got.push(`${from}:${new TextDecoder().decode(p)}`))
    const crdt: number[][] = []
    a.links.onChannel(CHANNEL_CRDT, (_from, p) => crdt.push([...p]))
    const link = await a.links.connect(b.identity.idString, b.url)
    expect(link.nodeId).toBe(b.identity.idString)
    await waitFor(() => a.keys.get(b.identity.idString) && b.keys.get(a.identity.idString), 'the hellos')
    expect(a.keys.get(b.identity.idString)).toEqual(new RecordSigner(b.identity).publicKey)
    expect(a.links.send(b.identity.idString, CHANNEL_SIGNALING, new TextEncoder().encode('frame-1'))).toBe(
      true,
    )
    expect(b.links.send(a.identity.idString, CHANNEL_CRDT, Uint8Array.of(1, 2, 3))).toBe(true)
    await waitFor(() => got.length === 1 && crdt.length === 1, 'frames')
    expect(got).toEqual([`${a.identity.idString}:frame-1`])
    expect(crdt).toEqual([[1, 2, 3]])
    // The certificate checks and handshake verifications ran in the pool.
    expect(pool.stats().completed).toBeGreaterThanOrEqual(2)
  })

  it('refuses a node whose handshake identity is not the node ID the dialer expected', async () => {
    const a = await linkNode(3)
    const b = await linkNode(4)
    const impostor = Identity.generate(new Uint8Array(32).fill(5)).idString
    const err = await a.links.connect(impostor, b.url).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'X_LINK_HANDSHAKE_FAILED', cause: { code: 'X_PQC_IDENTITY_MISMATCH' } })
    expect(a.links.connectedNodes()).toEqual([])
  })
})
