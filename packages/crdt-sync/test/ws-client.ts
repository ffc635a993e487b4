import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

/** The real y-websocket client, in Node. */
export function connect(port: number, name: string, doc = new Y.Doc(), params?: Record<string, string>) {
  return new WebsocketProvider(`ws://127.0.0.1:${port}`, name, doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true,
    ...(params ? { params } : {}),
  })
}

export function synced(provider: WebsocketProvider): Promise<void> {
  if (provider.synced) return Promise.resolve()
  return new Promise((resolve) => {
    const on = (s: boolean) => {
      if (!s) return
      provider.off('sync', on)
      resolve()
    }
    provider.on('sync', on)
  })
}

/** Resolves when `check()` holds, re-checking on every change of `doc`. */
export function until(doc: Y.Doc, check: () => boolean): Promise<void> {
  if (check()) return Promise.resolve()
  return new Promise((resolve) => {
    const on = () => {
      if (!check()) return
      doc.off('update', on)
      resolve()
    }
    doc.on('update', on)
  })
}
