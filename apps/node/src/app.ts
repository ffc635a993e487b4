import { createHash, timingSafeEqual } from 'node:crypto'
import type { SecureContextOptions } from 'node:tls'
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
} from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { healthToHttpStatus, type HealthReport, type HealthRegistry } from '@x/node-monitor'
import { ERROR_STATUS, statusForError } from './errors'
import {
  SCHEMAS,
  type AiFlaggedReport,
  type CryptoStatusReport,
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
  await app.register(webRoutes, {
    wsPort: node.wsPort,
  })
  return app
}
