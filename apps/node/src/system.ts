/**
 * The node as an ordered list of typed components. Each component's `start` receives what the components before
 * it produced (and the node's core services) and returns its own product; `stop` undoes it; `health` and `stats`
 * are registered with the monitor once it started. `createNode` lists them in the seed's order; they are stopped
 * in reverse. A product exists only once its component started, so no component can reach one that is not there
 * (no `undefined` checks, no getters, no non-null assertions).
 */
import type { Logger } from 'pino'
import type { CheckOptions, HealthCheck, HealthRegistry, StatsRegistry } from '@x/node-monitor'
import { NodeError } from './errors'

/** One part of the node. `Deps` is what it needs from the components before it; `Product` what it gives. */
export interface Component<Deps, Product> {
  start(deps: Deps): Promise<Product> | Product
  /** Undoes `start`: closes what it opened, clears its timers. Errors are logged, not thrown. */
  stop?(product: Product): Promise<void> | void
  /** Its check in `/api/health` (registered under the component's name). */
  health?(product: Product, deps: Deps): HealthCheck
  healthOptions?: CheckOptions
  /** Its figures in the stats registry (`/api/peers`, `/metrics`). */
  stats?(product: Product): () => unknown
}

/** What every component may use, created before any of them. */
export interface Core {
  readonly log: Logger
  readonly health: HealthRegistry
  readonly stats: StatsRegistry
}

interface Entry {
  name: string
  component: Component<never, unknown>
}

/** An ordered list of components started on `Base` whose products accumulate into `Ctx`. */
export class System<Base extends Core, Ctx extends Base> {
  readonly #entries: readonly Entry[]
  readonly #started: { name: string; product: unknown; component: Component<never, unknown> }[] = []
  /** The products of the components started so far, by name (for tools and tests). */
  readonly products: Record<string, unknown> = {}

  private constructor(entries: readonly Entry[]) {
    this.#entries = entries
  }

  /** A system with no component yet. */
  static create<B extends Core>(): System<B, B> {
    return new System<B, B>([])
  }

  /** The same list with `component` appended under `name`; its product is `Ctx[name]` for those after it. */
  with<K extends string, P>(
    name: K,
    component: Component<Ctx, P>,
  ): System<Base, Ctx & { readonly [Q in K]: P }> {
    return new System<Base, Ctx & { readonly [Q in K]: P }>([
      ...this.#entries,
      { name, component: component },
    ])
  }

  /** Component names in start order. */
  get names(): string[] {
    return this.#entries.map((e) => e.name)
  }

  /**
   * Starts every component in order. On a failure, the components already started are stopped in reverse and
   * the error is thrown as `X_NODE_START_FAILED` naming the step.
   */
  async start(core: Base): Promise<Ctx> {
    const ctx: Record<string, unknown> = { ...(core as object) }
    for (const { name, component } of this.#entries) {
      const t0 = performance.now()
      let product: unknown
      try {
        product = await (component.start as (deps: unknown) => unknown)(ctx)
      } catch (err) {
        core.log.error({ step: name, err }, `start-up failed at ${name}`)
        await this.stop(core.log)
        throw new NodeError('X_NODE_START_FAILED', `start-up failed at ${name}: ${(err as Error).message}`, {
          cause: err,
        })
      }
      ctx[name] = product
      this.products[name] = product
      this.#started.push({ name, product, component })
      const check = component.health?.(product, ctx as never)
      if (check) core.health.register(name, check, component.healthOptions)
      const stats = component.stats?.(product)
      if (stats) core.stats.register(name, stats)
      core.log.info({ step: name, durationMs: ms(t0) }, `started ${name}`)
    }
    return ctx as Ctx
  }

  /** Stops the started components in reverse order; each failure is logged and the next one still runs. */
  async stop(log: Logger): Promise<void> {
    for (const { name, product, component } of this.#started.splice(0).reverse()) {
      const t0 = performance.now()
      try {
        await component.stop?.(product)
        log.info({ step: name, durationMs: ms(t0) }, `stopped ${name}`)
      } catch (err) {
        log.warn({ step: name, err: String(err) }, `shutdown step ${name} failed`)
      }
    }
  }
}

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10
}
