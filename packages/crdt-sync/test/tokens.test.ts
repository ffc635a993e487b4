import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWTPayload } from 'jose'
import {
  createDocStore,
  createTokenAuthority,
  decodeRevocation,
  encodeRevocation,
  replicate,
  revocationFrom,
  type Revocation,
} from '../src/index'
import { createManualClock, createMemoryLinkPair } from '../src/testing'
import { tempLevel, type TempLevel } from './helpers'

const SECRET = new TextEncoder().encode('a-test-secret-of-at-least-32-bytes!!')
const NOW_S = 1_800_000_000

function hs256(payload: JWTPayload, secret = SECRET, exp = NOW_S + 600): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(NOW_S)
    .setExpirationTime(exp)
    .sign(secret)
}

function authority(init: Parameters<typeof createTokenAuthority>[1] = { secret: SECRET }) {
  const clock = createManualClock(NOW_S * 1000)
  return { clock, auth: createTokenAuthority({ clock }, init) }
}

describe('document tokens', () => {
  it('grants what the crdt claim names: exact names over prefixes, longer prefixes over shorter ones', async () => {
    const { auth } = authority()
    const token = await hs256({
      sub: 'ann',
      jti: 't1',
      crdt: { 'team/*': 'read-only', 'team/plan': 'read-write', 'team/board/*': 'read-write' },
    })
    expect(await auth.authorize('team/plan', token)).toMatchObject({
      access: 'read-write',
      subject: 'ann',
      tokenId: 't1',
      expiresAt: (NOW_S + 600) * 1000,
    })
    expect((await auth.authorize('team/notes', token)).access).toBe('read-only')
    expect((await auth.authorize('team/board/1', token)).access).toBe('read-write')
    expect(await auth.authorize('other', token)).toMatchObject({
      access: 'deny',
      code: 'X_CRDT_ACCESS_DENIED',
    })
  })

  it('refuses forged, expired, unsigned and malformed tokens with a code, and no token when a key is set', async () => {
    const { auth } = authority()
    const forged = await hs256(
      { crdt: { doc: 'read-write' } },
      new TextEncoder().encode('another-secret-of-at-least-32-bytes!!'),
    )
    expect(await auth.authorize('doc', forged)).toMatchObject({ access: 'deny', code: 'X_CRDT_BAD_TOKEN' })
    // A read-only token whose payload was edited to read-write: the signature no longer matches.
    const ro = await hs256({ crdt: { doc: 'read-only' } })
    const [h, p, s] = ro.split('.')
    const edited = JSON.parse(Buffer.from(p!, 'base64url').toString()) as { crdt: Record<string, string> }
    edited.crdt.doc = 'read-write'
    const tampered = `${h}.${Buffer.from(JSON.stringify(edited)).toString('base64url')}.${s}`
    expect(await auth.authorize('doc', tampered)).toMatchObject({ access: 'deny', code: 'X_CRDT_BAD_TOKEN' })
    const expired = await hs256({ crdt: { doc: 'read-write' } }, SECRET, NOW_S - 60)
    expect(await auth.authorize('doc', expired)).toMatchObject({ code: 'X_CRDT_TOKEN_EXPIRED' })
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"crdt":{"doc":"read-write"}}').toString('base64url')}.`
    expect(await auth.authorize('doc', none)).toMatchObject({ code: 'X_CRDT_BAD_TOKEN' })
    expect(await auth.authorize('doc', 'not a token')).toMatchObject({ code: 'X_CRDT_BAD_TOKEN' })
    const badClaim = await hs256({ crdt: { doc: 'admin' } })
    expect(await auth.authorize('doc', badClaim)).toMatchObject({ code: 'X_CRDT_BAD_TOKEN' })
    expect(await auth.authorize('doc', undefined)).toMatchObject({
      access: 'deny',
      code: 'X_CRDT_ACCESS_DENIED',
    })
  })

  it('keeps anonymous access without a key (tokens cannot raise it), and turns it off or down on request', async () => {
    const open = createTokenAuthority()
    expect(open.keyed).toBe(false)
    expect((await open.authorize('doc', undefined)).access).toBe('read-write')
    const ro = createTokenAuthority({}, { anonymous: 'read-only' })
    expect((await ro.authorize('doc', await hs256({ crdt: { doc: 'read-write' } }))).access).toBe('read-only')
    const off = createTokenAuthority({}, { anonymous: 'deny' })
    expect((await off.authorize('doc', undefined)).access).toBe('deny')
    const keyedAnon = createTokenAuthority({}, { secret: SECRET, anonymous: 'read-only' })
    expect((await keyedAnon.authorize('doc', undefined)).access).toBe('read-only')
    expect(() => createTokenAuthority({}, { secret: new Uint8Array(8) })).toThrow(/'secret'/)
  })

  it('verifies ES256 tokens with a JWKS and with a PEM public key', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256')
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }
    const token = await new SignJWT({ crdt: { doc: 'read-only' } })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setExpirationTime(NOW_S + 60)
      .sign(privateKey)
    const byJwks = authority({ publicKeys: { keys: [jwk] } }).auth
    expect((await byJwks.authorize('doc', token)).access).toBe('read-only')
    const byPem = authority({ publicKeys: await exportSPKI(publicKey) }).auth
    expect((await byPem.authorize('doc', token)).access).toBe('read-only')
    // An HS256 token signed with the public key's bytes (the classic confusion) is refused.
    const confused = await hs256(
      { crdt: { doc: 'read-write' } },
      new TextEncoder().encode(await exportSPKI(publicKey)),
    )
    expect((await byPem.authorize('doc', confused)).code).toBe('X_CRDT_BAD_TOKEN')
  })

  it('revocations lower access by document, token or subject until they expire, and never raise it', async () => {
    const { auth, clock } = authority()
    const ann = await hs256({ sub: 'ann', jti: 'a1', crdt: { doc: 'read-write' } })
    const bob = await hs256({ sub: 'bob', jti: 'b1', crdt: { doc: 'read-write' } })
    let n = 0
    const hex = () => (++n).toString(16).padStart(16, '0')
    const r1 = revocationFrom(
      { docName: 'doc', subject: 'ann', access: 'deny', ttlMs: 1_000 },
      clock.now(),
      hex,
    )
    expect(auth.revoke(r1)).toBe(true)
    expect(auth.revoke(r1)).toBe(false) // the same one, forwarded back: applied once
    expect(await auth.authorize('doc', ann)).toMatchObject({ access: 'deny', code: 'X_CRDT_REVOKED' })
    expect((await auth.authorize('doc', bob)).access).toBe('read-write')
    const r2 = revocationFrom({ docName: 'doc', access: 'read-only' }, clock.now(), hex)
    auth.revoke(r2)
    expect((await auth.authorize('doc', bob)).access).toBe('read-only')
    const decide = auth.restriction(r1)
    expect(decide({ docName: 'doc', grant: { access: 'read-write', subject: 'ann' } })).toBe('deny')
    expect(decide({ docName: 'doc', grant: { access: 'read-write', subject: 'bob' } })).toBeUndefined()
    clock.advance(1_001)
    expect((await auth.authorize('doc', ann)).access).toBe('read-only') // r1 expired, r2 remains
    expect(auth.revocations().map((r) => r.id)).toEqual([r2.id])
    const small = createTokenAuthority({ clock }, { secret: SECRET, maxRevocations: 1 })
    small.revoke(r2)
    expect(() => small.revoke({ ...r2, id: 'ffffffffffffffff' })).toThrow(
      expect.objectContaining({ code: 'X_CRDT_TOO_MANY_REVOCATIONS' }),
    )
  })

  it('decodes only well-formed, bounded revocations', () => {
    const r: Revocation = { id: '0123456789abcdef', docName: 'doc', access: 'deny', until: 5 }
    expect(decodeRevocation(encodeRevocation(r))).toEqual(r)
    const bad = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
    expect(() => decodeRevocation(bad({ ...r, access: 'read-write' }))).toThrow()
    expect(() => decodeRevocation(bad({ ...r, id: 'x' }))).toThrow()
    expect(() => decodeRevocation(bad({ ...r, docName: '' }))).toThrow()
    expect(() => decodeRevocation(bad({ ...r, subject: 'x'.repeat(3000) }))).toThrow()
    expect(() => decodeRevocation(new Uint8Array([0xff, 0xfe]))).toThrow()
  })

  it('refuses to make a revocation other nodes could not read (over the 2 KiB wire form)', () => {
    const request = {
      docName: '日'.repeat(512), // 1,536 bytes of UTF-8
      tokenId: 't'.repeat(256),
      subject: 's'.repeat(256),
      access: 'deny' as const,
    }
    expect(() => revocationFrom(request, NOW_S * 1000, () => 'abcdef0123456789')).toThrow(RangeError)
    const fits = revocationFrom(
      { ...request, docName: '日'.repeat(300) },
      NOW_S * 1000,
      () => 'abcdef0123456789',
    )
    expect(decodeRevocation(encodeRevocation(fits))).toEqual(fits)
  })

  it('round-trips every well-formed revocation, and any bytes either decode to a valid one or throw', () => {
    const revocation = fc.record(
      {
        id: fc.stringMatching(/^[0-9a-f]{8,64}$/),
        docName: fc
          .string({ minLength: 1, maxLength: 100 })
          .filter((n) => [...n].every((ch) => ch.charCodeAt(0) > 0x1f && ch !== '\u007f')),
        tokenId: fc.string({ minLength: 1, maxLength: 50 }),
        subject: fc.string({ minLength: 1, maxLength: 50 }),
        access: fc.constantFrom('read-only' as const, 'deny' as const),
        until: fc.integer({ min: 0, max: 2 ** 50 }),
      },
      { requiredKeys: ['id', 'docName', 'access', 'until'] },
    )
    fc.assert(
      fc.property(revocation, (r) => {
        expect(decodeRevocation(encodeRevocation(r))).toEqual(r)
      }),
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3_000 }), (bytes) => {
        let r: Revocation
        try {
          r = decodeRevocation(bytes)
        } catch {
          return
        }
        expect(['read-only', 'deny']).toContain(r.access)
      }),
    )
  })
})

let level: TempLevel | undefined
afterEach(async () => {
  await level?.dispose()
  level = undefined
})

describe('the revocation table', () => {
  it('gives each node a share and all nodes together half, so a node cannot crowd out the revocations made here', () => {
    const { auth, clock } = authority({ secret: SECRET, maxRevocations: 10, maxRevocationsPerNode: 3 })
    let n = 0
    const next = (docName = 'doc'): Revocation =>
      revocationFrom({ docName, access: 'deny' }, clock.now(), () => (++n).toString(16).padStart(16, '0'))
    const full = expect.objectContaining({ code: 'X_CRDT_TOO_MANY_REVOCATIONS' })
    for (let i = 0; i < 3; i++) expect(auth.revoke(next(), 'node-a')).toBe(true)
    expect(() => auth.revoke(next(), 'node-a')).toThrow(full)
    for (let i = 0; i < 2; i++) expect(auth.revoke(next(), 'node-b')).toBe(true)
    // Five held from other nodes: the nodes' half is full, whichever node sends the next one.
    expect(() => auth.revoke(next(), 'node-c')).toThrow(full)
    // The other half is this node's (the admin's): still room, up to the total.
    for (let i = 0; i < 5; i++) expect(auth.revoke(next())).toBe(true)
    expect(() => auth.revoke(next())).toThrow(full)
    expect(auth.revocations()).toHaveLength(10)
    // A node's share frees up as its revocations expire.
    clock.advance(86_400_001)
    expect(auth.revoke(next(), 'node-a')).toBe(true)
    // One already expired is not held (nor passed on): nothing to do.
    expect(auth.revoke({ ...next(), until: clock.now() }, 'node-a')).toBe(false)
    expect(auth.revocations()).toHaveLength(1)
  })
})

describe('revocations over replication', () => {
  it('passes a revocation to the other node only for a document it may read, and takes one only from a writer', async () => {
    level = await tempLevel()
    const store = createDocStore({ db: level.db })
    const pair = createMemoryLinkPair()
    const gotA: Revocation[] = []
    const gotB: Revocation[] = []
    // a trusts b with 'shared' both ways; b trusts a to read 'shared' and 'secret' but to write neither.
    const a = replicate(
      {
        store,
        link: pair.a,
        authorize: (_p, doc) => doc === 'shared',
        onRevoke: (r) => gotA.push(r),
      },
      { peerId: 'b', resyncIntervalMs: 0 },
    )
    const b = replicate(
      {
        store,
        link: pair.b,
        authorize: (_p, doc, access) => access === 'read',
        onRevoke: (r) => gotB.push(r),
      },
      { peerId: 'a', resyncIntervalMs: 0 },
    )
    const r = (docName: string): Revocation => ({
      id: '00000000000000' + docName.length.toString(16).padStart(2, '0'),
      docName,
      access: 'deny',
      until: 1e15,
    })
    expect(await a.revoke(r('shared'))).toBe(true)
    expect(await a.revoke(r('secret'))).toBe(false) // b may not learn of 'secret'
    expect(await b.revoke(r('shared'))).toBe(true)
    await pair.idle()
    await new Promise((resolve) => setImmediate(resolve))
    // b does not let a write anything: a's revocation is refused and counted.
    expect(gotB).toEqual([])
    expect(b.getStats().denied).toBeGreaterThan(0)
    // a lets b write 'shared': b's revocation is taken.
    expect(gotA.map((x) => x.docName)).toEqual(['shared'])
    a.close()
    b.close()
    await store.close()
  })
})
