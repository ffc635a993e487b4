import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, expect, it } from 'vitest'
import * as Y from 'yjs'
import { createDocStore } from '../src/index'
import { tempLevel, type TempLevel } from './helpers'
import { connect, synced } from './ws-client'

const FIXTURE = fileURLToPath(new URL('./fixtures/serve-child.ts', import.meta.url))
let level: TempLevel | undefined

afterEach(async () => {
  await level?.dispose()
  level = undefined
})

/** True when `doc` holds every struct described by `seen` (a state vector). */
function covers(doc: Y.Doc, seen: Map<number, number>): boolean {
  const have = Y.getState
  for (const [client, clock] of seen) if (have(doc.store, client) < clock) return false
  return true
}

it('loses no update that another client saw when the server is SIGKILLed mid-stream', async () => {
  level = await tempLevel()
  const dir = level.dir
  await level.level.close()
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)))
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /PORT (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', () => reject(new Error(`child exited early: ${out}`)))
  })
  const writer = connect(port, 'journal')
  const observer = connect(port, 'journal')
  await Promise.all([synced(writer), synced(observer)])
  // Kill at a point chosen by the observer's progress, while the writer keeps typing.
  const killAfter = 300 + Math.floor(Math.random() * 700)
  console.log(`killing after the observer saw ${killAfter} edits`)
  let killed = false
  let seenAtKill = new Map<number, number>()
  let textAtKill = ''
  const text = observer.doc.getText('t')
  observer.doc.on('update', () => {
    if (killed || text.length < killAfter) return
    killed = true
    child.kill('SIGKILL')
  })
  let typed = 0
  while (!killed && typed < 20_000) {
    writer.doc.getText('t').insert(typed, String.fromCharCode(97 + (typed % 26)))
    typed++
    if (typed % 5 === 0) await new Promise((r) => setImmediate(r))
  }
  expect(await exited).toBe('SIGKILL')
  // Everything the observer holds now was relayed before the kill.
  seenAtKill = Y.decodeStateVector(Y.encodeStateVector(observer.doc))
  textAtKill = text.toJSON()
  writer.destroy()
  observer.destroy()
  expect(textAtKill.length).toBeGreaterThanOrEqual(killAfter)

  level = await tempLevel(dir)
  const store = createDocStore({ db: level.db })
  const h = await store.open('journal')
  expect(covers(h.doc, seenAtKill)).toBe(true)
  expect(h.doc.getText('t').toJSON().startsWith(textAtKill)).toBe(true)
  console.log(
    `typed ${typed}, observer saw ${textAtKill.length}, reopened store has ${h.doc.getText('t').length}`,
  )
  h.release()
  await store.close()
})
