/**
 * Stable error codes raised by this package. Match errors by `code`, not by `instanceof` (two copies of the
 * package in one process have two distinct classes).
 */
export type MonitorErrorCode =
  /** A health check or stats provider was registered under a name already in use. */
  | 'X_MON_DUPLICATE_NAME'
  /** A metric name was requested again with a different type or label set. */
  | 'X_MON_METRIC_CONFLICT'

/** The one error class of `@x/node-monitor`; `code` is stable across versions. */
export class MonitorError extends Error {
  override readonly name = 'MonitorError'
  readonly code: MonitorErrorCode

  constructor(code: MonitorErrorCode, message: string) {
    super(message)
    this.code = code
  }
}
