import type { Metrics } from '@x/node-monitor'
import type { KademliaStats } from '@x/kademlia'
import type { LinkStats } from '@x/node-link'
import type { SignalingStats } from '@x/signaling'
import type { SyncServerStats } from '@x/crdt-sync'
import type { AiHealth } from './ai/engine'
import type { PolicyLevel } from './ai/policy'

/**
 * The node's Prometheus metrics (`/metrics`), named by Prometheus conventions: every name has the `x_` prefix and
 * ends in its unit (`_total` for counters, `_seconds`, `_bytes`, or the thing counted for gauges), durations are
 * histograms in seconds. Each component registers its own when it starts; the figures are read from the
 * component's `getStats()` when `/metrics` is scraped (nothing on a hot path). `@x/kademlia` reports its RPCs and
 * lookup durations itself through the same registry.
 */
export const METRICS_PREFIX = 'x_'

type Read<T> = () => T

/** `x_signaling_*`: connections, peers, topics, registrations, signals relayed and refused by reason. */
export function registerSignalingMetrics(metrics: Metrics, stats: Read<SignalingStats>): void {
  const p = `${METRICS_PREFIX}signaling_`
  metrics.scraped(
    'gauge',
    `${p}connections`,
    'Open signaling WebSocket connections',
    [],
    () => stats().connections,
  )
  metrics.scraped('gauge', `${p}peers`, 'Registered peers (native and PeerJS)', [], () => stats().peers)
  metrics.scraped('gauge', `${p}topics`, 'Topics with a local member', [], () => stats().topics)
  metrics.scraped('gauge', `${p}held_signals`, 'Signals held for offline peers', [], () => stats().held)
  metrics.scraped('counter', `${p}registrations_total`, 'Registrations by outcome', ['outcome'], () => {
    const s = stats()
    return [
      [{ outcome: 'ok' }, s.registrations],
      [{ outcome: 'failed' }, s.authFailures],
    ]
  })
  metrics.scraped(
    'counter',
    `${p}signals_relayed_total`,
    'Signals delivered or forwarded',
    [],
    () => stats().relayed,
  )
  metrics.scraped(
    'counter',
    `${p}signals_forwarded_total`,
    'Signals forwarded to other nodes',
    [],
    () => stats().forwarded,
  )
  metrics.scraped(
    'counter',
    `${p}frames_rejected_total`,
    'Frames refused or dropped, by reason',
    ['reason'],
    () => {
      const s = stats()
      return [
        [{ reason: 'invalid' }, s.rejected],
        [{ reason: 'rate_limited' }, s.rateLimited],
        [{ reason: 'expired' }, s.expired],
        [{ reason: 'relay_envelope' }, s.relayRejected],
      ]
    },
  )
  metrics.scraped(
    'counter',
    `${p}connections_closed_total`,
    'Connections the server cut, by reason',
    ['reason'],
    () => {
      const s = stats()
      return [
        [{ reason: 'liveness_timeout' }, s.timedOut],
        [{ reason: 'slow_consumer' }, s.slowConsumers],
      ]
    },
  )
  metrics.scraped(
    'counter',
    `${p}connections_refused_total`,
    'Upgrades refused (caps, guard, closing)',
    [],
    () => stats().refusedConnections,
  )
}

/** `x_dht_*`: routing table and records (RPCs and lookup durations are `x_kademlia_*`, from the DHT itself). */
export function registerDhtMetrics(metrics: Metrics, stats: Read<KademliaStats>): void {
  const p = `${METRICS_PREFIX}dht_`
  metrics.scraped(
    'gauge',
    `${p}routing_table_contacts`,
    'Contacts in the routing table',
    [],
    () => stats().totalNodes,
  )
  metrics.scraped('gauge', `${p}buckets_used`, 'Non-empty k-buckets', [], () => stats().bucketsUsed)
  metrics.scraped('gauge', `${p}records`, 'Records stored for other nodes', [], () => stats().records)
  metrics.scraped(
    'gauge',
    `${p}record_bytes`,
    'Bytes of records stored for other nodes',
    [],
    () => stats().recordBytes,
  )
  metrics.scraped('counter', `${p}lookups_total`, 'Iterative lookups by outcome', ['outcome'], () => {
    const s = stats().lookups
    return [
      [{ outcome: 'ok' }, s.completed],
      [{ outcome: 'failed' }, s.failed],
    ]
  })
}

/** `x_crdt_*`: documents open, clients, bytes stored. */
export function registerCrdtMetrics(metrics: Metrics, stats: Read<SyncServerStats>): void {
  const p = `${METRICS_PREFIX}crdt_`
  metrics.scraped('gauge', `${p}documents_open`, 'Documents held in memory', [], () => stats().openDocuments)
  metrics.scraped('gauge', `${p}clients`, 'Open y-websocket connections', [], () => stats().clients)
  metrics.scraped(
    'gauge',
    `${p}stored_bytes`,
    'Bytes stored for every document',
    [],
    () => stats().bytesStored,
  )
  metrics.scraped(
    'gauge',
    `${p}update_rate_per_second`,
    'Updates persisted per second (10 s average)',
    [],
    () => stats().updatesPerSecond,
  )
  metrics.scraped(
    'counter',
    `${p}updates_total`,
    'Updates accepted and persisted',
    [],
    () => stats().updatesTotal,
  )
  metrics.scraped(
    'counter',
    `${p}updates_refused_total`,
    'Updates dropped from read-only clients',
    [],
    () => stats().refusedUpdates,
  )
  metrics.scraped(
    'counter',
    `${p}sessions_revoked_total`,
    'Document sessions closed or downgraded by a revocation',
    [],
    () => stats().restrictedSessions,
  )
}

/** `x_link_*`: node links, handshakes by outcome, frames. */
export function registerLinkMetrics(metrics: Metrics, stats: Read<LinkStats>): void {
  const p = `${METRICS_PREFIX}link_`
  metrics.scraped(
    'gauge',
    `${p}connected_nodes`,
    'Nodes with an active link',
    [],
    () => stats().connectedNodes,
  )
  metrics.scraped('counter', `${p}handshakes_total`, 'Link handshakes by outcome', ['outcome'], () => {
    const s = stats()
    return [
      [{ outcome: 'ok' }, s.handshakes],
      [{ outcome: 'failed' }, s.handshakeFailures],
      [{ outcome: 'refused' }, s.handshakesRefused],
    ]
  })
  metrics.scraped('counter', `${p}frames_total`, 'Application frames by direction', ['direction'], () => {
    const s = stats()
    return [
      [{ direction: 'in' }, s.framesIn],
      [{ direction: 'out' }, s.framesOut],
    ]
  })
  metrics.scraped(
    'counter',
    `${p}evictions_total`,
    'Links evicted (idle, or for a preferred node)',
    [],
    () => stats().evicted,
  )
  metrics.scraped(
    'counter',
    `${p}dials_refused_total`,
    'Dials the dial policy refused',
    [],
    () => stats().dialsRefused,
  )
}

/** `x_ai_*`: what the abuse detector holds throttled or blocked now, the actions it took, and what it scored. */
export function registerAiMetrics(
  metrics: Metrics,
  health: Read<AiHealth>,
  actions: Read<Readonly<Record<PolicyLevel, number>>>,
): void {
  const p = `${METRICS_PREFIX}ai_`
  metrics.scraped('gauge', `${p}flagged`, 'Keys throttled or blocked now, by level', ['level'], () => {
    const h = health()
    if (h.status !== 'ok') return []
    return [
      [{ level: 'throttled' }, h.throttled],
      [{ level: 'blocked' }, h.blocked],
    ]
  })
  metrics.scraped(
    'counter',
    `${p}actions_total`,
    'Keys moved to a level: throttled, blocked, or released (normal)',
    ['level'],
    () => {
      const a = actions()
      return [
        [{ level: 'throttled' }, a.throttled],
        [{ level: 'blocked' }, a.blocked],
        [{ level: 'normal' }, a.normal],
      ]
    },
  )
  metrics.scraped('counter', `${p}scored_total`, 'Observations scored', [], () => {
    const h = health()
    return h.status === 'ok' ? h.scoredTotal : 0
  })
}
