import { Store } from '../../src/store/store.js'
import type { StoreTransaction } from '../../src/store/types.js'
import { prng } from '../support/random.js'
import { decodeCount, encodeCount, errorLog } from './workload.js'

// What one counting thread does: increments counters a known number of times, so the main
// thread can demand exact totals. Nothing here knows it runs in a worker; hammer-worker.ts is
// the entry.

export interface CountTask {
  kind: 'count'
  buffer: SharedArrayBuffer
  thread: number
  seed: number
  /** Increments of each of the three kinds: own counter, shared counter, shared CAS counter. */
  incrementCount: number
  ownCounterCount: number
  /**
   * False plants the classic bug for the canary: the get and the set of the shared counter run
   * as two calls, so another thread's increment can land between them and be lost.
   */
  atomic: boolean
}

export interface CountReport {
  thread: number
  casRetries: number
  errorCount: number
  errors: string[]
}

export const ownCounterKey = (thread: number, i: number) => `counter:${thread}:${i}`
export const sharedCounterKey = 'counter:shared'
export const casCounterKey = 'counter:shared:cas'

/**
 * Increments counters that already exist (the main thread creates them at 0) in three ways: a
 * get+set of the thread's own counters inside atomically(), the same on one counter all threads
 * share, and an optimistic peek + set(ifVersion) retry loop on another shared counter.
 * `stopped` is asked between increments: true ends the run early, outside the lock.
 */
export function runCount(task: CountTask, stopped: () => boolean = () => false): CountReport {
  const { thread } = task
  const log = errorLog(thread)
  const random = prng(task.seed)
  const store = Store.attach(task.buffer)
  let casRetries = 0

  const increment = (tx: Pick<StoreTransaction, 'get' | 'peek' | 'set'>, key: string) => {
    // get (which also moves the key to the front) or peek: either must see the last write.
    const entry = random() < 0.5 ? tx.get(key) : tx.peek(key)
    if (entry === undefined) {
      log.fail(`${key} vanished`)
      return
    }
    const result = tx.set(key, encodeCount(decodeCount(entry.value) + 1))
    if (!result.ok) log.fail(`set ${key}: ${result.code}`)
  }
  const incrementAtomically = (key: string) => store.atomically((tx) => increment(tx, key))

  for (let i = 0; i < task.incrementCount && !stopped(); i++) {
    incrementAtomically(ownCounterKey(thread, i % task.ownCounterCount))
    // The store itself has the transaction's shape; using it directly makes two lock holds.
    if (task.atomic) incrementAtomically(sharedCounterKey)
    else increment(store, sharedCounterKey)
    for (;;) {
      const entry = store.peek(casCounterKey)
      if (entry === undefined) {
        log.fail(`${casCounterKey} vanished`)
        break
      }
      const value = encodeCount(decodeCount(entry.value) + 1)
      const result = store.set(casCounterKey, value, { ifVersion: entry.version })
      if (result.ok) break
      if (result.code !== 'version_mismatch') {
        log.fail(`set ${casCounterKey}: ${result.code}`)
        break
      }
      casRetries++
    }
  }
  return { thread, casRetries, errorCount: log.count, errors: log.errors }
}
