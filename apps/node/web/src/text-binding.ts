/**
 * Binds a `<textarea>` to a `Y.Text`: local input becomes the minimal delete + insert (common prefix and suffix
 * trimmed); a remote change rewrites the value and moves the caret through the change's delta, so typing on
 * both sides at once does not throw either caret around.
 */
import type * as Y from 'yjs'

const LOCAL_ORIGIN = Symbol('textarea')

type Delta = Y.YTextEvent['delta']

/** Where index `index` of the old text lands in the new text after `delta`. */
export function mapIndex(delta: Delta, index: number): number {
  let oldPos = 0
  let shift = 0
  for (const op of delta) {
    if (oldPos > index) break
    if (op.retain !== undefined) oldPos += op.retain
    else if (op.insert !== undefined) shift += typeof op.insert === 'string' ? op.insert.length : 1
    else if (op.delete !== undefined) {
      shift -= Math.min(op.delete, index - oldPos)
      oldPos += op.delete
    }
  }
  return Math.max(0, index + shift)
}

/** Binds both ways; returns a function that unbinds. */
export function bindTextarea(ytext: Y.Text, textarea: HTMLTextAreaElement): () => void {
  const doc = ytext.doc
  if (doc === null) throw new TypeError('"ytext" must belong to a Y.Doc')
  textarea.value = ytext.toJSON()

  const onInput = (): void => {
    const before = ytext.toJSON()
    const after = textarea.value
    if (before === after) return
    let start = 0
    const max = Math.min(before.length, after.length)
    while (start < max && before.charCodeAt(start) === after.charCodeAt(start)) start++
    let endBefore = before.length
    let endAfter = after.length
    while (
      endBefore > start &&
      endAfter > start &&
      before.charCodeAt(endBefore - 1) === after.charCodeAt(endAfter - 1)
    ) {
      endBefore--
      endAfter--
    }
    doc.transact(() => {
      if (endBefore > start) ytext.delete(start, endBefore - start)
      if (endAfter > start) ytext.insert(start, after.slice(start, endAfter))
    }, LOCAL_ORIGIN)
  }

  const onChange = (event: Y.YTextEvent, tr: Y.Transaction): void => {
    if (tr.origin === LOCAL_ORIGIN) return
    const focused = document.activeElement === textarea
    const { selectionStart, selectionEnd } = textarea
    textarea.value = ytext.toJSON()
    if (focused)
      textarea.setSelectionRange(mapIndex(event.delta, selectionStart), mapIndex(event.delta, selectionEnd))
  }

  textarea.addEventListener('input', onInput)
  ytext.observe(onChange)
  return () => {
    textarea.removeEventListener('input', onInput)
    ytext.unobserve(onChange)
  }
}
