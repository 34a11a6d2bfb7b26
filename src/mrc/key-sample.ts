import assert from 'node:assert/strict'
import { thresholdAll } from '../store/access-ring.js'

// The keys the miss-ratio curve follows: SHARDS's fixed-size sample (Waldspurger et al.,
// "Efficient MRC Construction with SHARDS", FAST '15). A key is in it when its sampling hash is
// below the threshold; when one more key would make it hold more than keysMax, the key with the
// largest hash leaves and the threshold drops to that hash, so the sample is a uniform one of
// every key ever seen, at the rate threshold / 2^32, and its memory is fixed in advance.
//
// Each key has a slot (0 … keysMax) that the caches' arrays are indexed by. Keys are found by
// their hash in an open-addressing table of slots; the hashes below a threshold are uniform, so
// their low bits index it directly. Keys only ever leave the sample by having the largest hash,
// so a max-heap of the hashes is all the order needed.

const emptyEntry = -1

export class KeySample {
  readonly keysMax: number
  /** Slots, keysMax + 1 of them: one more key than the sample holds, before the largest leaves. */
  readonly slotCount: number
  #threshold = thresholdAll
  readonly #hashOfSlot: Uint32Array
  /** Slot numbers by hash (linear probing), emptyEntry where none. */
  readonly #table: Int32Array
  readonly #tableMask: number
  readonly #heap: Uint32Array
  #heapSize = 0
  readonly #freeSlots: Int32Array
  #freeCount: number

  constructor(keysMax: number) {
    assert(Number.isSafeInteger(keysMax) && keysMax >= 1, 'the sample holds at least one key')
    this.keysMax = keysMax
    this.slotCount = keysMax + 1
    let tableSize = 4
    while (tableSize < 2 * this.slotCount) tableSize *= 2
    this.#hashOfSlot = new Uint32Array(this.slotCount)
    this.#table = new Int32Array(tableSize).fill(emptyEntry)
    this.#tableMask = tableSize - 1
    this.#heap = new Uint32Array(this.slotCount)
    this.#freeSlots = new Int32Array(this.slotCount)
    for (let i = 0; i < this.slotCount; i++) this.#freeSlots[i] = this.slotCount - 1 - i
    this.#freeCount = this.slotCount
  }

  /** Keys whose sampling hash is below this are in the sample; it only ever drops. */
  get threshold(): number {
    return this.#threshold
  }

  get rate(): number {
    return this.#threshold / thresholdAll
  }

  get count(): number {
    return this.slotCount - this.#freeCount
  }

  /** The bytes of its arrays: all the memory it holds, whatever the store's size. */
  get byteLength(): number {
    return (
      this.#hashOfSlot.byteLength +
      this.#table.byteLength +
      this.#heap.byteLength +
      this.#freeSlots.byteLength
    )
  }

  /** The key's slot, or -1 when it is not in the sample. */
  slotOf(hash: number): number {
    const table = this.#table
    const mask = this.#tableMask
    for (let at = hash & mask; ; at = (at + 1) & mask) {
      const slot = table[at]!
      if (slot === emptyEntry || this.#hashOfSlot[slot] === hash) return slot
    }
  }

  /** Takes in a key below the threshold and not in the sample yet; the caller then checks full. */
  add(hash: number): number {
    assert(this.#freeCount > 0 && hash < this.#threshold)
    const slot = this.#freeSlots[--this.#freeCount]!
    this.#hashOfSlot[slot] = hash
    const mask = this.#tableMask
    let at = hash & mask
    while (this.#table[at] !== emptyEntry) at = (at + 1) & mask
    this.#table[at] = slot
    this.#heapPush(hash)
    return slot
  }

  /** Holds more keys than keysMax: the last add must be followed by dropLargest. */
  get isOverFull(): boolean {
    return this.count > this.keysMax
  }

  /** The key with the largest hash leaves; the threshold drops to its hash. Returns its slot. */
  dropLargest(): number {
    const hash = this.#heapPop()
    const slot = this.slotOf(hash)
    this.#removeEntry(hash)
    this.#freeSlots[this.#freeCount++] = slot
    this.#threshold = hash
    return slot
  }

  /**
   * Lowers the threshold toward `target` (a cap on the rate), dropping the keys at or above it
   * largest first, but keeps at least `keysMin` keys. Calls `left` with each slot that left.
   */
  lowerThreshold(target: number, keysMin: number, left: (slot: number) => void): void {
    while (this.count > keysMin && this.#heapSize > 0 && this.#heap[0]! >= target) {
      left(this.dropLargest())
    }
    // Every key left is below the target, unless the floor stopped the dropping.
    if (this.count > keysMin && target < this.#threshold) this.#threshold = target
  }

  /** Linear probing's deletion without tombstones: later entries of the run move back. */
  #removeEntry(hash: number): void {
    const table = this.#table
    const mask = this.#tableMask
    let hole = hash & mask
    while (this.#hashOfSlot[table[hole]!] !== hash) hole = (hole + 1) & mask
    for (let at = (hole + 1) & mask; table[at] !== emptyEntry; at = (at + 1) & mask) {
      const home = this.#hashOfSlot[table[at]!]! & mask
      // The entry may fill the hole when its home is not in the cyclic range (hole, at].
      if (((at - home) & mask) >= ((at - hole) & mask)) {
        table[hole] = table[at]!
        hole = at
      }
    }
    table[hole] = emptyEntry
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
