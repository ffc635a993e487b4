/**
 * The two-tab demo: an ML-DSA-87 identity made in the browser (@x/pqc), registration on the node's signaling
 * server (@x/signaling/client), a topic where tabs find each other, a WebRTC data channel per peer for chat
 * (perfect negotiation), and a textarea bound to a Yjs document synced through the node's `/crdt/<name>`.
 *
 * URL parameters: `?ws=ws://host:3001` (the node's WebSocket base, else asked from /demo/config.json),
 * `?topic=` (default `demo`), `?doc=` (default `demo`).
 */
import { Identity } from '@x/pqc'
import {
  attachPerfectNegotiation,
  createSignalingClient,
  type PeerConnectionLike,
  type PerfectNegotiation,
  type RelayType,
  type SignalingClient,
} from '@x/signaling/client'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { byId, errorText, fill, h, shortId } from './dom'
import { bindTextarea } from './text-binding'

const DISCOVER_INTERVAL_MS = 2_000
const MAX_CHAT_TEXT = 2_000
const CHAT_LABEL = 'chat'
const CHAT_CHANNEL_ID = 0 // negotiated channel: both sides create it, so glare never makes two
// Signals can be lost (a peer that reconnected, a node that has not yet found the other peer's record): until
// the connection is up, the current description and its candidates are sent again at this period. Duplicates
// are harmless (perfect negotiation ignores an answer in the wrong state; candidates are idempotent).
const FIRST_RESEND_MS = 250
const MAX_RESEND_INTERVAL_MS = 2_000 // the interval grows ×1.5 from FIRST_RESEND_MS up to this
const MAX_RESENDS = 20 // ≈ 30 s in all
// A peer that left may stay listed in the topic until its DHT record expires: discovery ignores it for this long
// (a signal from it is still answered at once).
const DEPARTED_IGNORE_MS = 60_000

interface DemoConfig {
  signalingUrl: string
  crdtUrl: string
}

interface PeerState {
  id: string
  pc: RTCPeerConnection
  channel: RTCDataChannel
  negotiation: PerfectNegotiation
  row: HTMLLIElement
  /** The last local description and the candidates sent after it: what a resend repeats. */
  sent: { type: RelayType; data: object }[]
  resendTimer: ReturnType<typeof setTimeout> | undefined
  notifiedUndeliverable: boolean
}

const params = new URLSearchParams(location.search)
const topic = params.get('topic') ?? 'demo'
const docName = params.get('doc') ?? 'demo'
const peers = new Map<string, PeerState>()
const departed = new Map<string, number>()
let myId = ''
let client: SignalingClient | undefined

// ---------- UI helpers ----------

function step(label: string): { done(detail?: string): void; fail(err: unknown): void } {
  const li = h('li', { 'data-state': 'running' }, `${label}…`)
  byId('steps').append(li)
  return {
    done(detail) {
      li.dataset.state = 'done'
      fill(li, `${label}: ${detail ?? 'done'}`)
    },
    fail(err) {
      li.dataset.state = 'error'
      fill(li, `${label}: failed — ${errorText(err)}`)
    },
  }
}

function banner(text: string | undefined): void {
  const el = byId('banner')
  el.hidden = text === undefined
  fill(el, text ?? '')
}

function chatLine(kind: 'mine' | 'theirs' | 'sys', text: string, from?: string): void {
  const box = byId('chat')
  box.append(
    kind === 'sys'
      ? h('div', { class: 'sys' }, text)
      : h(
          'div',
          { class: `msg ${kind}`, 'data-from': from ?? '' },
          h('span', { class: 'who mono' }, kind === 'mine' ? 'me' : shortId(from ?? '?')),
          h('span', { class: 'text' }, text),
        ),
  )
  box.scrollTop = box.scrollHeight
}

function renderPeerList(): void {
  const ul = byId('peers')
  if (peers.size === 0) {
    fill(ul, h('li', { class: 'muted' }, 'none yet — open this page in a second tab'))
    return
  }
  fill(ul, ...[...peers.values()].map((p) => p.row))
}

function updateRow(p: PeerState): void {
  const ch = p.channel.readyState
  p.row.dataset.channel = ch
  fill(
    p.row,
    h('span', { class: 'mono', title: p.id }, shortId(p.id)),
    ` — WebRTC ${p.pc.connectionState}, channel ${ch}`,
  )
}

// ---------- WebRTC ----------

function dropPeer(id: string, why: string): void {
  const p = peers.get(id)
  if (p === undefined) return
  peers.delete(id)
  departed.set(id, Date.now())
  clearTimeout(p.resendTimer)
  p.negotiation.detach()
  p.channel.close()
  p.pc.close()
  chatLine('sys', `peer ${shortId(id)} ${why}`)
  renderPeerList()
}

/**
 * A signal to `id` was not delivered. While a connection is being set up this is often transient (on another
 * node, the peer's DHT record may not be found yet): the resend timer retries and gives up after MAX_RESENDS.
 * A connected peer does not need signals, so nothing is done then.
 */
function undeliverable(id: string, why: string): void {
  const p = peers.get(id)
  if (p === undefined || p.pc.connectionState === 'connected' || p.notifiedUndeliverable) return
  p.notifiedUndeliverable = true
  chatLine('sys', `signal to ${shortId(id)} not delivered (${why}); retrying`)
}

function ensurePeer(id: string): PeerState {
  const existing = peers.get(id)
  if (existing !== undefined) return existing
  const c = client
  if (c === undefined) throw new Error('not connected to signaling')
  // No STUN/TURN: host candidates only, enough for tabs and machines on one network, and no external service.
  const pc = new RTCPeerConnection({ iceServers: [] })
  const sent: PeerState['sent'] = []
  const send = (type: RelayType, data: object): void => {
    try {
      c.signal(type, id, data)
    } catch (err) {
      banner(`Could not signal ${shortId(id)}: ${errorText(err)}`)
    }
  }
  // The DOM's RTCPeerConnection narrows `type` to RTCSdpType where PeerConnectionLike says string: same object.
  const negotiation = attachPerfectNegotiation(pc as unknown as PeerConnectionLike, {
    polite: myId < id,
    send: (type, data) => {
      if (type === 'candidate') sent.push({ type, data })
      else sent.splice(0, sent.length, { type, data })
      send(type, data)
    },
  })
  const channel = pc.createDataChannel(CHAT_LABEL, { negotiated: true, id: CHAT_CHANNEL_ID })
  const p: PeerState = {
    id,
    pc,
    channel,
    negotiation,
    row: h('li', { 'data-peer': id }),
    sent,
    resendTimer: undefined,
    notifiedUndeliverable: false,
  }
  peers.set(id, p)
  let resends = 0
  let delayMs = FIRST_RESEND_MS
  const resend = (): void => {
    if (peers.get(id) !== p || pc.connectionState === 'connected') return
    if (++resends > MAX_RESENDS) {
      dropPeer(id, `is unreachable (no connection after ${MAX_RESENDS} tries)`)
      return
    }
    for (const s of sent) send(s.type, s.data)
    delayMs = Math.min(MAX_RESEND_INTERVAL_MS, delayMs * 1.5)
    p.resendTimer = setTimeout(resend, delayMs)
  }
  p.resendTimer = setTimeout(resend, delayMs)
  channel.onopen = () => {
    updateRow(p)
    chatLine('sys', `data channel to ${shortId(id)} open`)
  }
  channel.onclose = () => {
    if (peers.get(id) === p) dropPeer(id, 'left (data channel closed)')
  }
  channel.onmessage = (ev: MessageEvent) => {
    if (typeof ev.data !== 'string' || ev.data.length > MAX_CHAT_TEXT * 4) return
    try {
      const msg = JSON.parse(ev.data) as { text?: unknown }
      if (typeof msg.text === 'string') chatLine('theirs', msg.text.slice(0, MAX_CHAT_TEXT), id)
    } catch {
      // a peer sending garbage is ignored, not trusted
    }
  }
  pc.onconnectionstatechange = () => {
    updateRow(p)
    if (pc.connectionState === 'failed') dropPeer(id, 'unreachable (WebRTC connection failed)')
  }
  updateRow(p)
  renderPeerList()
  return p
}

function sendChat(text: string): void {
  const open = [...peers.values()].filter((p) => p.channel.readyState === 'open')
  if (open.length === 0) {
    chatLine('sys', 'nobody to send to yet: no open data channel')
    return
  }
  const frame = JSON.stringify({ text })
  for (const p of open) p.channel.send(frame)
  chatLine('mine', text)
}

// ---------- signaling ----------

async function loadConfig(): Promise<DemoConfig> {
  const ws = params.get('ws')
  if (ws !== null) {
    const base = ws.replace(/\/+$/, '')
    return { signalingUrl: `${base}/p2p-signaling`, crdtUrl: `${base}/crdt` }
  }
  const res = await fetch('/demo/config.json', { cache: 'no-store' })
  if (!res.ok) throw new Error(`/demo/config.json: HTTP ${res.status}`)
  return (await res.json()) as DemoConfig
}

async function discoverLoop(c: SignalingClient): Promise<void> {
  for (;;) {
    if (c.state === 'closed') return
    if (c.state === 'open') {
      try {
        const ids = await c.discover(topic)
        const now = Date.now()
        for (const id of ids) {
          const leftAt = departed.get(id)
          if (id === myId || peers.has(id) || (leftAt !== undefined && now - leftAt < DEPARTED_IGNORE_MS))
            continue
          ensurePeer(id)
        }
      } catch (err) {
        banner(`Peer discovery failed: ${errorText(err)}`)
      }
    }
    await new Promise((r) => setTimeout(r, DISCOVER_INTERVAL_MS))
  }
}

async function startSignaling(cfg: DemoConfig, identity: Identity): Promise<void> {
  const s = step(`Registering at ${cfg.signalingUrl}`)
  const c = createSignalingClient(
    { publicKey: identity.publicKey, sign: (message) => identity.sign(message) },
    { url: cfg.signalingUrl },
  )
  client = c
  c.on('signal', (sig) => {
    departed.delete(sig.from)
    const p = peers.get(sig.from) ?? ensurePeer(sig.from)
    void p.negotiation.handle(sig.type, sig.data)
  })
  c.on('expire', ({ peer }) => undeliverable(peer, 'signal expired'))
  c.on('error', (err) => {
    if (err.to !== undefined) undeliverable(err.to, err.message)
    else banner(`Signaling error: ${err.message}`)
  })
  c.on('close', ({ code, reason }) =>
    banner(
      `Signaling connection lost (code ${code}${reason ? `, ${reason}` : ''}) — is the node down? Reconnecting…`,
    ),
  )
  c.on('reconnecting', ({ attempt, delayMs }) =>
    banner(`Node unreachable — reconnect attempt ${attempt} in ${Math.round(delayMs / 100) / 10} s`),
  )
  c.on('open', () => banner(undefined))
  try {
    const id = await c.connect()
    s.done(`registered as ${shortId(id)}`)
  } catch (err) {
    s.fail(err)
    banner(`Cannot reach the node's signaling server at ${cfg.signalingUrl}: ${errorText(err)}`)
    throw err
  }
  const j = step(`Joining topic "${topic}"`)
  await c.join(topic).then(
    () => j.done(),
    (err: unknown) => {
      j.fail(err)
      throw err
    },
  )
  void discoverLoop(c)
}

// ---------- shared text ----------

function startSharedText(cfg: DemoConfig): void {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(cfg.crdtUrl, docName, doc, { disableBc: true })
  const status = byId('doc-status')
  const textarea = byId<HTMLTextAreaElement>('shared')
  textarea.disabled = true
  provider.on('status', ({ status: st }: { status: string }) => {
    status.dataset.status = st
    if (st === 'connected') fill(status, 'connected to the node, syncing…')
    else if (st === 'disconnected')
      fill(status, `disconnected from ${cfg.crdtUrl}/${docName} — is the node down? retrying…`)
  })
  provider.on('sync', (synced: boolean) => {
    if (!synced) return
    status.dataset.status = 'synced'
    fill(status, `synced with the node (document "${docName}")`)
    textarea.disabled = false
  })
  bindTextarea(doc.getText('text'), textarea)
  window.addEventListener('pagehide', () => provider.destroy())
}

// ---------- start ----------

async function main(): Promise<void> {
  fill(byId('topic'), topic)
  fill(byId('doc-name'), docName)
  byId('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault()
    const input = byId<HTMLInputElement>('chat-input')
    const text = input.value.trim().slice(0, MAX_CHAT_TEXT)
    if (text.length === 0) return
    sendChat(text)
    input.value = ''
  })

  const idStep = step('Creating an ML-DSA-87 identity in this tab')
  const started = performance.now()
  const identity = Identity.generate()
  myId = identity.idString
  idStep.done(`${shortId(myId)} in ${Math.round(performance.now() - started)} ms`)
  const me = byId('me')
  me.title = myId
  fill(me, `me: ${shortId(myId)}`)

  let cfg: DemoConfig
  try {
    cfg = await loadConfig()
  } catch (err) {
    banner(`Cannot read the node's WebSocket address (${errorText(err)}); add ?ws=ws://host:3001 to the URL`)
    return
  }
  startSharedText(cfg)
  await startSignaling(cfg, identity).catch(() => undefined)
  // pagehide (not beforeunload): it also fires on mobile and when the page is frozen; peers learn at once.
  window.addEventListener('pagehide', () => {
    for (const id of [...peers.keys()]) dropPeer(id, 'closed')
    client?.close()
  })
}

void main()
