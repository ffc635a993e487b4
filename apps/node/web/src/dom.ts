/** Tiny DOM helpers shared by the dashboard and the demo. Text is always set with `textContent` (no HTML injection). */

type Child = Node | string | number | null | undefined | false

/** Creates an element: `h('span', { class: 'pill' }, 'ok')`. Attributes starting with `data-`/`aria-` are kept as is. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue
    el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    el.append(typeof c === 'object' ? c : String(c))
  }
  return el
}

/** Replaces every child of `el`. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(
    ...children
      .filter((c): c is Node | string | number => c !== null && c !== undefined && c !== false)
      .map((c) => (typeof c === 'object' ? c : String(c))),
  )
}

/** The element with `id`, or a thrown error naming it (a page/template mismatch is a bug). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`missing element #${id}`)
  return el as T
}

/** `1h 02m 03s` from milliseconds. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–'
  const s = Math.floor(ms / 1000)
  const d = Math.floor(s / 86_400)
  const hh = Math.floor((s % 86_400) / 3600)
  const mm = Math.floor((s % 3600) / 60)
  const ss = s % 60
  const two = (n: number): string => String(n).padStart(2, '0')
  if (d > 0) return `${d}d ${hh}h ${two(mm)}m`
  if (hh > 0) return `${hh}h ${two(mm)}m ${two(ss)}s`
  if (mm > 0) return `${mm}m ${two(ss)}s`
  return `${ss}s`
}

/** A short form of a long hex/base32 ID for display: first 8 and last 4 characters. */
export function shortId(id: string): string {
  return id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id
}

/** A human string for any error-ish value. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message
  return typeof err === 'string' ? err : JSON.stringify(err)
}
