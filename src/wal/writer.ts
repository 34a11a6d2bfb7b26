import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { join } from 'node:path'
import {
  F64,
  I32,
  I64,
  type Views,
  walStateFailed,
  walStateOk,
  walStateReadOnly,
} from '../store/layout.js'
import type { Store } from '../store/store.js'
import { classify, segmentName, snapshotTempName } from './files.js'
import { encodeSegmentHeader, segmentHeaderSize } from './record.js'
import { WalRing } from './ring.js'
import { SnapshotWriter } from './snapshot.js'
import { type FileDescriptor, isNoSpace, type Storage } from './storage.js'

// The WAL writer: drains the ring, appends to the current segment, syncs, and publishes the
// durable sequence number that releases acknowledgements. It runs in its own thread
// (workers/wal-writer.ts) and is the only code that touches log and snapshot files; tests drive
// it step by step in one thread against a simulated disk.
//
// Group commit: while one fdatasync runs, producers keep appending to the ring; the next step
// writes everything that accumulated with one write per contiguous run and covers it with one
// fdatasync. The batch grows with the load by itself: no timer delays a lone writer.
//
// What each --fsync mode acknowledges (the durable sequence it publishes):
//   always    after the fdatasync that covers the record returns. A crash loses nothing
//             acknowledged.
//   everysec  after write(2): the record is in the OS's page cache; fdatasync runs at least once
//             a second. A process crash loses nothing; a power loss or kernel crash can lose
//             about the last second of acknowledged writes.
//   no        after write(2); the OS flushes when it likes (Linux: typically within 30 s). A
//             power loss can lose that much.
//
// Storage errors. A failed fdatasync is fail-stop: the kernel may have dropped the dirty pages
// and cleared the error, so a retry could "succeed" over lost data (PostgreSQL's fsyncgate). The
// writer marks the log failed (pending writes get 503), and throws: the process exits and
// recovery decides from what is really on disk. A full disk (ENOSPC) on write is survivable: the
// partial write is cut off, the log turns read-only (new writes get 507), and the writer retries
// the same bytes every retry interval until they fit.

export type FsyncMode = 'always' | 'everysec' | 'no'

/**
 * Marks the log failed, for good: nothing more becomes durable. Wakes every thread's waiters, for
 * durability and for ring space, so that each answers 503 instead of waiting for a writer that
 * will never write again. The writer calls it on its way down; the main thread, when the
 * writer's thread ended without doing so (src/wal/writer-thread.ts).
 */
export function markLogFailed(views: Views): void {
  Atomics.store(views.headerI32, I32.walState, walStateFailed)
  Atomics.notify(views.headerI64, I64.durableSequence)
  new WalRing(views).wakeProducers()
}

export interface WalWriterOptions {
  storage: Storage
  dir: string
  fsync: FsyncMode
  /** A segment is closed and a new one started once it reaches this many bytes. */
  segmentSizeMax: number
  /** A snapshot starts once the log written since the last one reaches this many bytes. */
  snapshotLogSizeMin: number
  /** How often a full disk is tried again. */
  noSpaceRetryMs: number
  /**
   * Bytes of segments a snapshot made redundant that are kept anyway, newest first, so that a
   * change feed (src/watch/) can resume from before the snapshot. 0: all are deleted.
   */
  historySizeRetained?: number
  clock?: () => number
  /** The checksum salt of the files this writer starts (tests fix it); random otherwise. */
  salt?: number
  /** Things an operator wants in the log: segments, snapshots, the disk filling up. */
  onEvent?: (message: string, fields: Record<string, unknown>) => void
}

/** everysec syncs at least this often. */
const everySecondMs = 1000
/** Bytes of snapshot written per step, between two drains of the ring. */
const snapshotStepSize = 1024 * 1024
/** How much of the snapshot's copy target is touched per step (about 1 ms of page faults). */
const copyTargetSliceSize = 2 * 1024 * 1024
/**
 * How long a finished snapshot's buffer is kept for the next one. Touching a fresh buffer as
 * large as the store costs its page faults and zeroing twice over (the kernel's, then ours):
 * with 16 KiB writes a snapshot was due every second or two, and the writer spent more CPU on
 * that than on the log (`npm run bench:profile`). Under such a write rate the next snapshot
 * comes well within this; at lower rates the memory is handed back this long after a snapshot.
 */
const copyTargetKeepMs = 10_000

export class WalWriter {
  readonly #store: Store
  readonly #ring: WalRing
  readonly #options: WalWriterOptions
  readonly #storage: Storage
  readonly #clock: () => number
  /** Every segment and snapshot this writer starts is checksummed with it (record.ts). */
  readonly #salt: number
  #fd: FileDescriptor | undefined
  #segmentPath = ''
  /** Bytes of the current segment known to be whole records (where a failed write is cut). */
  #segmentSize = 0
  #segmentFirstSequence = 0
  #sequenceWritten: number
  /**
   * The last sequence written that is not inside a group (a batch) whose commit is not written
   * yet. Nothing past it is ever published durable: a wait for a record of a batch (its answer,
   * or a read of what it wrote) ends only once the whole batch would survive a crash, since
   * recovery drops a group without its commit.
   */
  #boundaryWritten: number
  #sequenceSynced: number
  #lastSyncMs = 0
  #logSizeSinceSnapshot: number
  #snapshot: SnapshotWriter | undefined
  #noSpaceSinceMs: number | undefined
  /** Bytes of the newest snapshot: the live state's size on disk, as of that snapshot. */
  #lastSnapshotSize: number
  /** After a full disk abandoned a snapshot, the next is not begun before this. */
  #snapshotNotBeforeMs = 0
  /**
   * The buffer the next snapshot copies the store into, while its pages are being touched, or
   * the last snapshot's, kept for the next one since keptSinceMs (see copyTargetKeepMs).
   */
  #copyTarget: { buffer: SharedArrayBuffer; touched: number; keptSinceMs?: number } | undefined
  /** The buffer the snapshot being written holds its copy in: the next copy target. */
  #snapshotBuffer: SharedArrayBuffer | undefined
  /** Files the newest snapshot made redundant, deleted one per step (see #deleteObsolete). */
  #obsolete: string[] = []
  /**
   * Segments the newest snapshot made redundant but #compact kept for the change feed
   * (historySizeRetained), oldest first, and their bytes. A full disk deletes them.
   */
  #retained: string[] = []
  #retainedSize = 0

  constructor(
    store: Store,
    ring: WalRing,
    options: WalWriterOptions,
    /** What recovery found: the log written since the newest snapshot, in bytes. */
    logSizeSinceSnapshot = 0,
  ) {
    this.#store = store
    this.#ring = ring
    this.#options = options
    this.#storage = options.storage
    this.#clock = options.clock ?? Date.now
    // Drawn before any producer appends (the server starts them once the writer is ready), and
    // published for the ring, which checksums records as it encodes them.
    this.#salt = (options.salt ?? randomInt(1, 2 ** 32)) >>> 0
    Atomics.store(store.views.headerI32, I32.walSalt, this.#salt | 0)
    this.#sequenceWritten = store.sequence
    this.#boundaryWritten = store.sequence
    this.#sequenceSynced = store.sequence
    this.#logSizeSinceSnapshot = logSizeSinceSnapshot
    const newest = classify(this.#storage.list(options.dir)).snapshots.at(-1)
    this.#lastSnapshotSize =
      newest === undefined ? 0 : this.#storage.size(join(options.dir, newest.name))
    // A stop before every covered file was deleted leaves some behind: they go first.
    if (newest !== undefined) this.#compact(newest.sequence)
    this.#publish(store.sequence)
  }

  /** Starts a fresh segment after what recovery loaded. */
  open(): void {
    this.#openSegment()
  }

  /**
   * Starts the segment the next records go to. On a full disk (a restart after a crash while it
   * was full finds one) the log turns read-only instead, serving reads and refusing writes, and
   * the next retry tries again. Returns whether a segment is open.
   */
  #openSegment(): boolean {
    try {
      this.#startSegment(this.#sequenceWritten + 1)
    } catch (error) {
      if (!isNoSpace(error)) throw error
      this.#enterReadOnly(error)
      return false
    }
    return true
  }

  /**
   * Does what is due: writes what the ring holds, syncs as the mode says, publishes, and moves a
   * snapshot along. Returns whether it wrote anything (the caller sleeps when it did not).
   */
  step(): boolean {
    try {
      return this.#step()
    } catch (error) {
      // Whatever ends the writer (a failed sync, a file it cannot create, a broken invariant)
      // ends acknowledgements: pending writes must hear 503, not wait for a dead thread.
      this.#fail(error)
    }
  }

  #step(): boolean {
    // First, before a full disk returns early: these deletions free the space it waits for.
    this.#deleteObsolete()
    if (this.#noSpaceSinceMs !== undefined && !this.#retryDue()) return false
    if (this.#fd === undefined) {
      if (!this.#openSegment()) return false
      this.#leaveReadOnly()
    }
    const wrote = this.#drain()
    if (wrote === undefined) return false // The disk is full; retried later.
    if (wrote) this.#store.views.headerF64[F64.walGroupCommits]! += 1
    const now = this.#clock()
    const mode = this.#options.fsync
    if (this.#sequenceWritten > this.#sequenceSynced) {
      if (mode === 'always' || (mode === 'everysec' && now - this.#lastSyncMs >= everySecondMs)) {
        this.#sync()
      }
    }
    if (mode !== 'always') this.#publish(this.#sequenceWritten)
    // Also the retry of a rotation a full disk refused (step() returns early until it is due).
    if (this.#segmentSize >= this.#options.segmentSizeMax) this.#rotate()
    this.#advanceSnapshot()
    return wrote
  }

  /** How long the caller may sleep before step() has something due even without new records. */
  idleTimeoutMs(): number {
    if (this.#noSpaceSinceMs !== undefined) return this.#options.noSpaceRetryMs
    if (this.#snapshot !== undefined || this.#obsolete.length > 0) return 0
    if (this.#copyTarget !== undefined && this.#snapshotDue()) {
      // Touching pages is work to do now; a target that is ready waits for the store lock,
      // which a producer waiting for ring space may hold: try again soon, without spinning.
      return this.#copyTarget.touched < this.#copyTarget.buffer.byteLength ? 0 : 1
    }
    if (this.#options.fsync === 'everysec' && this.#sequenceWritten > this.#sequenceSynced) {
      return Math.max(0, everySecondMs - (this.#clock() - this.#lastSyncMs))
    }
    return everySecondMs
  }

  /** Writes and syncs everything left, whatever the mode, and closes the segment. */
  close(): void {
    // With no segment open (it could not be created on a full disk), nothing can be written:
    // what the ring holds stays unacknowledged, as on a full disk below.
    while (this.#fd !== undefined && !this.#ring.isEmpty()) {
      if (this.#drain() === undefined) break // Full disk: what did not fit stays unacknowledged.
    }
    if (this.#sequenceWritten > this.#sequenceSynced) this.#sync()
    this.#publish(this.#sequenceSynced)
    this.#snapshot?.abort()
    this.#snapshot = undefined
    while (this.#obsolete.length > 0) this.#deleteObsolete()
    if (this.#fd !== undefined) this.#storage.close(this.#fd)
    this.#fd = undefined
  }

  /** Appends what the ring holds to the segment; undefined when the disk was full. */
  #drain(): boolean | undefined {
    let wrote = false
    for (let readable = this.#ring.readable(); readable; readable = this.#ring.readable()) {
      assert(this.#fd !== undefined, 'the writer is not open')
      const bytes = this.#ring.bytes(readable.start, readable.end)
      try {
        this.#storage.append(this.#fd, bytes)
      } catch (error) {
        if (!isNoSpace(error)) this.#fail(error)
        this.#enterReadOnly(error)
        return undefined
      }
      this.#leaveReadOnly()
      this.#segmentSize += bytes.byteLength
      this.#logSizeSinceSnapshot += bytes.byteLength
      this.#sequenceWritten = readable.sequenceLast
      if (readable.sequenceBoundaryLast > 0) this.#boundaryWritten = readable.sequenceBoundaryLast
      const f64 = this.#store.views.headerF64
      f64[F64.walRecordsWritten]! += readable.recordCount
      f64[F64.walBytesWritten]! += bytes.byteLength
      // The bytes are in the file now; producers may reuse their ring space before the sync.
      this.#ring.release(readable.end)
      wrote = true
    }
    return wrote
  }

  #sync(): void {
    assert(this.#fd !== undefined, 'the writer is not open')
    try {
      // The group commit: one fdatasync covers every record written since the last one.
      this.#storage.fdatasync(this.#fd)
    } catch (error) {
      this.#fail(error)
    }
    this.#sequenceSynced = this.#sequenceWritten
    this.#lastSyncMs = this.#clock()
    this.#publish(this.#sequenceSynced)
  }

  /** Publishes `sequence`, or the last group boundary before it, as durable. */
  #publish(written: number): void {
    const sequence = Math.min(written, this.#boundaryWritten)
    const words = this.#store.views.headerI64
    if (Number(Atomics.load(words, I64.durableSequence)) >= sequence) return
    // Handler threads wait on this word with Atomics.waitAsync (src/wal/durability.ts).
    Atomics.store(words, I64.durableSequence, BigInt(sequence))
    Atomics.notify(words, I64.durableSequence)
  }

  /** Fail-stop: marks the log failed, wakes every waiter so it answers 503, and throws. */
  #fail(error: unknown): never {
    markLogFailed(this.#store.views)
    throw error
  }

  /** Whether a snapshot is being written: its copy taken, its file not yet under its name. */
  get snapshotInProgress(): boolean {
    return this.#snapshot !== undefined
  }

  /** True while the disk is full: what the ring holds waits for the next retry. */
  get readOnly(): boolean {
    return this.#noSpaceSinceMs !== undefined
  }

  #enterReadOnly(error: unknown): void {
    // What is kept only to save work (the change feed's history, the last snapshot's file) is
    // optional; writes are not.
    this.#dropOptionalFiles(error)
    // What part of the write reached the file is unknown: cut back to the last whole record, so
    // the retry appends the same bytes at the same place and recovery never sees a partial one.
    // (With no segment open, the one that failed to start removed itself.)
    if (this.#fd !== undefined) this.#storage.truncate(this.#segmentPath, this.#segmentSize)
    if (this.#noSpaceSinceMs === undefined) {
      this.#options.onEvent?.('the disk is full: writes are refused until space returns', {
        error: String(error),
        segment: this.#segmentPath,
      })
      Atomics.store(this.#store.views.headerI32, I32.walState, walStateReadOnly)
    }
    this.#noSpaceSinceMs = this.#clock()
  }

  #leaveReadOnly(): void {
    if (this.#noSpaceSinceMs === undefined) return
    this.#noSpaceSinceMs = undefined
    Atomics.store(this.#store.views.headerI32, I32.walState, walStateOk)
    this.#options.onEvent?.('the disk has space again: writes are accepted', {})
  }

  #retryDue(): boolean {
    return this.#clock() - (this.#noSpaceSinceMs ?? 0) >= this.#options.noSpaceRetryMs
  }

  #startSegment(firstSequence: number): void {
    const path = join(this.#options.dir, segmentName(firstSequence))
    // A segment of that name can only be one recovery left with no records in it.
    if (this.#storage.exists(path)) this.#storage.truncate(path, 0)
    const fd = this.#storage.openAppend(path)
    try {
      this.#storage.append(fd, encodeSegmentHeader(firstSequence, this.#salt))
      // The header is durable, and then the file's name: until the directory is synced, a
      // crash may forget the file, and with it records acknowledged from it.
      this.#storage.fdatasync(fd)
      this.#storage.syncDir(this.#options.dir)
    } catch (error) {
      // No record is in it yet: remove it, so a retry (or recovery) never meets a half header.
      this.#storage.close(fd)
      this.#storage.unlink(path)
      throw error
    }
    this.#fd = fd
    this.#segmentPath = path
    this.#segmentSize = segmentHeaderSize
    this.#segmentFirstSequence = firstSequence
  }

  /**
   * Starts the next segment, then closes the current one. On a full disk the current segment
   * stays open (it may grow past segmentSizeMax), the log turns read-only, and the rotation is
   * tried again after the retry interval. Returns whether it rotated.
   */
  #rotate(): boolean {
    // Nothing to rotate away from: the open segment already starts where the next would (a
    // snapshot right after a restart, before any record).
    if (this.#segmentFirstSequence === this.#sequenceWritten + 1) return true
    if (this.#sequenceWritten > this.#sequenceSynced) this.#sync()
    const previous = this.#fd
    assert(previous !== undefined, 'the writer is not open')
    if (!this.#openSegment()) return false
    this.#storage.close(previous)
    this.#leaveReadOnly()
    this.#options.onEvent?.('new segment', { segment: this.#segmentPath })
    return true
  }

  #advanceSnapshot(): void {
    if (this.#snapshot === undefined) {
      if (!this.#snapshotDue()) {
        const keptSinceMs = this.#copyTarget?.keptSinceMs
        if (keptSinceMs !== undefined && this.#clock() - keptSinceMs >= copyTargetKeepMs) {
          this.#copyTarget = undefined // Garbage now: the memory goes back.
        }
        return
      }
      // The last snapshot's compaction first: the next one counts on the space it frees.
      if (this.#obsolete.length > 0) return
      if (this.#clock() < this.#snapshotNotBeforeMs) return
      if (this.#prepareCopyTarget()) this.#beginSnapshot()
      return
    }
    let written: ReturnType<SnapshotWriter['finish']>
    try {
      if (this.#snapshot.step(snapshotStepSize)) return
      written = this.#snapshot.finish()
    } catch (error) {
      this.#abandonSnapshot(error)
      return
    }
    const { sequence, entryCount, path, size } = written
    this.#snapshot = undefined
    this.#keepSnapshotBuffer()
    this.#lastSnapshotSize = size
    this.#store.views.headerF64[F64.walSnapshots]! += 1
    this.#compact(sequence)
    this.#options.onEvent?.('snapshot written', { snapshot: path, sequence, entryCount })
  }

  /**
   * A snapshot is due once the log since the last one is at least --snapshot-after-size and at
   * least as large as that snapshot (as Redis rewrites its AOF once it has doubled): a snapshot
   * then never costs more bytes than the log it replaces, so writing them adds at most one byte
   * per byte logged, however large the live state is next to the write rate.
   */
  #snapshotThreshold(): number {
    return Math.max(this.#options.snapshotLogSizeMin, this.#lastSnapshotSize)
  }

  #snapshotDue(): boolean {
    return this.#logSizeSinceSnapshot >= this.#snapshotThreshold()
  }

  /** The snapshot is done with its copy: the buffer becomes the next one's copy target. */
  #keepSnapshotBuffer(): void {
    const buffer = this.#snapshotBuffer
    this.#snapshotBuffer = undefined
    if (buffer === undefined) return
    // Its bytes are the old copy's, which is fine: a copy overwrites every byte a read reaches
    // (store-copy.ts), and the pages are touched already.
    this.#copyTarget = { buffer, touched: buffer.byteLength, keptSinceMs: this.#clock() }
  }

  /**
   * Allocates the buffer the snapshot copies the store into, and touches every page of it a
   * slice per step, so that the copy under the lock runs at memory speed: measured here, copying
   * a 336 MB store into fresh memory took 200 ms (page faults), into touched memory 30 ms.
   * Returns whether the target is ready. The writer keeps draining between slices.
   */
  #prepareCopyTarget(): boolean {
    const size = this.#store.buffer.byteLength
    this.#copyTarget ??= { buffer: new SharedArrayBuffer(size), touched: 0 }
    const target = this.#copyTarget
    if (target.touched === size) return true
    const end = Math.min(size, target.touched + copyTargetSliceSize)
    // A fresh buffer's pages all map the kernel's zero page; writing makes each one real.
    new Uint8Array(target.buffer, target.touched, end - target.touched).fill(0)
    target.touched = end
    return false
  }

  /**
   * Copies the store, consistent with the log: under the store lock, nothing can be appended,
   * so the ring is drained to the end, and the copy holds exactly the mutations up to the last
   * sequence written. The segment is then rotated, so every older segment holds only records
   * the snapshot covers. The copy is serialized a step at a time while writes go on.
   */
  #beginSnapshot(): void {
    const header = this.#store.views.headerI32
    const taken = this.#store.tryExclusively(() => {
      // Set just after the lock is won and cleared just before it is released: should this
      // thread die in between, whoever sees the flag knows the lock is a dead thread's.
      Atomics.store(header, I32.walWriterHoldsLock, 1)
      try {
        while (!this.#ring.isEmpty()) {
          if (this.#drain() === undefined) return undefined
        }
        return { copy: this.#store.copy(this.#copyTarget?.buffer), sequence: this.#store.sequence }
      } finally {
        Atomics.store(header, I32.walWriterHoldsLock, 0)
      }
    })
    // Another thread holds the lock, or the disk is full: try again on a later step.
    if (taken?.value === undefined) return
    const { copy, sequence } = taken.value
    assert.equal(sequence, this.#sequenceWritten, 'the copy and the log disagree')
    // Without a new segment, the old ones could not be deleted: retry the whole snapshot later.
    // The copy target stays, touched: the retry (the first thing a returning disk sees) copies
    // into it at once, rather than touch a fresh buffer 2 MiB a retry while writes are refused.
    if (!this.#rotate()) return
    // The snapshot owns it now, and hands it back for the next one when it is done.
    this.#snapshotBuffer = copy.buffer
    this.#copyTarget = undefined
    this.#logSizeSinceSnapshot = 0
    try {
      this.#snapshot = new SnapshotWriter(
        this.#storage,
        this.#options.dir,
        copy,
        sequence,
        this.#salt,
      )
    } catch (error) {
      this.#abandonSnapshot(error)
    }
  }

  /**
   * A full disk abandons a snapshot rather than the log: a snapshot only saves replay time, and
   * removing its temporary file frees the space it took. It is begun again after the retry
   * interval. Any other error propagates (fail-stop; recovery decides on the next start).
   */
  #abandonSnapshot(error: unknown): void {
    if (!isNoSpace(error)) throw error
    this.#snapshot?.abort()
    this.#snapshot = undefined
    this.#keepSnapshotBuffer()
    // The disk is just as full for the log, which needs the space more than what saves work.
    this.#dropOptionalFiles(error)
    this.#logSizeSinceSnapshot = Math.max(this.#logSizeSinceSnapshot, this.#snapshotThreshold())
    this.#snapshotNotBeforeMs = this.#clock() + this.#options.noSpaceRetryMs
    this.#options.onEvent?.('the disk is full: the snapshot is abandoned, and retried later', {
      error: String(error),
    })
  }

  /**
   * Queues for deletion what the snapshot at `sequence` makes redundant, once the snapshot is
   * durable. They are deleted one per step, between group commits, not all at once: measured
   * here, deleting the covered segments and the previous snapshot (hundreds of MB) took 70 ms on
   * average and up to 94 ms, during which no write was acknowledged (PUT p99 69 ms with 16 KiB
   * values, 32 ms without snapshots). Leaving them for a while is safe: recovery skips what the
   * newest snapshot covers.
   */
  #compact(sequence: number): void {
    const dir = this.#options.dir
    const files = classify(this.#storage.list(dir))
    // Newest first: what is kept for the change feed is the history right before the snapshot,
    // with no hole, so a watcher can resume anywhere from its start on.
    // Deleted oldest first, so that what is left at any moment has no hole either.
    // Nothing is kept while the disk is full: a snapshot can finish in the step whose rotation
    // found the disk full, and no later failure would drop what it kept before the retry. (What
    // that failure queued is then queued twice; the second unlink finds it gone, which is fine.)
    let retainedRoom = this.readOnly ? 0 : (this.#options.historySizeRetained ?? 0)
    const retained: string[] = []
    let retainedSize = 0
    const deleted: string[] = []
    for (const segment of files.segments.toReversed()) {
      if (segment.firstSequence > sequence) continue
      const path = join(dir, segment.name)
      const size = retainedRoom > 0 ? this.#storage.size(path) : 0
      if (retainedRoom > 0 && size <= retainedRoom) {
        retainedRoom -= size
        retained.unshift(path)
        retainedSize += size
        continue
      }
      retainedRoom = 0
      deleted.unshift(path)
    }
    this.#obsolete.push(...deleted)
    this.#retained = retained
    this.#retainedSize = retainedSize
    const older = files.snapshots.filter((snapshot) => snapshot.sequence < sequence)
    const previous = older.pop()
    for (const snapshot of older) this.#obsolete.push(join(dir, snapshot.name))
    if (previous === undefined) return
    // The previous snapshot's file becomes the next one's, written over in place (snapshot.ts);
    // deleted instead while the disk is full, which needs its space.
    const path = join(dir, previous.name)
    if (this.readOnly) return void this.#obsolete.push(path)
    try {
      this.#storage.rename(path, join(dir, snapshotTempName))
    } catch (error) {
      if (!isNoSpace(error)) throw error
      this.#obsolete.push(path)
    }
  }

  /**
   * Queues for deletion what is kept only to save work: the previous snapshot's file, kept for
   * the next snapshot to write over, and the segments kept for the change feed, oldest first
   * (what is left at any moment has no hole), after what is queued already: a full disk would
   * rather lose optional history than refuse writes. While the log is read-only, the next step
   * deletes them all at once; a watcher resuming from before what is left is then told the
   * history is gone (410). The next snapshot keeps history again, as its own compaction allows.
   */
  #dropOptionalFiles(error: unknown): void {
    // The file kept for the next snapshot to write over, unless a snapshot is writing it now.
    const snapshotFile = join(this.#options.dir, snapshotTempName)
    if (this.#snapshot === undefined && this.#storage.exists(snapshotFile)) {
      this.#obsolete.push(snapshotFile)
    }
    if (this.#retained.length === 0) return
    this.#options.onEvent?.('the disk is full: the history kept for watchers is deleted', {
      error: String(error),
      segments: this.#retained.length,
      bytes: this.#retainedSize,
    })
    this.#obsolete.push(...this.#retained)
    this.#retained = []
    this.#retainedSize = 0
  }

  #deleteObsolete(): void {
    // One file per step; all of them while the disk is full, when writes wait for the space.
    do {
      const path = this.#obsolete.shift()
      if (path === undefined) return
      try {
        this.#storage.unlink(path)
      } catch (error) {
        // Already gone (an operator cleaning up by hand): what the deletion was for holds.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      }
      // Not needed for safety (a crash before it only leaves files recovery skips), but it
      // makes the reclaimed space certain before the next snapshot counts on it.
      if (this.#obsolete.length === 0) this.#storage.syncDir(this.#options.dir)
    } while (this.#noSpaceSinceMs !== undefined)
  }
}
