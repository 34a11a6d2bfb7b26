import { describe, expect, it } from 'vitest'
import { I32 } from '../../../src/store/layout.js'
import { Store } from '../../../src/store/store.js'
import { attachLoggedStore } from '../../../src/wal/logged-store.js'

// How a thread's changes reach the WAL writer: every change goes into the ring under the store
// lock, and a sleeping writer is woken once per lock hold, after the lock is released (a wake
// is a system call; made under the lock, it held every other thread up for as long).

function loggedStore() {
  const base = Store.create({
    limits: { entryCountMax: 100, memorySizeMax: 10_000, keySizeMax: 16, valueSizeMax: 100 },
  })
  const { store } = attachLoggedStore(base.buffer)
  const header = base.views.headerI32
  const wakes = () => Atomics.load(header, I32.walWriterWake)
  const setWriterAsleep = (asleep: boolean) =>
    Atomics.store(header, I32.walWriterSleeping, asleep ? 1 : 0)
  return { store, wakes, setWriterAsleep }
}

const value = new Uint8Array(10)

describe('a logged store', () => {
  it('wakes a sleeping writer once per lock hold, only after releasing the lock', () => {
    const { store, wakes, setWriterAsleep } = loggedStore()
    setWriterAsleep(true)
    const before = wakes()
    const seenInside: number[] = []
    store.atomically((transaction) => {
      for (const key of ['a', 'b', 'c']) {
        transaction.set(key, value)
        seenInside.push(wakes())
      }
    })
    // Three records in one hold: no wake while the lock was held, one after it.
    expect(seenInside).toEqual([before, before, before])
    expect(wakes()).toBe(before + 1)
    store.set('d', value)
    expect(wakes()).toBe(before + 2)
  })

  it('makes no system call for a writer that is awake, or a hold that changed nothing', () => {
    const { store, wakes, setWriterAsleep } = loggedStore()
    const before = wakes()
    store.set('a', value)
    expect(wakes()).toBe(before)
    setWriterAsleep(true)
    store.get('a')
    store.get('missing')
    expect(wakes()).toBe(before)
    // What an awake writer's append left behind does not wake it later for nothing.
    store.set('b', value)
    expect(wakes()).toBe(before + 1)
    store.get('b')
    expect(wakes()).toBe(before + 1)
  })
})
