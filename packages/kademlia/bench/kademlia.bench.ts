/**
 * Microbenchmarks: `closest(target, 20)` on a full table (160 buckets × 20 = 3,200 contacts) and `add`
 * throughput. Prints a table and, last, one JSON line.
 */
import { randomBytes } from 'node:crypto'
import { randomIdInBucket } from '../src/id'
import { RoutingTable } from '../src/routing-table'

const self = new Uint8Array(randomBytes(20))
const full = new RoutingTable(self, { isLimitExempt: () => true })
for (let b = 0; b < 160; b++) {
  for (let i = 0; i < 20; i++)
    full.add({ id: randomIdInBucket(self, b, new Uint8Array(randomBytes(20))), address: `n${b}-${i}` })
}
const targets = Array.from({ length: 1024 }, () => new Uint8Array(randomBytes(20)))
const CLOSEST_OPS = 200_000
let t = performance.now()
for (let i = 0; i < CLOSEST_OPS; i++) full.closest(targets[i & 1023]!, 20)
const closestOpsPerSec = CLOSEST_OPS / ((performance.now() - t) / 1000)

const ADD_OPS = 200_000
const contacts = Array.from({ length: ADD_OPS }, (_, i) => ({
  id: new Uint8Array(randomBytes(20)),
  address: `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.1:4000`,
}))
const table = new RoutingTable(self)
t = performance.now()
for (const c of contacts) table.add(c)
const addOpsPerSec = ADD_OPS / ((performance.now() - t) / 1000)

const rows = [
  { op: `closest(target, 20), ${full.size} contacts`, opsPerSec: Math.round(closestOpsPerSec) },
  { op: 'add (random contacts, IP limits on)', opsPerSec: Math.round(addOpsPerSec) },
]
console.table(rows)
console.log(
  JSON.stringify({
    tableSize: full.size,
    closestOpsPerSec: Math.round(closestOpsPerSec),
    addOpsPerSec: Math.round(addOpsPerSec),
  }),
)
