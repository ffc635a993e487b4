/**
 * Hashes, HKDF (RFC 5869) and randomness. `node:crypto` on Node (OpenSSL, faster for large inputs), the
 * audited `@noble/hashes` elsewhere; both give the same bytes.
 */
import { expand as nobleExpand, extract as nobleExtract } from '@noble/hashes/hkdf.js'
import { hmac as nobleHmac } from '@noble/hashes/hmac.js'
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { sha3_256 as nobleSha3_256 } from '@noble/hashes/sha3.js'
import { nodeCrypto } from './runtime'

/** Largest HKDF output, 255 × HashLen (RFC 5869 §2.3). */
export const HKDF_SHA256_MAX_BYTES = 255 * 32
/** `crypto.getRandomValues` refuses more than 65 536 bytes per call (WebCrypto). */
const GET_RANDOM_VALUES_MAX_BYTES = 65_536

/** HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `length` bytes. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  checkLength(length)
  const prk = hkdfExtractSha256(salt, ikm)
  const out = hkdfExpandSha256(prk, info, length)
  prk.fill(0)
  return out
}

function checkLength(length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > HKDF_SHA256_MAX_BYTES) {
    throw new RangeError(`"length" must be an integer in 1..${HKDF_SHA256_MAX_BYTES}`)
  }
}

/** HKDF-Extract (RFC 5869 §2.2): PRK = HMAC-SHA256(salt, ikm). Several expansions of one PRK save its HMAC. */
export function hkdfExtractSha256(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  const c = nodeCrypto()
  return c === undefined ? nobleExtract(nobleSha256, ikm, salt) : hmacNode(c, salt, ikm)
}

/** HKDF-Expand (RFC 5869 §2.3) of a 32-byte PRK. */
export function hkdfExpandSha256(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  checkLength(length)
  const c = nodeCrypto()
  if (c === undefined) return nobleExpand(nobleSha256, prk, info, length)
  // RFC 5869 over HMAC-SHA256 built on `createHash`: the handshake and the record layer call this with
  // short inputs, where `hkdfSync` / `createHmac` cost 2× more (Node's key-argument checks dominate).
  const out = new Uint8Array(length)
  let t: Uint8Array = new Uint8Array(0)
  const counter = new Uint8Array(1)
  for (let o = 0, i = 1; o < length; o += 32, i++) {
    counter[0] = i
    t = hmacNode(c, prk, t, info, counter)
    out.set(length - o < 32 ? t.subarray(0, length - o) : t, o)
  }
  t.fill(0)
  return out
}

const SHA256_BLOCK_BYTES = 64

/** HMAC-SHA256 (RFC 2104) of `data`. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  const c = nodeCrypto()
  return c === undefined ? nobleHmac(nobleSha256, key, data) : hmacNode(c, key, data)
}

/** HMAC-SHA256 over the concatenation of `data`, on `createHash`. */
function hmacNode(c: NonNullable<ReturnType<typeof nodeCrypto>>, key: Uint8Array, ...data: Uint8Array[]) {
  const block = new Uint8Array(SHA256_BLOCK_BYTES)
  block.set(key.length > SHA256_BLOCK_BYTES ? c.createHash('sha256').update(key).digest() : key)
  for (let i = 0; i < SHA256_BLOCK_BYTES; i++) block[i]! ^= 0x36
  const inner = c.createHash('sha256').update(block)
  for (const d of data) inner.update(d)
  const ih = inner.digest()
  for (let i = 0; i < SHA256_BLOCK_BYTES; i++) block[i]! ^= 0x36 ^ 0x5c
  const d = c.createHash('sha256').update(block).update(ih).digest()
  block.fill(0)
  ih.fill(0)
  return new Uint8Array(d.buffer, d.byteOffset, d.length)
}

/** SHA3-256 (FIPS 202) over the concatenation of `parts`. */
export function sha3_256(...parts: Uint8Array[]): Uint8Array {
  const c = nodeCrypto()
  if (c !== undefined) {
    const h = c.createHash('sha3-256')
    for (const p of parts) h.update(p)
    const d = h.digest()
    return new Uint8Array(d.buffer, d.byteOffset, d.length)
  }
  const h = nobleSha3_256.create()
  for (const p of parts) h.update(p)
  return h.digest()
}

/** SHA-256 (FIPS 180-4). */
export function sha256(data: Uint8Array): Uint8Array {
  const c = nodeCrypto()
  if (c !== undefined) {
    const d = c.createHash('sha256').update(data).digest()
    return new Uint8Array(d.buffer, d.byteOffset, d.length)
  }
  return nobleSha256(data)
}

/** `n` bytes from the platform CSPRNG (`crypto.getRandomValues`). */
export function randomBytes(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError('"n" must be a non-negative integer')
  const out = new Uint8Array(n)
  for (let o = 0; o < n; o += GET_RANDOM_VALUES_MAX_BYTES) {
    globalThis.crypto.getRandomValues(out.subarray(o, Math.min(n, o + GET_RANDOM_VALUES_MAX_BYTES)))
  }
  return out
}
