import { afterEach, expect, it } from 'vitest'
import { Level } from 'level'
import { pino } from 'pino'
import * as Y from 'yjs'
import { createDocStore, type DocStore } from '@x/crdt-sync'
import { createManualClock } from '@x/crdt-sync/testing'
import { nodeListAuthorize, startReplication, type ReplicationLinks } from '../src/adapters/crdt-replication'
import { CHANNEL_CRDT } from '../src/adapters/channels'
import { cleanups, runCleanups, tempDir } from './helpers'

afterEach(runCleanups)

const log = pino({ level: 'silent' })

/** `@x/node-link` as replication sees it, in memory: frames to a connected node arrive in order, one per turn. */
class MemoryLinks implements ReplicationLinks {
  readonly peers = new Map<string, MemoryLinks>()
  readonly #channel = new Set<(from: string, payload: Uint8Array) => void>()
  readonly #open = new Set<(nodeId: string) => void>()
  readonly #closed = new Set<(nodeId: string) => void>()
  inFlight = 0

  constructor(readonly id: string) {}

  static connect(a: MemoryLinks, b: MemoryLinks): void {
    a.peers.set(b.id, b)
    b.peers.set(a.id, a)
    for (const h of a.#open) h(b.id)
    for (const h of b.#open) h(a.id)
  }

  static disconnect(a: MemoryLinks, b: MemoryLinks): void {
    a.peers.delete(b.id)
    b.peers.delete(a.id)
    for (const h of a.#closed) h(b.id)
    for (const h of b.#closed) h(a.id)
  }

  send(nodeId: string, channel: number, payload: Uint8Array): boolean {
    const peer = this.peers.get(nodeId)
    if (!peer) return false
    const copy = payload.slice()
    peer.inFlight++
    setImmediate(() => {
      peer.inFlight--
      if (peer.peers.has(this.id)) for (const h of peer.#channel) h(this.id, copy)
    })
    void channel
    return true
  }

  onChannel(channel: number, handler: (from: string, payload: Uint8Array) => void): () => void {
    expect(channel).toBe(CHANNEL_CRDT)
    this.#channel.add(handler)
    return () => this.#channel.delete(handler)
  }

  on(event: 'open' | 'close', handler: (event: { readonly nodeId: string }) => void): () => void {
    const set = event === 'open' ? this.#open : this.#closed
    const h = (nodeId: string): void => handler({ nodeId })
    set.add(h)
    return () => set.delete(h)
  }

  isOpen(nodeId: string): boolean {
    return this.peers.has(nodeId)
  }
}

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)

async function node(id: string, trusted: string[], clock = createManualClock()) {
  const level = new Level<string, Uint8Array>(await tempDir(), { valueEncoding: 'view' })
  await level.open()
  const store = createDocStore({
    db: level.sublevel<string, Uint8Array>('crdt', { valueEncoding: 'view' }),
  })
  const links = new MemoryLinks(id)
  const replication = startReplication(store, links, log, { authorize: nodeListAuthorize(trusted), clock })
  cleanups.push(async () => {
    replication.stop()
    await store.close()
    await level.close()
  })
  return { id, store, links, replication, clock }
}

async function quiet(nodes: { links: MemoryLinks; store: DocStore }[]): Promise<void> {
  for (let calm = 0, i = 0; calm < 5 && i < 100_000; i++) {
    await new Promise((r) => setImmediate(r))
    await Promise.all(nodes.map((n) => n.store.flush()))
    calm = nodes.some((n) => n.links.inFlight > 0) ? 0 : calm + 1
  }
}

function text(s: string): Uint8Array {
  const d = new Y.Doc()
  d.getText('t').insert(0, s)
  return Y.encodeStateAsUpdate(d)
}

it('replicates with trusted nodes only; a fresh identity hears no name and pulls nothing', async () => {
  const a = await node(A, [B])
  const b = await node(B, [A])
  await a.store.applyUpdate('secret', text('only for b'))
  // A fresh identity links to a; a replicates nothing with it (it is not in a's list) and tells it nothing.
  const stranger = new MemoryLinks('f'.repeat(40))
  const heard: Uint8Array[] = []
  stranger.onChannel(CHANNEL_CRDT, (_from, payload) => heard.push(payload))
  MemoryLinks.connect(a.links, stranger)
  MemoryLinks.connect(a.links, b.links)
  const onB = await b.store.open('secret') // a client on b asks for it by name
  // The stranger asks for it by name too (a subscription frame: kind 0, name, empty state vector).
  const ask = new Uint8Array([0, 6, ...new TextEncoder().encode('secret'), 1, 0])
  stranger.send(A, CHANNEL_CRDT, ask)
  await quiet([a, b])
  expect(onB.doc.getText('t').toJSON()).toBe('only for b')
  onB.release()
  // The stranger got one answer, the same as for a document a does not have, and never the name of another.
  expect(heard).toHaveLength(1)
  expect(heard[0]![0]).toBe(6) // unavailable
  expect(a.replication.getStats()).toMatchObject({ nodes: 2, denied: 1 })
})

it('drops a node’s replication state and timer when its link closes, whatever the number of nodes ever linked', async () => {
  const clock = createManualClock()
  const a = await node(A, ['*'], clock)
  await a.store.applyUpdate('doc', text('hello'))
  for (let i = 0; i < 50; i++) {
    const other = new MemoryLinks(i.toString(16).padStart(40, '0'))
    MemoryLinks.connect(a.links, other)
    await quiet([a])
    expect(a.replication.getStats().nodes).toBe(1)
    expect(clock.pendingTimers).toBe(1) // the linked node's periodic resync
    const before = a.replication.getStats().framesOut
    MemoryLinks.disconnect(a.links, other)
    expect(a.replication.getStats().nodes).toBe(0)
    expect(a.replication.getStats().framesOut).toBe(before) // totals survive the drop
    expect(clock.pendingTimers).toBe(0)
  }
  const stats = a.replication.getStats()
  expect(stats).toMatchObject({ nodes: 0, sessions: 50, subscribed: 0, subscribers: 0 })
})
