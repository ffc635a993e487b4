/**
 * Iterative node lookup (Kademlia §2.3): keep α queries in flight to the closest not-yet-queried contacts,
 * and stop when the k closest contacts that have not failed have all answered. With `paths` = d > 1 the
 * lookup runs d disjoint paths (S/Kademlia, Baumgart & Mies 2007, §4.4): the initial contacts are dealt
 * round-robin among the paths and no node is queried by more than one path, so a hostile node can only
 * mislead the path that reached it.
 *
 * Node IDs are checked on every answer (the RPC layer rejects an answer from another ID with
 * `X_KAD_BAD_RESPONSE`). A contact that fails that check was given to us by a node that vouched for an ID
 * the address does not hold: that referrer is marked as lying, leaves the result, and the candidates that
 * only it gave us are dropped before we spend RPCs on them (S/Kademlia's reasoning for bound node IDs,
 * applied to the referrer).
 */
import { setMaxListeners } from 'node:events'
import { KademliaError, throwIfAborted } from './errors'
import { compareDistance, idEquals } from './id'
import type { Contact } from './routing-table'

/** What one queried contact told us. */
export interface QueryResult {
  contacts: Contact[]
  token?: Uint8Array | undefined
  record?: { value: Uint8Array; ttlMs: number } | undefined
}

export interface LookupOptions {
  target: Uint8Array
  selfId: Uint8Array
  k: number
  alpha: number
  paths: number
  initial: Contact[]
  query: (contact: Contact, signal: AbortSignal) => Promise<QueryResult>
  /** Return true to stop the whole lookup (e.g. a valid value was found). */
  onRecord?:
    ((record: { value: Uint8Array; ttlMs: number }, from: Contact) => boolean | Promise<boolean>) | undefined
  signal?: AbortSignal | undefined
}

/** A contact that answered, with the write token it gave us. */
export interface Responder {
  /** The node that answered. */
  contact: Contact
  /** The write token it gave for a later `STORE`, if any. */
  token: Uint8Array | undefined
  /** Hops from us: initial contacts are 1. */
  depth: number
  /** Whether it returned a record for the key (before the record was checked). */
  hadRecord: boolean
}

/** Outcome of a lookup. */
export interface LookupResult {
  /** Up to k closest contacts that answered, closest first. */
  closest: Responder[]
  /** RPCs sent. */
  rpcs: number
  /** RPCs that failed (timeout, bad response). */
  failures: number
  /** Depth of the closest answering contact (1 = it was in our own table). */
  hops: number
  /** Whether the lookup was stopped early by `onRecord`. */
  stoppedEarly: boolean
}

const NEW = 0
const PENDING = 1
const OK = 2
const FAILED = 3
const SKIPPED = 4
/** Answered, but vouched for a contact whose address answered with another ID. */
const LIED = 5

interface Candidate {
  contact: Contact
  key: string
  state: number
  depth: number
  token: Uint8Array | undefined
  hadRecord: boolean
  /** Responders that gave us this contact (none for initial contacts, which come from our own table). */
  referrers: Candidate[]
}

/** Most referrers remembered per candidate: enough that one liar cannot get an honest contact dropped. */
const MAX_REFERRERS = 4

function isIdMismatch(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'X_KAD_BAD_RESPONSE'
}

export async function iterativeLookup(opts: LookupOptions): Promise<LookupResult> {
  const { target, k, alpha, signal } = opts
  if (signal?.aborted === true) throw new KademliaError('X_KAD_ABORTED', 'lookup aborted')
  const paths = Math.max(1, Math.min(opts.paths, opts.initial.length || 1))
  const controller = new AbortController()
  // One listener per request in flight (paths × α), more than the default warning threshold of 10.
  setMaxListeners(Infinity, controller.signal)
  const onAbort = (): void => controller.abort()
  signal?.addEventListener('abort', onAbort, { once: true })
  const claimed = new Set<string>()
  let rpcs = 0
  let failures = 0
  const flags = { stopped: false }
  const maxCandidates = k * 4 // bounds memory per path whatever the responses say

  const lists: Candidate[][] = Array.from({ length: paths }, () => [])
  /** Per path: every contact key seen, with its candidate while it is in the list (undefined once dropped). */
  const known = Array.from({ length: paths }, () => new Map<string, Candidate | undefined>())
  const sorted = opts.initial
    .filter((c) => !idEquals(c.id, opts.selfId))
    .sort((a, b) => compareDistance(a.id, b.id, target))
  sorted.forEach((c, i) => insert(i % paths, c, 1, undefined))

  function insert(path: number, contact: Contact, depth: number, referrer: Candidate | undefined): void {
    if (idEquals(contact.id, opts.selfId)) return
    const key = String.fromCharCode.apply(null, contact.id as unknown as number[])
    const set = known[path]!
    if (set.has(key)) {
      const existing = set.get(key)
      if (existing !== undefined && referrer !== undefined && existing.referrers.length > 0) {
        if (existing.referrers.length < MAX_REFERRERS) existing.referrers.push(referrer)
      }
      return
    }
    const list = lists[path]!
    // Binary search for the insertion point.
    let lo = 0
    let hi = list.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (compareDistance(list[mid]!.contact.id, contact.id, target) < 0) lo = mid + 1
      else hi = mid
    }
    if (lo >= maxCandidates) return
    const candidate: Candidate = {
      contact,
      key,
      state: NEW,
      depth,
      token: undefined,
      hadRecord: false,
      referrers: referrer === undefined ? [] : [referrer],
    }
    set.set(key, candidate)
    list.splice(lo, 0, candidate)
    if (list.length > maxCandidates) {
      // Drop the farthest never-queried candidate.
      for (let i = list.length - 1; i >= 0; i--) {
        if (list[i]!.state === NEW) {
          set.delete(list[i]!.key)
          list.splice(i, 1)
          break
        }
      }
    }
  }

  const runPath = (path: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const list = lists[path]!
      let inflight = 0
      const pump = (): void => {
        if (flags.stopped || controller.signal.aborted) {
          if (inflight === 0) resolve()
          return
        }
        let counted = 0
        for (let i = 0; i < list.length && counted < k; i++) {
          const c = list[i]!
          if (c.state === FAILED || c.state === SKIPPED || c.state === LIED) continue
          if (c.state === NEW) {
            if (claimed.has(c.key)) {
              c.state = SKIPPED
              continue
            }
            if (inflight >= alpha) {
              counted++
              continue
            }
            claimed.add(c.key)
            c.state = PENDING
            inflight++
            rpcs++
            void query(c).then(() => {
              inflight--
              pump()
            })
          }
          counted++
        }
        if (inflight === 0) resolve()
      }
      const query = async (c: Candidate): Promise<void> => {
        try {
          const result = await opts.query(c.contact, controller.signal)
          // A referrer may have been caught lying while we waited for this one.
          if (c.state === PENDING) c.state = OK
          c.token = result.token
          if (result.record !== undefined && opts.onRecord !== undefined) {
            c.hadRecord = true
            if (await opts.onRecord(result.record, c.contact)) {
              flags.stopped = true
              return
            }
          }
          if (c.state === LIED) return
          for (const next of result.contacts) insert(path, next, c.depth + 1, c)
        } catch (err) {
          c.state = FAILED
          failures++
          // A failed contact leaves the list (its key stays known, so it is not added again): failures must
          // not take the places of live candidates under the maxCandidates bound.
          drop(c, false)
          if (isIdMismatch(err)) for (const r of c.referrers) if (!controller.signal.aborted) liar(r)
        }
      }
      /** Removes a candidate; `forget` lets an honest referrer bring it back later. */
      const drop = (c: Candidate, forget: boolean): void => {
        const at = list.indexOf(c)
        if (at !== -1) list.splice(at, 1)
        if (forget) known[path]!.delete(c.key)
        else known[path]!.set(c.key, undefined)
      }
      const liar = (r: Candidate): void => {
        if (r.state === LIED) return
        r.state = LIED
        // Not yet queried and vouched for by liars only: not worth an RPC.
        for (let i = list.length - 1; i >= 0; i--) {
          const c = list[i]!
          if (c.state === NEW && c.referrers.length > 0 && c.referrers.every((x) => x.state === LIED)) {
            drop(c, true)
          }
        }
      }
      pump()
    })

  try {
    await Promise.all(lists.map((_, i) => runPath(i)))
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
  throwIfAborted(signal)
  const responders: Candidate[] = []
  for (const list of lists) for (const c of list) if (c.state === OK) responders.push(c)
  responders.sort((a, b) => compareDistance(a.contact.id, b.contact.id, target))
  const closest = responders.slice(0, k).map((c) => ({
    contact: c.contact,
    token: c.token,
    depth: c.depth,
    hadRecord: c.hadRecord,
  }))
  return { closest, rpcs, failures, hops: closest[0]?.depth ?? 0, stoppedEarly: flags.stopped }
}
