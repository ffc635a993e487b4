/*
 * Splits a Yjs v1 update into smaller updates that, applied in order, have the effect of the whole.
 *
 * Why: Y.applyUpdate costs up to ~1 ms per KiB for hostile shapes (60 000 single-character inserts at random
 * positions, tens of thousands of client IDs, alternating deletions), and it runs in one synchronous call. A
 * store that applies a few MiB in slices of a bounded number of structs, yielding between slices, keeps every
 * turn of the event loop short. The same slices let replication send a large update over a link whose frames
 * are smaller than the update.
 *
 * Format (yjs src/utils/encoding.js writeClientsStructs/readClientsStructRefs, src/structs/Item.js, v1 coder):
 *   update      = varUint(#clients) · client-block* · delete-set
 *   client-block = varUint(#structs) · varUint(client) · varUint(first clock) · struct*
 *   struct      = info:uint8 · body; info & 31: 0 GC (varUint len), 10 Skip (varUint len), 1..9 Item content
 *   Item body   = [origin ID if info&128] · [right origin ID if info&64] ·
 *                 [if neither: varUint parentInfo (1: varString root key, else parent ID) · [varString parentSub if info&32]] ·
 *                 content (1 Deleted len, 2 JSON n·varString*, 3 Binary, 4 String, 5 Embed, 6 Format key·json,
 *                          7 Type ref [· key for XmlElement(3)/XmlHook(5)], 8 Any n·any*, 9 Doc guid·any)
 *   delete-set  = varUint(#clients) · (varUint client · varUint n · (varUint clock · varUint len)*)*
 * In v1 every struct is encoded on its own (IDs are absolute), so a run of structs is copied byte for byte.
 *
 * Reading validates what Y.applyUpdate would reject while reading (so a slice never fails to decode after an
 * earlier slice was applied) and rejects what Yjs would silently mishandle (the same client twice).
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'

const BIT8 = 128 // has origin
const BIT7 = 64 // has right origin
const BIT6 = 32 // has parentSub
const BITS5 = 31
const REF_GC = 0
const REF_SKIP = 10
const TYPE_REF_XML_ELEMENT = 3
const TYPE_REF_XML_HOOK = 5
const TYPE_REF_MAX = 6
const BYTES_PER_VARUINT_MAX = 8 // a clock or client below 2^53 takes at most 8 bytes

/** Bounds on one slice. A slice always holds at least one struct or one delete range. */
export interface SliceBudget {
  /** Most bytes of structs per slice (a single struct larger than this makes a slice of its own). */
  maxBytes: number
  /** Most structs per slice: what Y.applyUpdate's cost grows with. */
  maxStructs: number
  /** Most delete-set ranges per slice. */
  maxDeleteRanges: number
}

/** The result of {@link sliceUpdate}. */
export interface SlicedUpdate {
  /** Updates to apply in order; `[update]` itself when it fits the budget. */
  slices: Uint8Array[]
  structs: number
  deleteRanges: number
  /** The client IDs whose structs the update carries. */
  clients: number[]
}

/** Thrown for bytes that are not a Yjs v1 update; the caller maps it to its typed error. */
export class MalformedUpdateError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MalformedUpdateError'
  }
}

function fail(message: string): never {
  throw new MalformedUpdateError(message)
}

function readJson(d: decoding.Decoder): void {
  JSON.parse(decoding.readVarString(d))
}

/** Reads one Item's content; returns its length in clock units. Mirrors yjs readItemContent (v1). */
function readContent(d: decoding.Decoder, ref: number): number {
  switch (ref) {
    case 1: // Deleted
      return decoding.readVarUint(d)
    case 2: {
      // JSON: each entry 'undefined' or JSON text
      const n = decoding.readVarUint(d)
      if (n > d.arr.length - d.pos) fail('JSON content count exceeds the update')
      for (let i = 0; i < n; i++) {
        const s = decoding.readVarString(d)
        if (s !== 'undefined') JSON.parse(s)
      }
      return n
    }
    case 3: // Binary
      decoding.readVarUint8Array(d)
      return 1
    case 4: // String: the length is in UTF-16 code units of the decoded string
      return decoding.readVarString(d).length
    case 5: // Embed
      readJson(d)
      return 1
    case 6: // Format
      decoding.readVarString(d)
      readJson(d)
      return 1
    case 7: {
      // Type
      const typeRef = decoding.readVarUint(d)
      if (typeRef > TYPE_REF_MAX) fail(`unknown type ref ${typeRef}`)
      if (typeRef === TYPE_REF_XML_ELEMENT || typeRef === TYPE_REF_XML_HOOK) decoding.readVarString(d)
      return 1
    }
    case 8: {
      // Any
      const n = decoding.readVarUint(d)
      if (n > d.arr.length - d.pos) fail('Any content count exceeds the update')
      for (let i = 0; i < n; i++) decoding.readAny(d)
      return n
    }
    case 9: // Doc
      decoding.readVarString(d)
      decoding.readAny(d)
      return 1
    default:
      return fail(`unknown content ref ${ref}`)
  }
}

/** Units of work (structs or delete ranges read, ordered or grouped) between two yields of {@link sliceSteps}. */
export const SLICE_STEP_UNITS = 1_024

/**
 * Parses `update` (validating it) and splits it into slices within `budget`, ordered so that a struct comes
 * after the structs of this update it refers to (origin, right origin, parent) where the references allow it;
 * the delete set comes last. Throws {@link MalformedUpdateError} (or lib0's decoding errors) for bad bytes.
 */
export function sliceUpdate(update: Uint8Array, budget: SliceBudget): SlicedUpdate {
  const steps = sliceSteps(update, budget)
  for (;;) {
    const step = steps.next()
    if (step.done === true) return step.value
  }
}

/**
 * {@link sliceUpdate} that gives the event loop a turn (`yieldTurn`) every {@link SLICE_STEP_UNITS} units of
 * work, so reading a few MiB never holds it for long.
 */
export async function sliceUpdateAsync(
  update: Uint8Array,
  budget: SliceBudget,
  yieldTurn: () => Promise<void>,
): Promise<SlicedUpdate> {
  const steps = sliceSteps(update, budget)
  for (;;) {
    const step = steps.next()
    if (step.done === true) return step.value
    await yieldTurn()
  }
}

/** The work of {@link sliceUpdate}, yielding every {@link SLICE_STEP_UNITS} units. */
export function* sliceSteps(update: Uint8Array, budget: SliceBudget): Generator<void, SlicedUpdate> {
  let units = 0
  const d = decoding.createDecoder(update)
  const size = update.length
  // Client blocks.
  const blockClient: number[] = []
  const blockClock: number[] = []
  const blockEndClock: number[] = []
  const blockFirst: number[] = []
  const blockEnd: number[] = [] // struct index one past the block's last
  const blockOf = new Map<number, number>()
  // Structs.
  const sStart: number[] = []
  const sEnd: number[] = []
  const sClock: number[] = []
  const sLen: number[] = []
  const sBlock: number[] = []
  const sDeps: number[] = [] // index into depClient/depClock of the struct's first dependency
  const depClient: number[] = []
  const depClock: number[] = []

  const numClients = decoding.readVarUint(d)
  if (numClients > size) fail('client count exceeds the update')
  for (let b = 0; b < numClients; b++) {
    const numStructs = decoding.readVarUint(d)
    if (numStructs > size - d.pos) fail('struct count exceeds the update')
    const client = decoding.readVarUint(d)
    let clock = decoding.readVarUint(d)
    if (blockOf.has(client)) fail(`client ${client} appears twice`)
    blockOf.set(client, b)
    blockClient.push(client)
    blockClock.push(clock)
    blockFirst.push(sStart.length)
    for (let i = 0; i < numStructs; i++) {
      const start = d.pos
      const info = decoding.readUint8(d)
      if (info === undefined) fail('unexpected end of update')
      const ref = info & BITS5
      let len: number
      sDeps.push(depClient.length)
      if (ref === REF_GC || ref === REF_SKIP) {
        len = decoding.readVarUint(d)
      } else {
        if ((info & BIT8) !== 0) {
          depClient.push(decoding.readVarUint(d))
          depClock.push(decoding.readVarUint(d))
        }
        if ((info & BIT7) !== 0) {
          depClient.push(decoding.readVarUint(d))
          depClock.push(decoding.readVarUint(d))
        }
        if ((info & (BIT8 | BIT7)) === 0) {
          if (decoding.readVarUint(d) === 1) decoding.readVarString(d)
          else {
            depClient.push(decoding.readVarUint(d))
            depClock.push(decoding.readVarUint(d))
          }
          if ((info & BIT6) !== 0) decoding.readVarString(d)
        }
        len = readContent(d, ref)
      }
      // Yjs never writes an empty struct, and one would share its clock with the next.
      if (len < 1) fail('empty struct')
      sStart.push(start)
      sEnd.push(d.pos)
      sClock.push(clock)
      sLen.push(len)
      sBlock.push(b)
      clock += len
      if (!Number.isSafeInteger(clock)) fail('clock out of range')
      if (++units % SLICE_STEP_UNITS === 0) yield
    }
    blockEnd.push(sStart.length)
    blockEndClock.push(clock)
  }
  sDeps.push(depClient.length)
  const structsEnd = d.pos
  // Delete set.
  const dsClient: number[] = []
  const dsFirst: number[] = []
  const dsClock: number[] = []
  const dsLen: number[] = []
  const dsClients = decoding.readVarUint(d)
  if (dsClients > size - d.pos) fail('delete-set client count exceeds the update')
  for (let i = 0; i < dsClients; i++) {
    dsClient.push(decoding.readVarUint(d))
    dsFirst.push(dsClock.length)
    const n = decoding.readVarUint(d)
    if (n > size - d.pos) fail('delete-set range count exceeds the update')
    for (let j = 0; j < n; j++) {
      dsClock.push(decoding.readVarUint(d))
      dsLen.push(decoding.readVarUint(d))
      if (++units % SLICE_STEP_UNITS === 0) yield
    }
  }
  dsFirst.push(dsClock.length)
  const structs = sStart.length
  const deleteRanges = dsClock.length
  if (
    structsEnd <= budget.maxBytes &&
    structs <= budget.maxStructs &&
    deleteRanges <= budget.maxDeleteRanges
  ) {
    return { slices: [update], structs, deleteRanges, clients: blockClient }
  }

  // Emission order: depth first along references into this update's not-yet-emitted structs (an explicit
  // stack, as yjs integrateStructs does). A reference cycle is broken by emitting anyway: Yjs then holds that
  // struct as pending until the rest arrives, exactly as it would for an update received in two parts.
  const blocks = blockClient.length
  const cursor = blockFirst.slice()
  const emitted = blockClock.slice() // clock up to which each block is emitted
  const onStack = new Uint8Array(blocks)
  const order: number[] = []
  const stack: number[] = []
  const until: number[] = []
  /** Pushes the block holding the first reference of `s` that must come first; false when there is none. */
  const pushBlocker = (s: number): boolean => {
    for (let k = sDeps[s]!; k < sDeps[s + 1]!; k++) {
      const b = blockOf.get(depClient[k]!)
      if (b === undefined || b === sBlock[s] || onStack[b] === 1) continue
      const clock = depClock[k]!
      if (clock >= emitted[b]! && clock < blockEndClock[b]! && clock >= blockClock[b]!) {
        stack.push(b)
        until.push(clock)
        onStack[b] = 1
        return true
      }
    }
    return false
  }
  for (let b0 = 0; b0 < blocks; b0++) {
    if (cursor[b0]! >= blockEnd[b0]!) continue
    stack.push(b0)
    until.push(Number.MAX_SAFE_INTEGER)
    onStack[b0] = 1
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!
      if (cursor[top]! >= blockEnd[top]! || emitted[top]! > until[until.length - 1]!) {
        stack.pop()
        until.pop()
        onStack[top] = 0
        continue
      }
      const s = cursor[top]!
      if (pushBlocker(s)) continue
      order.push(s)
      cursor[top] = s + 1
      emitted[top] = sClock[s]! + sLen[s]!
      if (++units % SLICE_STEP_UNITS === 0) yield
    }
  }

  // Deletions are applied with the structs they delete, in the same slice: applied later, after Yjs has merged
  // those structs with their neighbours at the end of a transaction, each deletion would split a merged struct
  // again (an array splice each: quadratic). Per client, ranges are handed out in clock order as the client's
  // structs are (a well-formed delete set is sorted); ranges outside this update's structs, and the whole delete
  // set of a client whose ranges are not sorted, are applied after all structs.
  const rest: number[] = [] // triples: client, clock, len
  const dsOf = new Map<number, { idx: number[]; pos: number; from: number }>()
  for (let i = 0; i < dsClient.length; i++) {
    const client = dsClient[i]!
    let entry = dsOf.get(client)
    if (entry === undefined) dsOf.set(client, (entry = { idx: [], pos: 0, from: 0 }))
    for (let j = dsFirst[i]!; j < dsFirst[i + 1]!; j++) {
      entry.idx.push(j)
      if (++units % SLICE_STEP_UNITS === 0) yield
    }
  }
  for (const [client, entry] of dsOf) {
    let sorted = blockOf.has(client)
    for (let k = 1; sorted && k < entry.idx.length; k++) {
      const prev = entry.idx[k - 1]!
      if (dsClock[entry.idx[k]!]! < dsClock[prev]! + dsLen[prev]!) sorted = false
      if (++units % SLICE_STEP_UNITS === 0) yield
    }
    if (!sorted) {
      for (const j of entry.idx) rest.push(client, dsClock[j]!, dsLen[j]!)
      dsOf.delete(client)
    } else if (entry.idx.length > 0) entry.from = dsClock[entry.idx[0]!]!
  }
  /** Hands out the deletions of `client` below `hi` (writing those in [lo, hi) to `out`, earlier ones to rest). */
  const takeDeletions = (client: number, lo: number, hi: number, out: number[]): void => {
    const entry = dsOf.get(client)
    if (entry === undefined) return
    const { idx } = entry
    while (entry.pos < idx.length) {
      const j = idx[entry.pos]!
      const end = dsClock[j]! + dsLen[j]!
      if (entry.from >= hi) return
      if (entry.from < lo) rest.push(client, entry.from, Math.min(end, lo) - entry.from)
      const a = Math.max(entry.from, lo)
      const b = Math.min(end, hi)
      if (b > a) out.push(a, b - a)
      if (end > hi) {
        entry.from = hi
        return
      }
      entry.pos++
      if (entry.pos < idx.length) entry.from = dsClock[idx[entry.pos]!]!
    }
  }

  // Group the order into slices. A block's structs within one slice are consecutive (each block is emitted in
  // clock order), so a slice lists, per block, the first and last struct it holds.
  const slices: Uint8Array[] = []
  const first = new Int32Array(blocks).fill(-1)
  const last = new Int32Array(blocks)
  let sliceBlocks: number[] = []
  let sliceBytes = 0
  let sliceStructs = 0
  const header = 3 * BYTES_PER_VARUINT_MAX
  const flush = (): void => {
    if (sliceStructs === 0) return
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, sliceBlocks.length)
    const deletions: [client: number, ranges: number[]][] = []
    for (const b of sliceBlocks) {
      const f = first[b]!
      const l = last[b]!
      encoding.writeVarUint(e, l - f + 1)
      encoding.writeVarUint(e, blockClient[b]!)
      encoding.writeVarUint(e, sClock[f]!)
      encoding.writeUint8Array(e, update.subarray(sStart[f], sEnd[l]))
      first[b] = -1
      const ranges: number[] = []
      takeDeletions(blockClient[b]!, sClock[f]!, sClock[l]! + sLen[l]!, ranges)
      if (ranges.length > 0) deletions.push([blockClient[b]!, ranges])
    }
    encoding.writeVarUint(e, deletions.length)
    for (const [client, ranges] of deletions) {
      encoding.writeVarUint(e, client)
      encoding.writeVarUint(e, ranges.length / 2)
      for (const n of ranges) encoding.writeVarUint(e, n)
    }
    slices.push(encoding.toUint8Array(e))
    sliceBlocks = []
    sliceBytes = 0
    sliceStructs = 0
  }
  for (const s of order) {
    const b = sBlock[s]!
    const bytes = sEnd[s]! - sStart[s]! + (first[b] === -1 ? header : 0)
    if (sliceStructs >= budget.maxStructs || (sliceStructs > 0 && sliceBytes + bytes > budget.maxBytes)) {
      flush()
    }
    if (first[b] === -1) {
      // A block that reappears in this slice after a gap cannot happen: emission per block is sequential.
      first[b] = s
      sliceBlocks.push(b)
      sliceBytes += header
    }
    last[b] = s
    sliceBytes += sEnd[s]! - sStart[s]!
    sliceStructs++
    if (++units % SLICE_STEP_UNITS === 0) yield
  }
  flush()
  // What is left of each client's deletions (beyond its structs here) goes to rest.
  for (const [client, entry] of dsOf) {
    for (const idx = entry.idx; entry.pos < idx.length; entry.pos++) {
      const j = idx[entry.pos]!
      const end = dsClock[j]! + dsLen[j]!
      if (end > entry.from) rest.push(client, entry.from, end - entry.from)
      if (entry.pos + 1 < idx.length) entry.from = dsClock[idx[entry.pos + 1]!]!
      if (++units % SLICE_STEP_UNITS === 0) yield
    }
  }

  // The remaining deletions, in slices of at most maxDeleteRanges ranges, grouped by client.
  for (let k = 0; k < rest.length || slices.length === 0;) {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, 0) // no structs
    const parts: [client: number, from: number, to: number][] = []
    let room = budget.maxDeleteRanges
    while (k < rest.length && room > 0) {
      const client = rest[k]!
      const from = k
      while (k < rest.length && rest[k] === client && room > 0) {
        k += 3
        room--
      }
      parts.push([client, from, k])
    }
    encoding.writeVarUint(e, parts.length)
    for (const [client, from, to] of parts) {
      encoding.writeVarUint(e, client)
      encoding.writeVarUint(e, (to - from) / 3)
      for (let j = from; j < to; j += 3) {
        encoding.writeVarUint(e, rest[j + 1]!)
        encoding.writeVarUint(e, rest[j + 2]!)
      }
    }
    slices.push(encoding.toUint8Array(e))
    if (parts.length === 0) break
    yield
  }
  return { slices, structs, deleteRanges, clients: blockClient }
}
