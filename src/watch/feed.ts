import { I64, type Views } from '../store/layout.js'
import type { MutationRecord } from '../store/types.js'
import { Change } from './change.js'
import { type LogRead, LogReader } from './log-reader.js'

// The change feed of one handler thread: it follows the end of the log as the WAL writer makes
// it durable, and keeps the most recent changes in memory (--watch-buffer-size) for this
// thread's watchers. The log on disk is the feed's only source: whichever thread made a change,
// every thread reads it there, in sequence order, and only once it is durable, so a watcher
// never sees a change that a crash could take back. The writer is never slowed: nothing here
// holds log room or the store lock, and the buffer forgets its oldest changes whoever has not
// read them; a watcher behind it reads the log from disk by itself (src/watch/watcher.ts).
//
// The feed runs while this thread has watchers; it starts at the durable end of the log.

/** Bytes read from the log per step, so that a burst is handed to watchers in slices. */
const readSizeBudget = 1024 * 1024
/** How long the follower sleeps when the durable sequence does not move; also its stop check. */
const idleWaitMs = 1000
/** After a file error, the follower tries again this much later. */
const errorRetryMs = 1000
/** A read that found nothing the durable sequence promised (a rotation in progress) waits this. */
const unreadyRetryMs = 2

export interface FeedOptions {
  dir: string
  views: Views
  /** Bytes of recent changes kept in memory (--watch-buffer-size). */
  bufferSize: number
  /** What an operator should hear about: the log unreadable, for a while or for good. */
  onProblem(message: string, fields: Record<string, unknown>): void
}

/** Why a stream ends: the server stops, or the log cannot be read. */
export type FeedEnd = 'shutdown' | 'log_unreadable'

/** What a watcher gets when it asks for the changes after its position. */
export type FeedSlice =
  /** Changes after the position, from the buffer; `position` is how far they cover. */
  | { kind: 'changes'; changes: Change[]; position: number }
  /** The position is older than the buffer: read the log from disk. */
  | { kind: 'behind' }
  /** Nothing after the position yet: wait(). */
  | { kind: 'caught-up' }

export class ChangeFeed {
  readonly #options: FeedOptions
  /** Recent changes in sequence order; the first live one is at #head. */
  #buffer: Change[] = []
  #head = 0
  #bufferedSize = 0
  /** The buffer holds every change after this sequence (up to #position). */
  #from = 0
  /** How far the follower has read: the buffer is complete up to here. */
  #position = 0
  #follower: LogReader | undefined
  #running = false
  #watcherCount = 0
  #wakeups = new Set<() => void>()
  /** What ends with the feed: pauses, and streams that cannot hear it otherwise. */
  #closers = new Set<() => void>()
  #closed = false
  #closeReason: FeedEnd = 'shutdown'

  constructor(options: FeedOptions) {
    this.#options = options
  }

  /** Why the feed ended, once it has: every watcher's stream ends with it. */
  get ended(): FeedEnd | undefined {
    return this.#closed ? this.#closeReason : undefined
  }

  /** Bytes of changes held in memory now (at most the buffer size, or one change above it). */
  get bufferedSize(): number {
    return this.#bufferedSize
  }

  /** The newest sequence the writer has made durable. */
  durableSequence(): number {
    return Number(Atomics.load(this.#options.views.headerI64, I64.durableSequence))
  }

  /** A watcher joins this thread; the follower runs while there is one. */
  join(): void {
    this.#watcherCount++
    if (this.#running || this.#closed) return
    this.#running = true
    // Starting at the durable end: a watcher from further back reads the disk until it is here.
    this.#restartAt(this.durableSequence())
    void this.#follow()
  }

  leave(): void {
    this.#watcherCount--
  }

  /** Watchers on this thread. */
  get watcherCount(): number {
    return this.#watcherCount
  }

  /** How far the buffer reaches: every change up to here has been read. */
  get position(): number {
    return this.#position
  }

  /** The changes after `position`, as many as `count` at most, from memory if it has them. */
  slice(position: number, count: number): FeedSlice {
    if (position >= this.#position) return { kind: 'caught-up' }
    if (position < this.#from) return { kind: 'behind' }
    const buffer = this.#buffer
    // The first change past the position: binary search, sequences increase.
    let low = this.#head
    let high = buffer.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (buffer[middle]!.sequence <= position) low = middle + 1
      else high = middle
    }
    const end = Math.min(buffer.length, low + count)
    const changes = buffer.slice(low, end)
    return {
      kind: 'changes',
      changes,
      // Past the last change the buffer holds, the log holds only records no watcher is sent.
      position: end === buffer.length ? this.#position : buffer[end - 1]!.sequence,
    }
  }

  /**
   * Resolves once the follower has read more, the feed closes, `cancel` is called, or
   * `timeoutMs` passes. Returns a function that cancels the wait.
   */
  wait(timeoutMs: number): { done: Promise<void>; cancel: () => void } {
    return this.#timed(timeoutMs, this.#wakeups)
  }

  /** Resolves after `ms`, or at once when the feed ends or `cancel` is called. */
  pause(ms: number): { done: Promise<void>; cancel: () => void } {
    return this.#timed(ms, this.#closers)
  }

  /** A wait of `ms` that `wakers` (or the feed's end, which calls both sets) cut short. */
  #timed(ms: number, wakers: Set<() => void>): { done: Promise<void>; cancel: () => void } {
    let cancel = () => {}
    const done = new Promise<void>((resolve) => {
      const stop = () => {
        clearTimeout(timer)
        wakers.delete(stop)
        resolve()
      }
      const timer = setTimeout(stop, ms)
      wakers.add(stop)
      cancel = stop
    })
    if (this.#closed) cancel()
    return { done, cancel }
  }

  /** Calls `stop` when the feed ends; returns what unregisters it. */
  onClose(stop: () => void): () => void {
    this.#closers.add(stop)
    return () => this.#closers.delete(stop)
  }

  /** Ends the feed: every waiting watcher wakes and finds it ended. */
  close(reason: FeedEnd = 'shutdown'): void {
    if (this.#closed) return
    this.#closed = true
    this.#closeReason = reason
    this.#wake()
    for (const stop of [...this.#closers]) stop()
  }

  #wake(): void {
    for (const wake of [...this.#wakeups]) wake()
  }

  async #follow(): Promise<void> {
    let follower = this.#follower!
    try {
      while (this.#watcherCount > 0 && !this.#closed) {
        const durable = this.durableSequence()
        if (durable <= follower.position) {
          await this.#durableMoved(durable)
          continue
        }
        let read: LogRead
        try {
          read = await follower.read(durable, readSizeBudget)
        } catch (error) {
          // A file error (too many open files, EIO, the directory gone): the feed is not worth
          // the server. Say so, wait, and read again from where it was; nothing is skipped.
          this.#options.onProblem('the change feed could not read the log: retrying', {
            error: String(error),
            retryMs: errorRetryMs,
          })
          await follower.close()
          const pause = this.pause(errorRetryMs)
          await pause.done
          follower = this.#resumeAt(follower.position)
          continue
        }
        if (read.kind === 'damaged') {
          this.#options.onProblem('the change feed found a damaged record: watch streams end', {
            why: read.why,
          })
          this.close('log_unreadable')
          return
        }
        if (read.kind === 'gone') {
          // This thread fell a whole snapshot behind the writer (a burst while it was busy),
          // and the log it had yet to read is deleted: carry on from the present. A watcher
          // that had not read that far finds it gone on disk too, and is told so.
          await follower.close()
          follower = this.#restartAt(this.durableSequence())
          // Watchers waiting for the old position find they are behind, and read the disk.
          this.#wake()
          continue
        }
        this.#take(read.records, follower.position)
        if (read.records.length === 0 && follower.position < durable) {
          await new Promise((resolve) => setTimeout(resolve, unreadyRetryMs))
        }
      }
    } finally {
      this.#running = false
      this.#follower = undefined
      this.#buffer = []
      this.#head = 0
      this.#bufferedSize = 0
      // Nothing is buffered any more: a watcher asking from here on reads the disk.
      this.#from = this.#position
      await follower.close()
      // A watcher that joined while this loop was on its way out needs a follower again.
      if (this.#watcherCount > 0 && !this.#closed) {
        this.#watcherCount--
        this.join()
      }
    }
  }

  /** A new follower where the last one stopped: the buffer stays as it is. */
  #resumeAt(sequence: number): LogReader {
    this.#follower = new LogReader(this.#options.dir, sequence, { inThread: true })
    return this.#follower
  }

  /** A new follower at `sequence`, with an empty buffer that starts there. */
  #restartAt(sequence: number): LogReader {
    this.#follower = new LogReader(this.#options.dir, sequence, { inThread: true })
    this.#buffer = []
    this.#head = 0
    this.#bufferedSize = 0
    this.#from = sequence
    this.#position = sequence
    return this.#follower
  }

  /** Adds what the follower read to the buffer and wakes the watchers. */
  #take(records: readonly MutationRecord[], position: number): void {
    for (const record of records) {
      if (record.op === 'commit') continue
      const change = new Change(record)
      this.#buffer.push(change)
      this.#bufferedSize += change.size
    }
    this.#position = position
    this.#trim()
    this.#wake()
  }

  /** Forgets the oldest changes beyond the buffer's size; always keeps the newest. */
  #trim(): void {
    const buffer = this.#buffer
    while (this.#bufferedSize > this.#options.bufferSize && this.#head < buffer.length - 1) {
      const oldest = buffer[this.#head]!
      this.#bufferedSize -= oldest.size
      this.#from = oldest.sequence
      this.#head++
    }
    // The array is compacted once half of it is dead, so each change is copied O(1) times.
    if (this.#head > 1024 && this.#head * 2 > buffer.length) {
      this.#buffer = buffer.slice(this.#head)
      this.#head = 0
    }
  }

  /** Waits until the durable sequence is no longer `seen` (or a while, to check for a stop). */
  async #durableMoved(seen: number): Promise<void> {
    const wait = Atomics.waitAsync(
      this.#options.views.headerI64,
      I64.durableSequence,
      BigInt(seen),
      idleWaitMs,
    )
    if (wait.async) await wait.value
  }
}
