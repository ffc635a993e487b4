/**
 * The perfect-negotiation pattern (W3C WebRTC §10.7 example, MDN "Perfect negotiation") over any signaling
 * channel: `negotiationneeded` → offer, `icecandidate` → candidate, remote offers answered, glare resolved by
 * politeness. Exported from `@x/signaling/client`.
 */
import type { RelayType } from './protocol'
import { SILENT_LOGGER, type Logger } from './types'

/** The subset of `RTCPeerConnection` the negotiation helper uses. */
export interface PeerConnectionLike {
  /** `stable`, `have-local-offer`, … (RTCPeerConnection's values). */
  readonly signalingState: string
  /** The description last set with `setLocalDescription`, or `null`. */
  readonly localDescription: {
    /** `offer`, `answer`, `pranswer` or `rollback`. */
    type: string
    /** The SDP text. */
    sdp: string
  } | null
  /** Sets the local description; without one, creates the offer or answer the state calls for. */
  setLocalDescription(description?: { type: string; sdp?: string }): Promise<void>
  /** Applies the remote peer's offer or answer (or a rollback). */
  setRemoteDescription(description: { type: string; sdp?: string }): Promise<void>
  /** Creates an offer. */
  createOffer(): Promise<{
    /** `offer`. */
    type: string
    /** The SDP text. */
    sdp?: string
  }>
  /** Creates an answer to the remote offer. */
  createAnswer(): Promise<{
    /** `answer`. */
    type: string
    /** The SDP text. */
    sdp?: string
  }>
  /** Adds a remote ICE candidate. */
  addIceCandidate(candidate: object): Promise<void>
  /** Listens to `negotiationneeded` and `icecandidate`. */
  addEventListener(type: string, listener: (ev: never) => void): void
  /** Stops listening (on `close()` of the negotiation). */
  removeEventListener(type: string, listener: (ev: never) => void): void
}

/** Options of {@link attachPerfectNegotiation}. */
export interface PerfectNegotiationOptions {
  /** Exactly one side is polite (it yields on offer collisions); e.g. `myId < remoteId`. */
  polite: boolean
  /** Sends a signal to the remote peer (usually `client.signal(type, remoteId, data)`). */
  send(type: RelayType, data: object): void
  /** @default silent */
  logger?: Logger
}

/** Handle returned by {@link attachPerfectNegotiation}. */
export interface PerfectNegotiation {
  /** Feeds a signal from the remote peer. Never rejects; failures are logged. */
  handle(type: RelayType, data: unknown): Promise<void>
  /** Removes the listeners from the peer connection. */
  detach(): void
}

/**
 * Wires `pc` with the perfect-negotiation pattern: `negotiationneeded` → offer, `icecandidate` → candidate,
 * remote offers answered, glare resolved by politeness. Falls back to explicit createOffer/createAnswer where
 * `setLocalDescription()` without arguments is not supported (older Node WebRTC bindings).
 */
export function attachPerfectNegotiation(
  pc: PeerConnectionLike,
  options: PerfectNegotiationOptions,
): PerfectNegotiation {
  const log = options.logger ?? SILENT_LOGGER
  let makingOffer = false
  let ignoreOffer = false
  let settingRemoteAnswer = false

  const setLocal = async (): Promise<void> => {
    try {
      await pc.setLocalDescription()
    } catch {
      const description =
        pc.signalingState === 'have-remote-offer' ? await pc.createAnswer() : await pc.createOffer()
      await pc.setLocalDescription(description)
    }
  }
  const sendLocal = (): void => {
    const d = pc.localDescription
    if (d !== null) options.send(d.type === 'answer' ? 'answer' : 'offer', { type: d.type, sdp: d.sdp })
  }
  const onNegotiationNeeded = async (): Promise<void> => {
    try {
      makingOffer = true
      await setLocal()
      sendLocal()
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'negotiation failed')
    } finally {
      makingOffer = false
    }
  }
  const negotiationListener = (): void => void onNegotiationNeeded()
  const candidateListener = (ev: { candidate: { toJSON?(): object } | null }): void => {
    const candidate = ev.candidate
    if (candidate === null) return
    options.send('candidate', typeof candidate.toJSON === 'function' ? candidate.toJSON() : candidate)
  }
  pc.addEventListener('negotiationneeded', negotiationListener)
  pc.addEventListener('icecandidate', candidateListener)

  return {
    async handle(type, data) {
      try {
        if (typeof data !== 'object' || data === null) return
        if (type === 'candidate') {
          try {
            await pc.addIceCandidate(data)
          } catch (err) {
            if (!ignoreOffer) throw err
          }
          return
        }
        const description = data as { type: string; sdp?: string }
        const readyForOffer = !makingOffer && (pc.signalingState === 'stable' || settingRemoteAnswer)
        const collision = description.type === 'offer' && !readyForOffer
        ignoreOffer = !options.polite && collision
        if (ignoreOffer) return
        settingRemoteAnswer = description.type === 'answer'
        await pc.setRemoteDescription(description)
        settingRemoteAnswer = false
        if (description.type === 'offer') {
          await setLocal()
          sendLocal()
        }
      } catch (err) {
        log.warn({ err: (err as Error).message, type }, 'handling a remote signal failed')
      }
    },
    detach() {
      pc.removeEventListener('negotiationneeded', negotiationListener)
      pc.removeEventListener('icecandidate', candidateListener)
    },
  }
}
