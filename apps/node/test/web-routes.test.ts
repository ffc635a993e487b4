/**
 * The static-serving plugin on its own (`app.inject`, no sockets): pages, hashed assets, content types, caching,
 * conditional requests, the demo's WebSocket config, and the "not built" page. Plus the textarea caret mapping.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import fc from 'fast-check'
import * as Y from 'yjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { webRoutes } from '../src/web'
import { buildWeb, type WebBuildResult } from '../web/build'
import { mapIndex } from '../web/src/text-binding'

let dir: string
let built: WebBuildResult
let app: FastifyInstance

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'x-web-dist-'))
  built = await buildWeb(join(dir, 'dist'))
  app = Fastify()
  await app.register(webRoutes, { distDir: built.outDir, wsPort: 4321 })
}, 60_000)

afterAll(async () => {
  await app.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('webRoutes', () => {
  it('serves the dashboard and the demo as revalidated HTML with a strict CSP, naming the hashed bundles', async () => {
    for (const [path, bundle] of [
      ['/', 'dashboard.js'],
      ['/demo', 'demo.js'],
    ] as const) {
      const res = await app.inject(path)
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8')
      expect(res.headers['cache-control']).toBe('no-cache')
      expect(res.headers['content-security-policy']).toContain("script-src 'self'")
      expect(res.headers['x-content-type-options']).toBe('nosniff')
      expect(res.body).toContain(built.assets[bundle])
      expect(res.body).not.toMatch(/https?:\/\//) // nothing from a CDN
    }
  })

  it('serves hashed assets as immutable with their content type, and 304 on a matching ETag', async () => {
    const js = await app.inject(built.assets['demo.js']!)
    expect(js.statusCode).toBe(200)
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8')
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable')
    const css = await app.inject(built.assets['style.css']!)
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8')
    const etag = js.headers.etag as string
    const again = await app.inject({ url: built.assets['demo.js']!, headers: { 'if-none-match': etag } })
    expect(again.statusCode).toBe(304)
    expect(again.body).toBe('')
    const other = await app.inject({ url: built.assets['demo.js']!, headers: { 'if-none-match': '"nope"' } })
    expect(other.statusCode).toBe(200)
  })

  it('answers 404 for unknown or traversing asset names', async () => {
    expect((await app.inject('/assets/nope.js')).statusCode).toBe(404)
    expect((await app.inject('/assets/..%2Fdemo.html')).statusCode).toBe(404)
    expect((await app.inject('/assets/%2e%2e%2f%2e%2e%2fpackage.json')).statusCode).toBe(404)
  })

  it("tells the demo the node's WebSocket endpoints on the host the page came from", async () => {
    const res = await app.inject({ url: '/demo/config.json', headers: { host: 'node.example:3000' } })
    expect(res.json()).toEqual({
      signalingUrl: 'ws://node.example:4321/p2p-signaling',
      crdtUrl: 'ws://node.example:4321/crdt',
    })
    const v6 = await app.inject({ url: '/demo/config.json', headers: { host: '[::1]:3000' } })
    expect(v6.json<{ signalingUrl: string }>().signalingUrl).toBe('ws://[::1]:4321/p2p-signaling')
  })

  it('explains how to build when the front end is missing, and the rest of the app still starts', async () => {
    const bare = Fastify()
    await bare.register(webRoutes, { distDir: join(dir, 'missing') })
    const res = await bare.inject('/')
    expect(res.statusCode).toBe(503)
    expect(res.body).toContain('build:web')
    await bare.close()
  })

  it('rejects a bad wsPort', async () => {
    const bad = Fastify()
    await expect(bad.register(webRoutes, { distDir: built.outDir, wsPort: 70_000 })).rejects.toThrow(
      RangeError,
    )
    await bad.close().catch(() => undefined)
  })
})

describe('textarea caret mapping', () => {
  it('keeps the caret on the same character across any remote insert or delete', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 30 }),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        fc.string({ maxLength: 5 }),
        (text, caretSeed, posSeed, delSeed, insert) => {
          const doc = new Y.Doc()
          const ytext = doc.getText('t')
          ytext.insert(0, text)
          const caret = caretSeed % (text.length + 1)
          const pos = posSeed % (text.length + 1)
          const del = Math.min(delSeed % 4, text.length - pos)
          let delta: Y.YTextEvent['delta'] = []
          ytext.observe((e) => (delta = e.delta))
          const marker = caret < text.length ? text[caret] : undefined
          doc.transact(() => {
            if (del > 0) ytext.delete(pos, del)
            if (insert.length > 0) ytext.insert(pos, insert)
          })
          const mapped = mapIndex(delta, caret)
          const after = ytext.toJSON()
          expect(mapped).toBeGreaterThanOrEqual(0)
          expect(mapped).toBeLessThanOrEqual(after.length)
          // A caret outside the changed range stays before the same character.
          if (caret < pos) expect(mapped).toBe(caret)
          if (caret >= pos + del && marker !== undefined) {
            expect(after[mapped]).toBe(marker)
          }
        },
      ),
    )
  })
})
