/** The endpoints a signaling server serves, in one table. A new protocol is a file here and one line below. */
import type { EndpointFactory } from './endpoint'
import { nativeEndpoint, type NativeEndpointComponents } from './native'
import { peerjsEndpoint } from './peerjs'
import { yWebrtcEndpoint } from './y-webrtc'

export function defaultEndpoints(components: NativeEndpointComponents): EndpointFactory[] {
  return [nativeEndpoint(components), yWebrtcEndpoint, peerjsEndpoint]
}
