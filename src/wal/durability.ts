import { type Durability, StorageFailedError } from '../durability.js'
import { I32, I64, type Views, walStateFailed, walStateReadOnly } from '../store/layout.js'

// The handler threads' side of group commit: each write awaits the durable sequence number the
// WAL writer publishes in the shared buffer. One Atomics.waitAsync per thread watches the word,
// however many requests wait, and settles every waiter the new value covers.

/** Below main.ts's fail-stop grace, so a waiter whose wake-up raced a failure still hears 503. */
const recheckMs = 100

interface Waiter {
  sequence: number
  resolve: () => void
  reject: (error: Error) => void
}

export function logDurability(views: Views): Durability {
  const words = views.headerI64
  const header = views.headerI32
  const durable = () => Number(Atomics.load(words, I64.durableSequence))
  const failed = () => Atomics.load(header, I32.walState) === walStateFailed
  let waiters: Waiter[] = []
  let watching = false

  const settle = () => {
    const sequence = durable()
    const isFailed = failed()
    const pending: Waiter[] = []
    for (const waiter of waiters) {
      // A write the log made durable before it failed is acknowledged all the same.
      if (waiter.sequence <= sequence) waiter.resolve()
      else if (isFailed) waiter.reject(new StorageFailedError())
      else pending.push(waiter)
    }
    waiters = pending
  }

  const watch = () => {
    if (watching) return
    // Read the word, then settle against it: a publish after this read changes the word, and
    // waitAsync below then returns at once instead of sleeping through it.
    const seen = durable()
    settle()
    if (waiters.length === 0) return
    watching = true
    // Resolves when the writer notifies after publishing (or failing). The timeout only bounds
    // a failure notice that raced this call: the state word is not the one waited on.
    const wait = Atomics.waitAsync(words, I64.durableSequence, BigInt(seen), recheckMs)
    const rearm = () => {
      watching = false
      watch()
    }
    if (wait.async) void wait.value.then(rearm)
    else queueMicrotask(rearm)
  }

  return {
    waitFor(sequence) {
      if (durable() >= sequence) return undefined
      if (failed()) return Promise.reject(new StorageFailedError())
      return new Promise<void>((resolve, reject) => {
        waiters.push({ sequence, resolve, reject })
        watch()
      })
    },
    durableSequence: durable,
    refusal() {
      const state = Atomics.load(header, I32.walState)
      if (state === walStateFailed) return 'storage_failed'
      if (state === walStateReadOnly) return 'storage_full'
      return undefined
    },
    announceLogRoomWait() {
      const wake = Atomics.load(header, I32.walSpaceWake)
      // The writer bumps walSpaceWake after it frees ring space whenever this flag is set (and
      // when it fails); the caller tries again after this store, so either that try sees the
      // space or the writer sees the flag. Waiting on the value read above then returns at once.
      Atomics.store(header, I32.walSpaceWaiting, 1)
      // The timeout bounds only a wake-up lost to a bug, or a state change nobody notified.
      const wait = Atomics.waitAsync(header, I32.walSpaceWake, wake, recheckMs)
      return wait.async ? wait.value.then(() => undefined) : Promise.resolve()
    },
  }
}
