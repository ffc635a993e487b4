import WebSocket from 'ws'
import * as Y from 'yjs'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'

/** The real `@hocuspocus/provider` socket, in Node. */
export function hpSocket(port: number, path = '/hocuspocus'): HocuspocusProviderWebsocket {
  return new HocuspocusProviderWebsocket({
    url: `ws://127.0.0.1:${port}${path}`,
    WebSocketPolyfill: WebSocket,
    // Fail fast in tests: a refused socket is retried once a second, not with growing back-off.
    delay: 100,
    minDelay: 100,
    maxDelay: 500,
  })
}

/** A provider for `name` on a shared socket (attached: Hocuspocus 3+ multiplexes what is attached). */
export function hpDoc(
  socket: HocuspocusProviderWebsocket,
  name: string,
  options: { token?: string | (() => string) | (() => Promise<string>); document?: Y.Doc } = {},
): HocuspocusProvider {
  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name,
    document: options.document ?? new Y.Doc(),
    token: options.token ?? null,
  })
  provider.attach()
  return provider
}

export function hpSynced(p: HocuspocusProvider): Promise<void> {
  if (p.isSynced) return Promise.resolve()
  return new Promise((resolve) => p.on('synced', () => resolve()))
}

/** Resolves with the next event `name` of `p`. */
export function nextEvent<T>(p: HocuspocusProvider, name: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (data: T) => {
      p.off(name, on)
      resolve(data)
    }
    p.on(name, on)
  })
}

/** Resolves once every local change of `p` was acknowledged by the server (on disk there). */
export function hpSaved(p: HocuspocusProvider): Promise<void> {
  if (!p.hasUnsyncedChanges) return Promise.resolve()
  return new Promise((resolve) => {
    const on = ({ number }: { number: number }) => {
      if (number !== 0) return
      p.off('unsyncedChanges', on)
      resolve()
    }
    p.on('unsyncedChanges', on)
  })
}

/** A paragraph as Tiptap's y-prosemirror binding writes it into a `Y.XmlFragment` ('default'). */
export function writeParagraph(doc: Y.Doc, text: string, index = -1): void {
  const fragment = doc.getXmlFragment('default')
  const paragraph = new Y.XmlElement('paragraph')
  paragraph.insert(0, [new Y.XmlText(text)])
  fragment.insert(index < 0 ? fragment.length : index, [paragraph])
}

export function paragraphs(doc: Y.Doc): string[] {
  return doc
    .getXmlFragment('default')
    .toArray()
    .map((n) =>
      n instanceof Y.XmlElement
        ? n
            .toArray()
            .map((t) => (t instanceof Y.XmlText ? t.toJSON() : ''))
            .join('')
        : '',
    )
}
