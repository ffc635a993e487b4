/**
 * 160-bit Kademlia identifiers (Maymounkov & Mazières 2002, §2.1): distance is the XOR of two IDs read as
 * an unsigned big-endian integer. Every comparison here is exact and byte-wise: no conversion to `number`,
 * which loses precision past 2^53 and is what makes some libraries' `closest()` order unreliable.
 */

export const ID_LENGTH_BYTES = 20 // 160 bits
export const ID_LENGTH_BITS = 160

/** Throws a TypeError naming `name` unless `id` is a 20-byte Uint8Array. */
export function assertId(id: unknown, name: string): asserts id is Uint8Array {
  if (!(id instanceof Uint8Array) || id.length !== ID_LENGTH_BYTES) {
    throw new TypeError(`'${name}' must be a ${ID_LENGTH_BYTES}-byte Uint8Array`)
  }
}

/** XOR distance of two IDs, as 20 bytes. */
export function xorDistance(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(ID_LENGTH_BYTES)
  for (let i = 0; i < ID_LENGTH_BYTES; i++) out[i] = a[i]! ^ b[i]!
  return out
}

/** Negative if `a` is closer to `target` than `b`, positive if farther, 0 if equal. */
export function compareDistance(a: Uint8Array, b: Uint8Array, target: Uint8Array): number {
  for (let i = 0; i < ID_LENGTH_BYTES; i++) {
    const t = target[i]!
    const d = (a[i]! ^ t) - (b[i]! ^ t)
    if (d !== 0) return d
  }
  return 0
}

/** Byte-wise equality. */
export function idEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Length of the common bit prefix of `a` and `b` (0..160). */
export function commonPrefixLength(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < ID_LENGTH_BYTES; i++) {
    const x = a[i]! ^ b[i]!
    if (x !== 0) return i * 8 + Math.clz32(x) - 24
  }
  return ID_LENGTH_BITS
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** Lower-case hex of any byte string. */
export function toHex(bytes: Uint8Array): string {
  let s = ''
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]!]
  return s
}

/** Parses hex; returns undefined for anything that is not even-length hex. */
export function fromHex(hex: string): Uint8Array | undefined {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

/**
 * A random ID that shares exactly `prefixBits` leading bits with `self` (so it falls in bucket
 * `prefixBits` of `self`'s table). Used to refresh a bucket.
 */
export function randomIdInBucket(self: Uint8Array, prefixBits: number, random: Uint8Array): Uint8Array {
  const out = random.slice(0, ID_LENGTH_BYTES)
  const fullBytes = prefixBits >> 3
  for (let i = 0; i < fullBytes; i++) out[i] = self[i]!
  if (fullBytes < ID_LENGTH_BYTES) {
    const bit = prefixBits & 7
    const keep = (0xff00 >> bit) & 0xff // the `bit` leading bits of this byte come from self
    const flip = 0x80 >> bit // the next bit must differ from self
    const s = self[fullBytes]!
    out[fullBytes] = (s & keep) | (~s & flip) | (out[fullBytes]! & ~(keep | flip) & 0xff)
  }
  return out
}
