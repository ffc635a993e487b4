/**
 * Servers reached through the in-memory twin, for the attack tests: `serve()` starts one and returns a
 * connector and a `connect(path)` that yields a {@link RawClient}; `closeAll()` (in `afterEach`) ends every
 * client, connector and server made since the last call.
 */
import { expect } from 'vitest'
import type WebSocket from 'ws'
import { createSignalingServer, type SignalingInit, type SignalingServer } from '../src/index'
import { createMemoryConnector, type MemoryConnector } from '../src/testing'
import { components, ed25519Identity, RawClient } from './helpers'

export const servers: SignalingServer[] = []
export const wss: WebSocket[] = []
const connectors: MemoryConnector[] = []

export async function closeAll(): Promise<void> {
  for (const w of wss.splice(0)) w.terminate()
  for (const c of connectors.splice(0)) c.close()
  await Promise.all(servers.splice(0).map((s) => s.close()))
}

export function serve(
  init: SignalingInit = {},
  extra: Partial<Parameters<typeof createSignalingServer>[0]> = {},
) {
  const server = createSignalingServer({ ...components, ...extra }, init)
  servers.push(server)
  const connector = createMemoryConnector(server)
  connectors.push(connector)
  const connect = (path: string, options?: Parameters<MemoryConnector['connect']>[1]): RawClient => {
    const ws = connector.connect(path, options)
    wss.push(ws)
    return new RawClient(ws)
  }
  return { server, connector, connect }
}

/** Lets the event loop turn until `done()` holds (at most 2,000 turns), then asserts it. */
export async function settle(done: () => boolean): Promise<void> {
  for (let i = 0; i < 2_000 && !done(); i++) await new Promise((resolve) => setImmediate(resolve))
  expect(done()).toBe(true)
}

/** Opens `c` and registers `identity` on it. */
export async function register(
  c: RawClient,
  identity = ed25519Identity(),
): Promise<RawClient & { id: string }> {
  await c.open()
  expect(await c.register(identity)).toMatchObject({ type: 'registered', id: identity.id })
  return Object.assign(c, { id: identity.id })
}
