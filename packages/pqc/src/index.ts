/**
 * Post-quantum building blocks for a P2P node: ML-DSA-87 identities and their ML-DSA-44 signing subkeys,
 * ML-KEM-1024 and a hybrid ML-KEM-1024 + X25519 KEM, sealed boxes, AEAD, and pluggable backends (pure JS,
 * Node's OpenSSL, liboqs WASM).
 *
 * @example
 * ```ts
 * import { initPqc, Identity, verify, hybridKeygen, sealBox, openBox, getStatus } from '@x/pqc'
 *
 * await initPqc() // optional: picks the fastest backend that passes its self-test
 * const alice = Identity.generate()
 * const ctx = new TextEncoder().encode('example/v1')
 * const sig = alice.sign(new TextEncoder().encode('hello'), ctx)
 * console.log(alice.idString, verify(alice.publicKey, new TextEncoder().encode('hello'), sig, ctx))
 *
 * const bob = hybridKeygen()
 * const box = sealBox(bob.publicKey, new TextEncoder().encode('secret'))
 * console.log(new TextDecoder().decode(openBox(bob.secretKey, box)), getStatus())
 * ```
 *
 * @packageDocumentation
 */
export { PqcError, isPqcError, type PqcErrorCode } from './errors'
export {
  Identity,
  exportIdentitySeed,
  verify,
  idFromPublicKey,
  formatId,
  parseId,
  ID_BYTES,
  ID_STRING_LENGTH,
  IDENTITY_SEED_BYTES,
} from './identity'
export * from './hybrid-kem'
export * from './ml-kem'
export {
  mlDsaKeygen,
  mlDsaSign,
  mlDsaVerify,
  ML_DSA_87_PUBLIC_KEY_BYTES,
  ML_DSA_87_SECRET_KEY_BYTES,
  ML_DSA_87_SIGNATURE_BYTES,
  ML_DSA_87_SEED_BYTES,
  ML_DSA_MAX_CONTEXT_BYTES,
  type SignOptions,
} from './ml-dsa'
export * from './ml-dsa-44'
export {
  deriveSigningSubkey,
  verifySubkeyCertificate,
  verifySubkeySignature,
  SigningSubkey,
  SUBKEY_PUBLIC_KEY_BYTES,
  SUBKEY_SIGNATURE_BYTES,
  SUBKEY_CERTIFICATE_BYTES,
  MAX_SUBKEY_LABEL_BYTES,
  type SigningSubkeyOptions,
} from './subkey'
export * from './aead'
export { hkdfSha256, sha3_256, sha256, randomBytes, HKDF_SHA256_MAX_BYTES } from './kdf'
export * from './sealed-box'
export { getStatus, type PqcStatus } from './status'
export {
  createPqcWorkerPool,
  type PqcWorkerPool,
  type PqcWorkerPoolInit,
  type PqcWorkerPoolComponents,
  type PqcWorkerPoolStats,
} from './worker-pool'
export {
  initPqc,
  activeBackend,
  loadedBackends,
  backendReports,
  type PqcInitOptions,
  type PqcInitResult,
  type BackendReport,
} from './backend/registry'
export type { BackendName, PqcBackend, PqcLogger, RawKeyPair, Encapsulation } from './backend/types'
export {
  createInitiator,
  createResponder,
  handshake,
  HANDSHAKE_VERSION,
  HANDSHAKE_MESSAGE_BYTES,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  MAX_PROLOGUE_BYTES,
  MAX_QUEUED_HANDSHAKE_MESSAGES,
  type AuthMode,
  type Handshake,
  type HandshakeInit,
  type InitiatorInit,
  type ResponderInit,
  type HandshakeResult,
  type HandshakeStatus,
  type HandshakeClock,
  type HandshakePipe,
  type HandshakeRunOptions,
  type HandshakeRunResult,
  type HandshakeCrypto,
  type PeerIdentity,
} from './session/handshake'
export {
  SecureSession,
  RECORD_HEADER_BYTES,
  DEFAULT_MAX_RECORDS_PER_KEY,
  DEFAULT_MAX_BYTES_PER_KEY,
  DEFAULT_MAX_RECORD_BYTES,
  type SecureSessionInit,
  type SecureSessionStats,
} from './session/secure-session'
export {
  createStaticKeys,
  verifyCertificate,
  CertificateCache,
  STATIC_CERT_BYTES,
  STATIC_KEM_SEED_BYTES,
  type StaticKeys,
  type VerifiedCertificate,
} from './session/certificate'
export {
  encodeKeyFile,
  decodeKeyFile,
  KEYFILE_VERSION,
  DEFAULT_SCRYPT_LOG_N,
  DEFAULT_SCRYPT_R,
  DEFAULT_SCRYPT_P,
  type KeyFileKeys,
  type ScryptParams,
  type EncodeKeyFileOptions,
  type DecodeKeyFileOptions,
  type DecodedKeyFile,
} from './keyfile'
export { writeKeyFile, readKeyFile, type WriteKeyFileOptions } from './keyfile-fs'
