import { parentPort, workerData } from 'node:worker_threads'
import { type CountTask, runCount } from './count.js'
import { type HammerTask, runHammer } from './hammer.js'

// Worker entry for store-threads.test.ts: runs one task against the shared buffer and posts its
// report. Worker threads run compiled JavaScript, as the server's do: the test starts the copy
// in dist/.

export type WorkerTask = HammerTask | CountTask

export interface WorkerData {
  task: WorkerTask
  /** One Int32 word the main thread sets to 1 to ask every thread to stop early. */
  stop: SharedArrayBuffer
}

const { task, stop } = workerData as WorkerData
const stopWord = new Int32Array(stop)
// A plain atomic load between operations; the flag is set once and never cleared.
const stopped = () => Atomics.load(stopWord, 0) !== 0
const report = task.kind === 'hammer' ? runHammer(task, stopped) : runCount(task, stopped)
parentPort?.postMessage(report)
