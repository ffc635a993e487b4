import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'

// @noble/post-quantum is a dev dependency of @x/signaling, not of @x/bench: resolve it from there.
const requireFromSignaling = createRequire(new URL('../../packages/signaling/package.json', import.meta.url))

export interface MlDsa {
  keygen(seed?: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array }
  sign(msg: Uint8Array, secretKey: Uint8Array): Uint8Array
  verify(sig: Uint8Array, msg: Uint8Array, publicKey: Uint8Array): boolean
}

export async function loadMlDsa87(): Promise<MlDsa> {
  const url = 'file://' + requireFromSignaling.resolve('@noble/post-quantum/ml-dsa.js')
  const mod = (await import(url)) as { ml_dsa87: MlDsa }
  return mod.ml_dsa87
}

export const peerIdFromPublicKey = (publicKey: Uint8Array): string =>
  createHash('sha256').update(publicKey).digest('hex').slice(0, 40)

/** `floor` is a bare relay (floor.ts), not a server to compare with: what any Node.js relay costs at least. */
export type Kind = 'ours' | 'peerjs' | 'y-webrtc' | 'floor'
