import {
  createInitiator,
  createResponder,
  handshake,
  type HandshakeCrypto,
  type Identity,
  type StaticKeys,
} from '@x/pqc'
import type { SecureFn } from '@x/node-link'

/**
 * `@x/node-link`'s `secure` from `@x/pqc`: the KEM-authenticated handshake (mutual ML-DSA-87 identities through
 * certified static hybrid KEM keys, forward secrecy from an ephemeral ML-KEM-1024 + X25519 key), then AEAD
 * records. Every ML-DSA-87 operation of the handshake (checking the peer's certificate) runs in `crypto` (the
 * worker pool), so a flood of handshakes does not stall the event loop. Only `kem` is accepted: it costs the
 * responder no signature, so a first message costs an attacker as much as it costs this node.
 */
export function createPqcSecure(components: {
  identity: Identity
  staticKeys: StaticKeys
  crypto: HandshakeCrypto
  timeoutMs: number
}): SecureFn {
  const { identity, staticKeys, crypto, timeoutMs } = components
  return async (pipe, { role, expectedPeerId, prologue, signal }) => {
    const common = { identity, staticKeys, prologue, timeoutMs }
    const machine =
      role === 'initiator'
        ? createInitiator({
            ...common,
            auth: 'kem',
            ...(expectedPeerId === undefined ? {} : { expectedPeerId }),
          })
        : createResponder({ ...common, accept: ['kem'] })
    const result = await handshake(pipe, machine, timeoutMs, { signal, crypto })
    const session = result.session
    return {
      peerId: result.peer.idString,
      peerPublicKey: result.peer.publicKey,
      seal: (plaintext) => session.seal(plaintext),
      open: (record) => session.open(record),
      trailing: result.trailing,
    }
  }
}
