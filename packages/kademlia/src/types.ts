/** A clock: real by default, virtual in the simulator. Times are milliseconds. */
export interface Clock {
  /** The current time in milliseconds (`Date.now()` by default); exported state carries times on this clock. */
  now(): number
  /** Calls `fn` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown
  /** Cancels a pending `setTimeout`; ignores a handle that already fired. */
  clearTimeout(handle: unknown): void
}

/** A pino-shaped logger. Defaults to a silent one. */
export interface Logger {
  /** Detail useful when diagnosing. */
  debug(obj: object, msg?: string): void
  /** A normal event worth a line. */
  info(obj: object, msg?: string): void
  /** Something an operator should look at, such as a failed bootstrap. */
  warn(obj: object, msg?: string): void
  /** A failure this package could not handle itself. */
  error(obj: object, msg?: string): void
  /** A logger that adds `bindings` to every line. */
  child(bindings: object): Logger
}

/** Moves datagrams. Addresses are strings (`1.2.3.4:5`, `[::1]:5`, or any memory-transport name). */
export interface Transport {
  /** Sends one datagram; must not throw for an unreachable address (drop it instead). */
  send(bytes: Uint8Array, address: string): void
  /** Sets the handler for inbound datagrams (one handler; a new call replaces it). */
  onMessage(handler: (bytes: Uint8Array, from: string) => void): void
  /** Releases the transport. */
  close(): void | Promise<void>
  /**
   * IP families this transport sends to (the UDP transport: `[4]`, `[6]`, or `[4, 6]` dual stack). When
   * set, addresses given to `bootstrap()` and `ping()` must be `host:port` / `[v6]:port`, and host names
   * are resolved; when absent, addresses are opaque names (a memory network) passed through as given.
   */
  readonly families?: readonly (4 | 6)[]
}

/** `length` random bytes. */
export type RandomSource = (length: number) => Uint8Array

/** A hash function (for write tokens). At least 8 bytes of output. */
export type HashFunction = (data: Uint8Array) => Uint8Array

const noop = (): void => {}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
}

/** Label values of one metric series. */
export type MetricLabels = Readonly<Record<string, string | number>>

/**
 * Where the node reports its own metrics (the shape of `@x/node-monitor`'s `Metrics`, or a libp2p-style
 * registry adapter). Names follow Prometheus conventions; see the README's Metrics section.
 */
export interface MetricsRegistry {
  /** The counter `name`, created on first use with `help` and the label names every `inc` uses. */
  counter(
    name: string,
    help: string,
    labelNames?: readonly string[],
  ): {
    /** Adds `value` (default 1) to the series selected by `labels`. */
    inc(labels?: MetricLabels, value?: number): void
  }
  /** The histogram `name`, created on first use; `buckets` are ascending upper bounds. */
  histogram(
    name: string,
    help: string,
    labelNames?: readonly string[],
    buckets?: readonly number[],
  ): {
    /** Records one observation in the series selected by `labels`. */
    observe(value: number, labels?: MetricLabels): void
  }
}
