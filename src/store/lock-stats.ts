import type { HowWon } from './lock.js'

// The store lock's counters, per operation: how often it was taken, how often it was found held
// (and how often the taker went to sleep for it), and how long takers waited for it and held it.
// They live in the shared buffer (layout.ts's lockStats region), and every one of them is
// written by the thread that holds the lock, while it holds it: no update is lost, whatever the
// number of threads, and no atomic instruction is needed. /metrics exports them
// (src/http/routes/ops.ts); docs/performance.md builds a throughput model from them.
//
// Reading a clock costs about 40 ns (performance.now, Node 24), a tenth of a get's hold, so the
// times are sampled: each thread times about one acquisition in `timingEvery`, at pseudo-random
// intervals (so no periodic pattern of requests aliases with the sampling), and adds each timed
// wait and hold multiplied by `timingEvery`. The sums are unbiased estimates of the totals and
// never decrease. The counts are exact.

/** The operations that take the lock, in the order of their counters in the region. */
export const lockOperations = [
  'get',
  'peek',
  'set',
  'delete',
  'peek_version',
  'transaction',
  'scan',
  'sweep',
  'clear',
  'stats',
  'replay',
  'snapshot',
  'walk',
] as const
export type LockOperation = (typeof lockOperations)[number]

/** An operation's counters, and their positions from its first one. */
const acquisitions = 0
const contended = 1
const slept = 2
const waitSeconds = 3
const holdSeconds = 4
const fieldCount = 5

/** f64 words the region holds: five counters per operation. */
export const lockStatsLength = lockOperations.length * fieldCount

/** The first counter of each operation, by name: what Store passes to the meter. */
export const lockOp = Object.fromEntries(
  lockOperations.map((name, index) => [name, index * fieldCount]),
) as Record<LockOperation, number>

/** One acquisition in this many is timed, on average. */
export const lockTimingEveryDefault = 16

export interface LockMeterOptions {
  /** Milliseconds, as performance.now(); injectable so tests can move time. */
  clock?: () => number
  /** Time about one acquisition in this many; 1 times every one. */
  timingEvery?: number
}

const performanceNow = () => performance.now()

/** One thread's side of the counters: what Store calls around each hold of the lock. */
export class LockMeter {
  readonly #stats: Float64Array
  readonly #clock: () => number
  readonly #every: number
  /** Seconds per timed millisecond: every timed interval stands for `every` of them. */
  readonly #scale: number
  #countdown: number
  #random: number
  /** The held operation's first counter. */
  #op = 0
  /** When this hold began, if it is timed; negative otherwise. */
  #heldSince = -1

  constructor(stats: Float64Array, options: LockMeterOptions = {}) {
    this.#stats = stats
    this.#clock = options.clock ?? performanceNow
    this.#every = options.timingEvery ?? lockTimingEveryDefault
    this.#scale = this.#every / 1000
    this.#random = (Math.random() * 2 ** 31) | 1
    this.#countdown = this.#interval()
  }

  /** Before lock(): the time, if this acquisition is to be timed; -1 otherwise. */
  beforeLock(): number {
    if (--this.#countdown > 0) return -1
    this.#countdown = this.#interval()
    return this.#clock()
  }

  /** Right after the lock is won (pass -1 and wonAtOnce for a tryLock that won). */
  acquired(op: number, how: HowWon, startedAt: number): void {
    const stats = this.#stats
    this.#op = op
    stats[op + acquisitions]! += 1
    if (how !== 0) {
      stats[op + contended]! += 1
      if (how === 2) stats[op + slept]! += 1
    }
    if (startedAt < 0) {
      this.#heldSince = -1
      return
    }
    const now = this.#clock()
    stats[op + waitSeconds]! += (now - startedAt) * this.#scale
    this.#heldSince = now
  }

  /** For a tryLock() that won: times the hold like lock()'s one time in `every`. */
  acquiredAtOnce(op: number): void {
    this.acquired(op, 0, this.beforeLock())
  }

  /** Right before unlock(), still holding the lock. */
  releasing(): void {
    if (this.#heldSince < 0) return
    const stats = this.#stats
    stats[this.#op + holdSeconds]! += (this.#clock() - this.#heldSince) * this.#scale
    this.#heldSince = -1
  }

  /** 1 to 2 × every - 1, uniformly (xorshift32): a mean of `every`. */
  #interval(): number {
    if (this.#every === 1) return 1
    let x = this.#random
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#random = x
    return 1 + ((x >>> 0) % (2 * this.#every - 1))
  }
}

export interface LockOperationStats {
  operation: LockOperation
  acquisitions: number
  /** Acquisitions that found the lock held. */
  contended: number
  /** Of those, the ones that went to sleep on it. */
  slept: number
  waitSeconds: number
  holdSeconds: number
}

/** Every operation that has taken the lock at least once, with its counters. */
export function readLockStats(stats: Float64Array): LockOperationStats[] {
  const result: LockOperationStats[] = []
  lockOperations.forEach((operation, index) => {
    const at = index * fieldCount
    if (stats[at + acquisitions] === 0) return
    result.push({
      operation,
      acquisitions: stats[at + acquisitions]!,
      contended: stats[at + contended]!,
      slept: stats[at + slept]!,
      waitSeconds: stats[at + waitSeconds]!,
      holdSeconds: stats[at + holdSeconds]!,
    })
  })
  return result
}
