import { I32, type Slot, slotNone } from './layout.js'

// The recency order: one doubly linked list of slots through the prev/next Int32Arrays, most
// recently used at the head, the eviction candidate at the tail. It knows nothing of keys.
//
// The same next links also chain the free slots (a slot is either resident, and in the LRU
// list, or free, and in the free list), so slot allocation costs no memory of its own.

export class LruList {
  readonly #header: Int32Array
  readonly #prev: Int32Array
  readonly #next: Int32Array

  constructor(header: Int32Array, prev: Int32Array, next: Int32Array) {
    this.#header = header
    this.#prev = prev
    this.#next = next
  }

  /** Empties the list and chains every slot, in order, into the free list. */
  reset(): void {
    const next = this.#next
    const count = next.length
    for (let slot = 0; slot < count - 1; slot++) next[slot] = slot + 1
    next[count - 1] = slotNone
    this.#prev.fill(slotNone)
    this.#header[I32.freeSlotHead] = 0
    this.#header[I32.slotHighWater] = 0
    this.#header[I32.lruHead] = slotNone
    this.#header[I32.lruTail] = slotNone
  }

  /** Takes a free slot, or slotNone when all are resident. */
  allocate(): Slot {
    const slot = this.#header[I32.freeSlotHead]! as Slot
    if (slot !== slotNone) {
      this.#header[I32.freeSlotHead] = this.#next[slot]!
      this.#next[slot] = slotNone
      // Released slots go back to the head, so the untouched ones stay a suffix, in order.
      if (slot >= this.#header[I32.slotHighWater]!) this.#header[I32.slotHighWater] = slot + 1
    }
    return slot
  }

  /** One past the highest slot allocated since the last reset; every slot after it is free. */
  get highWater(): number {
    return this.#header[I32.slotHighWater]!
  }

  /** Returns a slot, already unlinked from the LRU list, to the free list. */
  release(slot: Slot): void {
    this.#prev[slot] = slotNone
    this.#next[slot] = this.#header[I32.freeSlotHead]!
    this.#header[I32.freeSlotHead] = slot
  }

  get head(): Slot {
    return this.#header[I32.lruHead]! as Slot
  }

  get tail(): Slot {
    return this.#header[I32.lruTail]! as Slot
  }

  nextOf(slot: Slot): Slot {
    return this.#next[slot]! as Slot
  }

  prevOf(slot: Slot): Slot {
    return this.#prev[slot]! as Slot
  }

  pushFront(slot: Slot): void {
    const header = this.#header
    const head = header[I32.lruHead]!
    this.#prev[slot] = slotNone
    this.#next[slot] = head
    if (head === slotNone) header[I32.lruTail] = slot
    else this.#prev[head] = slot
    header[I32.lruHead] = slot
  }

  remove(slot: Slot): void {
    const header = this.#header
    const before = this.#prev[slot]!
    const after = this.#next[slot]!
    if (before === slotNone) header[I32.lruHead] = after
    else this.#next[before] = after
    if (after === slotNone) header[I32.lruTail] = before
    else this.#prev[after] = before
    this.#prev[slot] = slotNone
    this.#next[slot] = slotNone
  }

  moveToFront(slot: Slot): void {
    if (this.#header[I32.lruHead] === slot) return
    this.remove(slot)
    this.pushFront(slot)
  }
}
