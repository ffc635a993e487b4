/** A pino-shaped logger. Libraries never print; the host injects one (default: silent). */
export interface Logger {
  /** Detail useful when diagnosing. */
  debug(obj: object, msg?: string): void
  /** A normal event worth a line. */
  info(obj: object, msg?: string): void
  /** Something an operator should look at, such as a storage error. */
  warn(obj: object, msg?: string): void
  /** A failure this package could not handle itself. */
  error(obj: object, msg?: string): void
  /** A logger that adds `bindings` to every line. */
  child(bindings: object): Logger
}

const noop = (): void => {}

/** A logger that drops everything. */
export const SILENT_LOGGER: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => SILENT_LOGGER,
}
