/**
 * Signing subkeys: an ML-DSA-44 key (FIPS 204, category 2) derived from an ML-DSA-87 identity and certified by
 * it, for signatures that must be small (a 2420-byte ML-DSA-44 signature fits a 4096-byte DHT value; a
 * 4627-byte ML-DSA-87 one does not). A verifier checks the certificate once against the identity's public key,
 * then checks each signature against the subkey.
 *
 *   ξ₄₄         = HKDF-SHA-256(ikm = identity seed, salt = "", info = label ‖ "/ml-dsa-44/v2", 32 bytes)
 *   subkey      = ML-DSA-44.KeyGen_internal(ξ₄₄)
 *   certificate = ML-DSA-87.Sign(identity, message = subkey public key, context = label ‖ "/v2")
 *
 * The "v2" and the layout are those of x-node's DHT record keys (label "x-node/record-key"), where the scheme
 * began, so that every record key derived before it moved here stays the same. The subkey is deterministic (it
 * survives restarts with the identity); the certificate is hedged (its bytes differ per derivation, each verifies).
 */
import { assertBytes } from './bytes'
import { type Identity, identitySeed, verify } from './identity'
import { hkdfSha256 } from './kdf'
import { ML_DSA_87_PUBLIC_KEY_BYTES, ML_DSA_87_SIGNATURE_BYTES, ML_DSA_MAX_CONTEXT_BYTES } from './ml-dsa'
import {
  mlDsa44Keygen,
  mlDsa44Sign,
  mlDsa44Verify,
  ML_DSA_44_PUBLIC_KEY_BYTES,
  ML_DSA_44_SIGNATURE_BYTES,
} from './ml-dsa-44'

/** Subkey public key length (ML-DSA-44). */
export const SUBKEY_PUBLIC_KEY_BYTES = ML_DSA_44_PUBLIC_KEY_BYTES
/** Subkey signature length (ML-DSA-44). */
export const SUBKEY_SIGNATURE_BYTES = ML_DSA_44_SIGNATURE_BYTES
/** Certificate length: one ML-DSA-87 signature. */
export const SUBKEY_CERTIFICATE_BYTES = ML_DSA_87_SIGNATURE_BYTES
const CONTEXT_SUFFIX = '/v2'
const DERIVATION_SUFFIX = '/ml-dsa-44/v2'
/** Longest label in UTF-8 bytes: the certificate context `label ‖ "/v2"` must fit FIPS 204's 255 bytes. */
export const MAX_SUBKEY_LABEL_BYTES = ML_DSA_MAX_CONTEXT_BYTES - CONTEXT_SUFFIX.length
/** Labels under this prefix are refused: the package's own HKDF labels and signature contexts live there. */
const RESERVED_PREFIX = 'x-pqc/'

const enc = new TextEncoder()

/** Options of {@link deriveSigningSubkey}. */
export interface SigningSubkeyOptions {
  /**
   * What the subkey is for, e.g. `"x-node/record-key"`: 1–252 UTF-8 bytes, not starting with `"x-pqc/"`. One
   * label, one key; a verifier passes the same label to {@link verifySubkeyCertificate}. The identity must
   * sign nothing else under the FIPS 204 context `label + "/v2"`.
   */
  label: string
}

interface LabelBytes {
  info: Uint8Array
  context: Uint8Array
}

function labelBytes(label: unknown): LabelBytes {
  if (typeof label !== 'string') throw new TypeError('"label" must be a string')
  const bytes = enc.encode(label).length
  if (bytes === 0 || bytes > MAX_SUBKEY_LABEL_BYTES) {
    throw new RangeError(`"label" must be 1 to ${MAX_SUBKEY_LABEL_BYTES} UTF-8 bytes`)
  }
  if (label.startsWith(RESERVED_PREFIX)) {
    throw new RangeError(`"label" must not start with "${RESERVED_PREFIX}" (reserved by @x/pqc)`)
  }
  return { info: enc.encode(label + DERIVATION_SUFFIX), context: enc.encode(label + CONTEXT_SUFFIX) }
}

let subkeySeedOf: (subkey: SigningSubkey) => Uint8Array
let newSubkey: (
  label: string,
  seed: Uint8Array,
  keys: { publicKey: Uint8Array; secretKey: Uint8Array },
  certificate: Uint8Array,
) => SigningSubkey

/** An ML-DSA-44 signing subkey and the ML-DSA-87 certificate its identity made over it. */
export class SigningSubkey {
  /** The label it was derived for. */
  readonly label: string
  /** 1312-byte ML-DSA-44 public key. */
  readonly publicKey: Uint8Array
  /** 4627-byte ML-DSA-87 signature by the identity over `publicKey`, context `label + "/v2"`. */
  readonly certificate: Uint8Array
  readonly #seed: Uint8Array
  readonly #secretKey: Uint8Array

  static {
    subkeySeedOf = (subkey) => subkey.#seed
    newSubkey = (...args) => new SigningSubkey(...args)
  }

  private constructor(
    label: string,
    seed: Uint8Array,
    keys: { publicKey: Uint8Array; secretKey: Uint8Array },
    certificate: Uint8Array,
  ) {
    this.label = label
    this.#seed = seed
    this.publicKey = keys.publicKey
    this.#secretKey = keys.secretKey
    this.certificate = certificate
  }

  /** Hedged ML-DSA-44 signature of `message` under FIPS 204 `context` (≤ 255 bytes). */
  sign(message: Uint8Array, context?: Uint8Array): Uint8Array {
    return mlDsa44Sign(this.#secretKey, message, context)
  }

  /** Deterministic signature (FIPS 204 with rnd = 0³²): same inputs, same bytes; for tests and KATs. */
  signDeterministic(message: Uint8Array, context?: Uint8Array): Uint8Array {
    return mlDsa44Sign(this.#secretKey, message, context, { rnd: new Uint8Array(32) })
  }

  /** Never print secrets. */
  toJSON(): {
    /** The label it was derived under (`deriveSigningSubkey`). */
    label: string
  } {
    return { label: this.label }
  }
}

/** @internal The subkey's 32-byte ML-DSA-44 seed ξ (live array), for the worker pool. */
export function subkeySeed(subkey: SigningSubkey): Uint8Array {
  if (!(subkey instanceof SigningSubkey)) throw new TypeError('"subkey" must be a SigningSubkey')
  return subkeySeedOf(subkey)
}

/**
 * Derive the ML-DSA-44 signing subkey of `identity` for `options.label` and certify it. Deterministic in
 * (identity, label); costs one ML-DSA-44 key generation and one ML-DSA-87 signature, so derive once and keep it.
 * Throws `TypeError`/`RangeError` for a bad identity or label.
 */
export function deriveSigningSubkey(identity: Identity, options: SigningSubkeyOptions): SigningSubkey {
  const { info, context } = labelBytes(options?.label)
  const seed = hkdfSha256(identitySeed(identity), new Uint8Array(0), info, 32)
  const keys = mlDsa44Keygen(seed)
  const certificate = identity.sign(keys.publicKey, context)
  return newSubkey(options.label, seed, keys, certificate)
}

/**
 * True when `certificate` is the ML-DSA-87 signature of the identity `identityPublicKey` over the subkey
 * `subkeyPublicKey` for `label`. False (never a throw) for wrong or malformed keys and certificates; a bad
 * `label` is the caller's mistake and throws like in {@link deriveSigningSubkey}.
 */
export function verifySubkeyCertificate(
  identityPublicKey: Uint8Array,
  subkeyPublicKey: Uint8Array,
  certificate: Uint8Array,
  label: string,
): boolean {
  const { context } = labelBytes(label)
  if (!(identityPublicKey instanceof Uint8Array) || identityPublicKey.length !== ML_DSA_87_PUBLIC_KEY_BYTES) {
    return false
  }
  if (!(subkeyPublicKey instanceof Uint8Array) || subkeyPublicKey.length !== SUBKEY_PUBLIC_KEY_BYTES)
    return false
  if (!(certificate instanceof Uint8Array) || certificate.length !== SUBKEY_CERTIFICATE_BYTES) return false
  return verify(identityPublicKey, subkeyPublicKey, certificate, context)
}

/**
 * Verify a subkey signature (ML-DSA-44 under FIPS 204 `context`). False (never a throw) for a wrong or
 * malformed key or signature. Check the subkey's certificate first ({@link verifySubkeyCertificate}): this
 * says only that the subkey signed, not whose it is.
 */
export function verifySubkeySignature(
  subkeyPublicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  context?: Uint8Array,
): boolean {
  assertBytes(message, 'message')
  return mlDsa44Verify(subkeyPublicKey, message, signature, context)
}
