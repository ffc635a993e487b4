/*
 * Key layout inside the injected database (utf8 keys, Uint8Array values):
 *
 *   n!<name>            meta: varUint8Array(state vector) · varUint(stored bytes)   one per document
 *   d!<name>!s          snapshot: one merged Yjs update (v1)
 *   d!<name>!u!<seq>    an update appended after the snapshot; <seq> is 12 hex digits so keys sort in order
 *
 * <name> is encodeURIComponent(name) with '!' escaped too, so no name can contain the separator and one
 * document's range never overlaps another's. encodeURIComponent leaves '~' (0x7e) as it is, so range ends are
 * the next character after the separator ('"', 0x22), never '~': a name starting with '~' sorts after 'n!~'.
 */

/** Longest document name accepted, in UTF-16 code units. */
export const MAX_DOC_NAME_LENGTH = 512

const SEQ_DIGITS = 12

export function encodeName(name: string): string {
  return encodeURIComponent(name).replace(/!/g, '%21')
}

export function decodeName(encoded: string): string {
  return decodeURIComponent(encoded)
}

export function metaKey(enc: string): string {
  return `n!${enc}`
}

/** Every metadata key: 'n!' up to, not including, 'n"' ('"' is the character after '!'). */
export const META_RANGE = { gt: 'n!', lt: 'n"' } as const

export function docRange(enc: string): { gt: string; lt: string } {
  return { gt: `d!${enc}!`, lt: `d!${enc}"` }
}

export function snapshotKey(enc: string): string {
  return `d!${enc}!s`
}

export function updateKey(enc: string, seq: number): string {
  return `d!${enc}!u!${seq.toString(16).padStart(SEQ_DIGITS, '0')}`
}

/** Returns the sequence number of an update key, or -1 for the snapshot key. */
export function parseDocKey(enc: string, key: string): number {
  const rest = key.slice(enc.length + 3)
  if (rest === 's') return -1
  if (rest.startsWith('u!')) {
    const seq = Number.parseInt(rest.slice(2), 16)
    if (Number.isSafeInteger(seq)) return seq
  }
  return -2
}

/** Checks a document name at the boundary; returns a message when invalid. */
export function docNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'document name must be a string'
  if (name.length === 0) return 'document name is empty'
  if (name.length > MAX_DOC_NAME_LENGTH) return `document name longer than ${MAX_DOC_NAME_LENGTH}`
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'document name contains control characters'
  try {
    encodeURIComponent(name)
  } catch {
    return 'document name is not well-formed UTF-16'
  }
  return undefined
}
