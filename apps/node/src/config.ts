import { readFileSync } from 'node:fs'
import { trustProxyProblem } from './client-address'
import { networkInterfaces } from 'node:os'
import { parseAddress, parsePeerAddress, type PeerAddress } from '@x/kademlia'

/**
 * Node configuration: defaults, overridden by a JSON config file, then by `X_NODE_*` environment variables,
 * then by command-line flags (each later source wins). Every setting is validated; a bad value is reported
 * with the setting's name, where it came from and the allowed values.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface NodeConfig {
  /** REST API (Fastify) port. */
  restPort: number
  /** WebSocket port (signaling, CRDT, P2P links). */
  wsPort: number
  /** DHT UDP port. */
  dhtPort: number
  /** Interface the servers bind to. */
  host: string
  /** Host or IP other nodes use to reach this node (advertised in signed DHT records). */
  publicHost: string
  /** Data directory (identity key file, LevelDB). */
  dataDir: string
  /** DHT bootstrap nodes, `host:port` (UDP). */
  seedNodes: string[]
  /** Pino log level. */
  logLevel: LogLevel
  /** Passphrase that encrypts the identity key file at rest; empty = unencrypted. */
  passphrase: string
  /** Interval between bootstrap retries and DHT refreshes, in milliseconds. */
  bootstrapIntervalMs: number
  /** How long `/api/health` results are cached, in milliseconds. */
  healthCacheMs: number
  /** Maximum time a graceful shutdown may take before the process exits anyway, in milliseconds. */
  shutdownTimeoutMs: number
  /** The AI engine (adaptive abuse detection): on or off. */
  ai: boolean
  /** IP addresses and peer IDs the AI engine never throttles or blocks. */
  aiAllowList: string[]
  /**
   * Testnet setting: dial loopback, private and link-local addresses other nodes announce, and count every node
   * on one address as separate (off on a public network, so no node can point this one at its own services).
   */
  allowPrivateAddresses: boolean
  /**
   * Reverse proxies whose `Forwarded`/`X-Forwarded-For` are believed (addresses, CIDR ranges, or `loopback`,
   * `linklocal`, `uniquelocal`); empty: none, the client is the socket's peer.
   */
  trustProxy: string[]
  /** Origins browsers may open the WebSocket paths from; empty: the node's own hosts; `*`: any. */
  allowedOrigins: string[]
  /** Bearer token that unlocks sensitive REST data (peer addresses); empty: nobody sees them. */
  adminToken: string
  /** PEM certificate chain for https/wss on both ports; with `tlsKey`, turns TLS on. */
  tlsCert: string
  /** PEM private key of `tlsCert`. */
  tlsKey: string
  /** Open connections on the WebSocket port (all paths); 0: derived from the file-descriptor limit. */
  maxConnections: number
  /** Open connections from one address (IPv4, or IPv6 /64) on each port. */
  maxConnectionsPerAddress: number
  /** Node IDs this node replicates documents with (`*`: every authenticated node; empty: none). */
  crdtNodes: string[]
}

type Kind =
  | 'port'
  | 'string'
  | 'host'
  | 'list'
  | 'level'
  | 'ms'
  | 'switch'
  | 'idlist'
  | 'proxylist'
  | 'originlist'
  | 'path'
  | 'count'
  | 'nodelist'

interface Setting {
  key: keyof NodeConfig
  flag: string
  env: string
  kind: Kind
  description: string
  secret?: boolean
}

/** Every setting, in `--help` order. */
export const SETTINGS: readonly Setting[] = [
  {
    key: 'restPort',
    flag: '--rest-port',
    env: 'X_NODE_REST_PORT',
    kind: 'port',
    description: 'REST API port',
  },
  {
    key: 'wsPort',
    flag: '--ws-port',
    env: 'X_NODE_WS_PORT',
    kind: 'port',
    description: 'WebSocket port (/p2p-signaling, /y-webrtc, /peerjs, /crdt/<doc>, /p2p-node)',
  },
  { key: 'dhtPort', flag: '--dht-port', env: 'X_NODE_DHT_PORT', kind: 'port', description: 'DHT UDP port' },
  {
    key: 'host',
    flag: '--host',
    env: 'X_NODE_HOST',
    kind: 'host',
    description: 'interface the servers bind to',
  },
  {
    key: 'publicHost',
    flag: '--public-host',
    env: 'X_NODE_PUBLIC_HOST',
    kind: 'host',
    description: 'host other nodes use to reach this one (default: --host, or the first non-internal IPv4)',
  },
  {
    key: 'dataDir',
    flag: '--data-dir',
    env: 'X_NODE_DATA_DIR',
    kind: 'string',
    description: 'data directory (identity key file, LevelDB)',
  },
  {
    key: 'seedNodes',
    flag: '--seed-nodes',
    env: 'X_NODE_SEED_NODES',
    kind: 'list',
    description: 'DHT bootstrap nodes, comma-separated host:port (UDP)',
  },
  { key: 'logLevel', flag: '--log-level', env: 'X_NODE_LOG_LEVEL', kind: 'level', description: 'log level' },
  {
    key: 'passphrase',
    flag: '--passphrase',
    env: 'X_NODE_PASSPHRASE',
    kind: 'string',
    description: 'encrypts the identity key file at rest (prefer the env variable)',
    secret: true,
  },
  {
    key: 'bootstrapIntervalMs',
    flag: '--bootstrap-interval-ms',
    env: 'X_NODE_BOOTSTRAP_INTERVAL_MS',
    kind: 'ms',
    description: 'DHT bootstrap retry / refresh interval',
  },
  {
    key: 'healthCacheMs',
    flag: '--health-cache-ms',
    env: 'X_NODE_HEALTH_CACHE_MS',
    kind: 'ms',
    description: 'how long a /api/health result is cached',
  },
  {
    key: 'shutdownTimeoutMs',
    flag: '--shutdown-timeout-ms',
    env: 'X_NODE_SHUTDOWN_TIMEOUT_MS',
    kind: 'ms',
    description: 'hard limit for a graceful shutdown',
  },
  {
    key: 'ai',
    flag: '--ai',
    env: 'X_NODE_AI',
    kind: 'switch',
    description: 'AI engine: adaptive abuse detection that throttles and blocks abusive peers',
  },
  {
    key: 'aiAllowList',
    flag: '--ai-allow-list',
    env: 'X_NODE_AI_ALLOW_LIST',
    kind: 'idlist',
    description: 'IP addresses and peer IDs the AI engine never throttles or blocks, comma-separated',
  },
  {
    key: 'allowPrivateAddresses',
    flag: '--allow-private-addresses',
    env: 'X_NODE_ALLOW_PRIVATE_ADDRESSES',
    kind: 'switch',
    description:
      'testnet setting: link to nodes on loopback, private and link-local addresses (never on a public network)',
  },
  {
    key: 'trustProxy',
    flag: '--trust-proxy',
    env: 'X_NODE_TRUST_PROXY',
    kind: 'proxylist',
    description: 'reverse proxies whose Forwarded / X-Forwarded-For headers give the client address',
  },
  {
    key: 'allowedOrigins',
    flag: '--allowed-origins',
    env: 'X_NODE_ALLOWED_ORIGINS',
    kind: 'originlist',
    description:
      "origins browsers may open the WebSocket paths from (default: the node's own hosts; * = any)",
  },
  {
    key: 'adminToken',
    flag: '--admin-token',
    env: 'X_NODE_ADMIN_TOKEN',
    kind: 'string',
    description: 'bearer token for sensitive REST data such as peer addresses (prefer the env or a file)',
    secret: true,
  },
  {
    key: 'tlsCert',
    flag: '--tls-cert',
    env: 'X_NODE_TLS_CERT',
    kind: 'path',
    description: 'PEM certificate chain file: serves https and wss on both ports (reloaded on SIGHUP)',
  },
  {
    key: 'tlsKey',
    flag: '--tls-key',
    env: 'X_NODE_TLS_KEY',
    kind: 'path',
    description: 'PEM private key file of --tls-cert',
  },
  {
    key: 'maxConnections',
    flag: '--max-connections',
    env: 'X_NODE_MAX_CONNECTIONS',
    kind: 'count',
    description: 'open WebSocket connections (0 = derived from the file-descriptor limit)',
  },
  {
    key: 'maxConnectionsPerAddress',
    flag: '--max-connections-per-address',
    env: 'X_NODE_MAX_CONNECTIONS_PER_ADDRESS',
    kind: 'count',
    description: 'open connections from one IPv4 address or IPv6 /64, per port',
  },
  {
    key: 'crdtNodes',
    flag: '--crdt-nodes',
    env: 'X_NODE_CRDT_NODES',
    kind: 'nodelist',
    description:
      "node IDs this node replicates documents with, comma-separated ('*': every authenticated node)",
  },
]

/** Settings whose value may instead come from a file: `--<flag>-file <path>` or `<ENV>_FILE=<path>`. */
const FILE_SETTINGS = new Set<keyof NodeConfig>(['passphrase', 'adminToken'])

/** Defaults. `publicHost: ''` means derived from `host` at parse time. */
export const DEFAULT_CONFIG: Readonly<NodeConfig> = Object.freeze({
  restPort: 3000,
  wsPort: 3001,
  dhtPort: 3001,
  host: '0.0.0.0',
  publicHost: '',
  dataDir: './data',
  seedNodes: [],
  logLevel: 'info',
  passphrase: '',
  bootstrapIntervalMs: 60_000,
  healthCacheMs: 1_000,
  shutdownTimeoutMs: 10_000,
  ai: true,
  // Loopback is a local reverse proxy or a local tool: blocking it would cut off everyone behind it.
  aiAllowList: ['127.0.0.1', '::1'],
  allowPrivateAddresses: false,
  trustProxy: [],
  allowedOrigins: [],
  adminToken: '',
  tlsCert: '',
  tlsKey: '',
  maxConnections: 0,
  maxConnectionsPerAddress: 256,
  // A linked node is authenticated, never trusted: documents replicate only with nodes the operator names.
  crdtNodes: [],
})

const ALLOWED: Record<Kind, string> = {
  port: 'an integer from 0 to 65535 (0 = any free port)',
  string: 'a non-empty string',
  host: 'a hostname or IP address (letters, digits, ".", "-", ":")',
  list: 'comma-separated host:port or [ipv6]:port entries with ports 1-65535 (or a JSON array of them)',
  level: LOG_LEVELS.join(', '),
  ms: 'an integer number of milliseconds from 1 to 86400000',
  switch: 'on or off (also true/false)',
  idlist: 'comma-separated IP addresses or peer IDs (letters, digits, ".", ":", "-", "_")',
  proxylist: 'comma-separated IP addresses, CIDR ranges, loopback, linklocal or uniquelocal',
  originlist: 'comma-separated origins such as https://app.example.org, or *',
  path: 'a file path',
  count: 'an integer from 0 to 1000000',
  nodelist: "comma-separated node IDs (40 hex digits), or '*' for every authenticated node",
}

/** A configuration value was rejected. `setting` names it, `source` says where it came from. */
export class ConfigError extends Error {
  readonly code = 'X_NODE_CONFIG_INVALID'
  constructor(
    message: string,
    readonly setting: string,
    readonly source: string,
  ) {
    super(message)
    this.name = 'ConfigError'
  }
}

export interface ParseConfigOptions {
  /** Command-line arguments (without `node` and the script). */
  argv?: readonly string[]
  /** Environment (defaults to none, so tests are hermetic; the server passes `process.env`). */
  env?: Readonly<Record<string, string | undefined>>
  /** Reads the config file (injected for tests). */
  readFile?: (path: string) => string
}

/** `warnings`: settings that work but should change (a secret given on the command line). */
export type ParseResult =
  { help: true; text: string } | { help: false; config: NodeConfig; warnings: string[] }

const HOST_RE = /^[A-Za-z0-9.:\-[\]%]{1,253}$/
const ID_RE = /^[A-Za-z0-9.:_-]{1,128}$/
const NODE_ID_RE = /^([0-9a-f]{40}|\*)$/

function fail(setting: Setting | string, source: string, value: unknown, allowed: string): never {
  const name = typeof setting === 'string' ? setting : setting.key
  const shown = typeof setting !== 'string' && setting.secret ? '<redacted>' : JSON.stringify(value)
  throw new ConfigError(
    `invalid setting '${name}' from ${source}: ${shown}; allowed: ${allowed}`,
    name,
    source,
  )
}

function parseValue(setting: Setting, raw: unknown, source: string): NodeConfig[keyof NodeConfig] {
  const allowed = ALLOWED[setting.kind]
  switch (setting.kind) {
    case 'count':
    case 'port':
    case 'ms': {
      const n =
        typeof raw === 'number'
          ? raw
          : typeof raw === 'string' && /^\d+$/.test(raw.trim())
            ? Number(raw)
            : NaN
      const [min, max] =
        setting.kind === 'port' ? [0, 65_535] : setting.kind === 'count' ? [0, 1_000_000] : [1, 86_400_000]
      if (!Number.isInteger(n) || n < min || n > max) fail(setting, source, raw, allowed)
      return n
    }
    case 'string':
      if (typeof raw !== 'string' || (raw.length === 0 && !setting.secret)) {
        fail(setting, source, raw, allowed)
      }
      return raw
    case 'path':
      if (typeof raw !== 'string') fail(setting, source, raw, allowed)
      return raw
    case 'proxylist':
    case 'originlist': {
      const items = Array.isArray(raw)
        ? raw
        : typeof raw === 'string'
          ? raw.trim() === ''
            ? []
            : raw.split(',').map((x) => x.trim())
          : fail(setting, source, raw, allowed)
      for (const item of items) {
        if (typeof item !== 'string') fail(setting, source, raw, allowed)
        if (setting.kind === 'proxylist' && trustProxyProblem(item) !== undefined)
          fail(setting, source, raw, allowed)
        if (setting.kind === 'originlist' && item !== '*' && !/^https?:\/\/[^/\s]+$/i.test(item)) {
          fail(setting, source, raw, allowed)
        }
      }
      return items as string[]
    }
    case 'host':
      if (typeof raw !== 'string' || !HOST_RE.test(raw)) fail(setting, source, raw, allowed)
      return raw
    case 'level':
      if (typeof raw !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw)) {
        fail(setting, source, raw, allowed)
      }
      return raw
    case 'switch': {
      if (raw === true || raw === 'on' || raw === 'true') return true
      if (raw === false || raw === 'off' || raw === 'false') return false
      return fail(setting, source, raw, allowed)
    }
    case 'idlist': {
      const items = Array.isArray(raw)
        ? raw
        : typeof raw === 'string'
          ? raw.trim() === ''
            ? []
            : raw.split(',').map((x) => x.trim())
          : fail(setting, source, raw, allowed)
      for (const item of items) {
        if (typeof item !== 'string' || !ID_RE.test(item)) fail(setting, source, raw, allowed)
      }
      return items as string[]
    }
    case 'nodelist': {
      const items: unknown[] = Array.isArray(raw)
        ? raw.map((x: unknown) => (typeof x === 'string' ? x.trim().toLowerCase() : x))
        : typeof raw === 'string'
          ? raw.trim() === ''
            ? []
            : raw.split(',').map((x) => x.trim().toLowerCase())
          : fail(setting, source, raw, allowed)
      for (const item of items) {
        if (typeof item !== 'string' || !NODE_ID_RE.test(item)) fail(setting, source, raw, allowed)
      }
      return items as string[]
    }
    case 'list': {
      let items: unknown[]
      if (Array.isArray(raw)) items = raw
      else if (typeof raw === 'string') {
        const trimmed = raw.trim()
        if (trimmed.startsWith('[')) {
          try {
            items = JSON.parse(trimmed) as unknown[]
          } catch {
            fail(setting, source, raw, allowed)
          }
          if (!Array.isArray(items)) fail(setting, source, raw, allowed)
        } else items = trimmed === '' ? [] : trimmed.split(',').map((s) => s.trim())
      } else fail(setting, source, raw, allowed)
      for (const item of items) {
        if (typeof item !== 'string' || parseHostPort(item) === undefined) fail(setting, source, raw, allowed)
      }
      return items as string[]
    }
  }
}

/**
 * Splits `host:port` / `[v6]:port` (IPv6 in canonical form); `undefined` when malformed or the port is out of
 * 1–65535. Seeds are read by @x/kademlia's own parser, so what passes here is what the DHT accepts.
 */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  let peer: PeerAddress
  try {
    peer = parsePeerAddress(value)
  } catch {
    return undefined
  }
  if (peer.kind === 'name') return { host: peer.host, port: peer.port }
  const ip = parseAddress(peer.address)!
  return { host: ip.host, port: ip.port }
}

function defaultPublicHost(host: string): string {
  if (host !== '0.0.0.0' && host !== '::') return host
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) if (ni.family === 'IPv4' && !ni.internal) return ni.address
  }
  return '127.0.0.1'
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])

/**
 * The hosts clients may dial this node as (URL form: IPv6 in brackets, no port): `publicHost`, the bound
 * interface, and — when bound to every interface — each interface address and `localhost`. A signaling
 * registration names the host its client dialed; one naming any other host is refused.
 */
export function signalingHosts(config: Pick<NodeConfig, 'host' | 'publicHost'>): string[] {
  const hosts = new Set<string>()
  const add = (h: string): void => {
    if (h !== '' && !h.includes('%')) hosts.add(h.includes(':') ? `[${h}]` : h.toLowerCase())
  }
  add(config.publicHost)
  if (config.host === '0.0.0.0' || config.host === '::') {
    for (const list of Object.values(networkInterfaces())) for (const ni of list ?? []) add(ni.address)
    add('localhost')
  } else {
    add(config.host)
    if (LOOPBACK.has(config.host)) for (const h of LOOPBACK) add(h)
  }
  return [...hosts]
}

/** The `--help` text: every setting with its flag, environment variable, default and allowed values. */
export function helpText(): string {
  const lines = [
    'Usage: x-node [--config <file.json>] [flags]',
    '',
    'Every setting comes from (later wins): defaults < JSON config file (--config or X_NODE_CONFIG)',
    '< environment variables < command-line flags. Flags take "--flag value" or "--flag=value".',
    '',
  ]
  for (const s of SETTINGS) {
    const def = DEFAULT_CONFIG[s.key]
    const shown =
      s.key === 'publicHost'
        ? '(derived)'
        : Array.isArray(def)
          ? `[${def.join(',')}]`
          : typeof def === 'boolean'
            ? def
              ? 'on'
              : 'off'
            : JSON.stringify(def)
    lines.push(`  ${s.flag.padEnd(24)} ${s.env.padEnd(30)} ${s.description}`)
    lines.push(`  ${''.padEnd(24)} ${''.padEnd(30)} default ${shown}; allowed: ${ALLOWED[s.kind]}`)
  }
  lines.push(
    `  ${'--config'.padEnd(24)} ${'X_NODE_CONFIG'.padEnd(30)} JSON file whose keys are the setting names`,
  )
  lines.push(`  ${'--help'.padEnd(24)} ${''.padEnd(30)} print this text`)
  return lines.join('\n')
}

/**
 * Builds the configuration from defaults, config file, environment and flags. Throws {@link ConfigError}
 * naming the bad setting.
 */
export function parseConfig(options: ParseConfigOptions = {}): ParseResult {
  const argv = options.argv ?? []
  const env = options.env ?? {}
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'))
  const byFlag = new Map(SETTINGS.map((s) => [s.flag, s]))
  const values: Record<string, unknown> = {
    ...DEFAULT_CONFIG,
    seedNodes: [...DEFAULT_CONFIG.seedNodes],
    aiAllowList: [...DEFAULT_CONFIG.aiAllowList],
    trustProxy: [],
    allowedOrigins: [],
    crdtNodes: [...DEFAULT_CONFIG.crdtNodes],
  }
  const flags: { setting: Setting; raw: string }[] = []
  const warnings: string[] = []
  let configPath = env.X_NODE_CONFIG

  const fileFlags = new Map<string, Setting>(
    SETTINGS.filter((s) => FILE_SETTINGS.has(s.key)).map((s) => [`${s.flag}-file`, s]),
  )
  const fromFile = (setting: Setting, path: string, source: string): string => {
    try {
      return readFile(path).replace(/\r?\n$/, '')
    } catch (err) {
      throw new ConfigError(
        `cannot read setting '${setting.key}' from ${source} (${path}): ${(err as Error).message}`,
        setting.key,
        source,
      )
    }
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') return { help: true, text: helpText() }
    // `pnpm start -- --flag` passes the `--` through (pnpm 12): it separates nothing here.
    if (arg === '--') continue
    const eq = arg.indexOf('=')
    const name = eq > 0 ? arg.slice(0, eq) : arg
    let raw: string | undefined = eq > 0 ? arg.slice(eq + 1) : undefined
    if (name !== '--config' && !byFlag.has(name) && !fileFlags.has(name)) {
      fail(
        name,
        'the command line',
        arg,
        `one of ${[...byFlag.keys(), ...fileFlags.keys(), '--config', '--help'].join(', ')}`,
      )
    }
    if (raw === undefined) {
      raw = argv[i + 1]
      if (raw === undefined) fail(name, 'the command line', null, 'a value after the flag')
      i++
    }
    const fileSetting = fileFlags.get(name)
    if (name === '--config') configPath = raw
    else if (fileSetting !== undefined) {
      flags.push({ setting: fileSetting, raw: fromFile(fileSetting, raw, `flag ${name}`) })
    } else {
      const setting = byFlag.get(name)!
      if (setting.secret === true)
        warnings.push(
          `'${setting.flag}' is visible to every user in ps: use ${setting.env} or ${setting.flag}-file`,
        )
      flags.push({ setting, raw })
    }
  }

  if (configPath !== undefined && configPath !== '') {
    const source = `config file ${configPath}`
    let parsed: unknown
    try {
      parsed = JSON.parse(readFile(configPath))
    } catch (err) {
      throw new ConfigError(
        `cannot read config file ${configPath}: ${(err as Error).message}`,
        'config',
        'the command line',
      )
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      fail('config', source, parsed, 'a JSON object whose keys are setting names')
    }
    const byKey = new Map(SETTINGS.map((s) => [s.key as string, s]))
    for (const [key, raw] of Object.entries(parsed)) {
      const setting = byKey.get(key)
      if (!setting) fail(key, source, raw, `one of ${[...byKey.keys()].join(', ')}`)
      values[key] = parseValue(setting, raw, source)
    }
  }
  for (const s of SETTINGS) {
    const raw = env[s.env]
    const file = FILE_SETTINGS.has(s.key) ? env[`${s.env}_FILE`] : undefined
    if (raw !== undefined) values[s.key] = parseValue(s, raw, `environment variable ${s.env}`)
    else if (file !== undefined && file !== '') {
      const source = `environment variable ${s.env}_FILE`
      values[s.key] = parseValue(s, fromFile(s, file, source), source)
    }
  }
  for (const { setting, raw } of flags) values[setting.key] = parseValue(setting, raw, `flag ${setting.flag}`)

  const config = values as unknown as NodeConfig
  if (config.publicHost === '') config.publicHost = defaultPublicHost(config.host)
  if (config.restPort !== 0 && config.restPort === config.wsPort) {
    fail(
      'wsPort',
      'the combined settings',
      config.wsPort,
      `a port different from restPort (${config.restPort})`,
    )
  }
  if ((config.tlsCert === '') !== (config.tlsKey === '')) {
    fail(
      config.tlsCert === '' ? 'tlsCert' : 'tlsKey',
      'the combined settings',
      '',
      'both tlsCert and tlsKey, or neither',
    )
  }
  return { help: false, config, warnings }
}

/** The configuration with secrets replaced, for logs. */
export function redactConfig(config: NodeConfig): Record<string, unknown> {
  const redact = (v: string): string => (v === '' ? '' : '<redacted>')
  return { ...config, passphrase: redact(config.passphrase), adminToken: redact(config.adminToken) }
}
