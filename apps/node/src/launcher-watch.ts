import { readFileSync } from 'node:fs'

/**
 * When the node runs under a package-manager script (`pnpm start`, `npm start`, `npx … start`), a SIGTERM sent to
 * the wrapper that a supervisor started ends the wrapper and leaves the node running, re-parented: pnpm and npx
 * do not forward it. This watcher notices that: it records the processes that launched the node (its ancestors,
 * read from `/proc` on Linux; the parent elsewhere) and calls `onGone` once any of them has exited, so the node
 * can shut down gracefully as if the signal had reached it. It is meant for package-manager launches only: a node
 * started with `nohup` or by a service manager directly is not watched (see `server.ts`).
 */

/** How often the launchers are checked. */
export const LAUNCHER_POLL_MS = 1_000

export interface LauncherWatchOptions {
  /** @default LAUNCHER_POLL_MS */
  intervalMs?: number
  /** Parent of `pid`, or `undefined` when unknown. @default read from `/proc/<pid>/stat` */
  parentOf?: (pid: number) => number | undefined
  /** Whether process `pid` exists. @default `process.kill(pid, 0)` */
  alive?: (pid: number) => boolean
}

/** The parent PID from `/proc/<pid>/stat` (the field after the parenthesised command name). */
export function procParentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ppid = Number(fields[1])
    return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined
  } catch {
    return undefined
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The chain of processes above this one, nearest first, up to (not including) PID 1. */
export function launchers(parentOf: (pid: number) => number | undefined = procParentOf): number[] {
  const chain: number[] = []
  let pid: number | undefined = process.ppid
  while (pid !== undefined && pid > 1 && chain.length < 64 && !chain.includes(pid)) {
    chain.push(pid)
    pid = parentOf(pid)
  }
  return chain
}

/** Calls `onGone(pid)` once, when a process that launched this one has exited. Returns a stop function. */
export function watchLaunchers(
  onGone: (pid: number) => void,
  options: LauncherWatchOptions = {},
): () => void {
  const alive = options.alive ?? processAlive
  const watched = launchers(options.parentOf)
  const parent = process.ppid
  const timer = setInterval(() => {
    const gone = process.ppid !== parent ? parent : watched.find((pid) => !alive(pid))
    if (gone === undefined) return
    clearInterval(timer)
    onGone(gone)
  }, options.intervalMs ?? LAUNCHER_POLL_MS)
  timer.unref()
  return () => clearInterval(timer)
}
