import { createAiEngine, type AiEngine } from '../ai/engine'
import { registerAiMetrics } from '../metrics'
import type { Component } from '../system'
import type { NodeCore } from './core'
import type { StorageProduct } from './storage'

type Deps = NodeCore & { readonly storage: StorageProduct }

/** The abuse detector; it installs its admission hooks into the DHT and the WebSocket server started before it. */
export const aiComponent: Component<Deps, AiEngine> = {
  async start({ config, storage, net, guards, metrics, log }) {
    const ai = createAiEngine(
      {
        logger: log.child({ component: 'ai' }),
        // The learned baselines survive restarts: a restart does not reopen the learning window.
        store: storage.db.sublevel<string, Uint8Array>('ai', { valueEncoding: 'view' }),
        // Behind trusted proxies: real client addresses, and the loopback allow-list stops exempting them.
        clientAddress: net.clientAddress,
      },
      { enabled: config.ai, allowList: config.aiAllowList },
    )
    await ai.restore()
    ai.start()
    guards.install(ai)
    registerAiMetrics(
      metrics,
      () => ai.health(),
      () => ai.actions(),
    )
    return ai
  },
  async stop(ai) {
    await ai.stop()
  },
  health: (ai) => () => ai.health(),
  healthOptions: { required: false },
}
