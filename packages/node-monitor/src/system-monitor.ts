import { loadavg } from 'node:os'
import { getHeapStatistics } from 'node:v8'
import {
  type EventLoopUtilization,
  type IntervalHistogram,
  monitorEventLoopDelay,
  performance,
} from 'node:perf_hooks'
import { type Clock, type Logger, SILENT_LOGGER, SYSTEM_CLOCK, assertNumberInRange } from './components'
import { type Gauge, type Metrics } from './metrics'

/** One sample of the process's vital signs. */
export interface SystemSnapshot {
  /** When the sample was taken, in milliseconds since the epoch (injected clock). */
  readonly timestamp: number
  /** Span the rates below cover, in milliseconds (time since the previous sample). */
  readonly windowMs: number
  /** CPU time the process used over the window. */
  readonly cpu: {
    /** CPU time used over the window as a share of one core, in percent (200 = two cores fully busy). */
    readonly percent: number
    /** The user-space part of `percent`. */
    readonly userPercent: number
    /** The kernel part of `percent`. */
    readonly systemPercent: number
  }
  /** From `process.memoryUsage()`, in bytes. */
  readonly memory: {
    /** Resident set size: all memory the process holds in RAM. */
    readonly rss: number
    /** V8 heap in use by live and not yet collected objects. */
    readonly heapUsed: number
    /** V8 heap reserved. */
    readonly heapTotal: number
    /** Memory of C++ objects bound to JavaScript objects, `Buffer`s included. */
    readonly external: number
    /** Memory of `ArrayBuffer`s and `SharedArrayBuffer`s (part of `external`). */
    readonly arrayBuffers: number
  }
  /** How late the event loop ran timers, and how busy it was. */
  readonly eventLoop: {
    /**
     * Event-loop delay over the window, in milliseconds, from `perf_hooks.monitorEventLoopDelay`, minus its
     * sampling resolution (the raw figures include it, so an idle loop would read as the resolution). `0`
     * when no timer fired in the window.
     */
    readonly delayP50Ms: number
    /** 99th percentile of the delay, in milliseconds. */
    readonly delayP99Ms: number
    /** Longest delay in the window, in milliseconds. */
    readonly delayMaxMs: number
    /** Mean delay, in milliseconds. */
    readonly delayMeanMs: number
    /** Share of the window the loop spent busy, 0…1 (`performance.eventLoopUtilization`). */
    readonly utilization: number
  }
  /** `process.getActiveResourcesInfo().length`: sockets, timers, handles keeping the loop alive. */
  readonly activeHandles: number
  /** `process.uptime()` in milliseconds. */
  readonly uptimeMs: number
  /** `os.loadavg()`: 1, 5 and 15 minute load averages (zeros on Windows). */
  readonly loadAverage: readonly [number, number, number]
}

/** Options of {@link createSystemMonitor}: plain data, every field optional. */
export interface SystemMonitorInit {
  /**
   * Time between samples, in milliseconds.
   * @default 5000
   */
  intervalMs?: number
  /**
   * Sampling resolution of the event-loop delay histogram, in milliseconds. Smaller catches shorter stalls
   * and costs more wake-ups.
   * @default 20
   */
  eventLoopResolutionMs?: number
  /**
   * Prefix of the gauge names given to `metrics` (e.g. `'mynode_'`).
   * @default ''
   */
  metricsPrefix?: string
}

/** What {@link createSystemMonitor} takes from the outside world; each has a default. */
export interface SystemMonitorComponents {
  /** @default `Date.now` */
  clock?: Clock
  /**
   * Reads the process's memory. `process.memoryUsage()` opens `/proc/self/stat` on Linux, so it throws `EMFILE`
   * when the process is out of file descriptors; a failed read falls back to V8's heap figures (no file
   * descriptor needed) and the last known RSS, and never throws out of the sampling timer.
   * @default process.memoryUsage
   */
  memoryUsage?: () => NodeJS.MemoryUsage
  /** When given, every sample also sets the `system_*` gauges listed in the README. */
  metrics?: Metrics
  /** @default silent */
  logger?: Logger
}

/**
 * Samples the process's CPU, memory, event loop and load on an interval; made by {@link createSystemMonitor}.
 */
export interface SystemMonitor {
  /** Starts sampling every `intervalMs` (timer unref'd: it never keeps the process alive). Idempotent. */
  start(): void
  /** Clears the interval and disables the event-loop histogram. Idempotent; `start()` may follow. */
  stop(): void
  /** Whether sampling is on (between `start()` and `stop()`). */
  readonly running: boolean
  /** The latest sample; takes one now if none was taken since `start()` (or when stopped). */
  snapshot(): SystemSnapshot
  /** Same as {@link SystemMonitor.snapshot}, shaped as a stats provider for `StatsRegistry.register`. */
  getStats(): SystemSnapshot
}

/** Default time between samples. */
export const SYSTEM_SAMPLE_INTERVAL_MS = 5_000
/** Default event-loop delay histogram resolution. */
export const EVENT_LOOP_RESOLUTION_MS = 20
const NS_PER_MS = 1e6
const MAX_TIMER_MS = 2_147_483_647

interface SystemGauges {
  cpu: Gauge
  memory: Gauge
  delay: Gauge
  utilization: Gauge
  handles: Gauge
  uptime: Gauge
  load: Gauge
}

/** Creates a system monitor. Nothing is sampled and no timer runs until `start()`. */
export function createSystemMonitor(
  components: SystemMonitorComponents = {},
  init: SystemMonitorInit = {},
): SystemMonitor {
  return new DefaultSystemMonitor(components, init)
}

class DefaultSystemMonitor implements SystemMonitor {
  readonly #clock: Clock
  readonly #log: Logger
  readonly #memoryUsage: () => NodeJS.MemoryUsage
  /** Samples that could not read every figure (see `memoryUsage`), and when that was last logged. */
  #sampleErrors = 0
  #errorLoggedAt = -Infinity
  readonly #metrics: Metrics | undefined
  readonly #intervalMs: number
  readonly #resolutionMs: number
  readonly #prefix: string
  #gauges: SystemGauges | undefined
  #timer: ReturnType<typeof setInterval> | undefined
  #histogram: IntervalHistogram | undefined
  #last: SystemSnapshot | undefined
  // Baselines of the current window.
  #cpu = process.cpuUsage()
  #hrtime = process.hrtime.bigint()
  #elu: EventLoopUtilization = performance.eventLoopUtilization()

  constructor(components: SystemMonitorComponents, init: SystemMonitorInit) {
    this.#clock = components.clock ?? SYSTEM_CLOCK
    this.#log = components.logger ?? SILENT_LOGGER
    this.#memoryUsage = components.memoryUsage ?? (() => process.memoryUsage())
    this.#metrics = components.metrics
    this.#intervalMs = assertNumberInRange(
      'intervalMs',
      init.intervalMs ?? SYSTEM_SAMPLE_INTERVAL_MS,
      10,
      MAX_TIMER_MS,
    )
    this.#resolutionMs = assertNumberInRange(
      'eventLoopResolutionMs',
      init.eventLoopResolutionMs ?? EVENT_LOOP_RESOLUTION_MS,
      1,
      60_000,
    )
    const prefix = init.metricsPrefix ?? ''
    if (typeof prefix !== 'string' || !/^[a-zA-Z_:]?[a-zA-Z0-9_:]*$/.test(prefix)) {
      throw new TypeError(`'metricsPrefix' must be a valid start of a Prometheus metric name`)
    }
    this.#prefix = prefix
  }

  get running(): boolean {
    return this.#timer !== undefined
  }

  start(): void {
    if (this.#timer !== undefined) return
    if (this.#metrics !== undefined && this.#gauges === undefined)
      this.#gauges = makeGauges(this.#metrics, this.#prefix)
    this.#histogram = monitorEventLoopDelay({ resolution: this.#resolutionMs })
    this.#histogram.enable()
    this.#last = undefined
    this.#resetBaselines()
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs)
    this.#timer.unref()
    this.#log.debug({ intervalMs: this.#intervalMs }, 'system monitor started')
  }

  stop(): void {
    if (this.#timer === undefined) return
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#histogram?.disable()
    this.#histogram = undefined
    this.#last = undefined
    this.#log.debug({}, 'system monitor stopped')
  }

  snapshot(): SystemSnapshot {
    return this.#last ?? this.#sample()
  }

  getStats(): SystemSnapshot {
    return this.snapshot()
  }

  /** The timer's callback: a sample that fails is logged (at most once a minute), never thrown. */
  #tick(): void {
    try {
      this.#sample()
    } catch (err) {
      this.#failed(err)
    }
  }

  #failed(err: unknown): void {
    this.#sampleErrors++
    const now = this.#clock.now()
    if (now - this.#errorLoggedAt < 60_000) return
    this.#errorLoggedAt = now
    this.#log.warn(
      { err: (err as Error)?.message, sampleErrors: this.#sampleErrors },
      'system sample incomplete (out of file descriptors?)',
    )
  }

  /** `process.memoryUsage()`, or V8's own figures and the last known RSS when it cannot be read. */
  #memory(): NodeJS.MemoryUsage {
    try {
      return this.#memoryUsage()
    } catch (err) {
      this.#failed(err)
      const heap = getHeapStatistics()
      return {
        rss: this.#last?.memory.rss ?? 0,
        heapUsed: heap.used_heap_size,
        heapTotal: heap.total_heap_size,
        external: heap.external_memory,
        arrayBuffers: this.#last?.memory.arrayBuffers ?? 0,
      }
    }
  }

  #resetBaselines(): void {
    this.#cpu = process.cpuUsage()
    this.#hrtime = process.hrtime.bigint()
    this.#elu = performance.eventLoopUtilization()
  }

  #sample(): SystemSnapshot {
    const hrtime = process.hrtime.bigint()
    const cpu = process.cpuUsage(this.#cpu)
    const elu = performance.eventLoopUtilization(this.#elu)
    const elapsedUs = Number(hrtime - this.#hrtime) / 1000
    const share = (us: number): number => (elapsedUs > 0 ? round2((us / elapsedUs) * 100) : 0)
    const mem = this.#memory()
    const h = this.#histogram
    const hasDelay = h !== undefined && h.count > 0
    const delay = (ns: number): number =>
      hasDelay ? round2(Math.max(0, ns / NS_PER_MS - this.#resolutionMs)) : 0
    const [l1 = 0, l5 = 0, l15 = 0] = loadavg()
    const snapshot: SystemSnapshot = Object.freeze({
      timestamp: this.#clock.now(),
      windowMs: round2(elapsedUs / 1000),
      cpu: Object.freeze({
        percent: share(cpu.user + cpu.system),
        userPercent: share(cpu.user),
        systemPercent: share(cpu.system),
      }),
      memory: Object.freeze({
        rss: mem.rss,
        heapUsed: mem.heapUsed,
        heapTotal: mem.heapTotal,
        external: mem.external,
        arrayBuffers: mem.arrayBuffers,
      }),
      eventLoop: Object.freeze({
        delayP50Ms: delay(h?.percentile(50) ?? 0),
        delayP99Ms: delay(h?.percentile(99) ?? 0),
        delayMaxMs: delay(h?.max ?? 0),
        delayMeanMs: delay(h?.mean ?? 0),
        utilization: round2(elu.utilization),
      }),
      activeHandles: process.getActiveResourcesInfo().length,
      uptimeMs: Math.round(process.uptime() * 1000),
      loadAverage: Object.freeze([l1, l5, l15] as const),
    })
    h?.reset()
    this.#hrtime = hrtime
    this.#cpu = process.cpuUsage()
    this.#elu = performance.eventLoopUtilization()
    if (this.#timer !== undefined) this.#last = snapshot
    if (this.#gauges !== undefined) setGauges(this.#gauges, snapshot)
    return snapshot
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100
}

function makeGauges(metrics: Metrics, p: string): SystemGauges {
  return {
    cpu: metrics.gauge(
      `${p}system_cpu_usage_percent`,
      'CPU time used over the last window, percent of one core',
    ),
    memory: metrics.gauge(`${p}system_memory_bytes`, 'Process memory by kind (process.memoryUsage)', [
      'kind',
    ]),
    delay: metrics.gauge(
      `${p}system_event_loop_delay_seconds`,
      'Event-loop delay over the last window beyond the sampling resolution',
      ['stat'],
    ),
    utilization: metrics.gauge(
      `${p}system_event_loop_utilization_ratio`,
      'Share of the last window the loop was busy',
    ),
    handles: metrics.gauge(`${p}system_active_handles`, 'Active resources keeping the event loop alive'),
    uptime: metrics.gauge(`${p}system_uptime_seconds`, 'Process uptime'),
    load: metrics.gauge(`${p}system_load_average`, 'OS load average', ['window']),
  }
}

function setGauges(g: SystemGauges, s: SystemSnapshot): void {
  g.cpu.set(s.cpu.percent)
  g.memory.set(s.memory.rss, { kind: 'rss' })
  g.memory.set(s.memory.heapUsed, { kind: 'heap_used' })
  g.memory.set(s.memory.heapTotal, { kind: 'heap_total' })
  g.memory.set(s.memory.external, { kind: 'external' })
  g.memory.set(s.memory.arrayBuffers, { kind: 'array_buffers' })
  g.delay.set(s.eventLoop.delayP50Ms / 1000, { stat: 'p50' })
  g.delay.set(s.eventLoop.delayP99Ms / 1000, { stat: 'p99' })
  g.delay.set(s.eventLoop.delayMaxMs / 1000, { stat: 'max' })
  g.delay.set(s.eventLoop.delayMeanMs / 1000, { stat: 'mean' })
  g.utilization.set(s.eventLoop.utilization)
  g.handles.set(s.activeHandles)
  g.uptime.set(s.uptimeMs / 1000)
  g.load.set(s.loadAverage[0], { window: '1m' })
  g.load.set(s.loadAverage[1], { window: '5m' })
  g.load.set(s.loadAverage[2], { window: '15m' })
}
