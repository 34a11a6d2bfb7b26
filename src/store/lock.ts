// The Atomics mutex that serializes every access to the store's structures, from any thread.
//
// The lock word is 0 (free), 1 (held) or 2 (held, and someone may sleep on it). The third
// state lets unlock() skip Atomics.notify() when nobody waits, so an uncontended lock/unlock
// pair is two atomic read-modify-writes and no system call (Drepper, "Futexes Are Tricky",
// mutex take 2).
//
// Every critical section in slabkv is a few hundred nanoseconds of synchronous work, never an
// await, so a waiter first spins briefly (the holder is almost always about to release) and
// then sleeps in Atomics.wait rather than burning a core the holder might need.

const free = 0
const held = 1
const contended = 2

/** Spins before sleeping: long enough to cover a typical critical section, short enough not to hog a core. */
const spinCountMax = 64

/** How lock() got the lock, for the lock's counters (lock-stats.ts). */
export const wonAtOnce = 0
/** Found it held, and won it while spinning. */
export const wonSpinning = 1
/** Found it held, and went to Atomics.wait at least once (a futex wait, unless woken at once). */
export const wonAfterSleeping = 2
export type HowWon = typeof wonAtOnce | typeof wonSpinning | typeof wonAfterSleeping

export class Mutex {
  readonly #words: Int32Array
  readonly #index: number

  constructor(words: Int32Array, index: number) {
    this.#words = words
    this.#index = index
  }

  /** Takes the lock, waiting as long as it takes; says whether it had to spin or sleep. */
  lock(): HowWon {
    const words = this.#words
    const index = this.#index
    // compareExchange is a full barrier: the holder's writes to the buffer happen-before ours.
    let state = Atomics.compareExchange(words, index, free, held)
    if (state === free) return wonAtOnce
    for (let spin = 0; spin < spinCountMax; spin++) {
      // A plain atomic load while spinning, so the cache line is not written until it can be won.
      if (Atomics.load(words, index) === free) {
        state = Atomics.compareExchange(words, index, free, held)
        if (state === free) return wonSpinning
      }
    }
    // Announce a sleeper by setting 2, so the holder's unlock() knows to notify. Whoever wins the
    // lock from here on takes it as 2: it cannot know whether other sleepers remain.
    if (state !== contended) state = Atomics.exchange(words, index, contended)
    if (state === free) return wonSpinning
    do {
      // Sleeps only while the word is still 2; a concurrent unlock() makes this return at once.
      Atomics.wait(words, index, contended)
      state = Atomics.exchange(words, index, contended)
    } while (state !== free)
    return wonAfterSleeping
  }

  /** Takes the lock only if it is free at once; never waits. */
  tryLock(): boolean {
    // The same full barrier as lock() when it wins.
    return Atomics.compareExchange(this.#words, this.#index, free, held) === free
  }

  unlock(): void {
    // sub is a full barrier: our writes to the buffer happen-before the next holder's reads.
    if (Atomics.sub(this.#words, this.#index, 1) !== held) {
      // It was 2: somebody may be asleep. Release fully, then wake one sleeper.
      Atomics.store(this.#words, this.#index, free)
      Atomics.notify(this.#words, this.#index, 1)
    }
  }

  /** True when some thread holds the lock; for assertions only (the answer is stale at once). */
  isLocked(): boolean {
    return Atomics.load(this.#words, this.#index) !== free
  }
}
