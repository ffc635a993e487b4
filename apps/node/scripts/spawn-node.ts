import { spawn, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Runs `src/server.ts` as a real child process (tsx, `@x/source` condition) and waits for its READY line (stderr). */

export const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')

export interface Ready {
  nodeId: string
  rest: number
  ws: number
  dht: number
}

export interface SpawnedNode {
  readonly proc: ChildProcess
  readonly ready: Ready
  readonly name: string
  /** Every line the process printed (pino JSON and the banner). */
  readonly lines: string[]
  readonly restUrl: string
  readonly wsUrl: string
  /** Sends `signal` and resolves with the exit code (or the signal name) and how long it took. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export async function spawnNode(
  name: string,
  args: string[],
  options: {
    env?: Record<string, string>
    echo?: boolean
    timeoutMs?: number
    /** Own process group: a terminal's Ctrl-C then reaches only the parent, which stops the node once. */
    detached?: boolean
  } = {},
): Promise<SpawnedNode> {
  const proc = spawn(
    process.execPath,
    ['--conditions=@x/source', '--import', 'tsx', join(APP_DIR, 'src/server.ts'), ...args],
    {
      cwd: APP_DIR,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached === true,
    },
  )
  const lines: string[] = []
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  )
  let buffer = ''
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} not ready in time:\n${lines.slice(-20).join('\n')}`)),
      options.timeoutMs ?? 30_000,
    )
    // Logs on stdout; the banner and the READY line on stderr.
    proc.stdout.on('data', (c: Buffer) => {
      lines.push(...c.toString('utf8').split('\n').filter(Boolean))
      if (options.echo) process.stdout.write(`[${name}] ${c.toString('utf8')}`)
    })
    proc.stderr.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8')
      let i
      while ((i = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, i)
        buffer = buffer.slice(i + 1)
        lines.push(line)
        if (options.echo) process.stderr.write(`[${name}] ${line}\n`)
        if (line.startsWith('READY ')) {
          clearTimeout(timer)
          resolve(JSON.parse(line.slice(6)) as Ready)
        }
      }
    })
    void exited.then(({ code }) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code} before ready:\n${lines.slice(-20).join('\n')}`))
    })
  })
  return {
    proc,
    ready,
    name,
    lines,
    restUrl: `http://127.0.0.1:${ready.rest}`,
    wsUrl: `ws://127.0.0.1:${ready.ws}`,
    exited,
    async kill(signal = 'SIGTERM') {
      const t0 = Date.now()
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      const r = await exited
      return { ...r, ms: Date.now() - t0 }
    },
  }
}

/** Args for a node on 127.0.0.1 with OS-chosen ports. */
export function localArgs(dataDir: string, extra: string[] = []): string[] {
  return [
    '--host',
    '127.0.0.1',
    '--rest-port',
    '0',
    '--ws-port',
    '0',
    '--dht-port',
    '0',
    '--data-dir',
    dataDir,
    '--log-level',
    'info',
    // Every node of a local network is on 127.0.0.1: a testnet.
    '--allow-private-addresses',
    'on',
    ...extra,
  ]
}
