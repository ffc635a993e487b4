/**
 * Write tokens, as BEP 5 does for announce_peer: token = H(secret ‖ requester address), truncated to
 * 8 bytes. The secret rotates every `rotationMs` and the previous one stays valid, so a token lives between
 * one and two rotation periods. A STORE must present a token this node issued to the same address, so
 * nobody can store in someone else's name (they would have to receive replies sent to that address).
 */
import type { HashFunction, RandomSource } from './types'

export const TOKEN_BYTES = 8
const SECRET_BYTES = 16

export class TokenIssuer {
  readonly #hash: HashFunction
  readonly #random: RandomSource
  readonly #rotationMs: number
  #current: Uint8Array
  #previous: Uint8Array
  #rotatedAt: number

  constructor(hash: HashFunction, random: RandomSource, rotationMs: number, now: number) {
    this.#hash = hash
    this.#random = random
    this.#rotationMs = rotationMs
    this.#current = random(SECRET_BYTES)
    this.#previous = this.#current
    this.#rotatedAt = now
  }

  #rotate(now: number): void {
    const elapsed = now - this.#rotatedAt
    if (elapsed < this.#rotationMs) return
    // Two or more periods without traffic: both old secrets are stale.
    this.#previous = elapsed >= 2 * this.#rotationMs ? this.#random(SECRET_BYTES) : this.#current
    this.#current = this.#random(SECRET_BYTES)
    this.#rotatedAt = now
  }

  #compute(secret: Uint8Array, address: string): Uint8Array {
    const buf = new Uint8Array(secret.length + address.length)
    buf.set(secret)
    // Addresses are printable ASCII (the codec and transports guarantee it); keep the low byte otherwise.
    for (let i = 0; i < address.length; i++) buf[secret.length + i] = address.charCodeAt(i) & 0xff
    return this.#hash(buf).slice(0, TOKEN_BYTES)
  }

  issue(address: string, now: number): Uint8Array {
    this.#rotate(now)
    return this.#compute(this.#current, address)
  }

  verify(token: Uint8Array, address: string, now: number): boolean {
    this.#rotate(now)
    if (token.length !== TOKEN_BYTES) return false
    return (
      equal(token, this.#compute(this.#current, address)) ||
      equal(token, this.#compute(this.#previous, address))
    )
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  let d = a.length ^ b.length
  for (let i = 0; i < a.length && i < b.length; i++) d |= a[i]! ^ b[i]!
  return d === 0
}
