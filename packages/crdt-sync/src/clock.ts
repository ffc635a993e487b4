/** Time and timers, injected so that tests run on a virtual clock (the same shape as `@x/kademlia`'s). */
export interface Clock {
  /** Milliseconds since an arbitrary origin. */
  now(): number
  /** Runs `fn` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown
  /** Cancels a timer set by `setTimeout` (a handle already run or cleared is ignored). */
  clearTimeout(handle: unknown): void
}

/** The default: `Date.now` and the global timers (unref'ed: a pending timer never keeps a process alive). */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref?.()
    return t
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** Gives the event loop one turn (`setImmediate`): what long jobs await between slices. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
