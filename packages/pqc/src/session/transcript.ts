/**
 * Handshake symmetric state: a SHA3-256 hash chain over every handshake message (the transcript) and an
 * HKDF-SHA256 chaining key that absorbs each KEM shared secret in turn (Noise `MixHash` / `MixKey`, Noise §5.2).
 * See PROTOCOL.md §3 for the exact inputs.
 */
import { hkdfExpandSha256, hkdfExtractSha256, hkdfSha256, hmacSha256, sha3_256 } from '../kdf'
import { wipe } from '../bytes'
import { u32be, utf8 } from './bytes'

export const PROTOCOL_LABEL = 'x-pqc/session/v1'
const EMPTY = new Uint8Array(0)
const MIX_INFO = utf8(`${PROTOCOL_LABEL} mix`)

export class SymmetricState {
  /** Transcript hash h_i (public: usable as channel binding once the handshake is over). */
  h: Uint8Array
  /** Chaining key (secret). */
  #ck: Uint8Array
  /** HKDF-Extract("", ck), shared by every key(label) of the current ck (secret). */
  #prk: Uint8Array | undefined

  constructor(mode: number, prologue: Uint8Array) {
    this.h = sha3_256(utf8(PROTOCOL_LABEL), Uint8Array.of(mode), u32be(prologue.length), prologue)
    this.#ck = this.h.slice()
  }

  /** h_i = SHA3-256(h_{i-1} || m_i) for a whole wire message m_i. */
  absorb(message: Uint8Array): void {
    this.h = sha3_256(this.h, message)
  }

  /** a_i = SHA3-256(h_{i-1} || prefix): the hash of the transcript up to a point inside message i. */
  peek(...parts: Uint8Array[]): Uint8Array {
    return sha3_256(this.h, ...parts)
  }

  /** ck = HKDF-SHA256(ikm = ss, salt = ck, info = "x-pqc/session/v1 mix"). */
  mixKey(sharedSecret: Uint8Array): void {
    const next = hkdfSha256(sharedSecret, this.#ck, MIX_INFO, 32)
    wipe(this.#ck)
    this.#dropPrk()
    this.#ck = next
  }

  /** A 32-byte key bound to the current chaining key and a label naming its single use. */
  key(label: string): Uint8Array {
    // = HKDF(ck, "", label): the extract step depends on ck only, so it is done once per ck.
    this.#prk ??= hkdfExtractSha256(EMPTY, this.#ck)
    return hkdfExpandSha256(this.#prk, utf8(`${PROTOCOL_LABEL} ${label}`), 32)
  }

  #dropPrk(): void {
    if (this.#prk !== undefined) wipe(this.#prk)
    this.#prk = undefined
  }

  /** HMAC-SHA256 under key(label): used for the Finished MACs (key confirmation). */
  mac(label: string, data: Uint8Array): Uint8Array {
    const k = this.key(label)
    const out = hmacSha256(k, data)
    wipe(k)
    return out
  }

  /** The two 32-byte traffic secrets (initiator→responder, responder→initiator), bound to the final h. */
  split(): [Uint8Array, Uint8Array] {
    const okm = hkdfSha256(this.#ck, this.h, utf8(`${PROTOCOL_LABEL} traffic`), 64)
    return [okm.slice(0, 32), okm.slice(32, 64)]
  }

  wipe(): void {
    wipe(this.#ck)
    this.#dropPrk()
  }
}
