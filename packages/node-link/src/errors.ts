/** Stable error codes of `@x/node-link` (documented in the README's Errors table). */
export type LinkErrorCode =
  /** The manager was closed (or is closing). */
  | 'X_LINK_CLOSED'
  /** The dial policy refused the address (private range, not the node's known host, malformed). */
  | 'X_LINK_DIAL_REFUSED'
  /** The transport could not open a connection. */
  | 'X_LINK_DIAL_FAILED'
  /** `secure` failed (the cause carries its own code, e.g. `X_PQC_IDENTITY_MISMATCH`). */
  | 'X_LINK_HANDSHAKE_FAILED'
  /** The handshake or the arbiter's activation did not complete in time. */
  | 'X_LINK_TIMEOUT'
  /** The link closed before it became usable (the peer refused it for want of a slot, or it dropped). */
  | 'X_LINK_NOT_OPEN'
  /** No address is known for the node, and none was given. */
  | 'X_LINK_NO_ADDRESS'
  /** A frame could not be written. */
  | 'X_LINK_SEND_FAILED'

/** The one error class of `@x/node-link`. Match on `code`, not on `instanceof`. */
export class LinkError extends Error {
  /** Always `LinkError`. */
  override readonly name = 'LinkError'
  /** What went wrong: one of the stable codes above. */
  readonly code: LinkErrorCode

  constructor(code: LinkErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** True when `e` is a {@link LinkError} (matched by `code`), optionally with the given code. */
export function isLinkError(e: unknown, code?: LinkErrorCode): e is LinkError {
  if (typeof e !== 'object' || e === null) return false
  const c = (e as { code?: unknown }).code
  return typeof c === 'string' && c.startsWith('X_LINK_') && (code === undefined || c === code)
}
