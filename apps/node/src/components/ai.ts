import { createAiEngine, type AiEngine } from '../ai/engine'
import { registerAiMetrics } from '../metrics'
import type { Component } from '../system'
import type { NodeCore } from './core'

/** The abuse detector; it installs its admission hooks into the DHT and the WebSocket server started before it. */
export const aiComponent: Component<NodeCore, AiEngine> = {
  start({ config, guards, metrics, log }) {
    const ai = createAiEngine(
      { logger: log.child({ component: 'ai' }) },
      { enabled: config.ai, allowList: config.aiAllowList },
    )
    ai.start()
    guards.install(ai)
    registerAiMetrics(metrics, () => ai.health())
    return ai
  },
  stop(ai) {
    ai.stop()
  },
  health: (ai) => () => ai.health(),
  healthOptions: { required: false },
}
