/**
 * The interface every ML-KEM-1024 / ML-DSA-87 / ML-DSA-44 backend implements. Keys and ciphertexts are the
 * FIPS 203 / FIPS 204 byte encodings, so any backend accepts what another produced.
 */

/** Names of the built-in backends. */
export type BackendName = 'noble' | 'node' | 'liboqs'

/** A key pair in FIPS byte encodings. */
export interface RawKeyPair {
  /** The public key (FIPS 203 `ek` or FIPS 204 `pk`). */
  publicKey: Uint8Array
  /** The secret key (FIPS 203 `dk` or FIPS 204 `sk`). */
  secretKey: Uint8Array
}

/** Result of ML-KEM encapsulation. */
export interface Encapsulation {
  /** The ML-KEM-1024 ciphertext, for the key's owner. */
  cipherText: Uint8Array
  /** The 32-byte shared secret. */
  sharedSecret: Uint8Array
}

/** One ML-KEM-1024 + ML-DSA-87 + ML-DSA-44 implementation. */
export interface PqcBackend {
  /** Which backend this is. */
  readonly name: BackendName
  /** Human-readable origin, e.g. `"OpenSSL 3.5.1"`. */
  readonly description: string
  /** True when the implementation claims constant-time secret-key operations (native OpenSSL, liboqs). */
  readonly constantTime: boolean
  /** ML-KEM-1024 KeyGen_internal(d, z) from the 64-byte seed `d ‖ z` (FIPS 203 §6.1). */
  mlKemKeygen(seed64: Uint8Array): RawKeyPair
  /**
   * ML-KEM-1024 Encaps. With `m` (32 bytes) the derandomized Encaps_internal (FIPS 203 §6.2); a backend that
   * cannot take `m` never receives it (the facade routes such calls to noble).
   */
  mlKemEncapsulate(publicKey: Uint8Array, m?: Uint8Array): Encapsulation
  /** ML-KEM-1024 Decaps with implicit rejection (FIPS 203 §6.3). `secretKey` is the 3168-byte dk. */
  mlKemDecapsulate(cipherText: Uint8Array, secretKey: Uint8Array): Uint8Array
  /** ML-DSA-87 KeyGen_internal(ξ) from the 32-byte seed (FIPS 204 §6.1). `secretKey` is the 4896-byte sk. */
  mlDsaKeygen(seed32: Uint8Array): RawKeyPair
  /**
   * ML-DSA-87 Sign with context (FIPS 204 Algorithm 2, pure). Hedged when `rnd` is undefined; with `rnd`
   * (32 bytes, all-zero = deterministic) only on backends with `derandomized`.
   */
  mlDsaSign(secretKey: Uint8Array, message: Uint8Array, context: Uint8Array, rnd?: Uint8Array): Uint8Array
  /** ML-DSA-87 Verify with context (FIPS 204 Algorithm 3). False for any malformed input. */
  mlDsaVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, context: Uint8Array): boolean
  /**
   * ML-DSA-44 KeyGen_internal(ξ) from the 32-byte seed (FIPS 204 §6.1). `secretKey` is the 2560-byte sk.
   * Signing subkeys use it: its 2420-byte signatures fit where a 4627-byte ML-DSA-87 one does not.
   */
  mlDsa44Keygen(seed32: Uint8Array): RawKeyPair
  /** ML-DSA-44 Sign with context, as {@link PqcBackend.mlDsaSign} (`rnd` only on backends with `derandomized`). */
  mlDsa44Sign(secretKey: Uint8Array, message: Uint8Array, context: Uint8Array, rnd?: Uint8Array): Uint8Array
  /** ML-DSA-44 Verify with context. False for any malformed input. */
  mlDsa44Verify(
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
    context: Uint8Array,
  ): boolean
  /** True when `m` / `rnd` can be supplied (known-answer tests, deterministic signing). */
  readonly derandomized: boolean
  /** Optional: ML-KEM-1024 key pair from the backend's own randomness (one-time keys whose seed is not kept). */
  mlKemKeygenRandom?(): RawKeyPair
  /**
   * Optional: `copy` is a new array with the same bytes as the key `original` this backend returned or saw;
   * reuse whatever per-key state was cached for `original` (e.g. an OpenSSL key object).
   */
  adoptKey?(original: Uint8Array, copy: Uint8Array): void
}

/** Pino-shaped logger; the package defaults to a silent one. */
export interface PqcLogger {
  /** Detail useful when diagnosing. */
  debug(obj: object, msg?: string): void
  /** A normal event worth a line, such as the backend chosen. */
  info(obj: object, msg?: string): void
  /** Something an operator should look at, such as a backend failing its self-test. */
  warn(obj: object, msg?: string): void
  /** A failure this package could not handle itself. */
  error(obj: object, msg?: string): void
  /** A logger that adds `bindings` to every line. */
  child(bindings: object): PqcLogger
}
