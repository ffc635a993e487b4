/** Stable error codes of `@x/crdt-sync`. Match on `code`, never on `instanceof` (copies of a package differ). */
export type CrdtSyncErrorCode =
  | 'X_CRDT_DOC_TOO_LARGE'
  | 'X_CRDT_UPDATE_TOO_LARGE'
  | 'X_CRDT_QUOTA_EXCEEDED'
  | 'X_CRDT_RATE_LIMITED'
  | 'X_CRDT_STORAGE'
  | 'X_CRDT_TOO_MANY_DOCS'
  | 'X_CRDT_TOO_MANY_CLIENTS'
  | 'X_CRDT_BAD_MESSAGE'
  | 'X_CRDT_BAD_DOC_NAME'
  | 'X_CRDT_READ_ONLY'
  | 'X_CRDT_DOC_FAILED'
  | 'X_CRDT_CLOSED'

/** The one error class of this package; `code` is stable, `message` is for humans. */
export class CrdtSyncError extends Error {
  /** What went wrong; stable across versions, match on it. */
  readonly code: CrdtSyncErrorCode

  constructor(code: CrdtSyncErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CrdtSyncError'
    this.code = code
  }
}

/** True when `err` carries one of this package's codes (works across package copies). */
export function isCrdtSyncError(err: unknown): err is CrdtSyncError {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { code?: unknown }).code === 'string' &&
    (err as { code: string }).code.startsWith('X_CRDT_')
  )
}
