/** Small byte helpers shared by the modules of this package. */

/** Concatenate byte arrays into one new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/** Constant-time equality for equal-length inputs (length itself is not secret). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= (a[i] as number) ^ (b[i] as number)
  return d === 0
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** Lowercase hex. */
export function toHex(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += HEX[b] as string
  return s
}

/** Parse hex (upper- or lowercase); throws TypeError naming `argName` on bad input. */
export function fromHex(hex: string, argName = 'hex'): Uint8Array {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError(`"${argName}" must be an even-length hex string`)
  }
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

/** Throw TypeError/RangeError unless `value` is a Uint8Array (of `length` bytes when given). */
export function assertBytes(value: unknown, argName: string, length?: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`"${argName}" must be a Uint8Array`)
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`"${argName}" must be ${length} bytes, got ${value.length}`)
  }
}

/** Overwrite with zeros (best effort: JS cannot guarantee copies elsewhere are wiped). */
export function wipe(...arrays: Uint8Array[]): void {
  for (const a of arrays) a.fill(0)
}
