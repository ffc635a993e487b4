/** A clock: real by default, virtual in the simulator. Times are milliseconds. */
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/** A pino-shaped logger. Defaults to a silent one. */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
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
  counter(
    name: string,
    help: string,
    labelNames?: readonly string[],
  ): { inc(labels?: MetricLabels, value?: number): void }
  histogram(
    name: string,
    help: string,
    labelNames?: readonly string[],
    buckets?: readonly number[],
  ): { observe(value: number, labels?: MetricLabels): void }
}
