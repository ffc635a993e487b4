import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { SignJWT, type JWTPayload } from 'jose'
import { localArgs, spawnNode, type SpawnedNode } from '../scripts/spawn-node'
import { cleanups, getJson, runCleanups, schemaErrors, tempDir, waitFor } from './helpers'

/**
 * Document permissions on three real node processes that replicate documents with each other: tokens from the
 * y-websocket URL and the Hocuspocus auth message, read-only enforced, and a revocation made on one node closing
 * or downgrading sessions on the others.
 */
const SECRET = 'permissions-test-secret-0123456789abcdef'
const ADMIN = 'admin-token-for-the-permissions-test'
const DOC = 'perm/plan'
let a: SpawnedNode
let b: SpawnedNode
let c: SpawnedNode
let secretFile: string

function token(payload: JWTPayload, secret = SECRET): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(secret))
}

function hp(node: SpawnedNode, name: string, tok: string): HocuspocusProvider {
  const socket = new HocuspocusProviderWebsocket({
    url: `${node.wsUrl}/hocuspocus`,
    WebSocketPolyfill: WebSocket,
    delay: 100,
    minDelay: 100,
    maxDelay: 500,
  })
  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name,
    document: new Y.Doc(),
    token: tok,
  })
  provider.attach()
  cleanups.push(() => {
    provider.destroy()
    socket.destroy()
  })
  return provider
}

function yws(node: SpawnedNode, name: string, tok?: string): WebsocketProvider {
  const p = new WebsocketProvider(`${node.wsUrl}/crdt`, name, new Y.Doc(), {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true,
    ...(tok === undefined ? {} : { params: { token: tok } }),
  })
  cleanups.push(() => p.destroy())
  return p
}

function text(doc: Y.Doc): string {
  return doc.getText('t').toJSON()
}

async function post(node: SpawnedNode, path: string, body: unknown, auth = ADMIN) {
  const res = await fetch(`${node.restUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${auth}` },
    body: JSON.stringify(body),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

beforeAll(async () => {
  const dir = await tempDir()
  secretFile = join(dir, 'secret')
  await writeFile(secretFile, `${SECRET}\n`)
  const common = [
    '--bootstrap-interval-ms',
    '2000',
    '--crdt-nodes',
    '*',
    '--crdt-token-secret-file',
    secretFile,
  ]
  const env = { X_NODE_ADMIN_TOKEN: ADMIN }
  a = await spawnNode('a', localArgs(await tempDir(), common), { env })
  cleanups.push(() => a.kill())
  b = await spawnNode(
    'b',
    localArgs(await tempDir(), [...common, '--seed-nodes', `127.0.0.1:${a.ready.dht}`]),
    {
      env,
    },
  )
  cleanups.push(() => b.kill())
  c = await spawnNode(
    'c',
    localArgs(await tempDir(), [
      ...common,
      '--seed-nodes',
      `127.0.0.1:${a.ready.dht},127.0.0.1:${b.ready.dht}`,
    ]),
    { env },
  )
  cleanups.push(() => c.kill())
  for (const n of [a, b, c]) {
    await waitFor(async () => {
      const peers = (await getJson(`${n.restUrl}/api/peers`)).body
      const linked = peers.list.filter(
        (l: { kind: string; state: string }) => l.kind === 'p2p-link' && l.state === 'open',
      )
      return linked.length >= 2
    }, `node ${n.name} to link both other nodes`)
  }
}, 120_000)

afterAll(runCleanups, 30_000)

describe('documents across three nodes: permissions and versions', () => {
  it('takes tokens from the y-websocket URL and the Hocuspocus auth message, refuses anonymous and bad ones, enforces read-only', async () => {
    const annTok = await token({ sub: 'ann', jti: 'ann-1', crdt: { 'perm/*': 'read-write' } })
    const bobTok = await token({ sub: 'bob', crdt: { [DOC]: 'read-write' } })
    const catTok = await token({ sub: 'cat', crdt: { [DOC]: 'read-only' } })
    const ann = hp(a, DOC, annTok)
    const bob = yws(b, DOC, bobTok)
    const cat = hp(c, DOC, catTok)
    const catScope = new Promise<string>((resolve) =>
      cat.on('authenticated', ({ scope }: { scope: string }) => resolve(scope)),
    )
    await waitFor(() => ann.isSynced && bob.synced && cat.isSynced, 'all three clients to sync')
    expect(await catScope).toBe('readonly')
    ann.document.getText('t').insert(0, 'from ann on a. ')
    bob.doc.getText('t').insert(0, 'from bob on b. ')
    await waitFor(
      () => [ann.document, bob.doc, cat.document].every((d) => text(d).length === 30),
      'edits from a and b to reach every node',
    )
    // cat holds a read-only token: its edit stays local and is never applied anywhere.
    cat.document.getText('t').insert(0, 'FROM CAT ')
    await waitFor(async () => {
      const metrics = await (await fetch(`${c.restUrl}/metrics`)).text()
      return Number(/crdt_updates_refused_total (\d+)/.exec(metrics)?.[1] ?? 0) >= 1
    }, 'node c to refuse the update of cat')
    ann.document.getText('t').insert(0, 'x')
    await waitFor(() => text(bob.doc).startsWith('x'), 'a later edit to reach b')
    expect(text(bob.doc)).not.toContain('CAT')
    expect(text(ann.document)).not.toContain('CAT')

    // No token (anonymous access is off once a key is set), a forged token, a token for another document.
    const anon = yws(a, DOC)
    const anonClose = new Promise<number>((resolve) =>
      anon.on('connection-close', (e: CloseEvent | null) => resolve(e?.code ?? 0)),
    )
    expect(await anonClose).toBe(4403)
    anon.destroy()
    const forged = hp(
      b,
      DOC,
      await token({ crdt: { [DOC]: 'read-write' } }, 'a-forged-secret-0123456789abcdefghij'),
    )
    const other = hp(b, DOC, await token({ crdt: { 'elsewhere/*': 'read-write' } }))
    const reasons = await Promise.all(
      [forged, other].map(
        (p) =>
          new Promise<string>((resolve) =>
            p.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)),
          ),
      ),
    )
    expect(reasons).toEqual(['invalid token', 'the token does not name this document'])
    forged.document.getText('t').insert(0, 'FORGED ')
    ann.document.getText('t').insert(0, 'y')
    await waitFor(() => text(bob.doc).startsWith('y'), 'a later edit to reach b')
    expect(text(bob.doc)).not.toContain('FORGED')

    // /hocuspocus is a browser path: a page from another origin is refused before the upgrade.
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${a.wsUrl}/hocuspocus`, { headers: { origin: 'https://evil.example' } })
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      ws.on('open', () => resolve(101))
      ws.on('error', () => undefined)
    })
    expect(status).toBe(403)
  }, 60_000)

  it('revokes by REST with the admin token: sessions on every node hosting the document close or go read-only within a second', async () => {
    const doc = 'perm/revoked'
    const ann = hp(a, doc, await token({ sub: 'ann', jti: 'ann-2', crdt: { [doc]: 'read-write' } }))
    const bob = yws(b, doc, await token({ sub: 'bob', crdt: { [doc]: 'read-write' } }))
    const dan = hp(c, doc, await token({ sub: 'dan', crdt: { [doc]: 'read-write' } }))
    await waitFor(() => ann.isSynced && bob.synced && dan.isSynced, 'all three clients to sync')

    // Without the admin token: refused, nothing changes.
    const refused = await post(a, '/api/crdt/revocations', { docName: doc, access: 'deny' }, 'wrong')
    expect(refused.status).toBe(401)
    expect(refused.body.code).toBe('X_NODE_UNAUTHORIZED')
    const bad = await post(a, '/api/crdt/revocations', { docName: doc, access: 'read-write' })
    expect(bad.status).toBe(400)
    // A stranger's malformed body is refused for the token first: the route's schema is none of its business.
    const strangerBad = await post(
      a,
      '/api/crdt/revocations',
      { docName: doc, access: 'read-write' },
      'wrong',
    )
    expect(strangerBad.status).toBe(401)

    // bob (on b) loses access: revoked on a, carried to b over the node link.
    const bobClosed = new Promise<{ code: number; at: number }>((resolve) =>
      bob.on('connection-close', (e: CloseEvent | null) => resolve({ code: e?.code ?? 0, at: Date.now() })),
    )
    const t0 = Date.now()
    const res = await post(a, '/api/crdt/revocations', { docName: doc, subject: 'bob', access: 'deny' })
    expect(res.status).toBe(201)
    expect(schemaErrors('CrdtRevocation', res.body)).toEqual([])
    expect((res.body.nodes as string[]).sort()).toEqual([b.ready.nodeId, c.ready.nodeId].sort())
    const closed = await bobClosed
    expect(closed.code).toBe(4403)
    expect(closed.at - t0).toBeLessThan(1_000)
    bob.destroy()

    // dan (on c) goes read-only: told so, and his edits stop reaching the others.
    const danScope = new Promise<string>((resolve) =>
      dan.on('authenticated', ({ scope }: { scope: string }) => resolve(scope)),
    )
    const t1 = Date.now()
    expect(
      (await post(a, '/api/crdt/revocations', { docName: doc, subject: 'dan', access: 'read-only' })).status,
    ).toBe(201)
    expect(await danScope).toBe('readonly')
    expect(Date.now() - t1).toBeLessThan(1_000)
    dan.document.getText('t').insert(0, 'DAN AFTER ')
    ann.document.getText('t').insert(0, 'ann after. ')
    await waitFor(() => text(dan.document).includes('ann after'), 'ann’s edit to reach dan')
    expect(text(ann.document)).not.toContain('DAN')

    // Every node holds both revocations; a new session for bob is refused on any node.
    for (const n of [a, b, c]) {
      const list = await getJson(`${n.restUrl}/api/crdt/revocations`, { authorization: `Bearer ${ADMIN}` })
      expect(schemaErrors('CrdtRevocations', list.body)).toEqual([])
      expect(list.body.revocations.map((r: { subject: string }) => r.subject).sort()).toEqual(['bob', 'dan'])
    }
    const again = hp(c, doc, await token({ sub: 'bob', crdt: { [doc]: 'read-write' } }))
    expect(
      await new Promise<string>((resolve) =>
        again.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)),
      ),
    ).toBe('access revoked')
  }, 60_000)

  it('keeps versions by REST (admin), replicated to the other nodes; a restore reaches a y-websocket and a Hocuspocus client on other nodes', async () => {
    const doc = 'perm/history'
    const rw = await token({ crdt: { 'perm/*': 'read-write' } })
    const ann = hp(a, doc, rw)
    const bob = yws(b, doc, rw)
    const cat = hp(c, doc, rw)
    await waitFor(() => ann.isSynced && bob.synced && cat.isSynced, 'all three clients to sync')
    ann.document.getText('t').insert(0, 'good text')
    await waitFor(
      () => text(bob.doc) === 'good text' && text(cat.document) === 'good text',
      'the text everywhere',
    )
    const auth = { authorization: `Bearer ${ADMIN}` }
    const path = `/api/crdt/docs/${encodeURIComponent(doc)}/versions`
    expect((await post(a, path, { name: 'good' }, 'wrong')).status).toBe(401)
    expect((await post(a, `/api/crdt/docs/nothing-here/versions`, { name: 'x' })).status).toBe(404)
    const made = await post(a, path, { name: 'good' })
    expect(made.status).toBe(201)
    expect(schemaErrors('CrdtVersion', made.body)).toEqual([])
    const id = made.body.id as string
    // The version replicates: node c lists and reads it.
    const listed = await waitFor(async () => {
      const r = await getJson(`${c.restUrl}${path}`, auth)
      return r.body.versions?.length === 1 ? r.body : undefined
    }, 'the version to reach node c')
    expect(schemaErrors('CrdtVersions', listed)).toEqual([])
    const read = await getJson(`${c.restUrl}${path}/${id}`, auth)
    expect(schemaErrors('CrdtVersionContent', read.body)).toEqual([])
    expect(read.body.json).toEqual({ t: 'good text' })
    const raw = await fetch(`${c.restUrl}${path}/${id}/update`, { headers: auth })
    expect(raw.headers.get('content-type')).toBe('application/octet-stream')
    const check = new Y.Doc()
    Y.applyUpdate(check, new Uint8Array(await raw.arrayBuffer()))
    expect(text(check)).toBe('good text')
    expect((await getJson(`${c.restUrl}${path}/nope`, auth)).status).toBe(404)

    bob.doc.getText('t').insert(0, 'BAD ')
    await waitFor(
      () => text(ann.document) === 'BAD good text' && text(cat.document) === 'BAD good text',
      'the bad edit',
    )
    // Restored on c: a new change that a y-websocket client on b and a Hocuspocus client on a converge to.
    const restored = await post(c, `${path}/${id}/restore`, {})
    expect(restored.status).toBe(200)
    expect(schemaErrors('CrdtRestore', restored.body)).toEqual([])
    await waitFor(
      () => [ann.document, bob.doc, cat.document].every((d) => text(d) === 'good text'),
      'every client to see the restored text',
    )
  }, 60_000)

  it('keeps revocations across a restart', async () => {
    const dataDir = await tempDir()
    const args = localArgs(dataDir, ['--crdt-token-secret-file', secretFile])
    const env = { X_NODE_ADMIN_TOKEN: ADMIN }
    let d = await spawnNode('d', args, { env })
    cleanups.push(() => d.kill())
    const doc = 'perm/restart'
    expect(
      (
        await post(d, '/api/crdt/revocations', {
          docName: doc,
          subject: 'eve',
          access: 'deny',
          ttlMs: 600_000,
        })
      ).status,
    ).toBe(201)
    await d.kill()
    d = await spawnNode('d2', args, { env })
    cleanups.push(() => d.kill())
    const list = await getJson(`${d.restUrl}/api/crdt/revocations`, { authorization: `Bearer ${ADMIN}` })
    expect(list.body.revocations.map((r: { subject: string }) => r.subject)).toEqual(['eve'])
    const eve = hp(d, doc, await token({ sub: 'eve', crdt: { [doc]: 'read-write' } }))
    expect(
      await new Promise<string>((resolve) =>
        eve.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)),
      ),
    ).toBe('access revoked')
  }, 60_000)
})
