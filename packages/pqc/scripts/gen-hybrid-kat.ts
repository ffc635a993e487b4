/**
 * Writes test/vectors/hybrid-kem-kat.json: known answers for the hybrid ML-KEM-1024 + X25519 KEM.
 * Inputs are SHAKE256("x-pqc hybrid-kem kat" ‖ i) so anyone can regenerate them. Run: `pnpm tsx scripts/gen-hybrid-kat.ts`.
 */
import { writeFileSync } from 'node:fs'
import { shake256 } from '@noble/hashes/sha3.js'
import { hybridDecapsulate, hybridEncapsulate, hybridKeygen } from '../src/index'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const tests = []
for (let i = 0; i < 8; i++) {
  const input = shake256(new TextEncoder().encode(`x-pqc hybrid-kem kat ${i}`), { dkLen: 96 })
  const seed = input.slice(0, 32)
  const random = input.slice(32, 96)
  const kp = hybridKeygen(seed)
  const { cipherText, sharedSecret } = hybridEncapsulate(kp.publicKey, random)
  if (hex(hybridDecapsulate(cipherText, kp.secretKey)) !== hex(sharedSecret))
    throw new Error('round trip failed')
  tests.push({
    tcId: i + 1,
    seed: hex(seed),
    random: hex(random),
    publicKey: hex(kp.publicKey),
    secretKey: hex(kp.secretKey),
    cipherText: hex(cipherText),
    sharedSecret: hex(sharedSecret),
  })
}
const out = {
  algorithm: 'x-pqc hybrid KEM ML-KEM-1024 + X25519 (X-Wing-style combiner), see src/hybrid-kem.ts',
  generatedBy: 'scripts/gen-hybrid-kat.ts with @noble/post-quantum (checked against ACVP) and @noble/curves',
  testGroups: [{ tests }],
}
writeFileSync(
  new URL('../test/vectors/hybrid-kem-kat.json', import.meta.url),
  JSON.stringify(out, null, 1) + '\n',
)
