/** Stable error codes raised by `@x/kademlia`. Match on `code`, not on `instanceof`. */
export type KademliaErrorCode =
  | 'X_KAD_TIMEOUT'
  | 'X_KAD_ABORTED'
  | 'X_KAD_NOT_STARTED'
  | 'X_KAD_STOPPED'
  | 'X_KAD_BAD_STATE'
  | 'X_KAD_INVALID_RECORD'
  | 'X_KAD_STORE_FAILED'
  | 'X_KAD_BAD_RESPONSE'
  | 'X_KAD_TRANSPORT'
  | 'X_KAD_UNRESOLVED'

/** The one error class of this package; `code` is stable across versions. */
export class KademliaError extends Error {
  /** What went wrong; stable across versions, match on it. */
  readonly code: KademliaErrorCode

  constructor(code: KademliaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'KademliaError'
    this.code = code
  }
}

/** Throws `X_KAD_ABORTED` if `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new KademliaError('X_KAD_ABORTED', 'operation aborted')
}
