import { createSystemMonitor, type SystemMonitor } from '@x/node-monitor'
import { METRICS_PREFIX } from '../metrics'
import type { Component } from '../system'
import type { NodeCore } from './core'

/** Process and host metrics (CPU, memory, event-loop delay) for `/metrics` and the stats registry. */
export const monitorComponent: Component<NodeCore, SystemMonitor> = {
  start({ metrics, log }) {
    const system = createSystemMonitor(
      { metrics, logger: log.child({ component: 'system' }) },
      { metricsPrefix: METRICS_PREFIX },
    )
    system.start()
    return system
  },
  stop(system) {
    system.stop()
  },
  stats: (system) => () => system.getStats(),
}
