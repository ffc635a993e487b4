import {
  createLinkManager,
  type LinkManager,
  type LinkManagerComponents,
  type LinkManagerInit,
} from '../src/index'
import {
  allowAnyAddress,
  createMemoryNetwork,
  createTestSecure,
  createVirtualClock,
  type MemoryNetwork,
  type VirtualClock,
} from '../src/testing'

/** A 40-hex node ID whose order among others follows `n`. */
export const nodeIdOf = (n: number): string => n.toString(16).padStart(40, '0')

export const enc = new TextEncoder()
export const dec = new TextDecoder()

export interface TestNode {
  id: string
  address: string
  links: LinkManager
}

/** Memory network + virtual clock + `make(n)` that starts a link manager with node ID `nodeIdOf(n)`. */
export function testNet(
  netInit: Parameters<typeof createMemoryNetwork>[0] = {},
  defaults: Partial<LinkManagerInit> = {},
): {
  net: MemoryNetwork
  clock: VirtualClock
  make: (
    n: number,
    init?: Partial<LinkManagerInit>,
    components?: Partial<LinkManagerComponents>,
    remoteAddress?: string,
  ) => Promise<TestNode>
} {
  const net = createMemoryNetwork(netInit)
  const clock = createVirtualClock()
  return {
    net,
    clock,
    async make(n, init = {}, components = {}, remoteAddress) {
      const id = nodeIdOf(n)
      const address = `ws://10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}:7000`
      const links = createLinkManager(
        {
          transport: net.transport(address, remoteAddress === undefined ? {} : { remoteAddress }),
          secure: createTestSecure(id),
          clock,
          dialPolicy: allowAnyAddress,
          ...components,
        },
        { nodeId: id, address, ...defaults, ...init },
      )
      await links.start()
      return { id, address, links }
    },
  }
}

/** Lets every pending microtask and memory delivery run (auto-delivery networks). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r))
}
