/**
 * The node's command-line entry: parses the configuration, starts the node in the seed's order, prints the
 * URLs, and shuts down gracefully on SIGINT/SIGTERM (exit 0 within `shutdownTimeoutMs`; a second signal exits
 * at once with code 130).
 */
import { ConfigError, parseConfig } from './config'
import { createNode } from './node'

const EXIT_CONFIG = 2
const EXIT_START = 1
const EXIT_SECOND_SIGNAL = 130
const EXIT_SHUTDOWN_TIMEOUT = 124

function out(line: string): void {
  process.stdout.write(`${line}\n`)
}

async function main(): Promise<void> {
  let parsed
  try {
    parsed = parseConfig({ argv: process.argv.slice(2), env: process.env })
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`x-node: ${err.message}\nRun with --help to list every setting.\n`)
      process.exit(EXIT_CONFIG)
    }
    throw err
  }
  if (parsed.help) {
    out(parsed.text)
    return
  }
  const config = parsed.config
  const node = createNode(config)
  const log = node.logger

  let stopping = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting at once')
      process.exit(EXIT_SECOND_SIGNAL)
    }
    stopping = true
    log.info({ signal }, 'shutting down')
    const hard = setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs }, 'graceful shutdown timed out')
      process.exit(EXIT_SHUTDOWN_TIMEOUT)
    }, config.shutdownTimeoutMs)
    hard.unref()
    node.stop().then(
      () => {
        log.flush?.()
        process.exit(0)
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    await node.start()
  } catch (err) {
    process.stderr.write(`x-node: ${(err as Error).message}\n`)
    process.exit(EXIT_START)
  }
  const { rest, ws, dht } = node.addresses
  const shown = (host: string) => (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host)
  log.info({ nodeId: node.nodeId, rest, ws, dht }, 'node ready')
  out(`x-node ${node.nodeId} ready`)
  out(`  Dashboard http://${shown(rest.host)}:${rest.port}/   (demo: /demo)`)
  out(`  REST      http://${shown(rest.host)}:${rest.port}/api/health   (docs: /docs)`)
  out(
    `  WebSocket ws://${shown(ws.host)}:${ws.port}/p2p-signaling  /y-webrtc  /peerjs  /crdt/<doc>  /p2p-node`,
  )
  out(`  DHT       udp://${shown(dht.host)}:${dht.port}`)
  // Machine-readable line for tests and the testnet script.
  out(`READY ${JSON.stringify({ nodeId: node.nodeId, rest: rest.port, ws: ws.port, dht: dht.port })}`)
}

void main()
