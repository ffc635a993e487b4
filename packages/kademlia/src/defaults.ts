import { createHash, randomBytes } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import type { ResolveFn } from './resolve'
import type { Clock, HashFunction, RandomSource } from './types'

/** Wall clock with unref'd timers (a DHT's timers never keep a process alive on their own). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref?.()
    return t
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** Cryptographic randomness from node:crypto. */
export const systemRandom: RandomSource = (length) => new Uint8Array(randomBytes(length))

/** SHA-256 from node:crypto. */
export const sha256: HashFunction = (data) => new Uint8Array(createHash('sha256').update(data).digest())

/** Host names through the system resolver (getaddrinfo: /etc/hosts, then DNS), every address it gives. */
export const systemResolve: ResolveFn = async (hostname) =>
  (await lookup(hostname, { all: true })).map((r) => r.address)
