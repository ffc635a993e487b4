/**
 * The node dashboard: polls the public REST API (/api/health, /api/peers, /api/dht/nodes, /api/crypto/status,
 * /api/ai/flagged) and redraws. Polling backs off exponentially while the node is unreachable and pauses
 * while the tab is hidden.
 */
import {
  type AiFlaggedBody,
  type ComponentHealth,
  type CryptoBody,
  type DhtBody,
  type DhtNode,
  type HealthBody,
  type PeersBody,
  type Read,
  readJson,
} from './api'
import { byId, fill, formatDuration, h, shortId } from './dom'

const POLL_INTERVAL_MS = 2_000
const MAX_BACKOFF_MS = 30_000
const BUCKET_COUNT = 160 // 160-bit IDs, one k-bucket per bit of distance
const DEFAULT_K = 20 // Kademlia bucket size when the node does not report one
const MAX_LISTED_NODES = 50
const MAX_LISTED_FLAGGED = 50

let backoffMs = POLL_INTERVAL_MS
let timer: ReturnType<typeof setTimeout> | undefined
let inflight: AbortController | undefined
let lastOkAt = 0

function pill(status: string | undefined): HTMLSpanElement {
  const s = status ?? 'unknown'
  return h('span', { class: `pill pill-${s}`, 'data-status': s }, s)
}

function dl(rows: [string, unknown][]): HTMLDListElement {
  const list = h('dl', { class: 'kv' })
  for (const [k, v] of rows) {
    if (v === undefined) continue
    list.append(h('dt', {}, k), h('dd', {}, formatValue(v)))
  }
  return list
}

function formatValue(v: unknown): string {
  if (v === null) return '–'
  if (typeof v === 'boolean') return v ? 'yes' : 'no'
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(2)
  if (typeof v === 'string') return v
  return JSON.stringify(v)
}

const COMPONENT_KEYS_SHOWN_ELSEWHERE = new Set(['status', 'required', 'reason', 'error', 'durationMs'])

function renderComponent(name: string, c: ComponentHealth): HTMLElement {
  const why = [c.reason, c.error, typeof c.message === 'string' ? c.message : undefined].filter(
    (x): x is string => typeof x === 'string' && x.length > 0,
  )
  const details: [string, unknown][] = Object.entries(c)
    .filter(
      ([k, v]) =>
        !COMPONENT_KEYS_SHOWN_ELSEWHERE.has(k) && k !== 'message' && (typeof v !== 'object' || v === null),
    )
    .slice(0, 8)
  return h(
    'article',
    { class: 'card component', 'data-component': name, 'data-status': c.status ?? 'unknown' },
    h('header', {}, h('h3', {}, name), pill(c.status)),
    why.length > 0 && h('p', { class: 'reason', 'data-testid': `reason-${name}` }, why.join(' — ')),
    h(
      'p',
      { class: 'muted' },
      c.required === false ? 'optional' : 'required',
      typeof c.durationMs === 'number' ? ` · checked in ${c.durationMs} ms` : '',
    ),
    details.length > 0 && dl(details),
  )
}

function renderHealth(r: Read<HealthBody>): void {
  const overall = byId('overall')
  const comps = byId('components')
  if (!r.ok) {
    fill(overall, pill('unreachable'))
    fill(comps, h('p', { class: 'error' }, r.error))
    return
  }
  const b = r.body
  fill(overall, pill(b.status))
  byId('overall').dataset.status = b.status ?? 'unknown'
  fill(byId('version'), b.version ?? '–')
  fill(byId('uptime'), typeof b.uptime === 'number' ? formatDuration(b.uptime) : '–')
  const entries = Object.entries(b.components ?? {})
  fill(
    comps,
    ...(entries.length > 0
      ? entries.map(([n, c]) => renderComponent(n, c))
      : [h('p', { class: 'muted' }, 'no components reported')]),
  )
}

function peerId(p: Record<string, unknown>): string {
  for (const k of ['id', 'peerId', 'nodeId']) if (typeof p[k] === 'string') return p[k]
  return '?'
}

function renderPeers(r: Read<PeersBody>): void {
  const box = byId('peers')
  if (!r.ok) {
    fill(box, h('p', { class: 'error' }, r.error))
    return
  }
  const b = r.body
  const list = Array.isArray(b.list) ? b.list : []
  const rows = list
    .slice(0, 100)
    .map((p) =>
      h(
        'tr',
        {},
        h('td', { class: 'mono', title: peerId(p) }, shortId(peerId(p))),
        h('td', {}, formatValue(p.kind ?? p.type ?? '–')),
        h('td', { class: 'mono' }, formatValue(p.address ?? p.node ?? '–')),
        h('td', {}, formatValue(p.state ?? p.status ?? (p.connected === undefined ? '–' : p.connected))),
      ),
    )
  fill(
    box,
    h(
      'div',
      { class: 'figures' },
      figure('connected', b.connected),
      figure('total', b.total),
      figure('signaling peers', b.signaling?.peers),
      figure('signaling connections', b.signaling?.connections),
    ),
    rows.length > 0
      ? h(
          'div',
          { class: 'scroll' },
          h(
            'table',
            {},
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', {}, 'id'),
                h('th', {}, 'kind'),
                h('th', {}, 'address'),
                h('th', {}, 'state'),
              ),
            ),
            h('tbody', {}, ...rows),
          ),
        )
      : h('p', { class: 'muted' }, 'No P2P links or signaling peers yet.'),
    b.signaling !== undefined &&
      h('details', {}, h('summary', {}, 'signaling stats'), dl(Object.entries(b.signaling))),
  )
}

function figure(label: string, value: unknown): HTMLElement {
  return h(
    'div',
    { class: 'figure' },
    h('strong', {}, value === undefined ? '–' : formatValue(value)),
    h('span', {}, label),
  )
}

function lastSeenText(v: unknown): string {
  const t = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : NaN
  if (!Number.isFinite(t)) return '–'
  return `${formatDuration(Math.max(0, Date.now() - t))} ago`
}

function renderDht(r: Read<DhtBody>, health: Read<HealthBody>): void {
  const box = byId('dht')
  if (!r.ok) {
    fill(box, h('p', { class: 'error' }, r.error))
    return
  }
  const nodes: DhtNode[] = Array.isArray(r.body.nodes) ? r.body.nodes : []
  const stats = r.body.stats ?? {}
  const k = typeof r.body.k === 'number' && r.body.k > 0 ? r.body.k : DEFAULT_K
  const counts = new Array<number>(BUCKET_COUNT).fill(0)
  for (const n of nodes) {
    if (typeof n.bucket === 'number' && n.bucket >= 0 && n.bucket < BUCKET_COUNT)
      counts[n.bucket] = (counts[n.bucket] ?? 0) + 1
  }
  const grid = h('div', {
    class: 'buckets',
    role: 'img',
    'aria-label': `${BUCKET_COUNT} buckets, ${nodes.length} nodes`,
  })
  counts.forEach((c, i) => {
    const fillRatio = Math.min(1, c / k)
    const cell = h('div', {
      class: c > 0 ? 'bucket used' : 'bucket',
      title: `bucket ${i}: ${c}/${k}`,
      'data-bucket': i,
      'data-count': c,
    })
    cell.style.setProperty('--fill', String(fillRatio))
    grid.append(cell)
  })
  const dhtHealth = health.ok ? health.body.components?.dht : undefined
  const bootstrap = bootstrapState(dhtHealth, nodes.length)
  const sorted = [...nodes].sort((a, b) => (a.bucket ?? 0) - (b.bucket ?? 0)).slice(0, MAX_LISTED_NODES)
  fill(
    box,
    h(
      'div',
      { class: 'figures' },
      figure('nodes', stats.totalNodes ?? nodes.length),
      figure('buckets used', stats.bucketsUsed ?? counts.filter((c) => c > 0).length),
      figure('bootstrap nodes', stats.bootstrapNodes),
      h(
        'div',
        { class: 'figure' },
        h('strong', { 'data-testid': 'bootstrap-state' }, bootstrap),
        h('span', {}, 'bootstrap'),
      ),
    ),
    h(
      'p',
      { class: 'muted' },
      `Routing table: ${BUCKET_COUNT} buckets (bucket i holds nodes at XOR distance 2^i…2^(i+1)), k = ${k}. Darker = fuller.`,
    ),
    grid,
    sorted.length > 0 &&
      h(
        'details',
        {},
        h('summary', {}, `contacts (${nodes.length})`),
        h(
          'div',
          { class: 'scroll' },
          h(
            'table',
            {},
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', {}, 'bucket'),
                h('th', {}, 'id'),
                h('th', {}, 'address'),
                h('th', {}, 'last seen'),
              ),
            ),
            h(
              'tbody',
              {},
              ...sorted.map((n) =>
                h(
                  'tr',
                  {},
                  h('td', {}, n.bucket ?? '–'),
                  h('td', { class: 'mono', title: n.id ?? '' }, shortId(n.id ?? '?')),
                  h('td', { class: 'mono' }, n.address ?? '–'),
                  h('td', {}, lastSeenText(n.lastSeen)),
                ),
              ),
            ),
          ),
        ),
      ),
  )
}

/** A word for the DHT's bootstrap state from what the node reports (the health details vary by version). */
function bootstrapState(dht: ComponentHealth | undefined, contacts: number): string {
  if (typeof dht?.bootstrapped === 'boolean') return dht.bootstrapped ? 'bootstrapped' : 'bootstrapping'
  if (dht?.status === 'down') return 'down'
  if (typeof dht?.reason === 'string') return dht.reason
  return contacts > 0 ? 'joined' : 'alone (no seed nodes)'
}

function renderCrypto(r: Read<CryptoBody>): void {
  const box = byId('crypto')
  if (!r.ok) {
    fill(box, h('p', { class: 'error' }, r.error))
    return
  }
  const c = r.body
  const production = c.production === true
  fill(
    box,
    dl([
      ['algorithm', c.algorithm],
      ['initialized', c.initialized],
      ['backend', c.backend],
      ['key pairs', c.keyPairs],
      ['ML-KEM public key', typeof c.kyberKeySize === 'number' ? `${c.kyberKeySize} bytes` : c.kyberKeySize],
      [
        'ML-DSA public key',
        typeof c.dilithiumKeySize === 'number' ? `${c.dilithiumKeySize} bytes` : c.dilithiumKeySize,
      ],
      ['node ID', c.nodeId],
      ['key file encrypted', c.keyFileEncrypted],
    ]),
    h(
      'p',
      { class: production ? 'ok-note' : 'warn-note', 'data-testid': 'production' },
      production
        ? 'production: yes — OpenSSL (native, constant-time) does the secret-key work'
        : c.backend === 'liboqs'
          ? 'production: no — liboqs (WebAssembly) hands seeded key generation and context signatures to pure JS; run Node ≥ 24.7 for OpenSSL'
          : 'production: no — pure-JS backend (not constant-time); run Node ≥ 24.7 for OpenSSL',
    ),
  )
}

function renderAiFlagged(r: Read<AiFlaggedBody>): void {
  const box = byId('ai-flagged')
  if (!r.ok) {
    fill(box, h('p', { class: 'error' }, r.error))
    return
  }
  if (r.body.enabled === false) {
    fill(box, h('p', { class: 'muted' }, 'AI engine off'))
    return
  }
  const list = Array.isArray(r.body.flagged) ? r.body.flagged : []
  if (list.length === 0) {
    fill(box, h('p', { class: 'muted' }, 'none'))
    return
  }
  const rows = list.slice(0, MAX_LISTED_FLAGGED).map((e) => {
    const top = e.reasons?.[0]
    return h(
      'tr',
      { 'data-level': e.level ?? 'unknown' },
      h('td', {}, pill(e.level)),
      h('td', {}, e.kind ?? '–'),
      h('td', { class: 'mono', title: e.id ?? '' }, shortId(e.id ?? '?')),
      h('td', { class: 'mono' }, e.address ?? '–'),
      h('td', {}, formatValue(e.score)),
      h(
        'td',
        {},
        top === undefined
          ? '–'
          : `${top.feature ?? '?'} ${formatValue(top.value)} (p99 ${formatValue(top.p99)})`,
      ),
    )
  })
  fill(
    box,
    h(
      'div',
      { class: 'scroll' },
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['level', 'kind', 'id', 'address', 'score', 'top reason'].map((c) => h('th', {}, c)),
          ),
        ),
        h('tbody', {}, ...rows),
      ),
    ),
  )
}

async function poll(): Promise<void> {
  inflight?.abort()
  const ac = new AbortController()
  inflight = ac
  const [health, peers, dht, crypto, flagged] = await Promise.all([
    readJson<HealthBody>('/api/health', ac.signal),
    readJson<PeersBody>('/api/peers', ac.signal),
    readJson<DhtBody>('/api/dht/nodes', ac.signal),
    readJson<CryptoBody>('/api/crypto/status', ac.signal),
    readJson<AiFlaggedBody>('/api/ai/flagged', ac.signal),
  ])
  if (ac.signal.aborted) return
  renderHealth(health)
  renderPeers(peers)
  renderAiFlagged(flagged)
  renderDht(dht, health)
  renderCrypto(crypto)
  const banner = byId('banner')
  if (health.ok || peers.ok || dht.ok || crypto.ok || flagged.ok) {
    lastOkAt = Date.now()
    backoffMs = POLL_INTERVAL_MS
    banner.hidden = true
  } else {
    backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2)
    banner.hidden = false
    fill(
      banner,
      `Node unreachable — ${health.ok ? '' : health.error}. Retrying in ${Math.round(backoffMs / 1000)} s`,
      lastOkAt > 0 ? ` (last answer ${formatDuration(Date.now() - lastOkAt)} ago).` : '.',
    )
  }
  fill(byId('updated'), new Date().toLocaleTimeString())
}

function schedule(delayMs: number): void {
  clearTimeout(timer)
  timer = setTimeout(() => {
    void poll().finally(() => {
      if (!document.hidden) schedule(backoffMs)
    })
  }, delayMs)
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) clearTimeout(timer)
  else schedule(0)
})
byId('refresh').addEventListener('click', () => {
  backoffMs = POLL_INTERVAL_MS
  schedule(0)
})
schedule(0)
