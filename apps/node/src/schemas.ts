/**
 * JSON schemas of every REST response. Fastify serialises responses through them (fast-json-stringify), the
 * OpenAPI document at `/docs` is generated from them, and the end-to-end tests validate live responses against
 * them with Ajv.
 */
import type { FlaggedEntry } from './ai/engine'

const componentHealth = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['ok', 'degraded', 'down', 'disabled'] },
    required: { type: 'boolean' },
    durationMs: { type: 'number' },
    reason: { type: 'string' },
    error: { type: 'string' },
  },
  additionalProperties: true,
} as const

export const COMPONENT_NAMES = ['crypto', 'signaling', 'dht', 'p2p', 'storage', 'ai'] as const

export const healthSchema = {
  $id: 'HealthReport',
  type: 'object',
  description: "The seed's extended health check: the aggregate and every component's status with details.",
  required: ['status', 'timestamp', 'uptime', 'version', 'components'],
  properties: {
    status: { type: 'string', enum: ['ok', 'degraded', 'down'] },
    timestamp: { type: 'number', description: 'when the checks ran, ms since the epoch' },
    uptime: { type: 'number', description: 'ms since the node started' },
    version: { type: 'string' },
    components: {
      type: 'object',
      required: [...COMPONENT_NAMES],
      properties: Object.fromEntries(COMPONENT_NAMES.map((n) => [n, componentHealth])),
      additionalProperties: componentHealth,
    },
  },
  additionalProperties: false,
} as const

export const livenessSchema = {
  $id: 'Liveness',
  type: 'object',
  required: ['status', 'timestamp', 'uptime', 'version'],
  properties: {
    status: { type: 'string', enum: ['ok'] },
    timestamp: { type: 'number' },
    uptime: { type: 'number' },
    version: { type: 'string' },
  },
  additionalProperties: false,
} as const

export const readinessSchema = {
  $id: 'Readiness',
  type: 'object',
  required: ['status', 'ready', 'timestamp', 'failing'],
  properties: {
    status: { type: 'string', enum: ['ok', 'degraded', 'down'] },
    ready: { type: 'boolean' },
    timestamp: { type: 'number' },
    failing: { type: 'array', items: { type: 'string' } },
  },
  additionalProperties: false,
} as const

const dhtStats = {
  type: 'object',
  required: ['totalNodes', 'bucketsUsed', 'bootstrapNodes'],
  properties: {
    totalNodes: { type: 'integer', minimum: 0 },
    bucketsUsed: { type: 'integer', minimum: 0 },
    bootstrapNodes: { type: 'integer', minimum: 0 },
  },
  additionalProperties: true,
} as const

export const peersSchema = {
  $id: 'Peers',
  type: 'object',
  description: "The seed's /api/peers: this node's P2P links, the signaling server and the DHT, merged.",
  required: ['connected', 'total', 'list', 'signaling', 'dht'],
  properties: {
    connected: { type: 'integer', minimum: 0, description: 'open P2P links + connected signaling peers' },
    total: { type: 'integer', minimum: 0, description: 'known P2P links (any state) + signaling peers' },
    list: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'kind', 'state'],
        properties: {
          id: { type: 'string' },
          kind: { type: 'string', enum: ['p2p-link', 'signaling-peer'] },
          state: { type: 'string', enum: ['connecting', 'open', 'closing', 'closed'] },
          address: { type: 'string' },
          direction: { type: 'string', enum: ['inbound', 'outbound'] },
          since: { type: 'number' },
        },
        additionalProperties: false,
      },
    },
    signaling: {
      type: 'object',
      required: ['connections', 'peers', 'connectedPeers', 'dhtNodes', 'dhtBuckets'],
      properties: {
        connections: { type: 'integer', minimum: 0 },
        peers: { type: 'integer', minimum: 0 },
        connectedPeers: { type: 'integer', minimum: 0 },
        dhtNodes: { type: 'integer', minimum: 0 },
        dhtBuckets: { type: 'integer', minimum: 0 },
      },
      additionalProperties: true,
    },
    dht: dhtStats,
  },
  additionalProperties: false,
} as const

export const cryptoStatusSchema = {
  $id: 'CryptoStatus',
  type: 'object',
  description: "@x/pqc's status plus this node's identity.",
  required: ['initialized', 'algorithm', 'keyPairs', 'kyberKeySize', 'dilithiumKeySize', 'production'],
  properties: {
    initialized: { type: 'boolean' },
    algorithm: { type: 'string' },
    keyPairs: { type: 'integer', minimum: 0 },
    kyberKeySize: { type: 'integer' },
    dilithiumKeySize: { type: 'integer' },
    backend: { type: 'string' },
    production: { type: 'boolean' },
    nodeId: { type: 'string', description: "this node's 160-bit ID (hex)" },
    keyFileEncrypted: {
      type: 'boolean',
      description: 'whether the identity key file is passphrase-encrypted',
    },
    tls: {
      type: 'object',
      description: 'TLS on the REST and WebSocket ports, and the key-exchange groups offered',
      required: ['enabled', 'groups', 'postQuantum'],
      properties: {
        enabled: { type: 'boolean' },
        groups: {
          type: 'array',
          items: { type: 'string' },
          description: 'TLS 1.3 key-exchange groups offered, most preferred first',
        },
        postQuantum: {
          type: 'boolean',
          description: 'whether X25519MLKEM768 (hybrid ML-KEM-768 + X25519) is offered first',
        },
      },
      additionalProperties: false,
    },
  },
  additionalProperties: false,
} as const

export const dhtNodesSchema = {
  $id: 'DhtNodes',
  type: 'object',
  required: ['nodes', 'stats'],
  properties: {
    nodes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'address', 'lastSeen', 'bucket'],
        properties: {
          id: { type: 'string', description: '160-bit node ID (hex)' },
          address: { type: 'string', description: 'host:port (UDP)' },
          lastSeen: { type: 'number', description: 'ms since the epoch' },
          bucket: { type: 'integer', minimum: 0, maximum: 159 },
        },
        additionalProperties: false,
      },
    },
    stats: dhtStats,
  },
  additionalProperties: false,
} as const

export const aiFlaggedSchema = {
  $id: 'AiFlagged',
  type: 'object',
  description:
    'Peers, connections and addresses the AI engine throttles or blocks now, then recently released ones.',
  required: ['enabled', 'flagged'],
  properties: {
    enabled: { type: 'boolean' },
    flagged: {
      type: 'array',
      items: {
        type: 'object',
        required: ['kind', 'id', 'level', 'score', 'peak', 'since', 'firstFlagged', 'offenses', 'reasons'],
        properties: {
          kind: { type: 'string', enum: ['peer', 'peerjs', 'connection', 'address', 'prefix'] },
          id: {
            type: 'string',
            description:
              'peer ID (native or PeerJS), connection number, IP address or prefix (a.b.c.0/24, x:x:x:x::/64)',
          },
          credential: {
            type: 'string',
            description:
              'PeerJS: digest of the token that held the ID (whoever misbehaved under it, not its owner)',
          },
          address: { type: 'string', description: 'source IP address, when known' },
          level: { type: 'string', enum: ['normal', 'throttled', 'blocked'] },
          score: {
            type: 'number',
            description:
              'last score: octaves above the learned 99th percentile (capped by the feature ceiling)',
          },
          peak: { type: 'number' },
          since: { type: 'number', description: 'when the current level began, ms since the epoch' },
          until: { type: 'number', description: 'end of the block, ms since the epoch' },
          firstFlagged: { type: 'number' },
          offenses: { type: 'number' },
          reasons: {
            type: 'array',
            items: {
              type: 'object',
              required: ['feature', 'value', 'p99', 'score'],
              properties: {
                feature: { type: 'string' },
                value: { type: 'number' },
                p99: { type: 'number', description: "the baseline's 99th percentile for this feature" },
                score: { type: 'number' },
              },
              additionalProperties: false,
            },
          },
        },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
} as const

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['statusCode', 'error', 'code', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    code: { type: 'string' },
    message: { type: 'string' },
  },
  additionalProperties: false,
} as const

const revocationProperties = {
  id: { type: 'string', description: 'hex ID; nodes that forward it apply it once' },
  docName: { type: 'string' },
  tokenId: { type: 'string', description: 'only sessions opened with this token ID (`jti`)' },
  subject: { type: 'string', description: 'only sessions whose token has this subject (`sub`)' },
  access: { type: 'string', enum: ['read-only', 'deny'], description: 'what matching sessions keep' },
  until: { type: 'number', description: 'ms since the epoch; tokens it matches are refused until then' },
} as const

export const crdtRevocationSchema = {
  $id: 'CrdtRevocation',
  type: 'object',
  description:
    'A revocation of document sessions, applied here and sent to the linked nodes that may host the document.',
  required: ['id', 'docName', 'access', 'until', 'sessions', 'nodes'],
  properties: {
    ...revocationProperties,
    sessions: { type: 'integer', description: 'live sessions on this node it closed or downgraded' },
    nodes: { type: 'array', items: { type: 'string' }, description: 'node IDs it was sent to' },
  },
  additionalProperties: false,
} as const

export const crdtRevocationsSchema = {
  $id: 'CrdtRevocations',
  type: 'object',
  description: 'The revocations this node holds now (made here or received from other nodes).',
  required: ['revocations'],
  properties: {
    revocations: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'docName', 'access', 'until'],
        properties: revocationProperties,
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
} as const

const versionInfo = {
  type: 'object',
  required: ['id', 'kind', 'createdAt', 'bytes'],
  properties: {
    id: { type: 'string' },
    kind: { type: 'string', enum: ['named', 'periodic'] },
    name: { type: 'string' },
    createdAt: { type: 'number', description: 'ms since the epoch' },
    bytes: { type: 'integer', description: 'size of its Yjs update' },
  },
  additionalProperties: false,
} as const

export const crdtVersionSchema = {
  $id: 'CrdtVersion',
  description: 'A version of a document.',
  ...versionInfo,
} as const

export const crdtVersionsSchema = {
  $id: 'CrdtVersions',
  type: 'object',
  description: 'The versions of a document, newest first.',
  required: ['versions'],
  properties: { versions: { type: 'array', items: versionInfo } },
  additionalProperties: false,
} as const

export const crdtVersionContentSchema = {
  $id: 'CrdtVersionContent',
  type: 'object',
  description:
    'A version and the JSON of its shared types (text as a string, XML fragments as markup, arrays and maps as JSON).',
  required: ['version', 'json'],
  properties: {
    version: versionInfo,
    json: { type: 'object', additionalProperties: true },
  },
  additionalProperties: false,
} as const

export const crdtRestoreSchema = {
  $id: 'CrdtRestore',
  type: 'object',
  description: 'A restore: the version the document was made equal to, and the version saved just before.',
  required: ['restored', 'before'],
  properties: { restored: versionInfo, before: versionInfo },
  additionalProperties: false,
} as const

export const SCHEMAS = [
  crdtVersionSchema,
  crdtVersionsSchema,
  crdtVersionContentSchema,
  crdtRestoreSchema,
  crdtRevocationSchema,
  crdtRevocationsSchema,
  healthSchema,
  livenessSchema,
  readinessSchema,
  peersSchema,
  cryptoStatusSchema,
  dhtNodesSchema,
  aiFlaggedSchema,
  errorSchema,
] as const

export interface CrdtVersionEntry {
  id: string
  kind: 'named' | 'periodic'
  name?: string
  createdAt: number
  bytes: number
}

export interface CrdtRevocationEntry {
  id: string
  docName: string
  tokenId?: string
  subject?: string
  access: 'read-only' | 'deny'
  until: number
}

export interface CrdtRevocationReport extends CrdtRevocationEntry {
  sessions: number
  nodes: string[]
}

export interface CrdtRevocationRequest {
  docName: string
  tokenId?: string
  subject?: string
  access: 'read-only' | 'deny'
  ttlMs?: number
}

export interface AiFlaggedReport {
  enabled: boolean
  flagged: FlaggedEntry[]
}

export interface PeerEntry {
  id: string
  kind: 'p2p-link' | 'signaling-peer'
  state: 'connecting' | 'open' | 'closing' | 'closed'
  address?: string
  direction?: 'inbound' | 'outbound'
  since?: number
}

export interface DhtStats {
  totalNodes: number
  bucketsUsed: number
  bootstrapNodes: number
  [extra: string]: unknown
}

export interface PeersReport {
  connected: number
  total: number
  list: PeerEntry[]
  signaling: {
    connections: number
    peers: number
    connectedPeers: number
    dhtNodes: number
    dhtBuckets: number
    [extra: string]: unknown
  }
  dht: DhtStats
}

export interface DhtNodesReport {
  nodes: { id: string; address: string; lastSeen: number; bucket: number }[]
  stats: DhtStats
}

export interface CryptoStatusReport {
  initialized: boolean
  algorithm: string
  keyPairs: number
  kyberKeySize: number
  dilithiumKeySize: number
  backend?: string
  production: boolean
  nodeId?: string
  keyFileEncrypted?: boolean
  tls?: { enabled: boolean; groups: string[]; postQuantum: boolean }
}
