import { Worker } from 'node:worker_threads'
import type { WalWriterData, WalWriterMessage } from '../../workers/wal-writer.js'
import { attachViews, I32 } from '../store/layout.js'
import { Mutex } from '../store/lock.js'
import { WalRing } from './ring.js'
import { markLogFailed } from './writer.js'

// The WAL writer thread, seen from the main thread: starting it, stopping it, and noticing when
// it ends any other way. The thread itself is workers/wal-writer.ts.
//
// The writer's own failure path (a failed sync, a file it cannot create) marks the log failed
// before its thread ends, so pending writes hear 503. A thread can also end without passing
// there: terminated, out of memory, an exception outside step(). Then nobody would ever publish
// a durable sequence again, and writes would wait for it forever. So whatever ends the thread
// other than stop(), this side marks the log failed itself (the same words the writer sets),
// wakes every waiter, and tells the caller, which ends the process: recovery on the next start
// decides from what is on disk.

export interface WalWriterThread {
  /** Makes the writer flush and sync everything, whatever the mode, and waits for it. */
  stop(): Promise<void>
  /** The thread, for tests that end it the way a crash would. */
  readonly worker: Worker
}

export interface WalWriterThreadOptions extends WalWriterData {
  onEvent(message: string, fields: Record<string, unknown>): void
  /** The thread ended without stop(): the log is already marked failed when this runs. */
  onDeath(cause: { error?: Error; exitCode?: number }): void
}

/** Starts the thread and waits until its segment is open. */
export async function startWalWriterThread(
  options: WalWriterThreadOptions,
): Promise<WalWriterThread> {
  const { onEvent, onDeath, ...data } = options
  const views = attachViews(data.buffer)
  const worker = new Worker(new URL('../../workers/wal-writer.js', import.meta.url), {
    workerData: data satisfies WalWriterData,
  })
  let stopping = false
  let dead = false
  const die = (cause: { error?: Error; exitCode?: number }) => {
    if (dead) return
    dead = true
    markLogFailed(views)
    // Ended inside its hold of the store lock (its snapshot copy, which only reads the store):
    // nobody else would ever release it, and every thread would wait on it for good.
    if (Atomics.exchange(views.headerI32, I32.walWriterHoldsLock, 0) === 1) {
      new Mutex(views.headerI32, I32.lock).unlock()
    }
    onDeath(cause)
  }
  let ready: () => void = () => {}
  const started = new Promise<void>((resolve, reject) => {
    ready = resolve
    worker.once('error', reject)
    worker.once('exit', (exitCode) => reject(new Error(`the WAL writer exited (${exitCode})`)))
  })
  const stopped = new Promise<void>((resolve, reject) => {
    worker.on('message', (message: WalWriterMessage) => {
      if (message.type === 'ready') ready()
      if (message.type === 'event') onEvent(message.message, message.fields)
      if (message.type === 'stopped') resolve()
    })
    worker.on('error', (error) => {
      die({ error })
      reject(error)
    })
    worker.on('exit', (exitCode) => {
      if (stopping) return
      die({ exitCode })
      reject(new Error(`the WAL writer thread exited unexpectedly (${exitCode})`))
    })
  })
  stopped.catch(() => {}) // Told through onDeath; stop() rethrows.
  await started
  return {
    worker,
    stop: async () => {
      stopping = true
      // The writer reads this word each time around its loop; the wake-up ends its sleep.
      Atomics.store(views.headerI32, I32.walStop, 1)
      new WalRing(views).wakeWriter()
      await stopped
      await worker.terminate()
    },
  }
}
