/*
 * Y.encodeStateAsUpdate in steps: the same v1 update (yjs src/utils/encoding.js writeStateAsUpdate), written a
 * bounded number of structs per turn of the event loop, so answering a client that joins a large document,
 * or compacting it, never holds the loop for long.
 *
 * The document may change between steps (edits, remote updates; Yjs splits, merges and garbage-collects structs
 * as it goes). Structs are therefore found again by clock after every step (findIndexSS), each written from
 * the clock where the previous step stopped (Item.write with an offset, as Yjs does for a partial struct), up
 * to at least the state the document had when encoding began. The result holds everything the document held
 * then, possibly some later changes too (applying a change twice is harmless in Yjs), and the delete set as
 * of the end, limited to the structs it carries.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

/** Structs (or deleted ranges) written per turn at most: Yjs encodes a struct in about 2 µs. */
export const ENCODE_UNITS_PER_TURN = 10_000
/** A turn also ends after this long (a client's block has its own cost: many clients of one struct each). */
export const ENCODE_TURN_MS = 8
const TIME_CHECK_UNITS = 64

/**
 * The document (or its difference from `targetStateVector`) as one v1 update, written in steps of at most
 * `unitsPerTurn` structs with `yieldTurn()` between them. A document with pending structs or
 * deletions (waiting for missing dependencies, which Yjs keeps in another encoding) is encoded at once by
 * Y.encodeStateAsUpdate, as is one small enough to need no step.
 */
export async function encodeStateAsUpdateSliced(
  doc: Y.Doc,
  targetStateVector: Uint8Array | undefined,
  yieldTurn: () => Promise<void>,
  unitsPerTurn = ENCODE_UNITS_PER_TURN,
): Promise<Uint8Array> {
  const store = doc.store
  if (store.pendingStructs !== null || store.pendingDs !== null) {
    return Y.encodeStateAsUpdate(doc, targetStateVector)
  }
  const target =
    targetStateVector === undefined ? new Map<number, number>() : Y.decodeStateVector(targetStateVector)
  let total = 0
  const end = new Map<number, number>() // the state when encoding began
  for (const [client, structs] of store.clients) {
    end.set(client, Y.getState(store, client))
    total += structs.length
  }
  if (total <= unitsPerTurn) return Y.encodeStateAsUpdate(doc, targetStateVector)

  let budget = unitsPerTurn
  let turnStart = performance.now()
  /** Spends one unit; false when the turn is over (count or time). */
  const spend = (): boolean => {
    budget--
    if (budget > 0 && budget % TIME_CHECK_UNITS === 0 && performance.now() - turnStart >= ENCODE_TURN_MS)
      budget = 0
    return budget > 0
  }
  const nextStep = async (): Promise<void> => {
    await yieldTurn()
    budget = unitsPerTurn
    turnStart = performance.now()
  }
  /** Finds the struct holding `clock` again after a turn (the array may have changed meanwhile). */
  const at = (client: number, clock: number): [structs: (Y.Item | Y.GC)[], index: number] => {
    const structs = store.clients.get(client)!
    return [structs, Y.findIndexSS(structs, clock)]
  }
  // Higher client IDs first, as Yjs writes them (any order decodes the same).
  const clients = [...end.keys()].filter((c) => end.get(c)! > (target.get(c) ?? 0)).sort((a, b) => b - a)
  const out = encoding.createEncoder()
  encoding.writeVarUint(out, clients.length)
  /** Per client, the clock up to which structs were written: the delete set covers the same range. */
  const written = new Map<number, number>()
  for (const client of clients) {
    const from = target.get(client) ?? 0
    const until = end.get(client)!
    if (!spend()) await nextStep() // a client's block costs about as much as a struct
    const body = new Y.UpdateEncoderV1()
    let count = 0
    let clock = from
    while (clock < until) {
      const [structs, first] = at(client, clock)
      let i = first
      let more = true
      for (; clock < until && more; i++) {
        const struct = structs[i]!
        struct.write(body, clock - struct.id.clock)
        count++
        clock = struct.id.clock + struct.length
        more = spend()
      }
      if (!more) await nextStep()
    }
    written.set(client, clock)
    encoding.writeVarUint(out, count)
    encoding.writeVarUint(out, client)
    encoding.writeVarUint(out, from)
    encoding.writeUint8Array(out, body.toUint8Array())
  }

  // The delete set of every client this document knows (as Yjs writes it), over the structs as they are now.
  const ds: [client: number, ranges: number[]][] = []
  for (const client of [...end.keys()].sort((a, b) => b - a)) {
    const until = written.get(client) ?? end.get(client)!
    const ranges: number[] = []
    let clock = 0
    while (clock < until) {
      const [structs, first] = at(client, clock)
      let i = first
      let more = true
      for (; clock < until && more; i++) {
        const struct = structs[i]!
        more = spend()
        const stop = Math.min(until, struct.id.clock + struct.length)
        if (struct.deleted) {
          const last = ranges.length - 2
          if (last >= 0 && ranges[last]! + ranges[last + 1]! === clock)
            ranges[last + 1] = ranges[last + 1]! + stop - clock
          else ranges.push(clock, stop - clock)
        }
        clock = stop
      }
      if (!more) await nextStep()
    }
    if (ranges.length > 0) ds.push([client, ranges])
  }
  encoding.writeVarUint(out, ds.length)
  for (const [client, ranges] of ds) {
    encoding.writeVarUint(out, client)
    encoding.writeVarUint(out, ranges.length / 2)
    for (const n of ranges) encoding.writeVarUint(out, n)
  }
  return encoding.toUint8Array(out)
}
