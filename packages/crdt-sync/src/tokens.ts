/*
 * Document permissions: JWTs (RFC 7519, verified by `jose`) that name the documents their holder may open and
 * how, and revocations that close or downgrade sessions before their tokens expire.
 *
 * A token's `crdt` claim maps document patterns to an access: `{ "crdt": { "notes/a": "read-write",
 * "team/*": "read-only" } }`. A pattern is an exact name, or a prefix followed by `*`. The exact name wins over
 * a prefix, a longer prefix over a shorter one. `exp` ends the session; `sub` and `jti` let a revocation aim.
 */
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose'
import { createPublicKey, type KeyObject } from 'node:crypto'
import type { Access, Grant } from './sync-server'
import { SYSTEM_CLOCK, type Clock } from './clock'
import { docNameProblem } from './keys'
import { CrdtSyncError } from './errors'

/** Most document patterns one token may carry. */
export const MAX_TOKEN_PATTERNS = 64
/** Least length of an HS256 secret, in bytes (RFC 7518 §3.2: at least the hash size). */
export const MIN_SECRET_BYTES = 32
/** Longest revocation as encoded for a node link, in bytes. */
export const MAX_REVOCATION_BYTES = 2_048
const DEFAULT_MAX_REVOCATIONS = 10_000
const DEFAULT_MAX_REVOCATIONS_PER_NODE = 1_000
const DEFAULT_REVOCATION_TTL_MS = 24 * 60 * 60 * 1000 // a day: longer than the tokens an issuer should mint
/** Longest a revocation is held (a later `until` is brought forward to now + this), in ms: 30 days. */
export const MAX_REVOCATION_TTL_MS = 30 * 24 * 60 * 60 * 1000
const DEFAULT_CLOCK_TOLERANCE_S = 5
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']

/** The access a token or a revocation names, as written in the claim. */
export type TokenAccess = 'read-write' | 'read-only'

/** A revocation: sessions it matches keep at most `access` (`'deny'` closes them). */
export interface Revocation {
  /** Identifies it (hex, 8-64 characters) so that nodes forwarding it apply it once. */
  readonly id: string
  /** The document (exact name). */
  readonly docName: string
  /** Only sessions opened with this token ID (`jti`). @default every session of the document */
  readonly tokenId?: string
  /** Only sessions whose token has this subject (`sub`). @default every session of the document */
  readonly subject?: string
  /** What matching sessions keep. */
  readonly access: 'read-only' | 'deny'
  /** Until when (ms since the epoch, the clock's) tokens are refused by it; then it is forgotten. */
  readonly until: number
}

/** Services of {@link createTokenAuthority}. */
export interface TokenAuthorityComponents {
  /** Time for `exp`/`nbf` and revocation expiry. @default the system clock */
  clock?: Clock
}

/** Options of {@link createTokenAuthority}; plain data. */
export interface TokenAuthorityInit {
  /** HS256 secret (at least 32 bytes). @default none */
  secret?: Uint8Array
  /** Public keys for RS/PS/ES/EdDSA tokens: a JWKS (`{ keys: [...] }`) or a PEM public key. @default none */
  publicKeys?: JSONWebKeySet | string
  /** Required `iss`. @default not checked */
  issuer?: string
  /** Required `aud`. @default not checked */
  audience?: string
  /**
   * What a client without a token gets. @default 'read-write' when no key is set (as before tokens), 'deny'
   * when one is
   */
  anonymous?: Access
  /** Revocations held at once (each is forgotten at its `until`). @default 10_000 */
  maxRevocations?: number
  /**
   * Revocations held at once from one other node (`revoke`'s `fromNode`). All other nodes together hold at most
   * half of `maxRevocations`, so the revocations made here always find room. @default 1_000
   */
  maxRevocationsPerNode?: number
  /** Lifetime of a revocation when the caller gives none, in ms. @default 86_400_000 */
  revocationTtlMs?: number
}

/** Verifies document tokens and holds revocations; see {@link createTokenAuthority}. */
export interface TokenAuthority {
  /** Whether a key is configured (tokens can be verified). */
  readonly keyed: boolean
  /** What a client without a token gets. */
  readonly anonymous: Access
  /** The sync server's `authorize`: the grant `token` (or its absence) gives for `docName`, revocations applied. */
  authorize(docName: string, token: string | undefined): Promise<Grant>
  /**
   * Adds a revocation, made here or (`fromNode`) sent by another node. Returns `false` when one with the same
   * `id` is already held (a forwarded copy), or when its `until` has passed (there is nothing to hold or pass on). Throws `X_CRDT_TOO_MANY_REVOCATIONS` when `maxRevocations` are held,
   * or, for one from another node, when that node's share (`maxRevocationsPerNode`) or the nodes' half of the
   * table is full; `RangeError` for a malformed one.
   */
  revoke(revocation: Revocation, fromNode?: string): boolean
  /** The decision for `SyncServer.restrict` that applies `revocation` to live sessions. */
  restriction(
    revocation: Revocation,
  ): (session: { docName: string; grant: Readonly<Grant> }) => Access | undefined
  /** The revocations held now. */
  revocations(): Revocation[]
}

/** A revocation with defaults filled in: `id` random, `until` now + `revocationTtlMs`. */
export interface RevocationRequest {
  /** @default random */
  id?: string
  /** The document (exact name). */
  docName: string
  /** Only sessions opened with this token ID (`jti`). @default every session of the document */
  tokenId?: string
  /** Only sessions whose token has this subject (`sub`). @default every session of the document */
  subject?: string
  /** What matching sessions keep. */
  access: 'read-only' | 'deny'
  /** ms from now. @default the authority's `revocationTtlMs` */
  ttlMs?: number
}

function isAccess(v: unknown): v is TokenAccess {
  return v === 'read-write' || v === 'read-only'
}

function denial(code: Grant['code'], reason: string): Grant {
  return { access: 'deny', code, reason }
}

/** The access `claim` gives `docName`, or undefined when no pattern matches. */
function accessFor(claim: Record<string, unknown>, docName: string): TokenAccess | undefined {
  const exact = claim[docName]
  if (isAccess(exact)) return exact
  let best: TokenAccess | undefined
  let bestLength = -1
  for (const [pattern, access] of Object.entries(claim)) {
    if (!pattern.endsWith('*') || !isAccess(access)) continue
    const prefix = pattern.slice(0, -1)
    if (prefix.length > bestLength && docName.startsWith(prefix)) {
      best = access
      bestLength = prefix.length
    }
  }
  return best
}

function checkClaim(payload: JWTPayload): Record<string, unknown> | undefined {
  const claim = payload.crdt
  if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) return undefined
  const entries = Object.entries(claim)
  if (entries.length > MAX_TOKEN_PATTERNS) return undefined
  for (const [pattern, access] of entries) if (pattern.length > 512 || !isAccess(access)) return undefined
  return claim as Record<string, unknown>
}

const HEX_ID = /^[0-9a-f]{8,64}$/

/** Throws `RangeError` naming what is wrong with `r`. */
export function checkRevocation(r: Revocation): void {
  if (typeof r !== 'object' || r === null) throw new RangeError("'revocation' must be an object")
  if (typeof r.id !== 'string' || !HEX_ID.test(r.id))
    throw new RangeError("'revocation.id' must be 8-64 hex digits")
  if (typeof r.docName !== 'string' || docNameProblem(r.docName) !== undefined) {
    throw new RangeError("'revocation.docName' must be a valid document name")
  }
  for (const key of ['tokenId', 'subject'] as const) {
    const v = r[key]
    if (v !== undefined && (typeof v !== 'string' || v.length === 0 || v.length > 256)) {
      throw new RangeError(`'revocation.${key}' must be a string of 1-256 characters`)
    }
  }
  if (r.access !== 'read-only' && r.access !== 'deny') {
    throw new RangeError("'revocation.access' must be 'read-only' or 'deny'")
  }
  if (typeof r.until !== 'number' || !Number.isFinite(r.until)) {
    throw new RangeError("'revocation.until' must be a number")
  }
  // Names and IDs in range can still encode beyond the wire form's bound (3-byte characters, JSON escapes): such
  // a revocation would be refused by every other node, and by this one when it reads it back after a restart.
  if (encodeRevocation(r).length > MAX_REVOCATION_BYTES) {
    throw new RangeError(
      `'revocation' encodes to more than ${MAX_REVOCATION_BYTES} bytes: shorten docName, tokenId or subject`,
    )
  }
}

/** A revocation as bytes for a node link (UTF-8 JSON, bounded). */
export function encodeRevocation(r: Revocation): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(r))
}

/** Reads a revocation from another node; throws on anything malformed or too large. */
export function decodeRevocation(bytes: Uint8Array): Revocation {
  if (bytes.length > MAX_REVOCATION_BYTES) throw new RangeError('revocation too large')
  const raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RangeError('not an object')
  const r: Revocation = {
    id: raw.id as string,
    docName: raw.docName as string,
    access: raw.access as Revocation['access'],
    until: raw.until as number,
    ...(raw.tokenId === undefined ? {} : { tokenId: raw.tokenId as string }),
    ...(raw.subject === undefined ? {} : { subject: raw.subject as string }),
  }
  checkRevocation(r)
  return r
}

function matches(r: Revocation, docName: string, grant: Readonly<Grant>): boolean {
  if (r.docName !== docName) return false
  if (r.tokenId !== undefined && grant.tokenId !== r.tokenId) return false
  if (r.subject !== undefined && grant.subject !== r.subject) return false
  return true
}

const RANK: Record<Access, number> = { deny: 0, 'read-only': 1, 'read-write': 2 }

class TokenAuthorityImpl implements TokenAuthority {
  readonly keyed: boolean
  readonly anonymous: Access
  readonly #clock: Clock
  readonly #secret: Uint8Array | undefined
  readonly #publicKey: KeyObject | ReturnType<typeof createLocalJWKSet> | undefined
  readonly #issuer: string | undefined
  readonly #audience: string | undefined
  readonly #maxRevocations: number
  readonly #maxPerNode: number
  readonly revocationTtlMs: number
  /** By id; a Map keeps insertion order, so the oldest are pruned first. */
  readonly #revocations = new Map<string, Revocation>()
  /** The node each revocation held from another node came from, by id. */
  readonly #fromNode = new Map<string, string>()
  /** Revocations held per other node. */
  readonly #perNode = new Map<string, number>()

  constructor(components: TokenAuthorityComponents, init: TokenAuthorityInit) {
    this.#clock = components.clock ?? SYSTEM_CLOCK
    if (init.secret !== undefined) {
      if (!(init.secret instanceof Uint8Array) || init.secret.length < MIN_SECRET_BYTES) {
        throw new RangeError(`'secret' must be at least ${MIN_SECRET_BYTES} bytes`)
      }
      this.#secret = init.secret
    }
    if (init.publicKeys !== undefined) {
      if (typeof init.publicKeys === 'string') {
        try {
          this.#publicKey = createPublicKey(init.publicKeys)
        } catch (err) {
          throw new RangeError("'publicKeys' must be a PEM public key or a JWKS", { cause: err })
        }
      } else {
        if (!Array.isArray((init.publicKeys as { keys?: unknown }).keys)) {
          throw new RangeError("'publicKeys' must be a PEM public key or a JWKS")
        }
        this.#publicKey = createLocalJWKSet(init.publicKeys)
      }
    }
    this.keyed = this.#secret !== undefined || this.#publicKey !== undefined
    const anonymous = init.anonymous ?? (this.keyed ? 'deny' : 'read-write')
    if (RANK[anonymous] === undefined) {
      throw new RangeError("'anonymous' must be 'read-write', 'read-only' or 'deny'")
    }
    this.anonymous = anonymous
    this.#issuer = init.issuer
    this.#audience = init.audience
    this.#maxRevocations = init.maxRevocations ?? DEFAULT_MAX_REVOCATIONS
    if (!(this.#maxRevocations > 0)) throw new RangeError("'maxRevocations' must be a positive number")
    this.#maxPerNode = init.maxRevocationsPerNode ?? DEFAULT_MAX_REVOCATIONS_PER_NODE
    if (!(this.#maxPerNode > 0)) throw new RangeError("'maxRevocationsPerNode' must be a positive number")
    this.revocationTtlMs = init.revocationTtlMs ?? DEFAULT_REVOCATION_TTL_MS
    if (!(this.revocationTtlMs > 0 && this.revocationTtlMs <= MAX_REVOCATION_TTL_MS)) {
      throw new RangeError(`'revocationTtlMs' must be in (0, ${MAX_REVOCATION_TTL_MS}]`)
    }
  }

  async authorize(docName: string, token: string | undefined): Promise<Grant> {
    let grant: Grant
    if (token === undefined) {
      grant =
        this.anonymous === 'deny'
          ? denial('X_CRDT_ACCESS_DENIED', 'a token is required')
          : { access: this.anonymous }
    } else if (!this.keyed) {
      // No key: a token cannot be checked, so it may not raise access above the anonymous one.
      grant =
        this.anonymous === 'deny'
          ? denial('X_CRDT_BAD_TOKEN', 'tokens are not accepted here')
          : { access: this.anonymous }
    } else grant = await this.#verify(docName, token)
    if (grant.access === 'deny') return grant
    return this.#applyRevocations(docName, grant)
  }

  async #verify(docName: string, token: string): Promise<Grant> {
    const now = this.#clock.now()
    let payload: JWTPayload
    try {
      const options = {
        currentDate: new Date(now),
        clockTolerance: DEFAULT_CLOCK_TOLERANCE_S,
        ...(this.#issuer === undefined ? {} : { issuer: this.#issuer }),
        ...(this.#audience === undefined ? {} : { audience: this.#audience }),
      }
      // The algorithm is fixed by the key that verifies it, never taken from the token's header alone.
      const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as {
        alg?: unknown
      }
      if (header.alg === 'HS256' && this.#secret !== undefined) {
        payload = (await jwtVerify(token, this.#secret, { ...options, algorithms: ['HS256'] })).payload
      } else if (
        this.#publicKey !== undefined &&
        typeof header.alg === 'string' &&
        ASYMMETRIC.includes(header.alg)
      ) {
        const key = this.#publicKey
        payload = (
          typeof key === 'function'
            ? await jwtVerify(token, key, { ...options, algorithms: ASYMMETRIC })
            : await jwtVerify(token, key, { ...options, algorithms: ASYMMETRIC })
        ).payload
      } else return denial('X_CRDT_BAD_TOKEN', 'token algorithm not accepted')
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) return denial('X_CRDT_TOKEN_EXPIRED', 'token expired')
      return denial('X_CRDT_BAD_TOKEN', 'invalid token')
    }
    const claim = checkClaim(payload)
    if (claim === undefined) return denial('X_CRDT_BAD_TOKEN', "token has no valid 'crdt' claim")
    const access = accessFor(claim, docName)
    if (access === undefined) return denial('X_CRDT_ACCESS_DENIED', 'the token does not name this document')
    const grant: Grant = { access }
    if (typeof payload.exp === 'number') grant.expiresAt = payload.exp * 1000
    if (typeof payload.sub === 'string') grant.subject = payload.sub
    if (typeof payload.jti === 'string') grant.tokenId = payload.jti
    if (typeof payload.iat === 'number') grant.issuedAt = payload.iat * 1000
    return grant
  }

  #applyRevocations(docName: string, grant: Grant): Grant {
    this.#prune()
    let access = grant.access
    for (const r of this.#revocations.values()) {
      if (matches(r, docName, grant) && RANK[r.access] < RANK[access]) access = r.access
    }
    if (access === grant.access) return grant
    if (access === 'deny') return denial('X_CRDT_REVOKED', 'access revoked')
    return { ...grant, access }
  }

  #prune(): void {
    const now = this.#clock.now()
    for (const [id, r] of this.#revocations) {
      if (r.until > now) continue
      this.#revocations.delete(id)
      const node = this.#fromNode.get(id)
      if (node === undefined) continue
      this.#fromNode.delete(id)
      const left = (this.#perNode.get(node) ?? 1) - 1
      if (left > 0) this.#perNode.set(node, left)
      else this.#perNode.delete(node)
    }
  }

  revoke(revocation: Revocation, fromNode?: string): boolean {
    checkRevocation(revocation)
    if (fromNode !== undefined && typeof fromNode !== 'string') {
      throw new TypeError("'fromNode' must be a string")
    }
    if (this.#revocations.has(revocation.id)) return false
    if (revocation.until <= this.#clock.now()) return false
    this.#prune()
    if (this.#revocations.size >= this.#maxRevocations) {
      throw new CrdtSyncError(
        'X_CRDT_TOO_MANY_REVOCATIONS',
        `more than ${this.#maxRevocations} revocations held`,
      )
    }
    // Another node's revocations are bounded per node and all together, or one node (or a few) could fill the
    // table and leave no room for the revocations made here.
    if (fromNode !== undefined) {
      const ofNode = this.#perNode.get(fromNode) ?? 0
      if (ofNode >= this.#maxPerNode || this.#fromNode.size >= Math.floor(this.#maxRevocations / 2)) {
        throw new CrdtSyncError(
          'X_CRDT_TOO_MANY_REVOCATIONS',
          ofNode >= this.#maxPerNode
            ? `more than ${this.#maxPerNode} revocations held from node '${fromNode}'`
            : 'the revocations held from other nodes fill their half of the table',
        )
      }
      this.#perNode.set(fromNode, ofNode + 1)
      this.#fromNode.set(revocation.id, fromNode)
    }
    // Bounded: a revocation (from a node link, too) lives at most MAX_REVOCATION_TTL_MS.
    const until = Math.min(revocation.until, this.#clock.now() + MAX_REVOCATION_TTL_MS)
    this.#revocations.set(revocation.id, { ...revocation, until })
    return true
  }

  restriction(
    revocation: Revocation,
  ): (session: { docName: string; grant: Readonly<Grant> }) => Access | undefined {
    return (session) => (matches(revocation, session.docName, session.grant) ? revocation.access : undefined)
  }

  revocations(): Revocation[] {
    this.#prune()
    return [...this.#revocations.values()]
  }
}

/**
 * Creates the document-permission authority: verifies JWTs with the configured keys (HS256 secret, and/or
 * public keys as a PEM or a JWKS), turns their `crdt` claim into a {@link Grant} for one document, and applies
 * revocations. Without any key, every client gets `anonymous` access and tokens are ignored (they cannot be
 * checked, so they never raise access).
 */
export function createTokenAuthority(
  components: TokenAuthorityComponents = {},
  init: TokenAuthorityInit = {},
): TokenAuthority {
  return new TokenAuthorityImpl(components, init)
}

/** Fills in a {@link RevocationRequest}: `id` from `randomHex`, `until` from `now`. */
export function revocationFrom(
  request: RevocationRequest,
  now: number,
  randomHex: () => string,
  defaultTtlMs = DEFAULT_REVOCATION_TTL_MS,
): Revocation {
  const ttl = request.ttlMs ?? defaultTtlMs
  if (typeof ttl !== 'number' || !(ttl > 0 && ttl <= MAX_REVOCATION_TTL_MS)) {
    throw new RangeError(`'ttlMs' must be in (0, ${MAX_REVOCATION_TTL_MS}]`)
  }
  const r: Revocation = {
    id: request.id ?? randomHex(),
    docName: request.docName,
    access: request.access,
    until: now + ttl,
    ...(request.tokenId === undefined ? {} : { tokenId: request.tokenId }),
    ...(request.subject === undefined ? {} : { subject: request.subject }),
  }
  checkRevocation(r)
  return r
}
