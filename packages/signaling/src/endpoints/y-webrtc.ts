/**
 * The y-webrtc signaling protocol at `/y-webrtc` (`subscribe`, `unsubscribe`, `publish`, `ping`), as the
 * reference server `y-webrtc/bin/server.js` speaks it, for unchanged `WebrtcProvider` clients. Unauthenticated:
 * its topics live in their own namespace (`y:`), and unlike the reference server only subscribers may publish.
 * The protocol has no error frame, so refused frames are counted and dropped.
 */
import type { Conn } from '../connection'
import { MAX_TOPIC_LENGTH } from '../protocol'
import type { Endpoint, ServerCore } from './endpoint'

function validTopic(topic: unknown): topic is string {
  return typeof topic === 'string' && topic.length > 0 && topic.length <= MAX_TOPIC_LENGTH
}

export function yWebrtcEndpoint(core: ServerCore): Endpoint<undefined> {
  // No error frame in this protocol: the guard hears what is dropped.
  const refused = (conn: Conn<undefined>, code: 'BAD_MESSAGE' | 'TOPIC_LIMIT' = 'BAD_MESSAGE'): void => {
    core.counters.rejected++
    core.admission.call(conn.guard, 'error', code)
  }
  return {
    name: 'y-webrtc',
    path: core.options.paths.yWebrtc,
    initialState: () => undefined,
    open() {},
    refuse() {},
    rateLimited() {},
    closed() {},
    message(conn: Conn<undefined>, msg: Record<string, unknown>) {
      switch (msg.type) {
        case 'subscribe':
        case 'unsubscribe': {
          const topics = msg.topics
          if (!Array.isArray(topics) || topics.length > core.options.maxTopicsPerConnection)
            return refused(conn)
          for (const topic of topics) {
            if (!validTopic(topic)) continue
            if (msg.type === 'unsubscribe') core.leaveTopic(conn, `y:${topic}`)
            else if (!core.joinTopic(conn, `y:${topic}`)) refused(conn, 'TOPIC_LIMIT')
          }
          return
        }
        case 'publish': {
          const topic = msg.topic
          if (!validTopic(topic) || conn.topics?.has(`y:${topic}`) !== true) return refused(conn)
          const receivers = core.topicMembers(`y:${topic}`)
          if (receivers === undefined) return
          msg.clients = receivers.size
          let frame: string
          try {
            frame = JSON.stringify(msg)
          } catch {
            return refused(conn) // nested too deeply for JSON.stringify, which recurses
          }
          for (const receiver of receivers) if (core.send(receiver, frame)) core.counters.relayed++
          core.admission.call(conn.guard, 'published', topic, receivers.size)
          return
        }
        case 'ping':
          core.send(conn, '{"type":"pong"}')
          return
        default:
          refused(conn)
      }
    },
  }
}
