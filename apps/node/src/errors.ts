/**
 * The one table that maps package error codes to HTTP statuses (documented in the README). Errors are matched
 * by their string `code`, never by `instanceof` (which breaks across copies of a package).
 */
export const ERROR_STATUS: Readonly<Record<string, number>> = Object.freeze({
  // apps/node
  X_NODE_CONFIG_INVALID: 400,
  X_NODE_NOT_READY: 503,
  X_NODE_NOT_FOUND: 404,
  // @x/pqc
  X_PQC_BAD_KEY: 400,
  X_PQC_BAD_MESSAGE: 400,
  X_PQC_BAD_SIGNATURE: 401,
  X_PQC_IDENTITY_MISMATCH: 401,
  X_PQC_HANDSHAKE_FAILED: 401,
  X_PQC_HANDSHAKE_TIMEOUT: 504,
  X_PQC_BACKEND_UNAVAILABLE: 503,
  X_PQC_KEYFILE_BAD_PASSPHRASE: 500,
  X_PQC_KEYFILE_CORRUPT: 500,
  // @x/kademlia
  X_KAD_TIMEOUT: 504,
  X_KAD_ABORTED: 503,
  X_KAD_NOT_STARTED: 503,
  X_KAD_STOPPED: 503,
  X_KAD_INVALID_RECORD: 400,
  X_KAD_BAD_RESPONSE: 502,
  X_KAD_STORE_FAILED: 502,
  X_KAD_TRANSPORT: 502,
  // @x/signaling
  X_SIG_CLOSED: 503,
  X_SIG_TIMEOUT: 504,
  X_SIG_CONNECT_FAILED: 502,
  // @x/crdt-sync
  X_CRDT_BAD_DOC_NAME: 400,
  X_CRDT_BAD_MESSAGE: 400,
  X_CRDT_READ_ONLY: 403,
  X_CRDT_DOC_TOO_LARGE: 413,
  X_CRDT_UPDATE_TOO_LARGE: 413,
  X_CRDT_RATE_LIMITED: 429,
  X_CRDT_QUOTA_EXCEEDED: 507,
  X_CRDT_TOO_MANY_DOCS: 503,
  X_CRDT_TOO_MANY_CLIENTS: 503,
  X_CRDT_CLOSED: 503,
  X_CRDT_STORAGE: 503,
  X_CRDT_DOC_FAILED: 500,
  // @x/node-monitor
  X_MON_DUPLICATE_NAME: 500,
  X_MON_METRIC_CONFLICT: 500,
})

/** An error raised by apps/node itself. */
export class NodeError extends Error {
  constructor(
    readonly code: 'X_NODE_NOT_READY' | 'X_NODE_NOT_FOUND' | 'X_NODE_START_FAILED',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'NodeError'
  }
}

/**
 * The HTTP status for an error: the table for `X_*` codes, the error's own 4xx `statusCode` (Fastify's
 * validation and parsing errors), else 500.
 */
export function statusForError(err: unknown): number {
  if (typeof err === 'object' && err !== null) {
    const { code, statusCode } = err as { code?: unknown; statusCode?: unknown }
    if (typeof code === 'string' && code in ERROR_STATUS) return ERROR_STATUS[code]!
    if (typeof code === 'string' && code.startsWith('X_')) return 500
    if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 600) return statusCode
  }
  return 500
}
