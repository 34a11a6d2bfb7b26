import assert from 'node:assert/strict'
import { accessClear, accessRemoval, thresholdAll } from '../store/access-ring.js'
import { KeySample } from './key-sample.js'
import { MiniCaches } from './mini-caches.js'

// The miss-ratio curve of slabkv's byte-limited LRU, estimated from sampled accesses: SHARDS's
// fixed-size sample of keys (key-sample.ts) replayed through one miniature LRU per size
// (mini-caches.ts), each with that size × the sampling rate of room. A get of a sampled key hits
// at the sizes whose cache holds it; a set enters it everywhere it fits; a delete, an expiry or a
// clear takes it out. The hit ratio, as the store's own, is of gets. Evictions are not seen:
// each miniature cache evicts by itself.
//
// What the records cannot say is what a client does after a get that would have missed at
// some other size but that the store found: a cache-aside client sets the key (a smaller store
// would hold it again), a plain reader does not. So the estimator watches what clients do after
// the store's own misses: how much likelier a set of the key is right after a miss than right
// after a hit. That excess is the share of misses clients refill; each get the store found and a
// miniature cache did not is followed there by the client's set with that probability (one
// draw per get, the same for every size, as it is one client's choice).
//
// When the rate drops (a new key made the sample too big), the counts so far are scaled to the
// new rate, so that old and new samples weigh the same, and the caches shrink to their new room.
//
// SHARDS_adj: a rate r sample should see r × (every get) sampled gets; a very hot key in or out
// of the sample makes it see more or fewer. The difference is added as hits at every size (the
// hot key's hits are), which the SHARDS paper shows removes most of the error of small samples.

export interface ShardsOptions {
  /** The cache sizes (bytes, ascending) the curve is read at. */
  readonly memorySizes: readonly number[]
  /**
   * The size the store runs at. A sampled key the curve has not seen yet (it was set before
   * the curve started) that the store finds counts as a hit at this size and larger, and is
   * held there from then on. Default: the smallest size.
   */
  readonly storeMemorySize?: number
  /** The most keys the sample holds. Default 8,192. */
  readonly sampleKeysMax?: number
  /** SHARDS_adj (default on). */
  readonly adjust?: boolean
  /** The share of missed gets clients follow with a set. Default: measured, as above. */
  readonly refillShare?: number
}

const latestOther = 0
const latestFound = 1
const latestMissed = 2

export interface CurvePoint {
  readonly memorySize: number
  readonly hitRatio: number
}

export class ShardsEstimator {
  readonly memorySizes: readonly number[]
  readonly #sample: KeySample
  readonly #caches: MiniCaches
  /** The first cache at least as large as the store: where unseen keys the store finds go. */
  readonly #storeCache: number
  readonly #adjust: boolean
  /** 1 once the curve has seen the slot's key set, found, deleted or cleared. */
  readonly #known: Uint8Array
  /** What the slot's latest record was, for the refill share: a found get, a missed one, other. */
  readonly #latest: Uint8Array
  readonly #refillShare: number | undefined
  /** Records that came right after a found get / a missed get, and how many of them were sets. */
  #afterFound = 0
  #setsAfterFound = 0
  #afterMissed = 0
  #setsAfterMissed = 0
  /** xorshift32's state: the draws of refills, the same for every run. */
  #random = 0x2545f491
  /** Sampled gets that hit in each cache. */
  readonly #hits: Float64Array
  #sampledGets = 0
  #sampledRecords = 0
  /** What the rate predicts the sample sees (SHARDS_adj), and whether anyone said (noteGets). */
  #expectedGets = 0
  #getsNoted = false
  #getCount = 0

  constructor(options: ShardsOptions) {
    const sizes = options.memorySizes
    assert(sizes.length > 0, 'a curve needs a size')
    for (let i = 1; i < sizes.length; i++) assert(sizes[i - 1]! < sizes[i]!, 'sizes must ascend')
    this.memorySizes = [...sizes]
    this.#adjust = options.adjust ?? true
    this.#sample = new KeySample(options.sampleKeysMax ?? 8192)
    this.#caches = new MiniCaches(this.#sample.slotCount, this.memorySizes)
    const storeSize = options.storeMemorySize ?? 0
    const storeCache = sizes.findIndex((size) => size >= storeSize)
    this.#storeCache = storeCache < 0 ? sizes.length : storeCache
    this.#known = new Uint8Array(this.#sample.slotCount)
    this.#latest = new Uint8Array(this.#sample.slotCount)
    this.#refillShare = options.refillShare
    this.#hits = new Float64Array(sizes.length)
  }

  /** Accesses are kept when their sampling hash is below this; it only ever drops. */
  get threshold(): number {
    return this.#sample.threshold
  }

  get rate(): number {
    return this.#sample.rate
  }

  get sampleKeysMax(): number {
    return this.#sample.keysMax
  }

  get sampledKeyCount(): number {
    return this.#sample.count
  }

  /** Gets noted (noteGets), or sampled when nobody notes them. */
  get accessCount(): number {
    return this.#getsNoted ? this.#getCount : this.#sampledGets
  }

  /** Every byte it holds: typed arrays of sizes fixed at construction. */
  get byteLength(): number {
    return (
      this.#sample.byteLength +
      this.#caches.byteLength +
      this.#known.byteLength +
      this.#latest.byteLength +
      this.#hits.byteLength
    )
  }

  /**
   * `count` gets happened, sampled or not (the store's hits plus misses): what SHARDS_adj
   * compares the sample with. Without any, the curve is the sample's alone.
   */
  noteGets(count: number): void {
    this.#getsNoted = true
    this.#getCount += count
    this.#expectedGets += count * this.rate
  }

  /** `count` sampled records were lost (a full ring): they are not expected any more. */
  noteDropped(count: number): void {
    if (this.#sampledRecords === 0) return
    this.#expectedGets -= (count * this.#sampledGets) / this.#sampledRecords
  }

  /** One record of the access ring (access-ring.ts): a sampling hash and what happened. */
  access(sampled: number, code: number): void {
    if (code === accessClear) {
      this.#caches.clear()
      this.#known.fill(1)
      return
    }
    if (sampled >= this.#sample.threshold) return
    let slot = this.#sample.slotOf(sampled)
    if (slot < 0) {
      slot = this.#admit(sampled)
      if (slot < 0) return
    }
    this.#sampledRecords += 1
    this.#noteFollower(slot, code)
    const known = this.#known[slot] === 1
    this.#known[slot] = 1
    if (code === accessRemoval) this.#caches.remove(slot)
    else if (code < 0) this.#caches.set(slot, -code)
    else {
      this.#sampledGets += 1
      // A key set before the curve started, found by the store: held at the store's size and
      // larger, as far as anyone can tell.
      if (!known && code > 0) {
        for (let cache = this.#storeCache; cache < this.#hits.length; cache++) {
          this.#hits[cache]! += 1
        }
        this.#caches.enter(slot, code, this.#storeCache)
      } else {
        this.#caches.get(slot, this.#hits)
        if (code > 0 && this.#draw() < this.refillShare) this.#caches.refill(slot)
      }
    }
  }

  /**
   * The share of missed gets clients follow with a set: P(set | after a miss) beyond
   * P(set | after a hit), as a share of what is left. 1 (cache-aside) until a miss was seen.
   */
  get refillShare(): number {
    if (this.#refillShare !== undefined) return this.#refillShare
    if (this.#afterMissed === 0) return 1
    const afterMiss = this.#setsAfterMissed / this.#afterMissed
    const afterHit = this.#afterFound === 0 ? 0 : this.#setsAfterFound / this.#afterFound
    if (afterHit >= 1) return 1
    return Math.min(1, Math.max(0, (afterMiss - afterHit) / (1 - afterHit)))
  }

  /** Counts what followed the slot's previous record, when that was a get. */
  #noteFollower(slot: number, code: number): void {
    const isSet = code < 0 && code !== accessRemoval ? 1 : 0
    const latest = this.#latest[slot]
    if (latest === latestFound) {
      this.#afterFound += 1
      this.#setsAfterFound += isSet
    } else if (latest === latestMissed) {
      this.#afterMissed += 1
      this.#setsAfterMissed += isSet
    }
    this.#latest[slot] =
      code === accessRemoval || code < 0 ? latestOther : code > 0 ? latestFound : latestMissed
  }

  /** A uniform draw in [0, 1) (xorshift32). */
  #draw(): number {
    let x = this.#random
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#random = x
    return (x >>> 0) / 2 ** 32
  }

  /** The estimated hit ratio at each of memorySizes. */
  curve(): CurvePoint[] {
    const adjust = this.#getsNoted && this.#adjust
    const total = adjust ? this.#expectedGets : this.#sampledGets
    const adjustment = adjust ? this.#expectedGets - this.#sampledGets : 0
    return this.memorySizes.map((memorySize, i) => {
      const hits = this.#hits[i]! + adjustment
      const hitRatio = total > 0 ? Math.min(1, Math.max(0, hits / total)) : 0
      return { memorySize, hitRatio }
    })
  }

  /**
   * Samples at `rate` at most, from now on, as long as that leaves `keysMin` keys: what bounds
   * the curve's cost when few keys take many operations (the collector's budget).
   */
  limitRate(rate: number, keysMin: number): void {
    const oldRate = this.rate
    this.#sample.lowerThreshold(Math.floor(rate * thresholdAll), keysMin, (slot) =>
      this.#caches.remove(slot),
    )
    if (this.rate < oldRate) this.#rescale(oldRate)
  }

  /** A new key into the sample, or -1 when the sample, full, drops it at once. */
  #admit(sampled: number): number {
    const slot = this.#sample.add(sampled)
    this.#known[slot] = 0
    this.#latest[slot] = latestOther
    if (!this.#sample.isOverFull) return slot
    const oldRate = this.rate
    const leaving = this.#sample.dropLargest()
    this.#caches.remove(leaving)
    this.#rescale(oldRate)
    return leaving === slot ? -1 : slot
  }

  /**
   * Every count so far was taken at the old rate; scaled to the new one, old and new samples
   * weigh the same (SHARDS's fixed-size rescaling). The caches shrink to their new room.
   */
  #rescale(oldRate: number): void {
    const scale = this.rate / oldRate
    for (let i = 0; i < this.#hits.length; i++) this.#hits[i]! *= scale
    this.#sampledGets *= scale
    this.#sampledRecords *= scale
    this.#expectedGets *= scale
    this.#caches.setCapacities(this.memorySizes.map((size) => size * this.rate))
  }
}
