import { parentPort, workerData } from 'node:worker_threads'
import { attachViews } from '../../src/store/layout.js'
import { WalRing } from '../../src/wal/ring.js'
import { ringRecords } from './ring-records.js'

// Worker entry for test/unit/wal-ring.test.ts: appends a seeded stream of records to the ring
// in the shared buffer, counting each append in a shared word, so the test can see it block
// while the ring is full. Node 20 workers cannot load TypeScript: the test starts the copy in
// dist/.

export interface RingProducerData {
  buffer: SharedArrayBuffer
  /** One Int32 word: how many records were appended so far. */
  progress: SharedArrayBuffer
  seed: number
  count: number
}

const data = workerData as RingProducerData
const views = attachViews(data.buffer)
const ring = new WalRing(views)
const progress = new Int32Array(data.progress)
const records = ringRecords(data.seed, data.count, views.layout.limits)
for (const [i, record] of records.entries()) {
  ring.append(record)
  // Published after the append returns: the test reads it to see the producer blocked.
  Atomics.store(progress, 0, i + 1)
}
parentPort?.postMessage('done')
