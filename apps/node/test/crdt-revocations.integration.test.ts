import { afterEach, describe, expect, it, vi } from 'vitest'
import { pino } from 'pino'
import { decodeRevocation, type Revocation } from '@x/crdt-sync'
import { parseConfig } from '../src/config'
import { createNode, type XNode } from '../src/node'
import { localArgs } from '../scripts/spawn-node'
import { cleanups, runCleanups, tempDir } from './helpers'

/**
 * The revocation table on a real node (in-process, real LevelDB): what other nodes send is held within bounds in
 * memory and on disk, and what is stored is what is held.
 */
afterEach(async () => {
  vi.useRealTimers()
  await runCleanups()
})

const DAY_MS = 86_400_000

async function startNode(dataDir: string): Promise<XNode> {
  const parsed = parseConfig({ argv: localArgs(dataDir) })
  if (parsed.help) throw new Error('help')
  const node = createNode(parsed.config, { logger: pino({ level: 'silent' }) })
  cleanups.push(() => node.stop())
  await node.start()
  return node
}

async function stored(node: XNode): Promise<Revocation[]> {
  const db = node.internals.storage!.db.sublevel<string, Uint8Array>('crdt-revocations', {
    valueEncoding: 'view',
  })
  const out: Revocation[] = []
  for await (const bytes of db.values()) out.push(decodeRevocation(bytes))
  return out
}

let seq = 0
function revocation(until: number): Revocation {
  return { id: (++seq).toString(16).padStart(16, '0'), docName: 'doc', access: 'deny', until }
}

describe('revocations from other nodes', () => {
  it('are not stored once expired, leave the disk when they expire, and are held at most 30 days', async () => {
    const node = await startNode(await tempDir())
    const crdt = node.internals.crdt!
    const now = Date.now()
    // Already expired: nothing to hold, store or forward.
    for (let i = 0; i < 20; i++) {
      expect(crdt.revoke(revocation(now - 1), 'node-x')).toEqual({ applied: false, sessions: 0 })
    }
    // Short-lived ones, sent faster than they expire.
    for (let i = 0; i < 20; i++) expect(crdt.revoke(revocation(now + 1_000), 'node-x').applied).toBe(true)
    // One "for ever": held (and stored) for at most 30 days.
    expect(crdt.revoke(revocation(Number.MAX_SAFE_INTEGER), 'node-x').applied).toBe(true)
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(now + 2_000)
    // The next one clears the expired ones off the disk as it is stored.
    expect(crdt.revoke(revocation(now + DAY_MS), 'node-x').applied).toBe(true)
    await vi.waitFor(async () => expect(await stored(node)).toHaveLength(2), { timeout: 5_000 })
    const kept = await stored(node)
    expect(Math.max(...kept.map((r) => r.until))).toBeLessThanOrEqual(now + 2_000 + 30 * DAY_MS)
    expect(crdt.tokens.revocations()).toHaveLength(2)
  })
})
