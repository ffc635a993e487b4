/** A pino-shaped logger. `@x/node-monitor` logs state changes only, never on the hot path. */
export interface Logger {
  /** Detail useful when diagnosing; off in production. */
  debug(obj: object, msg?: string): void
  /** A normal state change, such as a component recovering. */
  info(obj: object, msg?: string): void
  /** Something an operator should look at, such as a component going down. */
  warn(obj: object, msg?: string): void
  /** A failure this package could not handle itself. */
  error(obj: object, msg?: string): void
  /** A logger that adds `bindings` to every line. */
  child(bindings: Record<string, unknown>): Logger
}

/** Wall-clock source in milliseconds since the epoch. Timeouts and intervals use the global timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
}

const noop = (): void => {}

/** A logger that drops everything; the default of every factory in this package. */
export const SILENT_LOGGER: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => SILENT_LOGGER,
}

/** `Date.now()` as a {@link Clock}. */
export const SYSTEM_CLOCK: Clock = { now: () => Date.now() }

/** Throws a RangeError naming `name` unless `value` is a finite number within [min, max]. */
export function assertNumberInRange(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`'${name}' must be a finite number in [${min}, ${max}], got ${String(value)}`)
  }
  return value
}

/** Component and provider names: short, printable, usable as JSON keys and Prometheus label values. */
const NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/

export function assertName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new TypeError(`'name' must match ${String(NAME_PATTERN)}, got ${JSON.stringify(name)}`)
  }
  return name
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message
  if (typeof err === 'string') return err
  try {
    return String(err)
  } catch {
    return 'unknown error'
  }
}
