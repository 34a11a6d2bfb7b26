import { describe, expect, it } from 'vitest'
import { Mutex, wonAtOnce } from '../../../src/store/lock.js'

// The lock under real contention is exercised by test/concurrency; these pin its states.
describe('mutex', () => {
  it('moves the word from free to held and back', () => {
    const words = new Int32Array(new SharedArrayBuffer(8))
    const mutex = new Mutex(words, 1)
    mutex.lock()
    expect(words[1]).toBe(1)
    expect(mutex.isLocked()).toBe(true)
    mutex.unlock()
    expect(words[1]).toBe(0)
    expect(mutex.isLocked()).toBe(false)
  })

  it('releases fully when a waiter announced itself', () => {
    const words = new Int32Array(new SharedArrayBuffer(8))
    const mutex = new Mutex(words, 0)
    mutex.lock()
    Atomics.store(words, 0, 2) // What a sleeping waiter leaves behind.
    mutex.unlock()
    expect(words[0]).toBe(0)
  })

  it('is seen as held through a second handle on the same word', () => {
    const words = new Int32Array(new SharedArrayBuffer(8))
    const first = new Mutex(words, 0)
    const second = new Mutex(words, 0)
    first.lock()
    expect(second.isLocked()).toBe(true)
    first.unlock()
    second.lock()
    expect(first.isLocked()).toBe(true)
    second.unlock()
  })

  it('says it won at once when the lock was free (contention: lock-stats.test.ts)', () => {
    const words = new Int32Array(new SharedArrayBuffer(8))
    const mutex = new Mutex(words, 0)
    expect(mutex.lock()).toBe(wonAtOnce)
    mutex.unlock()
  })
})
