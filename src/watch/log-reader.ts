import { close, closeSync, fstatSync, open, openSync, read, readSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { MutationRecord } from '../store/types.js'
import { classify, segmentName } from '../wal/files.js'
import {
  checkRecord,
  decodeRecord,
  decodeSegmentHeader,
  recordOverheadSize,
  segmentHeaderSize,
  sequenceAt,
} from '../wal/record.js'

// Reads the log back, record by record in sequence order, from its segment files, while the WAL
// writer appends to them: the change feed's history (src/watch/). Only records up to a limit the
// caller passes (the durable sequence) are ever returned: those are whole on disk, since the
// writer publishes a sequence only after write(2) (or fdatasync) returned, and only at the end
// of a batch's group. Bytes past them may be a write in progress, or one a full disk cut short
// and the writer will truncate: they are read again later, never trusted.
//
// Segments follow each other without a gap (each starts one past the last record of the one
// before), so the next segment's name is known; once it exists, the writer is done with the
// current one. A segment a snapshot made redundant may be deleted at any time: an open file
// stays readable on Linux, but one not yet opened is gone, and so is the history it held.

export type LogRead =
  /** Records after the reader's last position, up to the limit; possibly none yet. */
  | { kind: 'records'; records: MutationRecord[] }
  /** The history to continue from is no longer on disk; the oldest sequence that is. */
  | { kind: 'gone'; oldestSequence: number }
  /** A record the limit covers does not check out: the log is damaged under a running server. */
  | { kind: 'damaged'; why: string }

/** Bytes read per system call; a larger record grows the buffer for itself. */
const chunkSize = 64 * 1024
const lengthFieldSize = 4

/** The first sequence whose record is still on disk, or undefined when no segment is there. */
export async function oldestSequenceOnDisk(dir: string): Promise<number | undefined> {
  return classify(await readdir(dir)).segments[0]?.firstSequence
}

/** How a reader reads its files: through libuv's thread pool, or on its own thread. */
interface FileIo {
  open(path: string): Promise<number>
  read(fd: number, buffer: Buffer, length: number, position: number): Promise<number>
  close(fd: number): Promise<void>
}

const threadPoolIo: FileIo = {
  open: (path) =>
    new Promise((resolve, reject) =>
      open(path, 'r', (error, fd) => (error ? reject(error) : resolve(fd))),
    ),
  read: (fd, buffer, length, position) =>
    new Promise((resolve, reject) =>
      read(fd, buffer, 0, length, position, (error, count) =>
        error ? reject(error) : resolve(count),
      ),
    ),
  close: (fd) => new Promise((resolve) => close(fd, () => resolve())),
}

const inThreadIo: FileIo = {
  open: async (path) => openSync(path, 'r'),
  read: async (fd, buffer, length, position) => readSync(fd, buffer, 0, length, position),
  close: async (fd) => closeSync(fd),
}

type Opened = { kind: 'open' | 'unready' } | { kind: 'gone'; oldestSequence: number }

export class LogReader {
  readonly #dir: string
  /** The last sequence returned (or skipped, at the start): reading continues after it. */
  #position: number
  readonly #io: FileIo
  #file: { fd: number; name: string; salt: number } | undefined
  /** Where the record after #position starts in #file. */
  #offset = 0
  #buffer = Buffer.allocUnsafe(chunkSize)
  #closed = false
  /** A read is in progress: close() leaves the file to it, which may still be reading it. */
  #reading = false

  /**
   * A reader of every record after `after`. Nothing is opened until the first read. `inThread`
   * reads with blocking calls: for the end of the log, which the writer has just written and
   * the page cache holds, a read there costs a few microseconds, against tens for a round trip
   * through libuv's thread pool (measured: 14% of a handler thread's time with 100 watchers).
   * History may be on the disk itself, and is read through the pool, not to stall the thread.
   */
  constructor(dir: string, after: number, options: { inThread?: boolean } = {}) {
    this.#dir = dir
    this.#position = after
    this.#io = options.inThread ? inThreadIo : threadPoolIo
  }

  /** The last sequence read: the next read returns records after it. */
  get position(): number {
    return this.#position
  }

  /**
   * Records after the position and up to `limit`, about `sizeBudget` bytes of them at most (at
   * least one record when there is one). Commit records are read past, not returned.
   */
  async read(limit: number, sizeBudget: number): Promise<LogRead> {
    if (this.#reading) throw new Error('LogReader.read: a read is already in progress')
    this.#reading = true
    try {
      return await this.#read(limit, sizeBudget)
    } finally {
      this.#reading = false
      // Closed during the read: the file it may have opened meanwhile is closed now.
      if (this.#closed) await this.#closeFile()
    }
  }

  async #read(limit: number, sizeBudget: number): Promise<LogRead> {
    const records: MutationRecord[] = []
    let size = 0
    while (this.#position < limit && size < sizeBudget && !this.#closed) {
      if (this.#file === undefined) {
        const opened = await this.#openSegmentFor(this.#position + 1)
        if (opened.kind === 'gone') return opened
        if (opened.kind === 'unready') break
        continue
      }
      const file = this.#file
      const count = await this.#io.read(file.fd, this.#buffer, this.#buffer.length, this.#offset)
      if (count === 0) {
        // The end of this segment: the rest is in the next one once the writer has rotated.
        const moved = await this.#moveToNextSegment()
        if (moved.kind === 'gone') return moved
        if (moved.kind === 'unready') break
        continue
      }
      let at = 0
      while (at < count && this.#position < limit && size < sizeBudget) {
        const recordSize = checkRecord(this.#buffer, at, file.salt, count)
        if (recordSize === 0) {
          const whole = this.#wholeFrameSize(at, count)
          // Not all read yet: read again from this record (the buffer grows for a large one).
          if (whole === undefined || whole > count - at) break
          return { kind: 'damaged', why: `a bad record at ${file.name}:${this.#offset + at}` }
        }
        const sequence = sequenceAt(this.#buffer, at)
        if (sequence > limit) break
        if (sequence > this.#position) {
          // Through a plain Uint8Array, whose slice() copies: a set's value must not be a view
          // of this buffer, which the next read overwrites (Buffer#slice makes a view).
          const bytes = new Uint8Array(this.#buffer.buffer, this.#buffer.byteOffset, count)
          const decoded = decodeRecord(bytes, at, file.salt)
          if (!decoded.ok) {
            return { kind: 'damaged', why: `a bad record at ${file.name}:${this.#offset + at}` }
          }
          if (decoded.record.op !== 'commit') records.push(decoded.record)
          this.#position = sequence
          size += recordSize
        }
        at += recordSize
      }
      if (at === 0) {
        const whole = this.#wholeFrameSize(0, count)
        // A record larger than the buffer: grow it and read again; else wait for the writer.
        if (whole !== undefined && whole > this.#buffer.length) {
          this.#buffer = Buffer.allocUnsafe(whole)
          continue
        }
        break
      }
      this.#offset += at
    }
    // A large record's buffer is not kept: a reader of a quiet stream holds little.
    if (this.#buffer.length > chunkSize) this.#buffer = Buffer.allocUnsafe(chunkSize)
    return { kind: 'records', records }
  }

  /**
   * Closes the reader. During a read, the read closes its file as it returns: closing an fd that
   * a read in the thread pool still uses could make it read whatever file reuses the number.
   */
  async close(): Promise<void> {
    this.#closed = true
    if (!this.#reading) await this.#closeFile()
  }

  async #closeFile(): Promise<void> {
    const file = this.#file
    this.#file = undefined
    if (file !== undefined) await this.#io.close(file.fd)
  }

  /** The size the frame at `at` says it has, or undefined when not even its length is read. */
  #wholeFrameSize(at: number, count: number): number | undefined {
    if (count - at < lengthFieldSize) return undefined
    return Math.max(recordOverheadSize, this.#buffer.readUInt32LE(at) + lengthFieldSize + 4)
  }

  /** Opens the segment holding `sequence`: 'gone' when no segment on disk reaches back to it. */
  async #openSegmentFor(sequence: number): Promise<Opened> {
    for (;;) {
      const { segments } = classify(await readdir(this.#dir))
      const holding = segments.findLast((segment) => segment.firstSequence <= sequence)
      // No segment at all: the writer has not started one yet (a full disk at start).
      if (segments[0] === undefined) return { kind: 'unready' }
      if (holding === undefined) return { kind: 'gone', oldestSequence: segments[0].firstSequence }
      const opened = await this.#openSegment(holding.name)
      if (opened !== 'missing') return { kind: opened }
      // Deleted between the listing and the open: list again, which says whether it is gone.
    }
  }

  /** Moves on to the segment after the current one, once the writer has started it. */
  async #moveToNextSegment(): Promise<Opened> {
    const next = segmentName(this.#position + 1)
    if (next === this.#file?.name) {
      // A segment the writer removed because it could not sync its header (a full disk), to
      // create it again later under the same name: the file open here is not that one.
      if (fstatSync(this.#file.fd).nlink > 0) return { kind: 'unready' }
      const reopened = await this.#openSegment(next)
      return { kind: reopened === 'open' ? 'open' : 'unready' }
    }
    const opened = await this.#openSegment(next)
    if (opened === 'open') return { kind: 'open' }
    if (opened === 'unready') return { kind: 'unready' }
    // Not there: not written yet, unless later segments exist, and then a snapshot deleted it.
    const { segments } = classify(await readdir(this.#dir))
    const oldest = segments[0]?.firstSequence
    if (oldest !== undefined && segments.some((s) => s.firstSequence > this.#position + 1)) {
      return { kind: 'gone', oldestSequence: oldest }
    }
    return { kind: 'unready' }
  }

  /** Opens a segment and reads its header; 'unready' while the writer has not written it. */
  async #openSegment(name: string): Promise<'open' | 'missing' | 'unready'> {
    let fd: number
    try {
      fd = await this.#io.open(join(this.#dir, name))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing'
      throw error
    }
    const header = Buffer.alloc(segmentHeaderSize)
    const bytesRead = await this.#io.read(fd, header, header.length, 0)
    const decoded = decodeSegmentHeader(header.subarray(0, bytesRead))
    if (!decoded.ok || this.#closed) {
      await this.#io.close(fd)
      return 'unready'
    }
    if (this.#file !== undefined) await this.#io.close(this.#file.fd)
    this.#file = { fd, name, salt: decoded.salt }
    this.#offset = decoded.size
    return 'open'
  }
}
