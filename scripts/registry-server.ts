/**
 * A throw-away npm registry for the release round trip: Verdaccio on 127.0.0.1, a random port, storage and an
 * htpasswd file in the directory given as the first argument, and no uplinks, so it serves only what is
 * published to it and never asks another registry (nothing leaves the machine, and `@x/*` cannot come from
 * anywhere else). Prints `{"port":N}` once listening. Stops on SIGTERM/SIGINT or when its stdin closes, so it
 * does not outlive the process that started it.
 */
import { join } from 'node:path'
import { runServer } from 'verdaccio'

const dir = process.argv[2]
if (dir === undefined) throw new TypeError("usage: registry-server.ts <dir>: 'dir' is required")

const app = await runServer({
  self_path: dir,
  storage: join(dir, 'storage'),
  auth: { htpasswd: { file: join(dir, 'htpasswd'), max_users: 1 } },
  uplinks: {},
  packages: { '**': { access: '$all', publish: '$authenticated', unpublish: '$authenticated' } },
  log: { type: 'stdout', format: 'pretty', level: 'warn' },
  web: { enable: false },
})

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('registry has no TCP address')
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`)
})

function stop(): void {
  server.close()
  server.closeAllConnections()
  process.exit(0)
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.resume()
