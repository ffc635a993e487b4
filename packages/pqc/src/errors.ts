/**
 * The one error class of `@x/pqc`. Match errors by `code` (see {@link isPqcError}), never by `instanceof`:
 * two copies of the package in one process have two different classes.
 */

/** Stable error codes. Documented in the README's Errors table. */
export type PqcErrorCode =
  | 'X_PQC_BAD_SIGNATURE'
  | 'X_PQC_BAD_KEY'
  | 'X_PQC_BAD_CIPHERTEXT'
  | 'X_PQC_DECRYPT_FAILED'
  | 'X_PQC_BACKEND_UNAVAILABLE'
  | 'X_PQC_WORKER_FAILED'
  | 'X_PQC_CLOSED'
  | 'X_PQC_HANDSHAKE_FAILED'
  | 'X_PQC_HANDSHAKE_TIMEOUT'
  | 'X_PQC_IDENTITY_MISMATCH'
  | 'X_PQC_REPLAY'
  | 'X_PQC_OUT_OF_ORDER'
  | 'X_PQC_RECORD_TOO_LARGE'
  | 'X_PQC_SESSION_CLOSED'
  | 'X_PQC_BAD_MESSAGE'
  | 'X_PQC_KEYFILE_CORRUPT'
  | 'X_PQC_KEYFILE_BAD_PASSPHRASE'
  | 'X_PQC_KEYFILE_VERSION'

/** A runtime or protocol failure with a stable string `code`. */
export class PqcError extends Error {
  /** What went wrong; stable across versions, match on it. */
  readonly code: PqcErrorCode

  constructor(code: PqcErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'PqcError'
    this.code = code
  }
}

/** True when `e` is a {@link PqcError} (matched structurally by `code`), optionally with the given code. */
export function isPqcError(e: unknown, code?: PqcErrorCode): e is PqcError {
  if (typeof e !== 'object' || e === null) return false
  const c = (e as { code?: unknown }).code
  if (typeof c !== 'string' || !c.startsWith('X_PQC_')) return false
  return code === undefined || c === code
}
