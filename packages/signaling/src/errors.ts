/**
 * Stable error codes. Wire codes (sent in `error` frames) are the short form; the thrown
 * {@link SignalingError} carries the `X_SIG_` prefixed form.
 */
export const WIRE_ERROR_CODES = [
  'BAD_MESSAGE',
  'UNKNOWN_TYPE',
  'TOO_LARGE',
  'UNAUTHENTICATED',
  'ID_TAKEN',
  'PEER_NOT_FOUND',
  'RATE_LIMITED',
  'TOPIC_LIMIT',
  'UNSUPPORTED_VERSION',
  'INTERNAL',
] as const

/** A code sent on the wire in an `error` frame. */
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number]

/** Codes thrown by this package (server and client). */
export type SignalingErrorCode =
  | `X_SIG_${WireErrorCode}`
  | 'X_SIG_CLOSED'
  | 'X_SIG_TIMEOUT'
  | 'X_SIG_CONNECT_FAILED'
  | 'X_SIG_ALREADY_LISTENING'

/** The one error class of `@x/signaling`. Match on `code`, not on `instanceof`. */
export class SignalingError extends Error {
  /** Always `'SignalingError'`, so logs and serialised errors name the class. */
  override readonly name = 'SignalingError'
  /** What went wrong; stable across versions, match on it. */
  readonly code: SignalingErrorCode

  constructor(code: SignalingErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}
