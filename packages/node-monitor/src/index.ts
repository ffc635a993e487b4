/**
 * Health, stats and metrics for a running Node.js service, framework-free: a health registry with per-check
 * timeouts, a short cache and documented aggregation rules; a cached stats registry; a system monitor (CPU,
 * memory, event-loop delay and utilisation, handles, load); and a structural {@link Metrics} interface backed
 * by prom-client. The application turns these into routes (`/api/health`, `/livez`, `/readyz`, `/metrics`).
 *
 * @example
 * ```ts
 * import {
 *   createHealthRegistry, createStatsRegistry, createSystemMonitor, createPrometheusMetrics, healthToHttpStatus,
 * } from '@x/node-monitor'
 *
 * const metrics = createPrometheusMetrics()
 * const system = createSystemMonitor({ metrics }, { intervalMs: 5_000 })
 * const health = createHealthRegistry({}, { cacheTtlMs: 1_000, checkTimeoutMs: 2_000, version: '1.0.0' })
 * const stats = createStatsRegistry({}, { cacheTtlMs: 1_000 })
 *
 * health.register('storage', async () => ({ status: 'ok', documents: 12 }))
 * health.register('ai', () => ({ status: 'disabled', reason: 'not configured' }), { required: false })
 * stats.register('system', () => system.getStats())
 * system.start()
 *
 * const report = await health.report()
 * console.log(healthToHttpStatus(report.status), report)
 * console.log(await stats.collect())
 * console.log(await metrics.metricsText())
 * system.stop()
 * ```
 *
 * @packageDocumentation
 */
export { MonitorError, type MonitorErrorCode } from './errors'
export { type Clock, type Logger, SILENT_LOGGER, SYSTEM_CLOCK } from './components'
export {
  type AggregateStatus,
  type CheckOptions,
  type CheckResult,
  type ComponentHealth,
  type HealthCheck,
  type HealthRegistry,
  type HealthRegistryComponents,
  type HealthRegistryInit,
  type HealthReport,
  type HealthStatus,
  type LivenessReport,
  type ReadinessReport,
  HEALTH_CACHE_TTL_MS,
  HEALTH_CHECK_TIMEOUT_MS,
  aggregateHealth,
  createHealthRegistry,
  healthToHttpStatus,
} from './health'
export {
  type StatsError,
  type StatsProvider,
  type StatsRegistry,
  type StatsRegistryComponents,
  type StatsRegistryInit,
  type StatsSnapshot,
  STATS_CACHE_TTL_MS,
  STATS_TIMEOUT_MS,
  createStatsRegistry,
} from './stats'
export {
  type SystemMonitor,
  type SystemMonitorComponents,
  type SystemMonitorInit,
  type SystemSnapshot,
  EVENT_LOOP_RESOLUTION_MS,
  SYSTEM_SAMPLE_INTERVAL_MS,
  createSystemMonitor,
} from './system-monitor'
export {
  type Counter,
  type Gauge,
  type Histogram,
  type MetricLabels,
  type ScrapedValues,
  type Metrics,
  type PrometheusMetrics,
  type PrometheusMetricsInit,
  type PrometheusRegistry,
  createNoopMetrics,
  createPrometheusMetrics,
} from './metrics'
