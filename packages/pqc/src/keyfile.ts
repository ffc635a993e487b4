/**
 * Key files (PROTOCOL.md §7): a versioned, seed-based encoding of an identity and its static KEM keys,
 * optionally encrypted at rest with a passphrase (scrypt, RFC 7914, + AES-256-GCM with the header as associated
 * data). Pure functions, no file I/O (see `keyfile-fs.ts`), so this module is safe for browsers.
 *
 * ```
 * offset  size  field
 *      0     4  magic "XPQK"
 *      4     1  version (1)
 *      5     1  flags: bit 0 = encrypted; other bits 0
 *      6     1  KDF: 0 = none, 1 = scrypt
 *      7     3  scrypt log2(N), r, p (zeros when not encrypted)
 *     10    16  scrypt salt (zeros when not encrypted)
 *     26    12  AES-256-GCM nonce (zeros when not encrypted)
 *     38     2  body length L, u16 BE (64 plain, 80 encrypted)
 *     40     L  body = identity seed (32) || static KEM seed (32), sealed with AD = bytes 0..40 when encrypted
 *   40+L    32  SHA-256 of bytes 0..40+L (detects corruption; not a security mechanism)
 * ```
 */
import type * as NodeCrypto from 'node:crypto'
import { scryptAsync } from '@noble/hashes/scrypt.js'
import { AEAD_TAG_BYTES, aeadOpen, aeadSeal } from './aead'
import { concatBytes, equalBytes, wipe } from './bytes'
import { PqcError } from './errors'
import { IDENTITY_SEED_BYTES, Identity, exportIdentitySeed } from './identity'
import { randomBytes, sha256 } from './kdf'
import { nodeCrypto } from './runtime'
import {
  STATIC_KEM_SEED_BYTES,
  type StaticKeys,
  createStaticKeys,
  defaultStaticKeys,
} from './session/certificate'

/** "XPQK". */
export const KEYFILE_MAGIC = Uint8Array.of(0x58, 0x50, 0x51, 0x4b)
/** Format version written after the magic; a reader refuses versions it does not know. */
export const KEYFILE_VERSION = 1
/** Default scrypt cost: N = 2^17, r = 8, p = 1 (128 MiB, ~0.3–0.6 s; the OWASP 2023 minimum for scrypt). */
export const DEFAULT_SCRYPT_LOG_N = 17
/** Default scrypt block size `r` (see {@link DEFAULT_SCRYPT_LOG_N}). */
export const DEFAULT_SCRYPT_R = 8
/** Default scrypt parallelism `p` (see {@link DEFAULT_SCRYPT_LOG_N}). */
export const DEFAULT_SCRYPT_P = 1
/** Bounds accepted when reading a file: a hostile file must not make us allocate more than 1 GiB. */
export const MIN_SCRYPT_LOG_N = 10
export const MAX_SCRYPT_MEMORY_BYTES = 1_073_741_824
const MAX_SCRYPT_R = 32
const MAX_SCRYPT_P = 16
const HEADER_BYTES = 40
const SALT_BYTES = 16
const NONCE_BYTES = 12
const CHECKSUM_BYTES = 32
const BODY_BYTES = IDENTITY_SEED_BYTES + STATIC_KEM_SEED_BYTES
const FLAG_ENCRYPTED = 1
const KDF_NONE = 0
const KDF_SCRYPT = 1

/** What a key file holds. */
export interface KeyFileKeys {
  /** The identity whose seed the file stores. */
  identity: Identity
  /** @default the identity's derived static keys (`createStaticKeys(identity)`) */
  staticKeys?: StaticKeys
}

/** scrypt cost parameters (RFC 7914). */
export interface ScryptParams {
  /** @default 17 (N = 131072) */
  logN?: number
  /** @default 8 */
  r?: number
  /** @default 1 */
  p?: number
}

/** Options of `encodeKeyFile` and `writeKeyFile`. */
export interface EncodeKeyFileOptions {
  /** Encrypt at rest with this passphrase (strings are NFKC-normalised, then UTF-8). @default not encrypted */
  passphrase?: string | Uint8Array
  /** scrypt cost; stored in the file. @default `{ logN: 17, r: 8, p: 1 }` */
  scrypt?: ScryptParams
}

/** Options of `decodeKeyFile` and `readKeyFile`. */
export interface DecodeKeyFileOptions {
  /** Required for encrypted files. */
  passphrase?: string | Uint8Array
}

/** A decoded key file. */
export interface DecodedKeyFile {
  /** The identity, regenerated from the stored seed. */
  identity: Identity
  /** The static hybrid KEM keys for secure sessions. */
  staticKeys: StaticKeys
  /** Whether the file was encrypted. */
  encrypted: boolean
}

function passphraseBytes(passphrase: string | Uint8Array): Uint8Array {
  if (typeof passphrase === 'string') return new TextEncoder().encode(passphrase.normalize('NFKC'))
  if (passphrase instanceof Uint8Array) return passphrase
  throw new TypeError('"passphrase" must be a string or a Uint8Array')
}

function scryptMemory(logN: number, r: number): number {
  return 128 * r * 2 ** logN
}

async function deriveKey(
  passphrase: Uint8Array,
  salt: Uint8Array,
  logN: number,
  r: number,
  p: number,
): Promise<Uint8Array> {
  const N = 2 ** logN
  const maxmem = 2 * scryptMemory(logN, r) + 16 * 1024 * 1024
  const c: typeof NodeCrypto | undefined = nodeCrypto()
  if (c !== undefined) {
    return new Promise((resolve, reject) => {
      c.scrypt(passphrase, salt, 32, { N, r, p, maxmem }, (err, key) => {
        if (err) reject(err)
        else resolve(new Uint8Array(key.buffer, key.byteOffset, key.length))
      })
    })
  }
  return scryptAsync(passphrase, salt, { N, r, p, dkLen: 32, maxmem })
}

function checkParams(logN: number, r: number, p: number): boolean {
  return (
    Number.isInteger(logN) &&
    Number.isInteger(r) &&
    Number.isInteger(p) &&
    logN >= MIN_SCRYPT_LOG_N &&
    r >= 1 &&
    r <= MAX_SCRYPT_R &&
    p >= 1 &&
    p <= MAX_SCRYPT_P &&
    scryptMemory(logN, r) <= MAX_SCRYPT_MEMORY_BYTES
  )
}

/** Serialise `keys` (seeds only), encrypted when a passphrase is given. */
export async function encodeKeyFile(
  keys: KeyFileKeys,
  options: EncodeKeyFileOptions = {},
): Promise<Uint8Array> {
  if (!(keys?.identity instanceof Identity)) throw new TypeError('"keys.identity" must be an Identity')
  const staticKeys = keys.staticKeys ?? defaultStaticKeys(keys.identity)
  const identitySeed = exportIdentitySeed(keys.identity)
  const body = concatBytes(identitySeed, staticKeys.seed)
  wipe(identitySeed)
  const header = new Uint8Array(HEADER_BYTES)
  header.set(KEYFILE_MAGIC, 0)
  header[4] = KEYFILE_VERSION
  let sealed = body
  if (options.passphrase !== undefined) {
    const pw = passphraseBytes(options.passphrase)
    const logN = options.scrypt?.logN ?? DEFAULT_SCRYPT_LOG_N
    const r = options.scrypt?.r ?? DEFAULT_SCRYPT_R
    const p = options.scrypt?.p ?? DEFAULT_SCRYPT_P
    if (!checkParams(logN, r, p)) {
      throw new RangeError(
        `"scrypt" must have logN >= ${MIN_SCRYPT_LOG_N}, 1 <= r <= ${MAX_SCRYPT_R}, 1 <= p <= ${MAX_SCRYPT_P} and 128·r·N <= 1 GiB`,
      )
    }
    const salt = randomBytes(SALT_BYTES)
    const nonce = randomBytes(NONCE_BYTES)
    header[5] = FLAG_ENCRYPTED
    header[6] = KDF_SCRYPT
    header[7] = logN
    header[8] = r
    header[9] = p
    header.set(salt, 10)
    header.set(nonce, 26)
    new DataView(header.buffer).setUint16(38, BODY_BYTES + AEAD_TAG_BYTES)
    const key = await deriveKey(pw, salt, logN, r, p)
    sealed = aeadSeal(key, nonce, body, header)
    wipe(key, body)
  } else {
    new DataView(header.buffer).setUint16(38, BODY_BYTES)
  }
  const unsummed = concatBytes(header, sealed)
  return concatBytes(unsummed, sha256(unsummed))
}

function corrupt(message: string): never {
  throw new PqcError('X_PQC_KEYFILE_CORRUPT', message)
}

/**
 * Parse a key file. Errors: `X_PQC_KEYFILE_CORRUPT` (bad magic, length, checksum or field),
 * `X_PQC_KEYFILE_VERSION` (a version this code does not know), `X_PQC_KEYFILE_BAD_PASSPHRASE` (missing or wrong
 * passphrase for an encrypted file). Rebuilding the static-key certificate costs one ML-DSA-87 signature.
 */
export async function decodeKeyFile(
  bytes: Uint8Array,
  options: DecodeKeyFileOptions = {},
): Promise<DecodedKeyFile> {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" must be a Uint8Array')
  // Bound the size before anything else: the largest valid v1 file is 152 bytes.
  if (bytes.length < HEADER_BYTES + CHECKSUM_BYTES || bytes.length > 4096)
    corrupt(`key file of ${bytes.length} bytes`)
  if (!equalBytes(bytes.subarray(0, 4), KEYFILE_MAGIC)) corrupt('not a key file (bad magic)')
  const summed = bytes.subarray(0, bytes.length - CHECKSUM_BYTES)
  if (!equalBytes(sha256(summed), bytes.subarray(bytes.length - CHECKSUM_BYTES))) corrupt('checksum mismatch')
  if (bytes[4] !== KEYFILE_VERSION) {
    throw new PqcError(
      'X_PQC_KEYFILE_VERSION',
      `key file version ${String(bytes[4])} is not supported (this code reads ${KEYFILE_VERSION})`,
    )
  }
  const header = bytes.subarray(0, HEADER_BYTES)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
  const flags = bytes[5]!
  const kdf = bytes[6]!
  const bodyLength = view.getUint16(38)
  const encrypted = flags === FLAG_ENCRYPTED
  if (flags !== 0 && flags !== FLAG_ENCRYPTED) corrupt(`unknown flags ${flags}`)
  if (
    bodyLength !== BODY_BYTES + (encrypted ? AEAD_TAG_BYTES : 0) ||
    summed.length !== HEADER_BYTES + bodyLength
  ) {
    corrupt(`body length ${bodyLength} does not match`)
  }
  const sealed = bytes.subarray(HEADER_BYTES, HEADER_BYTES + bodyLength)
  let body: Uint8Array
  if (encrypted) {
    const [logN, r, p] = [bytes[7]!, bytes[8]!, bytes[9]!]
    if (kdf !== KDF_SCRYPT || !checkParams(logN, r, p)) corrupt('unsupported or out-of-range KDF parameters')
    if (options.passphrase === undefined) {
      throw new PqcError(
        'X_PQC_KEYFILE_BAD_PASSPHRASE',
        'the key file is encrypted: a passphrase is required',
      )
    }
    const key = await deriveKey(passphraseBytes(options.passphrase), bytes.slice(10, 26), logN, r, p)
    try {
      body = aeadOpen(key, bytes.slice(26, 38), sealed, header)
    } catch (cause) {
      // The checksum matched, so the bytes are as written: the key is wrong.
      throw new PqcError('X_PQC_KEYFILE_BAD_PASSPHRASE', 'wrong passphrase', { cause })
    } finally {
      wipe(key)
    }
  } else {
    if (kdf !== KDF_NONE || bytes.subarray(7, 38).some((b) => b !== 0))
      corrupt('unencrypted file with KDF fields set')
    body = sealed.slice()
  }
  const identity = Identity.generate(body.subarray(0, IDENTITY_SEED_BYTES))
  const staticKeys = createStaticKeys(identity, body.slice(IDENTITY_SEED_BYTES))
  wipe(body)
  return { identity, staticKeys, encrypted }
}
