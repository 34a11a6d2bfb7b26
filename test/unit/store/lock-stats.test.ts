import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { I32 } from '../../../src/store/layout.js'
import { type LockOperationStats, lockOperations } from '../../../src/store/lock-stats.js'
import { Store } from '../../../src/store/store.js'
import type { CreateStoreOptions } from '../../../src/store/types.js'

// The store lock's counters (src/store/lock-stats.ts): what each operation counts, the times
// under a clock the test moves, the sampling's estimate, and contention from a real thread.

const value = new TextEncoder().encode('value')
const limits = { entryCountMax: 64, memorySizeMax: 10_000, keySizeMax: 16, valueSizeMax: 100 }

function makeStore(options: CreateStoreOptions = {}) {
  return Store.create({ limits, hashSeed: 1, ...options })
}

/** The counters of one operation, read without taking the lock (so without counting a read). */
function countersOf(store: Store, operation: string): LockOperationStats | undefined {
  const index = lockOperations.indexOf(operation as (typeof lockOperations)[number])
  const at = index * 5
  const s = store.views.lockStats
  if (s[at] === 0) return undefined
  return {
    operation: operation as LockOperationStats['operation'],
    acquisitions: s[at]!,
    contended: s[at + 1]!,
    slept: s[at + 2]!,
    waitSeconds: s[at + 3]!,
    holdSeconds: s[at + 4]!,
  }
}

describe('the store lock counters', () => {
  it('count every acquisition under the operation that took the lock', () => {
    const store = makeStore()
    for (let i = 0; i < 3; i++) store.set(`k${i}`, value)
    store.get('k0')
    store.get('absent')
    store.peek('k1')
    store.peekVersion('k1')
    store.delete('k2')
    store.atomically((tx) => tx.get('k0'))
    store.scan('', 0, 10)
    store.sweep(10)
    expect(store.trySweep(10)).toBe(0)
    store.stats()
    const counts = Object.fromEntries(store.lockStats().map((s) => [s.operation, s.acquisitions]))
    // lockStats() counts itself, as a stats read, before it reads.
    expect(counts).toEqual({
      get: 2,
      peek: 1,
      set: 3,
      delete: 1,
      peek_version: 1,
      transaction: 1,
      scan: 1,
      sweep: 2,
      stats: 2,
    })
    for (const s of store.lockStats()) expect([s.contended, s.slept]).toEqual([0, 0])
  })

  it('time the wait before and the hold inside each acquisition, with a clock the test moves', () => {
    let now = 1000
    const store = makeStore({ lockMeter: { clock: () => now, timingEvery: 1 } })
    store.atomically(() => {
      now += 5 // 5 ms inside the lock
    })
    store.atomically(() => {
      now += 2
    })
    store.set('a', value)
    const transaction = countersOf(store, 'transaction')!
    expect(transaction.acquisitions).toBe(2)
    expect(transaction.holdSeconds).toBeCloseTo(0.007, 12)
    expect(transaction.waitSeconds).toBe(0)
    expect(countersOf(store, 'set')).toMatchObject({ acquisitions: 1, holdSeconds: 0 })
  })

  it('estimate the totals from about one acquisition in 16, each scaled by 16', () => {
    // Every clock read moves time by 1 ms: a timed acquisition waits 1 ms and holds 1 ms.
    let now = 0
    const store = makeStore({ lockMeter: { clock: () => ++now, timingEvery: 16 } })
    store.set('a', value)
    const gets = 32_000
    for (let i = 0; i < gets; i++) store.get('a')
    const get = countersOf(store, 'get')!
    expect(get.acquisitions).toBe(gets)
    // About 2,000 timed of 32,000: the estimate is within a few percent (8% is 6 deviations).
    expect(get.waitSeconds / (gets / 1000)).toBeGreaterThan(0.92)
    expect(get.waitSeconds / (gets / 1000)).toBeLessThan(1.08)
    expect(get.holdSeconds).toBe(get.waitSeconds)
  })

  it('sum every handle on the buffer, as threads attached to it do', () => {
    const first = makeStore()
    const second = Store.attach(first.buffer)
    first.set('a', value)
    second.set('b', value)
    second.get('a')
    expect(countersOf(first, 'set')!.acquisitions).toBe(2)
    expect(countersOf(second, 'get')!.acquisitions).toBe(1)
  })

  it('count a wait for a lock another thread holds as contended and slept, with its time', async () => {
    const store = makeStore({ lockMeter: { timingEvery: 1 } })
    store.set('a', value)
    const lockIndex = store.views.headerI32.byteOffset / 4 + I32.lock
    // Another thread takes the lock word as Mutex does, holds it 200 ms, and releases it.
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads')
       const words = new Int32Array(workerData.buffer)
       const i = workerData.lockIndex
       while (Atomics.compareExchange(words, i, 0, 1) !== 0) {}
       parentPort.postMessage('held')
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200)
       if (Atomics.sub(words, i, 1) !== 1) { Atomics.store(words, i, 0); Atomics.notify(words, i, 1) }`,
      { eval: true, workerData: { buffer: store.buffer, lockIndex } },
    )
    await new Promise((resolve) => worker.once('message', resolve))
    expect(store.get('a')).toBeDefined()
    await worker.terminate()
    const get = countersOf(store, 'get')!
    expect(get).toMatchObject({ acquisitions: 1, contended: 1, slept: 1 })
    expect(get.waitSeconds).toBeGreaterThan(0.1)
    expect(get.waitSeconds).toBeLessThan(5)
    expect(get.holdSeconds).toBeLessThan(get.waitSeconds)
  })
})
