/**
 * The node's command-line entry: parses the configuration, starts the node in the seed's order, prints the
 * URLs, and shuts down gracefully on SIGINT/SIGTERM (exit 0 within `shutdownTimeoutMs`; a second SIGINT — Ctrl-C
 * pressed again — exits at once with code 130, while a SIGTERM during the shutdown, what a supervisor or a
 * terminal's process group sends after Ctrl-C, lets it finish).
 *
 * Standard output carries the logs only: one JSON object per line, or pino-pretty's lines on a terminal. The
 * human banner and the machine-readable `READY {…}` line go to standard error, so `x-node | jq` works.
 */
import pino, { type Logger } from 'pino'
import pretty from 'pino-pretty'
import { ConfigError, parseConfig, type NodeConfig } from './config'
import { watchLaunchers } from './launcher-watch'
import { createNode, LOG_REDACT_PATHS } from './node'

const EXIT_CONFIG = 2
const EXIT_START = 1
const EXIT_SECOND_SIGNAL = 130
const EXIT_SHUTDOWN_TIMEOUT = 124

function out(line: string): void {
  process.stdout.write(`${line}\n`)
}

function err(line: string): void {
  process.stderr.write(`${line}\n`)
}

/** JSON lines, or pino-pretty when standard output is a terminal (`X_NODE_LOG_FORMAT=json|pretty` overrides). */
function createLogger(config: NodeConfig): Logger {
  const format = process.env.X_NODE_LOG_FORMAT ?? (process.stdout.isTTY === true ? 'pretty' : 'json')
  const options = {
    level: config.logLevel,
    base: { pid: process.pid },
    redact: { paths: [...LOG_REDACT_PATHS], censor: '<redacted>' },
  }
  if (format !== 'pretty') return pino(options)
  return pino(
    options,
    pretty({ colorize: process.stdout.isTTY === true, sync: true, ignore: 'pid,hostname' }),
  )
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
  const log = createLogger(config)
  for (const warning of parsed.warnings) log.warn({}, warning)
  const node = createNode(config, { logger: log })

  let stopping = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      if (signal === 'SIGINT') {
        log.warn({ signal }, 'second interrupt: exiting at once')
        process.exit(EXIT_SECOND_SIGNAL)
      }
      log.info({ signal }, 'already shutting down')
      return
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
  // SIGHUP: a renewed certificate (certbot, cert-manager) is served without a restart.
  process.on('SIGHUP', () => {
    try {
      if (node.reloadTls()) log.info({}, 'TLS certificate reloaded')
      else log.info({}, 'SIGHUP: TLS is off, nothing to reload')
    } catch (e) {
      log.error({ err: (e as Error).message }, 'TLS certificate not reloaded; the previous one stays')
    }
  })
  // Under `pnpm start` / `npm start` a supervisor's SIGTERM stops the wrapper, which does not forward it: stop when
  // a launcher is gone. Not when started directly (`x-node`, `node dist/server.js`, nohup, systemd).
  if (process.env.npm_lifecycle_event !== undefined && process.env.X_NODE_WATCH_LAUNCHER !== 'off') {
    watchLaunchers((pid) => {
      log.info({ launcher: pid }, 'the package manager that started the node exited')
      onSignal('SIGTERM')
    })
  }

  try {
    await node.start()
  } catch (e) {
    err(`x-node: ${(e as Error).message}`)
    process.exit(EXIT_START)
  }
  const { rest, ws, dht } = node.addresses
  const shown = (host: string) => (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host)
  log.info({ nodeId: node.nodeId, rest, ws, dht }, 'node ready')
  err(`x-node ${node.nodeId} ready`)
  err(`  Dashboard http://${shown(rest.host)}:${rest.port}/   (demo: /demo)`)
  err(`  REST      http://${shown(rest.host)}:${rest.port}/api/health   (docs: /docs)`)
  err(
    `  WebSocket ws://${shown(ws.host)}:${ws.port}/p2p-signaling  /y-webrtc  /peerjs  /crdt/<doc>  /p2p-node`,
  )
  err(`  DHT       udp://${shown(dht.host)}:${dht.port}`)
  // Machine-readable line for supervisors, tests and the testnet script.
  err(`READY ${JSON.stringify({ nodeId: node.nodeId, rest: rest.port, ws: ws.port, dht: dht.port })}`)
}

void main()
