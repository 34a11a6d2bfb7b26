import assert from 'node:assert/strict'
import { I32, type Views, walRecordSizeMax, walStateFailed } from '../store/layout.js'
import type { LogRoom, MutationOp, MutationRecord } from '../store/types.js'
import {
  checkRecord,
  encodedSize,
  encodeRecord,
  isGroupedAt,
  recordSize,
  sequenceAt,
} from './record.js'

// The bounded ring that carries encoded log records from the threads that change the store to
// the WAL writer thread. It lives in the store's SharedArrayBuffer (layout.ts places it).
//
// Producers append while holding the store lock (the store's onMutation callback runs under it),
// so they are serialized and the ring's order is the order mutations were applied: log order is
// apply order. That makes this a single-producer single-consumer ring, and no compare-and-swap
// is needed: the producer alone writes `head`, the writer alone writes `tail`.
//
//   0                tail                          head                        size
//   ├── free ─────────┼── records waiting for disk ──┼── free ─────────────────────┤
//
// Records are the exact bytes that go to disk (src/wal/record.ts), so the writer copies them
// without decoding. A record never wraps: when it does not fit before the end, the producer
// writes a wrap marker (when at least 4 bytes remain) and starts again at offset 0. One byte
// always stays free, so head === tail means empty, never full.
//
// A producer never waits here: it holds the store lock, and every thread would wait behind it.
// The store asks hasRoom() before each change (the ring is its LogRoom) and refuses one the ring
// cannot take at once (log_full); the request waits for room outside the lock, on walSpaceWake,
// and tries again (src/wal/durability.ts). So append() always has room, no record is dropped,
// and no sequence number is taken for a record that is not here. The writer never takes the
// store lock while it drains.

/** A length word no record has: the rest of the ring up to its end is unused. */
const wrapMarker = 0xffffffff

export interface Readable {
  /** Offset of the first record and the end of the last whole one, contiguous. */
  start: number
  end: number
  /** The sequence number of the last record in [start, end). */
  sequenceLast: number
  /**
   * The sequence number of the last record in [start, end) that ends a group or is in none (a
   * group's members are not, until its commit); 0 when every record there is a group's member.
   */
  sequenceBoundaryLast: number
  recordCount: number
}

export class WalRing implements LogRoom {
  readonly #header: Int32Array
  readonly #bytes: Uint8Array
  readonly #view: DataView
  readonly #size: number
  readonly #recordSizeMax: number
  /** Records went in during this store lock hold: the writer may need waking once it ends. */
  #appended = false

  constructor(views: Views) {
    this.#header = views.headerI32
    this.#bytes = views.walRing
    this.#view = new DataView(views.buffer, views.walRing.byteOffset, views.walRing.byteLength)
    this.#size = views.walRing.byteLength
    this.#recordSizeMax = walRecordSizeMax(views.layout.limits)
  }

  /** What the records are checksummed with: the current segment's salt (src/wal/record.ts). */
  get salt(): number {
    return this.#header[I32.walSalt]! >>> 0
  }

  get capacity(): number {
    return this.#size - 1
  }

  recordSize(op: MutationOp, keySize: number, valueSize: number): number {
    return recordSize(op, keySize, valueSize)
  }

  /**
   * Producer side, under the store lock. Records of `size` bytes in all, none over `sizeMax`,
   * fit from the head when the free bytes hold them plus one record's worth: a record never
   * wraps, so at most one skip to the start, shorter than the largest record, is lost on the way.
   * Space only grows while the lock is held (the writer alone frees it), so a yes stays a yes.
   * A failed log never drains again: nothing more may go in.
   */
  hasRoom(size: number, sizeMax: number): boolean {
    if (Atomics.load(this.#header, I32.walState) === walStateFailed) return false
    return this.#free(this.#header[I32.walRingHead]!) >= size + sizeMax
  }

  /**
   * Producer side, under the store lock: encodes the record into the ring. The store asked
   * hasRoom() first, so there is room; none is an invariant broken, never a reason to wait.
   */
  append(record: MutationRecord): void {
    const h = this.#header
    const size = encodedSize(record)
    assert(size <= this.#recordSizeMax, 'a record is larger than the limits allow')
    let head = h[I32.walRingHead]!
    const skip = head + size > this.#size ? this.#size - head : 0
    assert(this.#free(head) >= skip + size, 'a record was appended without room in the ring')
    if (skip > 0) {
      if (skip >= 4) this.#view.setUint32(head, wrapMarker, true)
      head = 0
    }
    // Verified by the writer before it writes (readable() checks every frame), off the lock.
    encodeRecord(record, this.#bytes, head, this.salt, false)
    head += size
    if (head === this.#size) head = 0
    // The store makes the record bytes visible to the writer before the new head: Atomics
    // operations are sequentially consistent, and the plain writes above precede this one.
    Atomics.store(h, I32.walRingHead, head)
    this.#appended = true
  }

  /**
   * Producer side, after the store lock is released (the store's onUnlocked): wakes the writer
   * if records went in during the hold and it sleeps. A wake is a futex system call of several
   * microseconds; made under the lock, it held every other thread up for as long. Once per
   * hold, however many records a batch appended. Only when the writer sleeps, so a busy writer
   * costs producers no system call. The writer sets the flag and then re-reads the head (see
   * waitForRecords), and this reads the flag after the head was published: either the writer
   * sees the records or this sees the flag, so a wake-up cannot be lost, only come a little later.
   */
  wakeWriterIfAppended(): void {
    if (!this.#appended) return
    this.#appended = false
    const h = this.#header
    if (Atomics.load(h, I32.walWriterSleeping) === 1) {
      Atomics.add(h, I32.walWriterWake, 1)
      Atomics.notify(h, I32.walWriterWake)
    }
  }

  /** Bytes a producer at `head` can still write before reaching the writer's tail. */
  #free(head: number): number {
    const tail = Atomics.load(this.#header, I32.walRingTail)
    return (tail - head - 1 + this.#size) % this.#size
  }

  /** Writer side: the contiguous whole records waiting, or undefined when the ring is empty. */
  readable(): Readable | undefined {
    const h = this.#header
    const head = Atomics.load(h, I32.walRingHead)
    let tail = h[I32.walRingTail]!
    if (tail !== head && this.#isWrapPoint(tail)) {
      tail = 0
      Atomics.store(h, I32.walRingTail, 0)
    }
    if (tail === head) return undefined
    const end = tail < head ? head : this.#size
    let at = tail
    let sequenceLast = 0
    let sequenceBoundaryLast = 0
    let recordCount = 0
    while (at < end && !(at > tail && this.#isWrapPoint(at))) {
      // The assertion before the disk, the pair of the one after encoding: the writer checks every record's frame
      // and checksum right before writing it, so a bug that scribbles on the ring crashes here.
      const size = checkRecord(this.#bytes, at, this.salt, end)
      assert(size > 0, `a record in the WAL ring is damaged at offset ${at}`)
      sequenceLast = sequenceAt(this.#bytes, at)
      if (!isGroupedAt(this.#bytes, at)) sequenceBoundaryLast = sequenceLast
      recordCount++
      at += size
    }
    return { start: tail, end: at, sequenceLast, sequenceBoundaryLast, recordCount }
  }

  /** Writer side: the bytes before `end` are on disk; producers may reuse them. */
  release(end: number): void {
    const h = this.#header
    Atomics.store(h, I32.walRingTail, end === this.#size ? 0 : end)
    if (Atomics.load(h, I32.walSpaceWaiting) === 1) {
      Atomics.store(h, I32.walSpaceWaiting, 0)
      Atomics.add(h, I32.walSpaceWake, 1)
      Atomics.notify(h, I32.walSpaceWake)
    }
  }

  bytes(start: number, end: number): Uint8Array {
    return this.#bytes.subarray(start, end)
  }

  isEmpty(): boolean {
    return (
      Atomics.load(this.#header, I32.walRingHead) === Atomics.load(this.#header, I32.walRingTail)
    )
  }

  /**
   * Writer side: sleeps until a producer appends, or `timeoutMs` passes. Announces the sleep
   * first and re-checks the ring after, the other half of the handshake in append().
   */
  waitForRecords(timeoutMs: number, evenIfPending = false): void {
    const h = this.#header
    const wake = Atomics.load(h, I32.walWriterWake)
    Atomics.store(h, I32.walWriterSleeping, 1)
    // evenIfPending: the writer cannot write what waits (the disk is full) until a retry.
    if (evenIfPending || this.isEmpty()) Atomics.wait(h, I32.walWriterWake, wake, timeoutMs)
    Atomics.store(h, I32.walWriterSleeping, 0)
  }

  /** Wakes requests waiting for space, e.g. so they see that the log failed. */
  wakeProducers(): void {
    Atomics.add(this.#header, I32.walSpaceWake, 1)
    Atomics.notify(this.#header, I32.walSpaceWake)
  }

  /** Wakes the writer from waitForRecords, e.g. to stop. */
  wakeWriter(): void {
    Atomics.add(this.#header, I32.walWriterWake, 1)
    Atomics.notify(this.#header, I32.walWriterWake)
  }

  #isWrapPoint(at: number): boolean {
    return this.#size - at < 4 || this.#view.getUint32(at, true) === wrapMarker
  }
}
