import assert from 'node:assert/strict'
import { accessClear, accessMiss, accessRemoval, thresholdAll } from '../store/access-ring.js'
import { Fenwick } from './fenwick.js'

// The miss-ratio curve of an exact, byte-limited LRU, estimated from sampled accesses with
// SHARDS (Waldspurger et al., "Efficient MRC Construction with SHARDS", FAST '15), in its
// fixed-size form: at most sampleKeysMax keys are sampled, and when one more would go over, the
// key with the largest sampling hash leaves the sample and the threshold drops to its hash. The
// memory is therefore bounded whatever the store holds (about 1 MB at 8,192 keys).
//
// For each sampled get, the reuse distance is the bytes an LRU must hold for the key still to be
// there: its own size plus the sizes of the distinct sampled keys accessed since its previous
// access (one Fenwick prefix sum over access times), scaled by 1 / rate. The get hits in a cache
// of C bytes when that distance is ≤ C. Sets move keys and give them sizes but are not counted:
// the hit ratio, as the store's own, is of gets. A key's first get, or a get after a delete, is a
// miss at every size. Evictions are not seen: the model evicts by itself.
//
// SHARDS_adj: a rate r sample should see r × (every get) sampled gets; a very hot key in or out
// of the sample makes it see more or fewer. The difference is added to the smallest distances
// (the hot key's), which the paper shows removes most of the error of small samples.

export interface ShardsOptions {
  /** The cache sizes (bytes, ascending) the curve is read at. */
  readonly memorySizes: readonly number[]
  /** The most keys the sample holds. Default 8,192. */
  readonly sampleKeysMax?: number
  /** SHARDS_adj (default on). */
  readonly adjust?: boolean
}

export interface CurvePoint {
  readonly memorySize: number
  readonly hitRatio: number
}

const noSlot = -1
/** Access times run from 1; 0 marks a key that is absent (never set, or removed). */
const absent = 0

export class ShardsEstimator {
  readonly memorySizes: readonly number[]
  readonly sampleKeysMax: number
  readonly #adjust: boolean
  /** Keep an access when its sampling hash is below this (access-ring.ts's threshold). */
  #threshold = thresholdAll
  readonly #slots = new Map<number, number>()
  readonly #time: Int32Array
  readonly #size: Float64Array
  #freeSlots: number[] = []
  /** The sampled hashes as a max-heap: the top leaves the sample first. */
  readonly #heap: Float64Array
  #heapSize = 0
  readonly #fenwick: Fenwick
  #now = 0
  /** Sampled gets by distance: bin i hits at memorySizes[i] and larger; the last, nowhere. */
  readonly #bins: Float64Array
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
    this.sampleKeysMax = options.sampleKeysMax ?? 8192
    this.#adjust = options.adjust ?? true
    assert(Number.isSafeInteger(this.sampleKeysMax) && this.sampleKeysMax >= 1)
    const slotCount = this.sampleKeysMax + 1
    this.#time = new Int32Array(slotCount)
    this.#size = new Float64Array(slotCount)
    this.#heap = new Float64Array(slotCount)
    for (let slot = slotCount - 1; slot >= 0; slot--) this.#freeSlots.push(slot)
    // Four access times per key between compactions: each costs O(keys), once per 3 keys' worth.
    this.#fenwick = new Fenwick(4 * slotCount)
    this.#bins = new Float64Array(sizes.length + 1)
  }

  /** Accesses are kept when their sampling hash is below this; it only ever drops. */
  get threshold(): number {
    return this.#threshold
  }

  get rate(): number {
    return this.#threshold / thresholdAll
  }

  get sampledKeyCount(): number {
    return this.#slots.size
  }

  /** Gets noted (noteGets), or sampled when nobody notes them. */
  get accessCount(): number {
    return this.#getsNoted ? this.#getCount : this.#sampledGets
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
      for (const slot of this.#slots.values()) this.#leave(slot)
      return
    }
    if (sampled >= this.#threshold) return
    let slot = this.#slots.get(sampled) ?? noSlot
    if (slot === noSlot) {
      slot = this.#admit(sampled)
      if (slot === noSlot) return
    }
    this.#sampledRecords += 1
    if (code === accessRemoval) {
      this.#leave(slot)
      return
    }
    const isGet = code >= 0
    const size = code > 0 ? code : code < 0 ? -code : this.#size[slot]!
    const time = this.#time[slot]!
    if (isGet) {
      this.#sampledGets += 1
      if (time === absent) this.#bins[this.memorySizes.length]! += 1
      else {
        const distance = size + this.#fenwick.total - this.#fenwick.prefix(time)
        this.#bins[this.#binOf(distance / this.rate)]! += 1
      }
      // A get that found nothing leaves an absent key absent, and a present one where it was
      // found at some sizes: it is moved up like a hit, as a larger cache would have.
      if (time === absent && code === accessMiss) return
    }
    this.#leave(slot)
    this.#enter(slot, size)
  }

  /** The estimated hit ratio at each of memorySizes. */
  curve(): CurvePoint[] {
    const adjust = this.#getsNoted && this.#adjust
    const total = adjust ? this.#expectedGets : this.#sampledGets
    const adjustment = adjust ? this.#expectedGets - this.#sampledGets : 0
    let hits = adjustment
    return this.memorySizes.map((memorySize, i) => {
      hits += this.#bins[i]!
      const hitRatio = total > 0 ? Math.min(1, Math.max(0, hits / total)) : 0
      return { memorySize, hitRatio }
    })
  }

  /** The index of the first size ≥ distance (memorySizes.length when none is). */
  #binOf(distance: number): number {
    const sizes = this.memorySizes
    let low = 0
    let high = sizes.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (sizes[middle]! < distance) low = middle + 1
      else high = middle
    }
    return low
  }

  /** A new key into the sample, or noSlot when the sample, full, drops it at once. */
  #admit(sampled: number): number {
    const slot = this.#freeSlots.pop()!
    this.#slots.set(sampled, slot)
    this.#time[slot] = absent
    this.#size[slot] = 0
    this.#heapPush(sampled)
    if (this.#slots.size <= this.sampleKeysMax) return slot
    const largest = this.#heapPop()
    const leaving = this.#slots.get(largest)!
    this.#leave(leaving)
    this.#slots.delete(largest)
    this.#freeSlots.push(leaving)
    this.#lowerThreshold(largest)
    return leaving === slot ? noSlot : slot
  }

  /**
   * Every count so far was taken at the old rate; scaled to the new one, old and new samples
   * weigh the same (SHARDS's fixed-size rescaling).
   */
  #lowerThreshold(threshold: number): void {
    const scale = threshold / this.#threshold
    this.#threshold = threshold
    for (let i = 0; i < this.#bins.length; i++) this.#bins[i]! *= scale
    this.#sampledGets *= scale
    this.#sampledRecords *= scale
    this.#expectedGets *= scale
  }

  /** Takes the key out of the recency order: it holds no bytes (absent) until #enter. */
  #leave(slot: number): void {
    const time = this.#time[slot]!
    if (time === absent) return
    this.#fenwick.add(time, -this.#size[slot]!)
    this.#time[slot] = absent
  }

  /** Makes the key the most recently used, holding `size` bytes. */
  #enter(slot: number, size: number): void {
    if (this.#now === this.#fenwick.capacity) this.#compact()
    this.#now += 1
    this.#time[slot] = this.#now
    this.#size[slot] = size
    this.#fenwick.add(this.#now, size)
  }

  /** Renumbers the present keys' access times 1..n, in order, so that times stay in the tree. */
  #compact(): void {
    const present: number[] = []
    for (const slot of this.#slots.values()) if (this.#time[slot] !== absent) present.push(slot)
    present.sort((a, b) => this.#time[a]! - this.#time[b]!)
    const sizes = new Float64Array(present.length)
    present.forEach((slot, i) => {
      this.#time[slot] = i + 1
      sizes[i] = this.#size[slot]!
    })
    this.#fenwick.rebuild(sizes)
    this.#now = present.length
  }

  #heapPush(value: number): void {
    const heap = this.#heap
    let i = this.#heapSize++
    while (i > 0) {
      const parent = (i - 1) >>> 1
      if (heap[parent]! >= value) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = value
  }

  #heapPop(): number {
    const heap = this.#heap
    const top = heap[0]!
    const last = heap[--this.#heapSize]!
    let i = 0
    for (;;) {
      let child = 2 * i + 1
      if (child >= this.#heapSize) break
      if (child + 1 < this.#heapSize && heap[child + 1]! > heap[child]!) child += 1
      if (heap[child]! <= last) break
      heap[i] = heap[child]!
      i = child
    }
    heap[i] = last
    return top
  }
}
