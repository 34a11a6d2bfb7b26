import assert from 'node:assert/strict'

// One miniature LRU per size the curve is read at, each holding the sampled keys a store of
// that size would hold, in a capacity scaled by the sampling rate (Waldspurger et al., "Cache
// Modeling and Optimization using Miniature Simulations", USENIX ATC '17). Simulating each size
// is what makes the curve right for slabkv's LRU, which is not the LRU of reuse distances: a get
// that misses brings nothing back (the client may never set the key again), so which keys a
// store holds after a miss depends on its size in a way one recency stack cannot tell.
//
// A cache is a doubly linked list of slots, most recent first. The links of every cache live in
// two Uint16Arrays indexed slot × cacheCount + cache, so one key's links in all caches are side
// by side; 25 caches of 8,193 slots take 0.8 MB with the residence bytes, whatever the store holds.

/** The end of a list. Slots are below it. */
const none = 0xffff

export class MiniCaches {
  readonly cacheCount: number
  readonly slotCount: number
  readonly #capacity: Float64Array
  readonly #used: Float64Array
  readonly #head: Int32Array
  readonly #tail: Int32Array
  readonly #prev: Uint16Array
  readonly #next: Uint16Array
  /** 1 where slot × cacheCount + cache is in that cache. */
  readonly #resident: Uint8Array
  /** The bytes of each slot's entry, the same in every cache that holds it. */
  readonly #size: Float64Array

  constructor(slotCount: number, capacities: readonly number[]) {
    assert(slotCount >= 1 && slotCount < none, 'slots are 16-bit')
    this.cacheCount = capacities.length
    this.slotCount = slotCount
    this.#capacity = Float64Array.from(capacities)
    this.#used = new Float64Array(this.cacheCount)
    this.#head = new Int32Array(this.cacheCount).fill(none)
    this.#tail = new Int32Array(this.cacheCount).fill(none)
    this.#prev = new Uint16Array(slotCount * this.cacheCount)
    this.#next = new Uint16Array(slotCount * this.cacheCount)
    this.#resident = new Uint8Array(slotCount * this.cacheCount)
    this.#size = new Float64Array(slotCount)
  }

  get byteLength(): number {
    return (
      this.#capacity.byteLength +
      this.#used.byteLength +
      this.#head.byteLength +
      this.#tail.byteLength +
      this.#prev.byteLength +
      this.#next.byteLength +
      this.#resident.byteLength +
      this.#size.byteLength
    )
  }

  /** New capacities (the rate dropped): caches now over theirs evict their oldest. */
  setCapacities(capacities: readonly number[]): void {
    for (let cache = 0; cache < this.cacheCount; cache++) {
      this.#capacity[cache] = capacities[cache]!
      this.#evictOver(cache)
    }
  }

  /**
   * A get: each cache that holds the slot counts a hit in `hits` and makes it the most recent.
   * The others miss and stay as they are.
   */
  get(slot: number, hits: Float64Array): void {
    this.#moveUp(slot, hits)
  }

  /** A set of `size` bytes: the entry is the most recent in every cache it fits in. */
  set(slot: number, size: number): void {
    if (size !== this.#size[slot]) {
      this.remove(slot)
      this.enter(slot, size, 0)
      return
    }
    // The same size (a value rewritten, a refill): where it is held it only moves up.
    this.#moveUp(slot, undefined)
    this.refill(slot)
  }

  /**
   * Makes the slot, which no cache holds, the most recent, holding `size` bytes, in the caches
   * from `firstCache` on.
   */
  enter(slot: number, size: number, firstCache: number): void {
    this.#size[slot] = size
    for (let cache = firstCache; cache < this.cacheCount; cache++) {
      if (size > this.#capacity[cache]!) continue
      this.#pushFront(cache, slot)
      this.#evictOver(cache)
    }
  }

  /**
   * The set a client makes after a get that missed, in the caches that do not hold the slot:
   * its entry, of the size it had, becomes their most recent.
   */
  refill(slot: number): void {
    const base = slot * this.cacheCount
    const size = this.#size[slot]!
    for (let cache = 0; cache < this.cacheCount; cache++) {
      if (this.#resident[base + cache] !== 0 || size > this.#capacity[cache]!) continue
      this.#pushFront(cache, slot)
      this.#evictOver(cache)
    }
  }

  /** A delete, an expiry, or the key leaving the sample: no cache holds it any more. */
  remove(slot: number): void {
    const base = slot * this.cacheCount
    for (let cache = 0; cache < this.cacheCount; cache++) {
      if (this.#resident[base + cache] !== 0) this.#unlink(cache, slot)
    }
  }

  /** Whether any cache holds the slot. */
  holds(slot: number): boolean {
    const base = slot * this.cacheCount
    for (let cache = 0; cache < this.cacheCount; cache++) {
      if (this.#resident[base + cache] !== 0) return true
    }
    return false
  }

  clear(): void {
    this.#resident.fill(0)
    this.#used.fill(0)
    this.#head.fill(none)
    this.#tail.fill(none)
  }

  /** In each cache that holds the slot: a hit counted (when `hits` is given), and moved first. */
  #moveUp(slot: number, hits: Float64Array | undefined): void {
    const count = this.cacheCount
    const base = slot * count
    for (let cache = 0; cache < count; cache++) {
      if (this.#resident[base + cache] === 0) continue
      if (hits !== undefined) hits[cache]! += 1
      if (this.#head[cache] !== slot) {
        this.#unlink(cache, slot)
        this.#pushFront(cache, slot)
      }
    }
  }

  #evictOver(cache: number): void {
    while (this.#used[cache]! > this.#capacity[cache]!) this.#unlink(cache, this.#tail[cache]!)
  }

  #unlink(cache: number, slot: number): void {
    const count = this.cacheCount
    const at = slot * count + cache
    const before = this.#prev[at]!
    const after = this.#next[at]!
    if (before === none) this.#head[cache] = after
    else this.#next[before * count + cache] = after
    if (after === none) this.#tail[cache] = before
    else this.#prev[after * count + cache] = before
    this.#resident[at] = 0
    this.#used[cache]! -= this.#size[slot]!
  }

  #pushFront(cache: number, slot: number): void {
    const count = this.cacheCount
    const at = slot * count + cache
    const first = this.#head[cache]!
    this.#prev[at] = none
    this.#next[at] = first
    if (first === none) this.#tail[cache] = slot
    else this.#prev[first * count + cache] = slot
    this.#head[cache] = slot
    this.#resident[at] = 1
    this.#used[cache]! += this.#size[slot]!
  }
}
