import assert from 'node:assert/strict'
import { StorageFailedError } from '../durability.js'
import { I32, type Views, walRecordSizeMax, walStateFailed, walStateOk } from '../store/layout.js'
import type { MutationRecord } from '../store/types.js'
import { checkRecord, encodedSize, encodeRecord, sequenceAt } from './record.js'

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
// A full ring makes the producer wait for the writer (back-pressure), while still holding the
// store lock: every other writer then waits on the lock. Nothing is ever dropped. The writer
// never takes the store lock while it drains, so it cannot deadlock with a waiting producer.

/** A length word no record has: the rest of the ring up to its end is unused. */
const wrapMarker = 0xffffffff

/** How long a producer sleeps at most before looking at the ring again (a lost wake-up bound). */
const spaceWaitMs = 100

export interface Readable {
  /** Offset of the first record and the end of the last whole one, contiguous. */
  start: number
  end: number
  /** The sequence number of the last record in [start, end). */
  sequenceLast: number
  recordCount: number
}

export class WalRing {
  readonly #header: Int32Array
  readonly #bytes: Uint8Array
  readonly #view: DataView
  readonly #size: number
  readonly #recordSizeMax: number

  constructor(views: Views) {
    this.#header = views.headerI32
    this.#bytes = views.walRing
    this.#view = new DataView(views.buffer, views.walRing.byteOffset, views.walRing.byteLength)
    this.#size = views.walRing.byteLength
    this.#recordSizeMax = walRecordSizeMax(views.layout.limits)
  }

  /** Producer side, under the store lock: encodes the record into the ring, waiting for room. */
  append(record: MutationRecord): void {
    const h = this.#header
    const size = encodedSize(record)
    assert(size <= this.#recordSizeMax, 'a record is larger than the limits allow')
    let head = h[I32.walRingHead]!
    const skip = head + size > this.#size ? this.#size - head : 0
    while (this.#free(head) < skip + size) {
      const state = Atomics.load(h, I32.walState)
      // A failed log never drains again: waiting would hold the store lock forever, and with
      // it the whole process, which must exit. The mutation is not acknowledged.
      if (state === walStateFailed) throw new StorageFailedError()
      // While the disk is full, the ring drains only once space returns. An expiry need not
      // wait for it: the set it ends carries its expiry time, so replay hides the entry anyway,
      // and sweeps or reads of expired keys must not freeze the server behind a full ring.
      if (state !== walStateOk && record.op === 'expire') return
      this.#waitForSpace(head, skip + size)
    }
    if (skip > 0) {
      if (skip >= 4) this.#view.setUint32(head, wrapMarker, true)
      head = 0
    }
    // Verified by the writer before it writes (readable() checks every frame), off the lock.
    encodeRecord(record, this.#bytes, head, false)
    head += size
    if (head === this.#size) head = 0
    // The store makes the record bytes visible to the writer before the new head: Atomics
    // operations are sequentially consistent, and the plain writes above precede this one.
    Atomics.store(h, I32.walRingHead, head)
    // Wake the writer only when it sleeps, so a busy writer costs producers no system call.
    // The writer sets the flag and then re-reads head (see waitForRecords), so either it sees
    // this record or we see the flag: a wake-up cannot be lost.
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

  #waitForSpace(head: number, needed: number): void {
    const h = this.#header
    const wake = Atomics.load(h, I32.walSpaceWake)
    Atomics.store(h, I32.walSpaceWaiting, 1)
    // Look again after announcing the wait: a release between the caller's look and the store
    // above saw no waiter and notified nobody. Either the writer sees the flag, or this load
    // sees its new tail (both are sequentially consistent): the handshake waitForRecords uses.
    if (this.#free(head) >= needed) return
    // Blocks this thread, holding the store lock: back-pressure from the disk. The timeout only
    // bounds the damage of a wake-up lost to a bug; the writer notifies after each release.
    Atomics.wait(h, I32.walSpaceWake, wake, spaceWaitMs)
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
    let recordCount = 0
    while (at < end && !(at > tail && this.#isWrapPoint(at))) {
      // The pair assertion before the disk (STYLE.md): the writer checks every record's frame
      // and checksum right before writing it, so a bug that scribbles on the ring crashes here.
      const size = checkRecord(this.#bytes, at, end)
      assert(size > 0, `a record in the WAL ring is damaged at offset ${at}`)
      sequenceLast = sequenceAt(this.#bytes, at)
      recordCount++
      at += size
    }
    return { start: tail, end: at, sequenceLast, recordCount }
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

  /** Wakes producers waiting for space, e.g. so they see that the log failed. */
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
