/**
 * Reads of the node's public REST API, typed loosely: the dashboard must keep rendering when a field is missing
 * or a newer node adds one, so every field is optional and checked where it is used.
 */

export interface ComponentHealth {
  status?: string
  required?: boolean
  durationMs?: number
  reason?: string
  error?: string
  [detail: string]: unknown
}

export interface HealthBody {
  status?: string
  timestamp?: number
  uptime?: number
  version?: string
  components?: Record<string, ComponentHealth>
}

export interface PeerEntry {
  [key: string]: unknown
}

export interface PeersBody {
  connected?: number
  total?: number
  list?: PeerEntry[]
  signaling?: Record<string, unknown>
  dht?: Record<string, unknown>
}

export interface DhtNode {
  id?: string
  address?: string
  lastSeen?: number | string
  bucket?: number
  [key: string]: unknown
}

export interface DhtBody {
  nodes?: DhtNode[]
  stats?: Record<string, unknown>
  /** Optional: the node may report its own ID and k; the dashboard falls back to k = 20. */
  self?: string
  k?: number
}

export type CryptoBody = Record<string, unknown>

export interface AiReason {
  feature?: string
  value?: number
  /** The learned 99th percentile of the feature when the score was taken. */
  p99?: number
  score?: number
}

export interface AiFlaggedEntry {
  kind?: string
  id?: string
  address?: string
  level?: string
  score?: number
  peak?: number
  since?: number
  until?: number
  firstFlagged?: number
  offenses?: number
  reasons?: AiReason[]
}

export interface AiFlaggedBody {
  enabled?: boolean
  flagged?: AiFlaggedEntry[]
}

/** The result of one endpoint read: its body, or why there is none. */
export type Read<T> = { ok: true; status: number; body: T } | { ok: false; error: string }

export const FETCH_TIMEOUT_MS = 5_000

/**
 * GETs `path` and parses JSON. An HTTP error with a JSON body (503 from /api/health) is still a body: the
 * dashboard shows it. Only a network failure, a timeout or a non-JSON answer is an error.
 */
export async function readJson<T>(path: string, signal?: AbortSignal): Promise<Read<T>> {
  const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS)
  const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
  try {
    const res = await fetch(path, {
      signal: combined,
      headers: { accept: 'application/json' },
      cache: 'no-store',
    })
    const text = await res.text()
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      return { ok: false, error: `${path}: HTTP ${res.status}, not JSON` }
    }
    if (!res.ok && res.status !== 503) {
      const msg = (body as { message?: unknown } | null)?.message
      return { ok: false, error: `${path}: HTTP ${res.status}${typeof msg === 'string' ? ` — ${msg}` : ''}` }
    }
    return { ok: true, status: res.status, body: body as T }
  } catch (err) {
    const name = (err as { name?: string } | null)?.name
    if (name === 'TimeoutError')
      return { ok: false, error: `${path}: no answer within ${FETCH_TIMEOUT_MS} ms` }
    return {
      ok: false,
      error: `${path}: node unreachable (${err instanceof Error ? err.message : String(err)})`,
    }
  }
}
