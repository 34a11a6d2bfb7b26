import { I32, type Slot, slotNone } from './layout.js'

// A binary min-heap of the slots that have an expiry time, ordered by that time. It is what
// makes "expired entries are reclaimed before any live entry is evicted" exact: before evicting,
// the store pops every entry whose time has passed. It also drives the incremental sweep.
//
// heapPos[slot] is the slot's position in the heap, or -1, so an entry whose TTL changes or that
// is deleted leaves the heap in O(log n). Entries without an expiry never enter it, so writes
// without a TTL pay nothing.

export class ExpiryHeap {
  readonly #header: Int32Array
  readonly #heap: Int32Array
  readonly #heapPos: Int32Array
  readonly #expiresAt: Float64Array

  constructor(header: Int32Array, heap: Int32Array, heapPos: Int32Array, expiresAt: Float64Array) {
    this.#header = header
    this.#heap = heap
    this.#heapPos = heapPos
    this.#expiresAt = expiresAt
  }

  reset(): void {
    this.#heapPos.fill(-1)
    this.#header[I32.heapSize] = 0
  }

  get size(): number {
    return this.#header[I32.heapSize]!
  }

  has(slot: Slot): boolean {
    return this.#heapPos[slot] !== -1
  }

  /** The slot that expires first, or slotNone. */
  peek(): Slot {
    return this.size === 0 ? slotNone : (this.#heap[0]! as Slot)
  }

  add(slot: Slot): void {
    const size = this.size
    this.#header[I32.heapSize] = size + 1
    this.#place(size, slot)
    this.#siftUp(size)
  }

  remove(slot: Slot): void {
    const position = this.#heapPos[slot]!
    const lastPosition = this.size - 1
    this.#header[I32.heapSize] = lastPosition
    this.#heapPos[slot] = -1
    if (position === lastPosition) return
    this.#place(position, this.#heap[lastPosition]! as Slot)
    this.#restore(position)
  }

  /** Restores order after the slot's expiry time changed. */
  update(slot: Slot): void {
    this.#restore(this.#heapPos[slot]!)
  }

  slotAt(position: number): Slot {
    return this.#heap[position]! as Slot
  }

  #restore(position: number): void {
    if (position > 0 && this.#lessAt(position, (position - 1) >> 1)) this.#siftUp(position)
    else this.#siftDown(position)
  }

  #place(position: number, slot: Slot): void {
    this.#heap[position] = slot
    this.#heapPos[slot] = position
  }

  #lessAt(a: number, b: number): boolean {
    return this.#expiresAt[this.#heap[a]!]! < this.#expiresAt[this.#heap[b]!]!
  }

  #siftUp(position: number): void {
    while (position > 0) {
      const parent = (position - 1) >> 1
      if (!this.#lessAt(position, parent)) return
      this.#swap(position, parent)
      position = parent
    }
  }

  #siftDown(position: number): void {
    const size = this.size
    for (;;) {
      const left = 2 * position + 1
      if (left >= size) return
      const right = left + 1
      const child = right < size && this.#lessAt(right, left) ? right : left
      if (!this.#lessAt(child, position)) return
      this.#swap(position, child)
      position = child
    }
  }

  #swap(a: number, b: number): void {
    const slotA = this.#heap[a]! as Slot
    this.#place(a, this.#heap[b]! as Slot)
    this.#place(b, slotA)
  }
}
