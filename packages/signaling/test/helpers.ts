import { createHash, createPublicKey, generateKeyPairSync, sign, verify as nodeVerify } from 'node:crypto'
import WebSocket from 'ws'
import { statementBytes, type RegistrationStatement } from '../src/protocol'

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** Ed25519 from node:crypto: fast stand-in for ML-DSA-87 in most tests. */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32) return false
  const key = createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]),
    format: 'der',
    type: 'spki',
  })
  return nodeVerify(null, message, key, signature)
}

export function peerIdFromPublicKey(publicKey: Uint8Array): string {
  if (publicKey.length === 0) throw new Error('empty key')
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 40)
}

export const components = { verify: ed25519Verify, peerIdFromPublicKey }

export interface TestIdentity {
  publicKey: Uint8Array
  id: string
  sign: (message: Uint8Array) => Uint8Array
}

export function ed25519Identity(): TestIdentity {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12))
  return {
    publicKey: raw,
    id: peerIdFromPublicKey(raw),
    sign: (message) => new Uint8Array(sign(null, message, privateKey)),
  }
}

/** A raw WebSocket client that queues frames for `next()`. */
export class RawClient {
  readonly ws: WebSocket
  readonly frames: unknown[] = []
  readonly #waiters: ((v: unknown) => void)[] = []
  closeCode: number | undefined
  closeReason: string | undefined
  readonly closed: Promise<number>
  nonce = ''
  /** The node ID of the last challenge. */
  node = ''
  /** The host this client dialed (what its statement names). */
  readonly host: string

  /** Dials `url`, or wraps a WebSocket opened elsewhere (a memory connector's). */
  constructor(url: string | WebSocket) {
    this.ws = typeof url === 'string' ? new WebSocket(url, { perMessageDeflate: false }) : url
    this.host = new URL(this.ws.url).host
    this.ws.on('error', () => {})
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) return
      let msg: unknown
      try {
        msg = JSON.parse((data as Buffer).toString())
      } catch {
        msg = (data as Buffer).toString()
      }
      const waiter = this.#waiters.shift()
      if (waiter !== undefined) waiter(msg)
      else this.frames.push(msg)
    })
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code, reason) => {
        this.closeCode = code
        this.closeReason = reason.toString()
        resolve(code)
      }),
    )
  }

  open(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
    })
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test frames are loosely typed
  next(): Promise<any> {
    const queued = this.frames.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg))
  }

  /** Reads the challenge frame. */
  async challenge(): Promise<{ nonce: string; node: string }> {
    const challenge = await this.next()
    if (challenge.type !== 'challenge')
      throw new Error(`expected challenge, got ${JSON.stringify(challenge)}`)
    this.nonce = challenge.nonce
    this.node = challenge.node
    return challenge
  }

  /**
   * The version 2 `register` frame for `identity` answering the last challenge. `statement` overrides parts of
   * what is signed (to forge one); `frame` overrides fields of the frame itself.
   */
  registerFrame(
    identity: TestIdentity,
    statement: Partial<RegistrationStatement> = {},
    frame: Record<string, unknown> = {},
  ): Record<string, unknown> {
    const signed: RegistrationStatement = {
      node: this.node,
      host: this.host,
      time: Date.now(),
      nonce: this.nonce,
      ...statement,
    }
    return {
      type: 'register',
      v: 2,
      publicKey: Buffer.from(identity.publicKey).toString('base64'),
      signature: Buffer.from(identity.sign(statementBytes(signed))).toString('base64'),
      host: signed.host,
      time: signed.time,
      ...frame,
    }
  }

  /** Reads the challenge and registers with `identity`. Returns the server's answer. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test frames are loosely typed
  async register(identity: TestIdentity, statement: Partial<RegistrationStatement> = {}): Promise<any> {
    await this.challenge()
    this.send(this.registerFrame(identity, statement))
    return this.next()
  }

  close(): void {
    this.ws.close()
  }
}

export async function connected(url: string | WebSocket): Promise<RawClient> {
  const c = new RawClient(url)
  await c.open()
  return c
}

export async function registered(
  url: string | WebSocket,
  identity = ed25519Identity(),
): Promise<RawClient & { id: string }> {
  const c = await connected(url)
  const r = await c.register(identity)
  if (r.type !== 'registered') throw new Error(`registration failed: ${JSON.stringify(r)}`)
  return Object.assign(c, { id: identity.id })
}
