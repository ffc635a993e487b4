/**
 * Static hybrid KEM keys certified once by an ML-DSA-87 identity (KEMTLS-style authentication, PROTOCOL.md §2.3).
 * certificate = version u8 || identity public key (2592) || static hybrid KEM public key || ML-DSA-87 signature
 * (4627) over `version || static public key` with context "x-pqc/static-kem-cert/v1".
 * Verifying a certificate costs one ML-DSA-87 verification, so verified certificates are remembered in a small
 * LRU keyed by SHA-256 of the certificate bytes.
 */
import { concatBytes, toHex } from '../bytes'
import { PqcError } from '../errors'
import { HYBRID_PUBLIC_KEY_BYTES, HYBRID_SEED_BYTES, hybridKeygen } from '../hybrid-kem'
import { type Identity, idFromPublicKey, identitySeed, verify } from '../identity'
import { hkdfSha256, sha256 } from '../kdf'
import { ML_DSA_87_PUBLIC_KEY_BYTES, ML_DSA_87_SIGNATURE_BYTES } from '../ml-dsa'
import { utf8 } from './bytes'

export const STATIC_CERT_VERSION = 1
/** Length of an encoded static-key certificate. */
export const STATIC_CERT_BYTES =
  1 + ML_DSA_87_PUBLIC_KEY_BYTES + HYBRID_PUBLIC_KEY_BYTES + ML_DSA_87_SIGNATURE_BYTES
/** Seed length for the static hybrid KEM key pair. */
export const STATIC_KEM_SEED_BYTES = HYBRID_SEED_BYTES
const CERT_CONTEXT = utf8('x-pqc/static-kem-cert/v1')
const STATIC_SEED_INFO = utf8('x-pqc/static-kem-seed/v1')
/** Default number of verified certificates remembered. */
export const DEFAULT_CERTIFICATE_CACHE_SIZE = 1024

/** A static hybrid KEM key pair and its certificate signed by the owning identity. */
export interface StaticKeys {
  /** 32-byte seed the key pair was derived from (secret; this is what key files store). */
  readonly seed: Uint8Array
  /** The hybrid KEM public key peers encapsulate to ({@link HYBRID_PUBLIC_KEY_BYTES} bytes). */
  readonly publicKey: Uint8Array
  /** The hybrid KEM secret key (secret). */
  readonly secretKey: Uint8Array
  /** `STATIC_CERT_BYTES` bytes, see the module comment. */
  readonly certificate: Uint8Array
}

/** A parsed and verified certificate. */
export interface VerifiedCertificate {
  /** The ML-DSA-87 public key that signed the certificate. */
  readonly identityPublicKey: Uint8Array
  /** The static hybrid KEM public key it certifies. */
  readonly staticPublicKey: Uint8Array
  /** 20-byte identity ID of the signer. */
  readonly id: Uint8Array
}

/**
 * Create the static KEM keys of `identity` from `seed` (32 bytes). Without a seed, the keys are derived
 * deterministically from the identity seed (HKDF, label "x-pqc/static-kem-seed/v1"), so one identity seed
 * is enough to restore everything. Costs one ML-DSA-87 signature.
 */
export function createStaticKeys(identity: Identity, seed?: Uint8Array): StaticKeys {
  if (seed !== undefined && (!(seed instanceof Uint8Array) || seed.length !== STATIC_KEM_SEED_BYTES)) {
    throw new RangeError(`"seed" must be a ${STATIC_KEM_SEED_BYTES}-byte Uint8Array`)
  }
  const kemSeed =
    seed ?? hkdfSha256(identitySeed(identity), new Uint8Array(0), STATIC_SEED_INFO, STATIC_KEM_SEED_BYTES)
  const kp = hybridKeygen(kemSeed)
  const tbs = concatBytes(Uint8Array.of(STATIC_CERT_VERSION), kp.publicKey)
  const signature = identity.sign(tbs, CERT_CONTEXT)
  const certificate = concatBytes(tbs.subarray(0, 1), identity.publicKey, kp.publicKey, signature)
  return { seed: kemSeed, publicKey: kp.publicKey, secretKey: kp.secretKey, certificate }
}

const identityStatic = new WeakMap<Identity, StaticKeys>()

/** `createStaticKeys(identity)` memoised per identity object (the certificate signature is made once). */
export function defaultStaticKeys(identity: Identity): StaticKeys {
  let keys = identityStatic.get(identity)
  if (keys === undefined) {
    keys = createStaticKeys(identity)
    identityStatic.set(identity, keys)
  }
  return keys
}

/** Bounded LRU set of certificates that already verified. */
export class CertificateCache {
  readonly #max: number
  readonly #entries = new Map<string, VerifiedCertificate>()

  constructor(maxEntries = DEFAULT_CERTIFICATE_CACHE_SIZE) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1)
      throw new RangeError('"maxEntries" must be a positive integer')
    this.#max = maxEntries
  }

  /** Certificates cached now. */
  get size(): number {
    return this.#entries.size
  }

  /** @internal */
  get(key: string): VerifiedCertificate | undefined {
    const hit = this.#entries.get(key)
    if (hit !== undefined) {
      this.#entries.delete(key)
      this.#entries.set(key, hit)
    }
    return hit
  }

  /** @internal */
  set(key: string, value: VerifiedCertificate): void {
    this.#entries.set(key, value)
    if (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value
      if (oldest !== undefined) this.#entries.delete(oldest)
    }
  }

  /** Forgets every cached certificate. */
  clear(): void {
    this.#entries.clear()
  }
}

/** Process-wide cache used when a handshake is not given one. */
export const defaultCertificateCache = new CertificateCache()

/** The parts of a certificate, checked for length and version only (its signature is not verified). */
interface ParsedCertificate {
  readonly identityPublicKey: Uint8Array
  readonly staticPublicKey: Uint8Array
  readonly signature: Uint8Array
  /** The signed bytes: `version || static public key`. */
  readonly tbs: Uint8Array
}

/**
 * Splits a certificate without verifying it (the handshake uses it to check the claimed identity before paying
 * for the ML-DSA-87 verification). Throws `X_PQC_BAD_MESSAGE` for a wrong length or version.
 */
export function certificateToBeSigned(certificate: Uint8Array): ParsedCertificate {
  if (!(certificate instanceof Uint8Array)) throw new TypeError('"certificate" must be a Uint8Array')
  if (certificate.length !== STATIC_CERT_BYTES) {
    throw new PqcError(
      'X_PQC_BAD_MESSAGE',
      `certificate must be ${STATIC_CERT_BYTES} bytes, got ${certificate.length}`,
    )
  }
  if (certificate[0] !== STATIC_CERT_VERSION) {
    throw new PqcError('X_PQC_BAD_MESSAGE', `unknown certificate version ${String(certificate[0])}`)
  }
  let o = 1
  const identityPublicKey = certificate.slice(o, (o += ML_DSA_87_PUBLIC_KEY_BYTES))
  const staticPublicKey = certificate.slice(o, (o += HYBRID_PUBLIC_KEY_BYTES))
  const signature = certificate.subarray(o)
  return {
    identityPublicKey,
    staticPublicKey,
    signature,
    tbs: concatBytes(certificate.subarray(0, 1), staticPublicKey),
  }
}

function verified(parsed: ParsedCertificate): VerifiedCertificate {
  return {
    identityPublicKey: parsed.identityPublicKey,
    staticPublicKey: parsed.staticPublicKey,
    id: idFromPublicKey(parsed.identityPublicKey),
  }
}

/**
 * Parse and verify a certificate. Throws `X_PQC_BAD_MESSAGE` for a wrong length or version and
 * `X_PQC_BAD_SIGNATURE` when the signature does not verify.
 */
export function verifyCertificate(certificate: Uint8Array, cache?: CertificateCache): VerifiedCertificate {
  const parsed = certificateToBeSigned(certificate)
  const key = cache === undefined ? '' : toHex(sha256(certificate))
  const hit = cache?.get(key)
  if (hit !== undefined) return hit
  if (!verify(parsed.identityPublicKey, parsed.tbs, parsed.signature, CERT_CONTEXT)) {
    throw new PqcError('X_PQC_BAD_SIGNATURE', 'static key certificate signature does not verify')
  }
  const result = verified(parsed)
  cache?.set(key, result)
  return result
}

/**
 * As {@link verifyCertificate}, with the ML-DSA-87 verification done by `verifyAsync` (a worker pool's
 * `verify`); a cache hit costs no verification.
 */
export async function verifyCertificateWith(
  certificate: Uint8Array,
  verifyAsync: (
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
    context: Uint8Array,
  ) => Promise<boolean>,
  cache?: CertificateCache,
): Promise<VerifiedCertificate> {
  const parsed = certificateToBeSigned(certificate)
  const key = cache === undefined ? '' : toHex(sha256(certificate))
  const hit = cache?.get(key)
  if (hit !== undefined) return hit
  if (!(await verifyAsync(parsed.identityPublicKey, parsed.tbs, parsed.signature, CERT_CONTEXT))) {
    throw new PqcError('X_PQC_BAD_SIGNATURE', 'static key certificate signature does not verify')
  }
  const result = verified(parsed)
  cache?.set(key, result)
  return result
}
