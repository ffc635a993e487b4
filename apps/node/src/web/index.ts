/**
 * Serves the built front end (`web/dist`, made by `pnpm --filter @x/node build:web`): the dashboard at `/`, the
 * demo at `/demo`, content-hashed bundles under `/assets/` (immutable), and `/demo/config.json`, which tells the
 * demo where the node's WebSocket endpoints are. The files are small, so they are read once at registration and
 * served from memory with strong ETags.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, readdir, stat } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** Options of {@link webRoutes}. */
export interface WebRoutesOptions {
  /**
   * Directory holding the built front end.
   * @default `web/dist` of apps/node, found next to this module (source or bundled)
   */
  distDir?: string
  /**
   * The node's WebSocket port, used to tell the demo `ws://<host the page was loaded from>:<wsPort>`.
   * @default 3001
   */
  wsPort?: number
  /** A fixed public WebSocket base URL (e.g. `wss://node.example.org` behind a proxy); overrides `wsPort`. */
  publicWsUrl?: string
}

interface StaticFile {
  body: Buffer
  type: string
  etag: string
  cacheControl: string
}

const DEFAULT_WS_PORT = 3001
const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable' // hashed names: a new build gets new URLs
const REVALIDATE_CACHE = 'no-cache' // pages name the current hashes: always revalidate (ETag makes it cheap)

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
}

// Same-origin scripts and styles only; WebSocket to any host (the node's WS port differs from the page's).
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** Where `web/dist` is relative to this module: `src/web/` under tsx or vitest, `dist/` once bundled by tsup. */
export function defaultDistDir(): string {
  const candidates = ['../../web/dist', '../web/dist'].map((p) => fileURLToPath(new URL(p, import.meta.url)))
  return candidates.find((dir) => existsSync(join(dir, 'index.html'))) ?? candidates[0]!
}

async function load(path: string, cacheControl: string): Promise<StaticFile> {
  const body = await readFile(path)
  return {
    body,
    type: CONTENT_TYPES[extname(path)] ?? 'application/octet-stream',
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
    cacheControl,
  }
}

function send(request: FastifyRequest, reply: FastifyReply, file: StaticFile): FastifyReply {
  void reply
    .header('cache-control', file.cacheControl)
    .header('etag', file.etag)
    .header('x-content-type-options', 'nosniff')
  if (file.type.startsWith('text/html')) {
    void reply.header('content-security-policy', PAGE_CSP).header('referrer-policy', 'no-referrer')
  }
  const inm = request.headers['if-none-match']
  if (inm !== undefined && inm.split(',').some((t) => t.trim() === file.etag)) return reply.status(304).send()
  return reply.type(file.type).send(file.body)
}

function notBuiltPage(distDir: string): string {
  return `<!doctype html><meta charset="utf-8"><title>x node</title><h1>The web front end is not built</h1>
<p>Expected it in <code>${distDir.replace(/[<>&]/g, '')}</code>. Run <code>pnpm --filter @x/node build:web</code>
(the workspace's <code>pnpm build</code> does it too). The REST API works meanwhile: <a href="/api/health">/api/health</a>.</p>`
}

/**
 * Fastify plugin: `GET /`, `GET /demo`, `GET /assets/*`, `GET /demo/config.json`.
 *
 * @example
 * ```ts
 * await app.register(webRoutes, { wsPort: config.wsPort })
 * ```
 */
export async function webRoutes(app: FastifyInstance, options: WebRoutesOptions): Promise<void> {
  const distDir = options.distDir ?? defaultDistDir()
  const wsPort = options.wsPort ?? DEFAULT_WS_PORT
  if (!Number.isInteger(wsPort) || wsPort < 1 || wsPort > 65_535) {
    throw new RangeError('"wsPort" must be an integer port in 1..65535')
  }
  const pages = new Map<string, StaticFile>()
  const assets = new Map<string, StaticFile>()
  try {
    pages.set('/', await load(join(distDir, 'index.html'), REVALIDATE_CACHE))
    pages.set('/demo', await load(join(distDir, 'demo.html'), REVALIDATE_CACHE))
    const assetDir = join(distDir, 'assets')
    for (const name of await readdir(assetDir)) {
      const path = join(assetDir, name)
      if ((await stat(path)).isFile()) assets.set(name, await load(path, IMMUTABLE_CACHE))
    }
  } catch (err) {
    // Not built (or being rebuilt): the REST API must start regardless; the pages say how to build.
    pages.clear()
    assets.clear()
    app.log.warn(
      { distDir, err: (err as Error).message },
      'web front end not built: / and /demo explain how to build it',
    )
  }
  const hide = { hide: true } // pages and bundles are not part of the REST API's OpenAPI document

  for (const path of ['/', '/demo']) {
    app.get(path, { schema: hide }, (request, reply) => {
      const page = pages.get(path)
      if (page === undefined) {
        return reply
          .status(503)
          .type('text/html; charset=utf-8')
          .header('cache-control', 'no-store')
          .send(notBuiltPage(distDir))
      }
      return send(request, reply, page)
    })
  }

  app.get<{ Params: { file: string } }>('/assets/:file', { schema: hide }, (request, reply) => {
    const file = assets.get(request.params.file)
    if (file === undefined) {
      return reply.status(404).send({
        statusCode: 404,
        error: 'Not Found',
        code: 'X_NODE_NOT_FOUND',
        message: `no asset ${request.params.file.slice(0, 100)}`,
      })
    }
    return send(request, reply, file)
  })

  app.get(
    '/demo/config.json',
    {
      schema: {
        summary: "Where the browser demo finds the node's WebSocket endpoints",
        response: {
          200: {
            type: 'object',
            required: ['signalingUrl', 'crdtUrl'],
            properties: {
              signalingUrl: { type: 'string', description: 'native signaling endpoint (/p2p-signaling)' },
              crdtUrl: {
                type: 'string',
                description: 'y-websocket base URL; a document is at <crdtUrl>/<name>',
              },
            },
            additionalProperties: false,
          },
        },
      },
    },
    (request, reply) => {
      const base =
        options.publicWsUrl?.replace(/\/+$/, '') ??
        `${request.protocol === 'https' ? 'wss' : 'ws'}://${wsHost(request.hostname)}:${wsPort}`
      void reply.header('cache-control', 'no-store')
      return { signalingUrl: `${base}/p2p-signaling`, crdtUrl: `${base}/crdt` }
    },
  )
}

/** The host name the page was loaded from, without its port, IPv6 literals bracketed. */
function wsHost(hostname: string): string {
  const host = hostname.length > 0 ? hostname : '127.0.0.1'
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}
