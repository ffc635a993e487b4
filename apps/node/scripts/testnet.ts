/**
 * Three nodes on 127.0.0.1 bootstrapped off each other: `pnpm --filter @x/node testnet`.
 *
 *   node a: REST 127.0.0.1:4000, WebSocket 4001, DHT UDP 4001 (no seed)
 *   node b: REST 4010, WebSocket/DHT 4011, seeds a
 *   node c: REST 4020, WebSocket/DHT 4021, seeds a and b
 *
 * Flags: `--base-port <n>` (default 4000), `--data-dir <dir>` (default ./data/testnet; identities and
 * documents persist there across runs), `--verbose` (echo every log line). Ctrl-C stops all three gracefully.
 */
import { join, resolve } from 'node:path'
import { spawnNode, type SpawnedNode } from './spawn-node'

const argv = process.argv.slice(2)
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(name)
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback
}
const basePort = Number(flag('--base-port', '4000'))
const dataRoot = resolve(flag('--data-dir', './data/testnet'))
const verbose = argv.includes('--verbose')

const names = ['a', 'b', 'c'] as const
const nodes: SpawnedNode[] = []

async function main(): Promise<void> {
  for (const [i, name] of names.entries()) {
    const rest = basePort + 10 * i
    const seeds = nodes.map((n) => `127.0.0.1:${n.ready.dht}`)
    const args = [
      '--host',
      '127.0.0.1',
      '--rest-port',
      String(rest),
      '--ws-port',
      String(rest + 1),
      '--dht-port',
      String(rest + 1),
      '--data-dir',
      join(dataRoot, `node-${name}`),
      '--bootstrap-interval-ms',
      '5000',
      '--allow-private-addresses',
      'on',
      // A local testnet is a closed network: its nodes replicate documents with each other.
      '--crdt-nodes',
      '*',
      ...(seeds.length > 0 ? ['--seed-nodes', seeds.join(',')] : []),
    ]
    // Own process groups: Ctrl-C reaches this script only, which sends each node one SIGTERM (a node that got
    // the terminal's SIGINT and then our SIGTERM would stop twice).
    const node = await spawnNode(name, args, { echo: verbose, detached: true })
    nodes.push(node)
    console.log(
      `node ${name}: ${node.ready.nodeId}  REST ${node.restUrl}  WS ${node.wsUrl}  DHT udp 127.0.0.1:${node.ready.dht}`,
    )
  }
  console.log(
    '\nTry: curl -s 127.0.0.1:%d/api/peers | jq ; curl -s 127.0.0.1:%d/api/dht/nodes | jq',
    basePort,
    basePort + 20,
  )
  console.log('Ctrl-C stops the three nodes.')
}

let stopping = false
async function stopAll(): Promise<void> {
  if (stopping) return
  stopping = true
  const results = await Promise.all(nodes.map((n) => n.kill('SIGTERM')))
  results.forEach((r, i) => console.log(`node ${names[i]} exited with ${r.code ?? r.signal} in ${r.ms} ms`))
  process.exit(results.every((r) => r.code === 0) ? 0 : 1)
}
process.on('SIGINT', () => void stopAll())
process.on('SIGTERM', () => void stopAll())

main().catch(async (err: unknown) => {
  console.error(err)
  await stopAll()
})
