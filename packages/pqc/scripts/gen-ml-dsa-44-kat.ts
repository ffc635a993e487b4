/**
 * Writes test/vectors/ml-dsa-44-kat.json: known answers for ML-DSA-44 and for signing-subkey derivation.
 * No official ML-DSA-44 signing vectors are vendored here (test/vectors holds one NIST ACVP keyGen case), so
 * these are pinned from @noble/post-quantum (whose ML-DSA-44 key generation meets that ACVP case) and, when the
 * script runs on a Node with native ML-DSA (>= 24.7, OpenSSL >= 3.5), cross-checked by OpenSSL: same public key
 * from the seed, and OpenSSL accepts every signature. The script refuses to write without that check.
 * Inputs are SHAKE256("x-pqc ml-dsa-44 kat " ‖ i) so anyone can regenerate them; the subkey derivation is
 * recomputed here with @noble/hashes' HKDF (not the package's own code).
 * Run: `npx -y node@24 ../../node_modules/tsx/dist/cli.mjs scripts/gen-ml-dsa-44-kat.ts`.
 */
import { createPrivateKey, createPublicKey, verify as nodeVerify } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { shake256 } from '@noble/hashes/sha3.js'
import { ml_dsa44 } from '@noble/post-quantum/ml-dsa.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

function opensslPublicKey(seed: Uint8Array): Uint8Array {
  const priv = createPrivateKey({
    key: Buffer.from(seed),
    format: 'raw-seed',
    asymmetricKeyType: 'ml-dsa-44',
  } as never)
  return new Uint8Array(createPublicKey(priv).export({ format: 'raw-public' } as never) as Buffer)
}

function opensslVerifies(pk: Uint8Array, msg: Uint8Array, sig: Uint8Array, context: Uint8Array): boolean {
  const key = createPublicKey({
    key: Buffer.from(pk),
    format: 'raw-public',
    asymmetricKeyType: 'ml-dsa-44',
  } as never)
  return nodeVerify(null, msg, { key, context } as never, sig)
}

try {
  opensslPublicKey(new Uint8Array(32))
} catch (e) {
  throw new Error(`run this on Node >= 24.7 (native ML-DSA-44) so OpenSSL cross-checks noble: ${String(e)}`)
}

const tests = []
for (let i = 0; i < 4; i++) {
  const input = shake256(utf8(`x-pqc ml-dsa-44 kat ${i}`), { dkLen: 32 + 48 })
  const seed = input.slice(0, 32)
  const message = input.slice(32, 32 + 16 + 8 * i)
  const context = i === 0 ? new Uint8Array(0) : utf8(`x-pqc/kat/${i}`)
  const kp = ml_dsa44.keygen(seed)
  if (hex(opensslPublicKey(seed)) !== hex(kp.publicKey)) throw new Error(`OpenSSL public key differs (${i})`)
  // Deterministic variant of FIPS 204 Algorithm 2: rnd = 0³².
  const signature = ml_dsa44.sign(message, kp.secretKey, { context, extraEntropy: false })
  if (!opensslVerifies(kp.publicKey, message, signature, context)) throw new Error(`OpenSSL rejects (${i})`)
  tests.push({
    tcId: i + 1,
    seed: hex(seed),
    publicKey: hex(kp.publicKey),
    secretKeySha256: hex(sha256(kp.secretKey)),
    message: hex(message),
    context: hex(context),
    deterministicSignature: hex(signature),
  })
}

const subkeys = []
for (const [n, label] of [
  [1, 'x-node/record-key'],
  [2, 'x-node/record-key'],
  [1, 'example/other-purpose'],
] as const) {
  const identitySeed = new Uint8Array(32).fill(n)
  const seed = hkdf(sha256, identitySeed, new Uint8Array(0), utf8(`${label}/ml-dsa-44/v2`), 32)
  const kp = ml_dsa44.keygen(seed)
  if (hex(opensslPublicKey(seed)) !== hex(kp.publicKey)) throw new Error(`OpenSSL subkey differs (${label})`)
  subkeys.push({ identitySeed: hex(identitySeed), label, subkeyPublicKeySha256: hex(sha256(kp.publicKey)) })
}

const out = {
  algorithm:
    'ML-DSA-44 (FIPS 204), pure, external interface with context; deterministic signing (rnd = 0^32)',
  generatedBy:
    'scripts/gen-ml-dsa-44-kat.ts with @noble/post-quantum 0.7.1, cross-checked by node:crypto ' +
    `(Node ${process.versions.node}, OpenSSL ${process.versions.openssl})`,
  testGroups: [{ tests }],
  subkeys,
}
writeFileSync(
  new URL('../test/vectors/ml-dsa-44-kat.json', import.meta.url),
  JSON.stringify(out, null, 1) + '\n',
)
