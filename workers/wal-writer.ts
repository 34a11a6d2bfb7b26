import { parentPort, workerData } from 'node:worker_threads'
import { I32 } from '../src/store/layout.js'
import { Store } from '../src/store/store.js'
import { WalRing } from '../src/wal/ring.js'
import { realStorage } from '../src/wal/storage.js'
import { type FsyncMode, WalWriter } from '../src/wal/writer.js'

// The WAL writer thread (not a Piscina task: it lives as long as the server). It is the only
// thread that touches log and snapshot files. It loops synchronously: drain, write, sync,
// publish; then sleeps on the ring's wake word until a producer appends or something is due.
// It never returns to its event loop until stopped, so it talks to the main thread only through
// the shared buffer and postMessage (which needs no event loop on the sending side).

export interface WalWriterData {
  buffer: SharedArrayBuffer
  dir: string
  fsync: FsyncMode
  segmentSizeMax: number
  snapshotLogSizeMin: number
  noSpaceRetryMs: number
  historySizeRetained: number
  logSizeSinceSnapshot: number
}

export type WalWriterMessage =
  | { type: 'ready' }
  | { type: 'event'; message: string; fields: Record<string, unknown> }
  | { type: 'stopped' }

const data = workerData as WalWriterData
const store = Store.attach(data.buffer)
const ring = new WalRing(store.views)
const post = (message: WalWriterMessage) => parentPort?.postMessage(message)
const writer = new WalWriter(
  store,
  ring,
  {
    storage: realStorage,
    dir: data.dir,
    fsync: data.fsync,
    segmentSizeMax: data.segmentSizeMax,
    snapshotLogSizeMin: data.snapshotLogSizeMin,
    noSpaceRetryMs: data.noSpaceRetryMs,
    historySizeRetained: data.historySizeRetained,
    onEvent: (message, fields) => post({ type: 'event', message, fields }),
  },
  data.logSizeSinceSnapshot,
)
writer.open()
post({ type: 'ready' })
const header = store.views.headerI32
// An exception here (a failed sync, a broken invariant) ends the thread with an 'error' event;
// the main thread exits the process and recovery takes over on the next start.
while (Atomics.load(header, I32.walStop) === 0) {
  if (!writer.step()) ring.waitForRecords(writer.idleTimeoutMs(), writer.readOnly)
}
writer.close()
post({ type: 'stopped' })
