import assert from 'node:assert/strict'
import { F64, recordHeaderSize, type Slot } from './layout.js'

// Where key and value bytes live: a log-structured ring with a cleaner.
//
// Each entry's key and value are one contiguous record, [owner slot: i32 LE][key][value],
// appended at the head of a circular log. Deleting or replacing an entry rewrites its header as
// minus the record's size, so the record stays in the log as dead bytes. When the free run in
// front of the head is too short for a new record, the cleaner works at the tail: a dead record
// is skipped (the free run grows by its size); a live record is slid back to the head with one
// memmove (copyWithin), which keeps the free run the same size but moves it forward. The log
// thereby compacts itself as it goes round, and a record never straddles the end of the buffer:
// when the run up to the end is too short, that run becomes padding and the head wraps to 0.
//
// Why this and not fixed-size blocks: blocks chained per entry waste up to a block per entry
// and need a link per block (about 50 bytes per entry for 100-byte values), while this layout
// costs 4 header bytes per record. Why it never fails an insert that fits the limits: the store
// evicts until the live records plus the new one fit the byte limit, and the arena holds the
// byte limit plus one header per entry, so the free space plus the dead bytes always cover the
// new record; within at most two laps the cleaner has turned all of them into one free run.
//
// What it costs: an insert may copy live records. With u the live fraction of the arena, the
// cleaner copies at most about u / (1 − u) bytes per byte it frees, amortized; the headroom
// (layout.ts) caps u below 1. In the common cache pattern the tail holds the oldest records,
// which eviction has already killed, and the cleaner mostly skips.

const headerUsed = F64.arenaUsed
const headerHead = F64.arenaHead
const headerTail = F64.arenaTail

export class Arena {
  readonly bytes: Uint8Array
  readonly #header: Float64Array
  readonly #loc: Uint32Array
  readonly #keySizes: Uint16Array
  readonly #valueSizes: Uint32Array
  readonly #size: number

  constructor(
    header: Float64Array,
    bytes: Uint8Array,
    loc: Uint32Array,
    keySizes: Uint16Array,
    valueSizes: Uint32Array,
  ) {
    this.bytes = bytes
    this.#header = header
    this.#loc = loc
    this.#keySizes = keySizes
    this.#valueSizes = valueSizes
    this.#size = bytes.length
  }

  reset(): void {
    this.#header[headerUsed] = 0
    this.#header[headerHead] = 0
    this.#header[headerTail] = 0
  }

  /**
   * Appends a record for `slot`, whose key and value sizes are already set, and returns where
   * its key bytes start (the value follows the key). The store guarantees that the live records
   * plus this one fit in the arena.
   */
  allocate(slot: Slot): number {
    const size = this.recordSize(slot)
    const arenaSize = this.#size
    const header = this.#header
    // Two laps always suffice (see above); a third means the accounting is corrupt, and the
    // loop would otherwise spin forever holding the lock.
    let cleanedCountMax = 3 * (arenaSize / recordHeaderSize) + 3
    for (;;) {
      const used = header[headerUsed]!
      if (used === 0) {
        // Empty: start over at 0, so the whole arena is one free run.
        header[headerHead] = 0
        header[headerTail] = 0
      }
      const head = header[headerHead]!
      const tail = header[headerTail]!
      const run = used === arenaSize ? 0 : head < tail ? tail - head : arenaSize - head
      if (run >= size) {
        this.#writeHeader(head, slot)
        this.#loc[slot] = head
        header[headerHead] = head + size === arenaSize ? 0 : head + size
        header[headerUsed] = used + size
        return head + recordHeaderSize
      }
      if (head >= tail && used < arenaSize) {
        // The free run ends at the end of the buffer and is too short: pad it and wrap.
        const pad = arenaSize - head
        if (pad >= recordHeaderSize) this.#writeHeader(head, -pad)
        header[headerUsed] = used + pad
        header[headerHead] = 0
        continue
      }
      assert(cleanedCountMax-- > 0, 'the arena cleaner went round three times without room')
      this.#cleanTail()
    }
  }

  /** Marks the slot's record dead. Call before its key or value size changes. */
  free(slot: Slot): void {
    this.#writeHeader(this.#loc[slot]!, -this.recordSize(slot))
  }

  /** Where the slot's key bytes start; its value follows them. */
  keyOffset(slot: Slot): number {
    return this.#loc[slot]! + recordHeaderSize
  }

  recordSize(slot: Slot): number {
    return recordHeaderSize + this.#keySizes[slot]! + this.#valueSizes[slot]!
  }

  /** Reclaims or moves the record at the tail; the caller has found the free run too short. */
  #cleanTail(): void {
    const arenaSize = this.#size
    const header = this.#header
    const head = header[headerHead]!
    const tail = header[headerTail]!
    if (arenaSize - tail < recordHeaderSize) {
      // Padding too short to carry a header: no record can start there.
      header[headerUsed] = header[headerUsed]! - (arenaSize - tail)
      header[headerTail] = 0
      return
    }
    const owner = this.readHeader(tail)
    if (owner < 0) {
      header[headerUsed] = header[headerUsed]! + owner
      header[headerTail] = tail - owner === arenaSize ? 0 : tail - owner
      return
    }
    // A live record: the free run is [head, tail) right before it (or empty when the arena is
    // full), so sliding it back by the run's length may overlap itself; copyWithin is a memmove.
    const slot = owner as Slot
    const size = this.recordSize(slot)
    if (head !== tail) {
      this.bytes.copyWithin(head, tail, tail + size)
      this.#loc[slot] = head
      header[F64.arenaBytesMoved] = header[F64.arenaBytesMoved]! + size
    }
    header[headerHead] = head + size === arenaSize ? 0 : head + size
    header[headerTail] = tail + size === arenaSize ? 0 : tail + size
  }

  /** The owner slot of the record at `offset`, or minus its size when it is dead. */
  readHeader(offset: number): number {
    const b = this.bytes
    return b[offset]! | (b[offset + 1]! << 8) | (b[offset + 2]! << 16) | (b[offset + 3]! << 24)
  }

  #writeHeader(offset: number, value: number): void {
    const b = this.bytes
    b[offset] = value
    b[offset + 1] = value >> 8
    b[offset + 2] = value >> 16
    b[offset + 3] = value >> 24
  }

  /**
   * The byte ranges [start, end) the log occupies, live and dead records and padding alike, in
   * log order; everything else in the arena is free space no entry points into.
   */
  logRanges(): Array<[start: number, end: number]> {
    const used = this.used
    const head = this.head
    const tail = this.tail
    if (used === 0) return []
    if (used === this.#size) return [[0, this.#size]]
    const ranges: Array<[number, number]> =
      tail < head
        ? [[tail, head]]
        : [
            [tail, this.#size],
            [0, head],
          ]
    // The pair of the accounting in allocate() and #cleanTail(): the log is exactly `used` bytes.
    assert.equal(
      ranges.reduce((sum, [start, end]) => sum + end - start, 0),
      used,
      'the arena log and its byte count disagree',
    )
    return ranges
  }

  get size(): number {
    return this.#size
  }

  get head(): number {
    return this.#header[headerHead]!
  }

  get tail(): number {
    return this.#header[headerTail]!
  }

  get used(): number {
    return this.#header[headerUsed]!
  }
}
