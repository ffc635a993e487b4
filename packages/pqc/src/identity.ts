/**
 * Identities: an ML-DSA-87 key pair (FIPS 204) from a 32-byte seed. The ID is the first 160 bits of
 * SHA-256(publicKey), the same space as the Kademlia DHT; its one printable form is 40 lowercase hex digits.
 */
import { assertBytes, fromHex, toHex } from './bytes'
import { sha256 } from './kdf'
import {
  mlDsaKeygen,
  mlDsaSign,
  mlDsaVerify,
  ML_DSA_87_PUBLIC_KEY_BYTES,
  ML_DSA_87_SEED_BYTES,
} from './ml-dsa'
import { trackKeyPair } from './status'
import { randomBytes } from './kdf'

/** ID length: 160 bits. */
export const ID_BYTES = 20
/** Length of the printable ID (lowercase hex). */
export const ID_STRING_LENGTH = 40
/** Identity seed length. */
export const IDENTITY_SEED_BYTES = ML_DSA_87_SEED_BYTES

/** First 160 bits of SHA-256 over an ML-DSA-87 public key. */
export function idFromPublicKey(publicKey: Uint8Array): Uint8Array {
  assertBytes(publicKey, 'publicKey', ML_DSA_87_PUBLIC_KEY_BYTES)
  return sha256(publicKey).slice(0, ID_BYTES)
}

/** The printable form of an ID: 40 lowercase hex digits. */
export function formatId(id: Uint8Array): string {
  assertBytes(id, 'id', ID_BYTES)
  return toHex(id)
}

/** Parse the printable form (case-insensitive) back to 20 bytes. */
export function parseId(s: string): Uint8Array {
  if (typeof s !== 'string' || s.length !== ID_STRING_LENGTH) {
    throw new TypeError(`"s" must be ${ID_STRING_LENGTH} hex digits`)
  }
  return fromHex(s, 's')
}

/** Verify an ML-DSA-87 signature under FIPS 204 `context`. False (never a throw) for malformed input. */
export function verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  context?: Uint8Array,
): boolean {
  return mlDsaVerify(publicKey, message, signature, context)
}

let seedOf: (identity: Identity) => Uint8Array

/**
 * An ML-DSA-87 identity. Holds its 32-byte secret seed ξ in a private field: the only way out is
 * {@link exportIdentitySeed}, for key files.
 */
export class Identity {
  readonly #seed: Uint8Array
  /** 2592-byte ML-DSA-87 public key. */
  readonly publicKey: Uint8Array
  /** 20-byte ID. */
  readonly id: Uint8Array
  /** Printable ID (40 lowercase hex digits). */
  readonly idString: string
  #secretKey: Uint8Array | undefined

  static {
    // The package's own modules (static KEM keys, subkeys, key files, the worker pool) read the seed through
    // `identitySeed`; nothing outside the package can.
    seedOf = (identity) => identity.#seed
  }

  private constructor(seed: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array | undefined) {
    this.#seed = seed
    this.publicKey = publicKey
    this.#secretKey = secretKey
    this.id = idFromPublicKey(publicKey)
    this.idString = toHex(this.id)
    trackKeyPair(this)
  }

  /** A new identity from `seed32` (32 bytes), or from fresh randomness. */
  static generate(seed32?: Uint8Array): Identity {
    if (seed32 !== undefined) assertBytes(seed32, 'seed32', IDENTITY_SEED_BYTES)
    const seed = seed32 === undefined ? randomBytes(IDENTITY_SEED_BYTES) : seed32.slice()
    const kp = mlDsaKeygen(seed)
    return new Identity(seed, kp.publicKey, kp.secretKey)
  }

  /**
   * @internal Build from a seed and the public key computed elsewhere (the worker pool); the secret key is
   * expanded on first synchronous use.
   */
  static _fromSeedAndPublicKey(seed: Uint8Array, publicKey: Uint8Array): Identity {
    assertBytes(seed, 'seed', IDENTITY_SEED_BYTES)
    assertBytes(publicKey, 'publicKey', ML_DSA_87_PUBLIC_KEY_BYTES)
    return new Identity(seed, publicKey, undefined)
  }

  /** Hedged ML-DSA-87 signature of `message` under FIPS 204 `context` (≤ 255 bytes). */
  sign(message: Uint8Array, context?: Uint8Array): Uint8Array {
    this.#secretKey ??= mlDsaKeygen(this.#seed).secretKey
    return mlDsaSign(this.#secretKey, message, context)
  }

  /** Deterministic signature (FIPS 204 with rnd = 0³²): same inputs, same bytes; for tests and KATs. */
  signDeterministic(message: Uint8Array, context?: Uint8Array): Uint8Array {
    this.#secretKey ??= mlDsaKeygen(this.#seed).secretKey
    return mlDsaSign(this.#secretKey, message, context, { rnd: new Uint8Array(32) })
  }

  /** Verify a signature made by this identity. */
  verify(message: Uint8Array, signature: Uint8Array, context?: Uint8Array): boolean {
    return mlDsaVerify(this.publicKey, message, signature, context)
  }

  /** Never print secrets. */
  toJSON(): {
    /** {@link Identity.idString}. */
    id: string
  } {
    return { id: this.idString }
  }
}

/** @internal The identity's live seed array (not a copy), for this package's own derivations. */
export function identitySeed(identity: Identity): Uint8Array {
  if (!(identity instanceof Identity)) throw new TypeError('"identity" must be an Identity')
  return seedOf(identity)
}

/**
 * A copy of the identity's 32-byte secret seed ξ, **for key files only**: it is the whole secret, from which
 * the ML-DSA-87 key, the static KEM key and every signing subkey are derived. `encodeKeyFile` and
 * `writeKeyFile` already store it encrypted; call this only to write another encrypted store, never to log,
 * send or derive keys of your own (use {@link deriveSigningSubkey} for that). Wipe the copy after use
 * (`seed.fill(0)`); `Identity.generate(seed)` restores the identity.
 */
export function exportIdentitySeed(identity: Identity): Uint8Array {
  return identitySeed(identity).slice()
}
