/**
 * Test helpers: an in-memory datagram network, a virtual clock, a seeded PRNG, a test-network builder and
 * the simulator.
 *
 * @packageDocumentation
 * @example
 * ```ts
 * import { createTestNetwork } from '@x/kademlia/testing'
 *
 * const net = await createTestNetwork(10, { seed: 1 })
 * const found = await net.clock.runUntilSettled(net.nodes[0]!.findNode(net.nodes[9]!.id))
 * await net.stop()
 * ```
 */
import { createKademlia, type KademliaInit, type KademliaNode } from './kademlia'
import { createMemoryNetwork, type MemoryNetwork } from './memory-transport'
import { SeededRandom, VirtualClock } from './virtual-clock'

export {
  createMemoryNetwork,
  type MemoryNetwork,
  type MemoryNetworkInit,
  type MemoryTransport,
} from './memory-transport'
export { SeededRandom, VirtualClock } from './virtual-clock'
export { runSimulation, type Distribution, type SimulationOptions, type SimulationResult } from './simulator'

/** Started nodes on one memory network; made by {@link createTestNetwork}. */
export interface TestNetwork {
  /** The virtual clock every node and the network run on; advance it to let time pass. */
  clock: VirtualClock
  /** The memory network the nodes talk over (its `stats` count datagrams). */
  network: MemoryNetwork
  /** The seeded PRNG the nodes draw IDs and tokens from. */
  random: SeededRandom
  /** The nodes, in creation order; `nodes[0]` is everyone's seed. */
  nodes: KademliaNode[]
  /** The nodes' memory addresses, in the same order. */
  addresses: string[]
  /** Stops every node. */
  stop(): Promise<void>
}

/**
 * Starts `count` nodes on a memory network with a virtual clock; each node after the first bootstraps from
 * the first. Drive time with `clock.runUntilSettled(promise)` or `clock.advance(ms)`.
 */
export async function createTestNetwork(
  count: number,
  options: { seed?: number; latencyMs?: number; loss?: number; init?: KademliaInit } = {},
): Promise<TestNetwork> {
  const random = new SeededRandom(options.seed ?? 1)
  const clock = new VirtualClock()
  const network = createMemoryNetwork({
    clock,
    latencyMs: options.latencyMs ?? 10,
    loss: options.loss ?? 0,
    random: () => random.next(),
  })
  const nodes: KademliaNode[] = []
  const addresses: string[] = []
  for (let i = 0; i < count; i++) {
    const address = `node-${i}`
    const node = createKademlia(
      { transport: network.createTransport(address), clock, random: (n) => random.bytes(n) },
      { ...options.init, id: random.bytes(20) },
    )
    await node.start()
    nodes.push(node)
    addresses.push(address)
  }
  for (let i = 1; i < count; i++) await clock.runUntilSettled(nodes[i]!.bootstrap([addresses[0]!]))
  return {
    clock,
    network,
    random,
    nodes,
    addresses,
    async stop() {
      for (const n of nodes) await n.stop()
    },
  }
}
