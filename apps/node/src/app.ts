import { createHash, timingSafeEqual } from 'node:crypto'
import type { SecureContextOptions } from 'node:tls'
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { healthToHttpStatus, type HealthReport, type HealthRegistry } from '@x/node-monitor'
import { ERROR_STATUS, NodeError, statusForError } from './errors'
import {
  SCHEMAS,
  type AiFlaggedReport,
  type CryptoStatusReport,
  type CrdtRevocationReport,
  type CrdtRevocationEntry,
  type CrdtRevocationRequest,
  type CrdtVersionEntry,
  type DhtNodesReport,
  type PeersReport,
} from './schemas'
import { webRoutes } from './web'

/** What the REST API needs from a running node (implemented by `createNode`). */
export interface AppNode {
  readonly version: string
  readonly health: HealthRegistry
  /**
   * `limit`: most signaling peers listed in `list` (P2P links are always all listed). `addresses`: include each
   * entry's network address (only for a request bearing the admin token).
   */
  peers(options?: { limit?: number; addresses?: boolean }): Promise<PeersReport>
  cryptoStatus(): CryptoStatusReport
  dhtNodes(): DhtNodesReport
  aiFlagged(): AiFlaggedReport
  metricsText(): Promise<string>
  readonly metricsContentType: string
  /**
   * Revokes document sessions here and on the linked nodes that may host the document (admin only). Throws a
   * `RangeError` for a malformed request.
   */
  crdtRevoke?(request: CrdtRevocationRequest): Promise<CrdtRevocationReport>
  /** The revocations held now (admin only). */
  crdtRevocations?(): CrdtRevocationEntry[]
  /** Version history of documents (admin only); see `@x/crdt-sync` `VersionHistory`. */
  crdtVersions?: {
    list(docName: string): Promise<CrdtVersionEntry[]>
    create(docName: string, options: { name?: string }): Promise<CrdtVersionEntry>
    read(
      docName: string,
      id: string,
    ): Promise<{ info: CrdtVersionEntry; update: Uint8Array; json: Record<string, unknown> }>
    restore(docName: string, id: string): Promise<{ restored: CrdtVersionEntry; before: CrdtVersionEntry }>
  }
  /** The WebSocket port the demo page is told to use. @default 3001 */
  readonly wsPort?: number
}

export interface BuildAppOptions {
  /** Pino logger for the REST component. @default no logging */
  logger?: FastifyBaseLogger
  /** Bearer token that unlocks sensitive data (peer addresses); empty: nobody sees it. @default '' */
  adminToken?: string
  /** Serves https with these options instead of http. @default http */
  https?: SecureContextOptions
  /** Reverse proxies whose `X-Forwarded-For` gives the client address (`request.ip`). @default none */
  trustProxy?: readonly string[]
}

/** Whether `request` carries `Authorization: Bearer <token>` for a non-empty `token` (compared in constant time). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (token === '' || header === undefined || !header.startsWith('Bearer ')) return false
  const given = createHash('sha256').update(header.slice(7)).digest()
  const expected = createHash('sha256').update(token).digest()
  return timingSafeEqual(given, expected)
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  413: 'Payload Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
}

function ref(id: string) {
  return { $ref: `${id}#` }
}

/** Signaling peers listed by `/api/peers` unless `?limit=` says otherwise (a node may hold 20,000). */
const DEFAULT_PEERS_LIMIT = 1_000
const MAX_PEERS_LIMIT = 20_000

const errorResponses = { 500: ref('Error'), 503: ref('Error') }

/**
 * Builds the REST API over `node`. Never listens: `server.ts` does, tests use `app.inject()`.
 */
export async function buildApp(node: AppNode, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    ...(options.https === undefined ? {} : { https: options.https }),
    ...(options.trustProxy === undefined || options.trustProxy.length === 0
      ? {}
      : { trustProxy: [...options.trustProxy] }),
    // Per-request logs would cost more than the cached health report itself; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    routerOptions: { maxParamLength: 200 },
    return503OnClosing: true,
    forceCloseConnections: true,
  })
  for (const schema of SCHEMAS) app.addSchema(schema)
  const serialised = new WeakMap<HealthReport, string>()

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'x node',
        version: node.version,
        description: 'REST API of the reference post-quantum P2P node.',
      },
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (json.$id as string) ?? `def-${i}`,
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const statusCode = statusForError(err)
    const code = typeof err.code === 'string' ? err.code : 'X_NODE_INTERNAL'
    if (statusCode >= 500) request.log.error({ err, code, url: request.url }, 'request failed')
    // 5xx without a mapped code may carry internals: say only what failed.
    const message =
      statusCode >= 500 && !(code in ERROR_STATUS) ? 'internal error' : String(err.message).slice(0, 500)
    void reply
      .status(statusCode)
      .send({ statusCode, error: STATUS_TEXT[statusCode] ?? 'Error', code, message })
  })
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({
      statusCode: 404,
      error: 'Not Found',
      code: 'X_NODE_NOT_FOUND',
      message: `no route ${request.method} ${request.url.slice(0, 200)}`,
    })
  })

  app.get(
    '/api/health',
    {
      schema: {
        summary: 'Extended health check of every component (200 ok/degraded, 503 down)',
        response: { 200: ref('HealthReport'), 503: ref('HealthReport'), 500: ref('Error') },
      },
    },
    async (_request, reply) => {
      const report: HealthReport = await node.health.report()
      // The report is shared by every caller within the cache TTL: serialise it once, not once per request.
      let body = serialised.get(report)
      if (body === undefined) serialised.set(report, (body = JSON.stringify(report)))
      return reply
        .status(healthToHttpStatus(report.status))
        .type('application/json; charset=utf-8')
        .send(body)
    },
  )
  app.get(
    '/api/health/live',
    { schema: { summary: 'Liveness: the process answers', response: { 200: ref('Liveness') } } },
    () => node.health.liveness(),
  )
  app.get(
    '/api/health/ready',
    {
      schema: {
        summary: 'Readiness: no required component is down (200 / 503)',
        response: { 200: ref('Readiness'), 503: ref('Readiness') },
      },
    },
    async (_request, reply) => {
      const ready = await node.health.readiness()
      return reply.status(ready.ready ? 200 : 503).send(ready)
    },
  )
  app.get<{ Querystring: { limit: number } }>(
    '/api/peers',
    {
      schema: {
        summary: 'P2P links, signaling and DHT figures merged',
        description:
          "IDs and kinds for everyone; each entry's network `address` only with `Authorization: Bearer <adminToken>`.",
        querystring: {
          type: 'object',
          properties: {
            limit: {
              type: 'integer',
              minimum: 0,
              maximum: MAX_PEERS_LIMIT,
              default: DEFAULT_PEERS_LIMIT,
              description: 'most signaling peers in `list`; `signaling.peers` is always the full count',
            },
          },
          additionalProperties: false,
        },
        response: { 200: ref('Peers'), 400: ref('Error'), ...errorResponses },
      },
    },
    (request) =>
      node.peers({
        limit: request.query.limit,
        addresses: bearerMatches(request.headers.authorization, options.adminToken ?? ''),
      }),
  )
  app.get(
    '/api/crypto/status',
    {
      schema: {
        summary: "@x/pqc's status and this node's identity",
        response: { 200: ref('CryptoStatus'), ...errorResponses },
      },
    },
    () => node.cryptoStatus(),
  )
  app.get(
    '/api/dht/nodes',
    {
      schema: {
        summary: 'Contacts of the routing table and DHT statistics',
        response: { 200: ref('DhtNodes'), ...errorResponses },
      },
    },
    () => node.dhtNodes(),
  )
  app.get(
    '/api/ai/flagged',
    {
      schema: {
        summary: 'What the AI engine throttles or blocks, and why (the features that drove each score)',
        response: { 200: ref('AiFlagged'), ...errorResponses },
      },
    },
    () => node.aiFlagged(),
  )
  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        response: { 200: { type: 'string' } },
      },
    },
    async (_request, reply) => reply.type(node.metricsContentType).send(await node.metricsText()),
  )
  /** Admin routes check the token first, before the body is parsed or validated: a stranger learns nothing. */
  const adminOnly = (request: FastifyRequest): Promise<void> =>
    bearerMatches(request.headers.authorization, options.adminToken ?? '')
      ? Promise.resolve()
      : Promise.reject(
          new NodeError('X_NODE_UNAUTHORIZED', 'this call needs Authorization: Bearer <adminToken>'),
        )
  const crdtRevoke = node.crdtRevoke?.bind(node)
  const crdtRevocations = node.crdtRevocations?.bind(node)
  if (crdtRevoke !== undefined && crdtRevocations !== undefined) {
    app.post<{ Body: CrdtRevocationRequest }>(
      '/api/crdt/revocations',
      {
        onRequest: adminOnly,
        schema: {
          summary: 'Revoke document sessions (admin): closes or downgrades them here and on linked nodes',
          description:
            "Live sessions of `docName` (those of `tokenId`'s token, or of `subject`'s, when given) keep at most " +
            '`access`, within a second on every node hosting the document; new sessions are refused or ' +
            'read-only until `until`. Needs `Authorization: Bearer <adminToken>`.',
          body: {
            type: 'object',
            required: ['docName', 'access'],
            properties: {
              docName: { type: 'string', minLength: 1, maxLength: 512 },
              tokenId: { type: 'string', minLength: 1, maxLength: 256 },
              subject: { type: 'string', minLength: 1, maxLength: 256 },
              access: { type: 'string', enum: ['read-only', 'deny'] },
              ttlMs: { type: 'integer', minimum: 1, maximum: 2_592_000_000, default: 86_400_000 },
            },
            additionalProperties: false,
          },
          response: { 201: ref('CrdtRevocation'), 400: ref('Error'), 401: ref('Error'), ...errorResponses },
        },
      },
      async (request, reply) => {
        let report: CrdtRevocationReport
        try {
          report = await crdtRevoke(request.body)
        } catch (err) {
          if (err instanceof RangeError) {
            return reply.status(400).send({
              statusCode: 400,
              error: 'Bad Request',
              code: 'X_CRDT_BAD_DOC_NAME',
              message: err.message,
            })
          }
          throw err
        }
        return reply.status(201).send(report)
      },
    )
    app.get(
      '/api/crdt/revocations',
      {
        onRequest: adminOnly,
        schema: {
          summary: 'Document revocations this node holds (admin)',
          response: { 200: ref('CrdtRevocations'), 401: ref('Error'), ...errorResponses },
        },
      },
      () => ({ revocations: crdtRevocations() }),
    )
  }
  const versions = node.crdtVersions
  if (versions !== undefined) {
    const docParams = {
      type: 'object',
      required: ['doc'],
      properties: { doc: { type: 'string', minLength: 1, description: 'the document name, URL-encoded' } },
    } as const
    const versionParams = {
      type: 'object',
      required: ['doc', 'id'],
      properties: { doc: docParams.properties.doc, id: { type: 'string', minLength: 1, maxLength: 64 } },
    } as const
    const admin = 'Needs `Authorization: Bearer <adminToken>`.'
    app.get<{ Params: { doc: string } }>(
      '/api/crdt/docs/:doc/versions',
      {
        onRequest: adminOnly,
        schema: {
          summary: 'Versions of a document, newest first (admin)',
          description: admin,
          params: docParams,
          response: { 200: ref('CrdtVersions'), 400: ref('Error'), 401: ref('Error'), ...errorResponses },
        },
      },
      async (request) => {
        return { versions: await versions.list(request.params.doc) }
      },
    )
    app.post<{ Params: { doc: string }; Body: { name?: string } | undefined }>(
      '/api/crdt/docs/:doc/versions',
      {
        onRequest: adminOnly,
        schema: {
          summary: 'Make a named version of a document now (admin)',
          description: admin,
          params: docParams,
          body: {
            type: 'object',
            properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
            additionalProperties: false,
          },
          response: {
            201: ref('CrdtVersion'),
            400: ref('Error'),
            401: ref('Error'),
            404: ref('Error'),
            ...errorResponses,
          },
        },
      },
      async (request, reply) => {
        const name = request.body?.name
        const info = await versions.create(request.params.doc, name === undefined ? {} : { name })
        return reply.status(201).send(info)
      },
    )
    app.get<{ Params: { doc: string; id: string } }>(
      '/api/crdt/docs/:doc/versions/:id',
      {
        onRequest: adminOnly,
        schema: {
          summary: 'One version as JSON of its shared types (admin)',
          description: admin,
          params: versionParams,
          response: {
            200: ref('CrdtVersionContent'),
            401: ref('Error'),
            404: ref('Error'),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const { info, json } = await versions.read(request.params.doc, request.params.id)
        return { version: info, json }
      },
    )
    app.get<{ Params: { doc: string; id: string } }>(
      '/api/crdt/docs/:doc/versions/:id/update',
      {
        onRequest: adminOnly,
        schema: {
          summary: 'One version as a Yjs v1 update of the whole document (admin; application/octet-stream)',
          description: admin,
          params: versionParams,
          response: { 401: ref('Error'), 404: ref('Error'), ...errorResponses },
        },
      },
      async (request, reply) => {
        const { update } = await versions.read(request.params.doc, request.params.id)
        return reply.type('application/octet-stream').send(Buffer.from(update))
      },
    )
    app.post<{ Params: { doc: string; id: string } }>(
      '/api/crdt/docs/:doc/versions/:id/restore',
      {
        onRequest: adminOnly,
        schema: {
          summary: 'Restore a version as a new change every client converges to (admin)',
          description: `${admin} The state before is saved as a named version first.`,
          params: versionParams,
          response: { 200: ref('CrdtRestore'), 401: ref('Error'), 404: ref('Error'), ...errorResponses },
        },
      },
      async (request) => {
        return versions.restore(request.params.doc, request.params.id)
      },
    )
  }
  await app.register(webRoutes, {
    wsPort: node.wsPort,
  })
  return app
}
