import type { PqcLogger } from './types'

const noop = (): void => {}

/** The default logger: says nothing. */
export const SILENT_LOGGER: PqcLogger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => SILENT_LOGGER,
}
