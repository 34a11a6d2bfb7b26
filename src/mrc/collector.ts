import { accessesDropped, drainAccessRing, setAccessThreshold } from '../store/access-ring.js'
import { F64, type Views } from '../store/layout.js'
import { type CurvePoint, ShardsEstimator } from './shards.js'

// The main thread's side of the miss-ratio curve: it drains the access ring every handler thread
// writes into (src/store/access-ring.ts), feeds the estimator (shards.ts), and tells the
// writers the estimator's threshold, so that keys that left the sample stop being written.

export interface MissRatioCurve {
  readonly points: readonly CurvePoint[]
  readonly sampledKeyCount: number
  /** Gets since `since`, every thread's. */
  readonly accessCount: number
  /** Sampled accesses the full ring dropped since `since`. */
  readonly droppedCount: number
  /** When the curve started (ms since the epoch): the server's start, or the latest reset. */
  readonly since: number
}

/**
 * The sizes the curve is read at: 25 points a quarter of an octave apart, from 1/8× to 8×
 * `memorySizeMax`, which is among them (k = 0). A quarter octave is finer than an operator
 * buys memory, and every point costs one bin.
 */
export function curveSizes(memorySizeMax: number): number[] {
  const sizes: number[] = []
  for (let k = -12; k <= 12; k++) sizes.push(Math.max(1, Math.round(memorySizeMax * 2 ** (k / 4))))
  return [...new Set(sizes)]
}

export interface CollectorOptions {
  readonly sampleKeysMax?: number
  readonly adjust?: boolean
  readonly clock?: () => number
  /**
   * The curve's budget: when the threads sample more accesses than this a second, the rate is
   * lowered to fit, down to sampleKeysMin keys. Default 10,000: at most 4 to 10 ms of the main
   * thread's time a second (0.4 µs per sampled get, 1 µs per set that evicts at every size).
   */
  readonly sampledAccessesPerSecondMax?: number
  /** The fewest keys the budget leaves in the sample. Default 4,096. */
  readonly sampleKeysMin?: number
}

const budgetWindowMs = 1000

export class CurveCollector {
  readonly #views: Views
  readonly #options: CollectorOptions
  readonly #clock: () => number
  #estimator: ShardsEstimator
  #since: number
  #gets: number
  #dropped: number
  #droppedSince: number
  readonly #visit = (sampled: number, code: number): void => this.#estimator.access(sampled, code)
  readonly #accessesPerSecondMax: number
  readonly #sampleKeysMin: number
  /** Sampled accesses drained since #windowStart, for the budget. */
  #windowAccesses = 0
  #windowStart: number

  /** Starts sampling: from here every thread's accesses are written into the ring. */
  constructor(views: Views, options: CollectorOptions = {}) {
    this.#views = views
    this.#options = options
    this.#clock = options.clock ?? Date.now
    this.#accessesPerSecondMax = options.sampledAccessesPerSecondMax ?? 10_000
    this.#sampleKeysMin = options.sampleKeysMin ?? 4096
    this.#estimator = this.#newEstimator()
    this.#since = this.#clock()
    this.#windowStart = this.#since
    this.#gets = this.#getsSoFar()
    this.#dropped = accessesDropped(views)
    this.#droppedSince = this.#dropped
    setAccessThreshold(views, this.#estimator.threshold)
  }

  /** Drains what the threads sampled since the last call. Never waits, takes no lock. */
  drain(): void {
    const estimator = this.#estimator
    // Gets first, at the rate the threads sampled them with; every record of theirs is in the
    // ring by then (a get is counted and sampled under one hold of the lock), and a threshold
    // the draining lowers scales them with the rest.
    const gets = this.#getsSoFar()
    estimator.noteGets(gets - this.#gets)
    this.#gets = gets
    this.#windowAccesses += drainAccessRing(this.#views, this.#visit)
    const dropped = accessesDropped(this.#views)
    if (dropped > this.#dropped) estimator.noteDropped(dropped - this.#dropped)
    this.#windowAccesses += dropped - this.#dropped
    this.#dropped = dropped
    this.#keepToBudget()
    setAccessThreshold(this.#views, estimator.threshold)
  }

  /** Once a second: a rate that sampled more accesses than the budget is lowered to fit it. */
  #keepToBudget(): void {
    const now = this.#clock()
    const elapsedMs = now - this.#windowStart
    if (elapsedMs < budgetWindowMs) return
    const perSecond = (this.#windowAccesses * 1000) / elapsedMs
    if (perSecond > this.#accessesPerSecondMax) {
      const estimator = this.#estimator
      estimator.limitRate(
        (estimator.rate * this.#accessesPerSecondMax) / perSecond,
        this.#sampleKeysMin,
      )
    }
    this.#windowAccesses = 0
    this.#windowStart = now
  }

  /**
   * Starts the curve again from nothing, so that it follows a workload that changed. What the
   * ring holds is from before, and goes.
   */
  reset(): void {
    drainAccessRing(this.#views, () => {})
    this.#estimator = this.#newEstimator()
    this.#since = this.#clock()
    this.#windowStart = this.#since
    this.#windowAccesses = 0
    this.#gets = this.#getsSoFar()
    this.#droppedSince = this.#dropped = accessesDropped(this.#views)
    setAccessThreshold(this.#views, this.#estimator.threshold)
  }

  /** Stops sampling: the threads' cost goes back to one comparison per access. */
  stop(): void {
    setAccessThreshold(this.#views, 0)
  }

  curve(): MissRatioCurve {
    const estimator = this.#estimator
    return {
      points: estimator.curve(),
      sampledKeyCount: estimator.sampledKeyCount,
      accessCount: estimator.accessCount,
      droppedCount: this.#dropped - this.#droppedSince,
      since: this.#since,
    }
  }

  #newEstimator(): ShardsEstimator {
    const storeMemorySize = this.#views.headerF64[F64.memorySizeMax]!
    return new ShardsEstimator({
      memorySizes: curveSizes(storeMemorySize),
      storeMemorySize,
      sampleKeysMax: this.#options.sampleKeysMax,
      adjust: this.#options.adjust,
    })
  }

  #getsSoFar(): number {
    const f64 = this.#views.headerF64
    return f64[F64.hits]! + f64[F64.misses]!
  }
}
