/**
 * Versioned snapshot of a node's contacts and records, as plain JSON-safe data. Importing validates every
 * field and bound, and rejects a corrupt snapshot whole with `X_KAD_BAD_STATE`.
 */
import { KademliaError } from './errors'
import { fromHex, ID_LENGTH_BYTES, toHex } from './id'
import type { StoredRecord } from './records'
import type { Contact, RoutingTable } from './routing-table'

/** Format version of {@link KademliaState}. */
export const STATE_VERSION = 1
const MAX_SNAPSHOT_RECORDS = 100_000

/** A snapshot as produced by `exportState()` (JSON-serialisable). */
export interface KademliaState {
  /** {@link STATE_VERSION}; `importState()` refuses others. */
  version: 1
  /** The exporting node's ID, 40 hex digits. */
  id: string
  /** When it was exported, on the node's clock (milliseconds). */
  savedAt: number
  /** The routing table's contacts; `importState()` adds only those that still answer. */
  contacts: Array<{
    /** Node ID, 40 hex digits. */
    id: string
    /** Transport address. */
    address: string
  }>
  /** Records that had not expired. */
  records: Array<{
    /** Record key, 40 hex digits. */
    key: string
    /** Record value, hex. */
    value: string
    /** When it expires, on the node's clock (milliseconds). */
    expiresAt: number
  }>
}

export function exportSnapshot(
  id: Uint8Array,
  table: RoutingTable,
  records: Iterable<StoredRecord>,
  now: number,
): KademliaState {
  const contacts: KademliaState['contacts'] = []
  for (const c of table) contacts.push({ id: toHex(c.id), address: c.address })
  const recs: KademliaState['records'] = []
  for (const r of records) {
    if (r.expiresAt > now) recs.push({ key: toHex(r.key), value: toHex(r.value), expiresAt: r.expiresAt })
  }
  return { version: STATE_VERSION, id: toHex(id), savedAt: now, contacts, records: recs }
}

function bad(message: string): never {
  throw new KademliaError('X_KAD_BAD_STATE', `invalid state: ${message}`)
}

function isAddress(a: unknown): a is string {
  return typeof a === 'string' && a.length > 0 && a.length <= 64 && /^[\x21-\x7e]+$/.test(a)
}

export function parseSnapshot(
  state: unknown,
  maxContacts: number,
  maxValueBytes: number,
): { contacts: Contact[]; records: Array<{ key: Uint8Array; value: Uint8Array; expiresAt: number }> } {
  if (typeof state !== 'object' || state === null) bad('not an object')
  const s = state as Record<string, unknown>
  if (s.version !== STATE_VERSION) bad(`unsupported version ${String(s.version)}`)
  if (!Array.isArray(s.contacts) || !Array.isArray(s.records)) bad('contacts and records must be arrays')
  if (s.contacts.length > maxContacts) bad(`more than ${maxContacts} contacts`)
  if (s.records.length > MAX_SNAPSHOT_RECORDS) bad('too many records')
  const contacts: Contact[] = []
  for (const [i, c] of (s.contacts as unknown[]).entries()) {
    if (typeof c !== 'object' || c === null) bad(`contacts[${i}] not an object`)
    const { id, address } = c as Record<string, unknown>
    const bytes = typeof id === 'string' ? fromHex(id) : undefined
    if (bytes?.length !== ID_LENGTH_BYTES) bad(`contacts[${i}].id`)
    if (!isAddress(address)) bad(`contacts[${i}].address`)
    contacts.push({ id: bytes, address })
  }
  const records: Array<{ key: Uint8Array; value: Uint8Array; expiresAt: number }> = []
  for (const [i, r] of (s.records as unknown[]).entries()) {
    if (typeof r !== 'object' || r === null) bad(`records[${i}] not an object`)
    const { key, value, expiresAt } = r as Record<string, unknown>
    const k = typeof key === 'string' ? fromHex(key) : undefined
    if (k?.length !== ID_LENGTH_BYTES) bad(`records[${i}].key`)
    const v = typeof value === 'string' && value.length <= maxValueBytes * 2 ? fromHex(value) : undefined
    if (v === undefined) bad(`records[${i}].value`)
    if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) bad(`records[${i}].expiresAt`)
    records.push({ key: k, value: v, expiresAt })
  }
  return { contacts, records }
}
