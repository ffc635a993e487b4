import { describe, expect, it } from 'vitest'
import {
  ConfigError,
  DEFAULT_CONFIG,
  SETTINGS,
  helpText,
  parseConfig,
  parseHostPort,
  redactConfig,
} from '../src/config'

function config(options: Parameters<typeof parseConfig>[0]) {
  const result = parseConfig(options)
  if (result.help) throw new Error('unexpected help')
  return result.config
}

describe('parseConfig', () => {
  it('accepts flags after a lone "--" (pnpm 12 passes it through: pnpm start -- --rest-port 4050)', () => {
    expect(config({ argv: ['--', '--rest-port', '4050'] }).restPort).toBe(4050)
    expect(config({ argv: ['--rest-port', '4050'] }).restPort).toBe(4050)
  })

  it('reads secrets from files and warns when one is on the command line (visible in ps)', () => {
    const files: Record<string, string> = {
      '/run/secrets/pass': 'correct horse\n',
      '/run/secrets/admin': 't0k3n',
    }
    const readFile = (path: string) => {
      const content = files[path]
      if (content === undefined) throw new Error(`ENOENT: ${path}`)
      return content
    }
    const fromFlag = parseConfig({ argv: ['--passphrase-file', '/run/secrets/pass'], readFile })
    expect(fromFlag).toMatchObject({ config: { passphrase: 'correct horse' }, warnings: [] })
    const fromEnv = parseConfig({ env: { X_NODE_ADMIN_TOKEN_FILE: '/run/secrets/admin' }, readFile })
    expect(fromEnv).toMatchObject({ config: { adminToken: 't0k3n' }, warnings: [] })
    const onCommandLine = parseConfig({ argv: ['--admin-token', 'visible'] })
    expect(onCommandLine).toMatchObject({ config: { adminToken: 'visible' } })
    expect((onCommandLine as { warnings: string[] }).warnings[0]).toMatch(/visible to every user in ps/)
    expect(() => parseConfig({ argv: ['--passphrase-file', '/nope'], readFile })).toThrow(
      expect.objectContaining({ setting: 'passphrase' }),
    )
    expect(redactConfig(config({ argv: ['--admin-token', 'x'] })).adminToken).toBe('<redacted>')
  })

  it('reads proxies, origins, TLS files and connection caps, and names them when they are wrong', () => {
    const c = config({
      argv: ['--trust-proxy', 'loopback, 10.0.0.0/8', '--allowed-origins', 'https://app.example'],
      env: {
        X_NODE_TLS_CERT: '/etc/x/cert.pem',
        X_NODE_TLS_KEY: '/etc/x/key.pem',
        X_NODE_MAX_CONNECTIONS: '500',
      },
    })
    expect(c).toMatchObject({
      trustProxy: ['loopback', '10.0.0.0/8'],
      allowedOrigins: ['https://app.example'],
      tlsCert: '/etc/x/cert.pem',
      tlsKey: '/etc/x/key.pem',
      maxConnections: 500,
      maxConnectionsPerAddress: 256,
    })
    expect(config({ argv: ['--allowed-origins', '*'] }).allowedOrigins).toEqual(['*'])
    expect(() => config({ argv: ['--trust-proxy', '10.0.0.0/99'] })).toThrow(/'trustProxy'/)
    expect(() => config({ argv: ['--allowed-origins', 'app.example'] })).toThrow(/'allowedOrigins'/)
    expect(() => config({ argv: ['--tls-cert', '/etc/x/cert.pem'] })).toThrow(/'tlsKey'/)
    expect(() => config({ argv: ['--max-connections', '-1'] })).toThrow(/'maxConnections'/)
  })

  it('uses the documented defaults', () => {
    const c = config({})
    expect(c).toMatchObject({
      restPort: 3000,
      wsPort: 3001,
      dhtPort: 3001,
      host: '0.0.0.0',
      dataDir: './data',
      seedNodes: [],
      logLevel: 'info',
      passphrase: '',
      ai: true,
      aiAllowList: ['127.0.0.1', '::1'],
      crdtNodes: [],
    })
    expect(c.publicHost.length).toBeGreaterThan(0)
  })

  it('reads the nodes documents replicate with: node IDs or *, nothing by default', () => {
    const id = 'ab'.repeat(20)
    expect(config({ argv: ['--crdt-nodes', `${id.toUpperCase()}, *`] }).crdtNodes).toEqual([id, '*'])
    expect(config({ env: { X_NODE_CRDT_NODES: '' } }).crdtNodes).toEqual([])
    expect(
      config({ readFile: () => `{"crdtNodes":["${id}"]}`, argv: ['--config', 'c.json'] }).crdtNodes,
    ).toEqual([id])
    expect(() => config({ argv: ['--crdt-nodes', 'abcd'] })).toThrow(
      /invalid setting 'crdtNodes' from flag --crdt-nodes: "abcd"; allowed: comma-separated node IDs/,
    )
    expect(helpText()).toMatch(/--crdt-nodes/)
  })

  it('reads the AI engine switch and allow-list, and names them when they are wrong', () => {
    expect(config({ argv: ['--ai', 'off'] }).ai).toBe(false)
    expect(config({ env: { X_NODE_AI: 'true' } }).ai).toBe(true)
    expect(config({ readFile: () => '{"ai":false}', argv: ['--config', 'c.json'] }).ai).toBe(false)
    expect(config({ argv: ['--ai-allow-list', '10.0.0.1, ::1,abcd1234'] }).aiAllowList).toEqual([
      '10.0.0.1',
      '::1',
      'abcd1234',
    ])
    expect(config({ argv: ['--ai-allow-list', ''] }).aiAllowList).toEqual([])
    expect(() => config({ argv: ['--ai', 'maybe'] })).toThrow(
      /invalid setting 'ai' from flag --ai: "maybe"; allowed: on or off/,
    )
    expect(() => config({ argv: ['--ai-allow-list', 'a b'] })).toThrow(/invalid setting 'aiAllowList'/)
    expect(helpText()).toMatch(/--ai-allow-list/)
  })

  it('applies file < env < flags in that order', () => {
    const files: Record<string, string> = {
      'a.json': JSON.stringify({ restPort: 4000, wsPort: 4001, dataDir: '/tmp/file', logLevel: 'warn' }),
    }
    const c = config({
      argv: ['--config', 'a.json', '--ws-port=5001', '--log-level', 'debug'],
      env: {
        X_NODE_WS_PORT: '6001',
        X_NODE_DATA_DIR: '/tmp/env',
        X_NODE_SEED_NODES: '127.0.0.1:7001, [::1]:7002',
      },
      readFile: (p) => files[p]!,
    })
    expect(c.restPort).toBe(4000) // file
    expect(c.dataDir).toBe('/tmp/env') // env beats file
    expect(c.wsPort).toBe(5001) // flag beats env
    expect(c.logLevel).toBe('debug') // flag beats file
    expect(c.seedNodes).toEqual(['127.0.0.1:7001', '[::1]:7002'])
  })

  it('reads the config file path from X_NODE_CONFIG', () => {
    const c = config({ env: { X_NODE_CONFIG: 'x.json' }, readFile: () => '{"seedNodes":["10.0.0.1:3001"]}' })
    expect(c.seedNodes).toEqual(['10.0.0.1:3001'])
  })

  it('takes seed host names as given: the DHT resolves them on every bootstrap attempt', () => {
    const c = config({ argv: ['--seed-nodes', 'localhost:6091,dht_seed:6092,[::1]:6093'] })
    expect(c.seedNodes).toEqual(['localhost:6091', 'dht_seed:6092', '[::1]:6093'])
  })

  it.each(['1.2.3:6091', '010.0.0.1:6091', '256.0.0.1:6091', '[::zz]:6091', 'localhost', 'localhost:0'])(
    'rejects the seed %j as @x/kademlia would, naming seedNodes instead of failing at start',
    (seed) => {
      expect(() => config({ argv: ['--seed-nodes', seed] })).toThrow(/invalid setting 'seedNodes'/)
    },
  )

  it.each([
    [{ argv: ['--rest-port', '70000'] }, 'restPort', 'flag --rest-port'],
    [{ env: { X_NODE_DHT_PORT: 'abc' } }, 'dhtPort', 'environment variable X_NODE_DHT_PORT'],
    [{ argv: ['--log-level', 'loud'] }, 'logLevel', 'flag --log-level'],
    [{ argv: ['--seed-nodes', 'nohost'] }, 'seedNodes', 'flag --seed-nodes'],
    [{ argv: ['--config', 'c.json'], readFile: () => '{"wsport": 1}' }, 'wsport', 'config file c.json'],
    [{ argv: ['--config', 'c.json'], readFile: () => '{"restPort": -1}' }, 'restPort', 'config file c.json'],
    [{ argv: ['--bogus', '1'] }, '--bogus', 'the command line'],
    [{ argv: ['--rest-port'] }, '--rest-port', 'the command line'],
    [{ argv: ['--rest-port', '4000', '--ws-port', '4000'] }, 'wsPort', 'the combined settings'],
  ])('rejects %j naming the setting', (options, setting, source) => {
    let error: unknown
    try {
      parseConfig(options)
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    const e = error as ConfigError
    expect(e.code).toBe('X_NODE_CONFIG_INVALID')
    expect(e.setting).toBe(setting)
    expect(e.source).toBe(source)
    expect(e.message).toContain(setting)
    expect(e.message).toMatch(/allowed|cannot read/)
  })

  it('reports an unreadable config file', () => {
    expect(() =>
      parseConfig({
        argv: ['--config', 'nope.json'],
        readFile: () => {
          throw new Error('ENOENT')
        },
      }),
    ).toThrow(/cannot read config file nope.json/)
  })

  it('never echoes the passphrase in errors or redacted output', () => {
    const c = config({ env: { X_NODE_PASSPHRASE: 'hunter2' } })
    expect(c.passphrase).toBe('hunter2')
    expect(JSON.stringify(redactConfig(c))).not.toContain('hunter2')
  })

  it('--help lists every setting with its flag, env variable and default', () => {
    const result = parseConfig({ argv: ['--rest-port', '1', '--help'] })
    expect(result.help).toBe(true)
    const text = helpText()
    for (const s of SETTINGS) {
      expect(text).toContain(s.flag)
      expect(text).toContain(s.env)
    }
    expect(text).toContain(String(DEFAULT_CONFIG.restPort))
  })
})

describe('parseHostPort', () => {
  it('accepts IPv4, names and bracketed IPv6; rejects the rest', () => {
    expect(parseHostPort('127.0.0.1:3001')).toEqual({ host: '127.0.0.1', port: 3001 })
    expect(parseHostPort('node-a.example:1')).toEqual({ host: 'node-a.example', port: 1 })
    expect(parseHostPort('[::1]:65535')).toEqual({ host: '::1', port: 65535 })
    for (const bad of ['127.0.0.1', ':3001', '1.2.3.4:0', '1.2.3.4:65536', 'a b:1', '::1:3001']) {
      expect(parseHostPort(bad)).toBeUndefined()
    }
  })
})
