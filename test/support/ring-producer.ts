import { parentPort, workerData } from 'node:worker_threads'
import { attachViews, I32 } from '../../src/store/layout.js'
import { encodedSize } from '../../src/wal/record.js'
import { WalRing } from '../../src/wal/ring.js'
import { ringRecords } from './ring-records.js'

// Worker entry for test/unit/wal/ring.test.ts: appends a seeded stream of records to the ring
// in the shared buffer, counting each append in a shared word, so the test can see it stop while
// the ring is full. It asks hasRoom() before each append, as the store does, and waits for room
// the way a request does (src/wal/durability.ts), only synchronously: announce, look again, then
// sleep on walSpaceWake until the writer's release wakes it. Node 20 workers cannot load
// TypeScript: the test starts the copy in dist/.

export interface RingProducerData {
  buffer: SharedArrayBuffer
  /** Two Int32 words: how many records were appended so far, and how many waits for room. */
  progress: SharedArrayBuffer
  seed: number
  count: number
}

const data = workerData as RingProducerData
const views = attachViews(data.buffer)
const ring = new WalRing(views)
const progress = new Int32Array(data.progress)
const records = ringRecords(data.seed, data.count, views.layout.limits)
const header = views.headerI32
for (const [i, record] of records.entries()) {
  const size = encodedSize(record)
  while (!ring.hasRoom(size, size)) {
    const wake = Atomics.load(header, I32.walSpaceWake)
    Atomics.store(header, I32.walSpaceWaiting, 1)
    if (ring.hasRoom(size, size)) break
    Atomics.add(progress, 1, 1)
    // Bounded only so that a lost wake-up shows as a slow test, not a hung one.
    Atomics.wait(header, I32.walSpaceWake, wake, 1000)
  }
  ring.append(record)
  ring.wakeWriterIfAppended()
  // Published after the append returns: the test reads it to see the producer blocked.
  Atomics.store(progress, 0, i + 1)
}
parentPort?.postMessage('done')
