/**
 * Optional WASM backend: `@oqs/liboqs-js` (liboqs compiled to WebAssembly; its C code claims constant time).
 * Its JS API has no seeded key generation and no FIPS 204 context string, so this backend does ML-KEM
 * encapsulation/decapsulation and context-free ML-DSA-87 / ML-DSA-44 signing/verification in WASM, and hands
 * seeded key generation and context-bearing signatures to noble (same bytes by construction).
 */
import { nobleBackend } from './noble'
import type { PqcBackend } from './types'

interface OqsKem {
  encapsulate(publicKey: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array }
  decapsulate(ciphertext: Uint8Array, secretKey: Uint8Array): Uint8Array
}
interface OqsSig {
  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array
  verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean
}
interface OqsModule {
  createMLKEM1024(): Promise<OqsKem>
  createMLDSA87(): Promise<OqsSig>
  /** Absent from older liboqs-js releases: ML-DSA-44 then runs on noble entirely. */
  createMLDSA44?(): Promise<OqsSig>
}

/** Package name in a variable so that bundlers do not try to resolve the optional dependency. */
const LIBOQS_PACKAGE = '@oqs/liboqs-js'

/** Loads liboqs-js, or returns why it is unavailable. */
export async function loadLiboqsBackend(specifier: string = LIBOQS_PACKAGE): Promise<PqcBackend | string> {
  let mod: OqsModule
  try {
    mod = (await import(/* @vite-ignore */ specifier)) as OqsModule
  } catch (e) {
    return `${specifier} is not installed or failed to load: ${(e as Error).message}`
  }
  if (typeof mod.createMLKEM1024 !== 'function' || typeof mod.createMLDSA87 !== 'function') {
    return `${specifier} does not export createMLKEM1024/createMLDSA87`
  }
  const kem = await mod.createMLKEM1024()
  const sig = await mod.createMLDSA87()
  const sig44 = typeof mod.createMLDSA44 === 'function' ? await mod.createMLDSA44() : undefined
  return {
    name: 'liboqs',
    description: 'liboqs (WebAssembly, @oqs/liboqs-js)',
    // liboqs itself claims constant time, but seeded key generation and context-bearing signatures (which every
    // @x/pqc identity and session uses) run on noble here, so this backend as a whole does not keep the secret-key
    // work in constant-time code: it reports production: false.
    constantTime: false,
    derandomized: false,
    mlKemKeygen: (seed) => nobleBackend.mlKemKeygen(seed),
    mlKemEncapsulate: (publicKey) => {
      const r = kem.encapsulate(publicKey)
      return { cipherText: r.ciphertext, sharedSecret: r.sharedSecret }
    },
    mlKemDecapsulate: (cipherText, secretKey) => kem.decapsulate(cipherText, secretKey),
    mlDsaKeygen: (seed) => nobleBackend.mlDsaKeygen(seed),
    mlDsaSign: (secretKey, message, context) =>
      context.length === 0
        ? sig.sign(message, secretKey)
        : nobleBackend.mlDsaSign(secretKey, message, context),
    mlDsaVerify: (publicKey, message, signature, context) => {
      if (context.length !== 0) return nobleBackend.mlDsaVerify(publicKey, message, signature, context)
      try {
        return sig.verify(message, signature, publicKey)
      } catch {
        return false
      }
    },
    mlDsa44Keygen: (seed) => nobleBackend.mlDsa44Keygen(seed),
    mlDsa44Sign: (secretKey, message, context) =>
      context.length === 0 && sig44 !== undefined
        ? sig44.sign(message, secretKey)
        : nobleBackend.mlDsa44Sign(secretKey, message, context),
    mlDsa44Verify: (publicKey, message, signature, context) => {
      if (context.length !== 0 || sig44 === undefined) {
        return nobleBackend.mlDsa44Verify(publicKey, message, signature, context)
      }
      try {
        return sig44.verify(message, signature, publicKey)
      } catch {
        return false
      }
    },
  }
}
