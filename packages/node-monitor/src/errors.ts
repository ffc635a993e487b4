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
  /** Always `'MonitorError'`, so logs and serialised errors name the class. */
  override readonly name = 'MonitorError'
  /** What went wrong; stable across versions, match on it. */
  readonly code: MonitorErrorCode

  constructor(code: MonitorErrorCode, message: string) {
    super(message)
    this.code = code
  }
}
