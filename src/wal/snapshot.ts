import assert from 'node:assert/strict'
import { join } from 'node:path'
import { type Slot, slotNone } from '../store/layout.js'
import type { Store } from '../store/store.js'
import type { Entry, SetRecord } from '../store/types.js'
import { snapshotName, snapshotTempName } from './files.js'
import {
  checkRecord,
  decodeRecord,
  decodeSegmentHeader,
  decodeSnapshotFooter,
  encodedSize,
  encodeRecord,
  encodeSegmentHeader,
  encodeSnapshotFooter,
  snapshotMagic,
} from './record.js'
import type { FileDescriptor, Storage } from './storage.js'

// Snapshots: the live state as one file, so the log before it can be deleted. The WAL writer
// serializes a private copy of the store (Store.copy) a step at a time, between group commits,
// so writes go on meanwhile. The file format is in record.ts: a header with the sequence covered,
// one set record per entry from least to most recently used (replaying them in that order
// rebuilds the recency order too), and a footer with the count.
//
// Durability order: snap.tmp → fdatasync → rename to snap-<sequence>.snap → fsync(dir). Only
// then may the segments it covers go: before the rename is durable, a crash could leave neither.
//
// snap.tmp is usually the previous snapshot's file, which the WAL writer renames there once a
// newer snapshot has made it redundant (writer.ts). Each snapshot writes over it in place and
// cuts it to its own size: appending to a new file cost this machine's kernel about 2.4 ms of CPU
// per MiB (new page-cache pages, block allocation, journaling the growth), overwriting one whose
// blocks and cached pages exist a tenth of that (`npm run bench:disk`), and a snapshot writes as
// many bytes as the log it replaces. Recovery never reads snap.tmp, so whatever a crash leaves
// of it, old bytes or new, is never taken for a snapshot.

/** Entries visited per call into the copy; the byte budget decides when a step ends. */
const entriesPerWalk = 64

/**
 * Bytes written to the snapshot between fdatasyncs. Syncing only at the end left the whole
 * file's dirty pages (hundreds of MB) to one fdatasync on the WAL writer thread, which group
 * commits wait behind: measured here, PUT p99 rose from 32 to 107 ms with 16 KiB values. Syncing
 * as it goes spreads the write-back over the steps, as Redis's rdb-save-incremental-fsync does
 * (every 4 MB).
 */
export const snapshotSyncSize = 4 * 1024 * 1024

export class SnapshotWriter {
  readonly #storage: Storage
  readonly #dir: string
  readonly #copy: Store
  readonly sequence: number
  readonly #salt: number
  /** Undefined once closed: a closed descriptor's number may already be another file's. */
  #fd: FileDescriptor | undefined
  #cursor: Slot | undefined
  #entryCount = 0
  /** Bytes written so far: where the next bytes go. */
  #size = 0
  #unsyncedSize = 0
  /** Writing over an existing snap.tmp in place, rather than appending to a new one. */
  readonly #inPlace: boolean

  constructor(storage: Storage, dir: string, copy: Store, sequence: number, salt: number) {
    this.#storage = storage
    this.#dir = dir
    this.#copy = copy
    this.sequence = sequence
    this.#salt = salt
    const path = join(dir, snapshotTempName)
    // The previous snapshot's file, or one a crash left mid-snapshot: written over either way.
    const reused = storage.exists(path) ? openInPlace(storage, path) : undefined
    this.#inPlace = reused !== undefined
    this.#fd = reused ?? storage.openAppend(path)
    try {
      this.#write(this.#fd, encodeSegmentHeader(sequence, salt, snapshotMagic))
    } catch (error) {
      // Nobody gets an object to abort(): the descriptor and the file go here.
      this.abort()
      throw error
    }
  }

  #write(fd: FileDescriptor, bytes: Uint8Array): void {
    if (this.#inPlace) this.#storage.writeAt(fd, bytes, this.#size)
    else this.#storage.append(fd, bytes)
    this.#size += bytes.byteLength
  }

  /**
   * Writes about `sizeBudget` more bytes of entries (at least one entry); returns whether any
   * remain. Bounded in bytes, not entries, so a step with large values stays as short as one
   * with small ones: the writer drains the ring between steps.
   */
  step(sizeBudget: number): boolean {
    if (this.#cursor === slotNone) return false
    const records: SetRecord[] = []
    let size = 0
    const visit = (key: string, value: Uint8Array, entry: Omit<Entry, 'value'>) => {
      const record: SetRecord = {
        op: 'set',
        sequence: entry.version,
        key,
        // A view into the copy, which nothing changes: no need to copy the bytes again.
        value,
        contentType: entry.contentType,
        expiresAt: entry.expiresAt,
      }
      records.push(record)
      size += encodedSize(record)
    }
    while (this.#cursor !== slotNone && size < sizeBudget) {
      this.#cursor = this.#copy.walkOldestFirst(this.#cursor, entriesPerWalk, visit)
    }
    const bytes = new Uint8Array(size)
    let at = 0
    for (const record of records) at += encodeRecord(record, bytes, at, this.#salt)
    const fd = this.#open()
    this.#write(fd, bytes)
    this.#entryCount += records.length
    this.#unsyncedSize += bytes.byteLength
    if (this.#unsyncedSize >= snapshotSyncSize) {
      this.#storage.fdatasync(fd)
      this.#unsyncedSize = 0
    }
    return this.#cursor !== slotNone
  }

  /** Makes the snapshot durable under its final name. */
  finish(): { sequence: number; entryCount: number; path: string; size: number } {
    assert(this.#cursor === slotNone, 'the snapshot is not complete')
    const footer = encodeSnapshotFooter(this.#entryCount)
    const fd = this.#open()
    this.#write(fd, footer)
    // What the old file held past this snapshot's end goes, before the sync that covers the size.
    const tempPath = join(this.#dir, snapshotTempName)
    if (this.#inPlace) this.#storage.truncate(tempPath, this.#size)
    // The data first: a renamed file whose data is not durable could be a torn snapshot.
    this.#storage.fdatasync(fd)
    this.#fd = undefined
    this.#storage.close(fd)
    const path = join(this.#dir, snapshotName(this.sequence))
    this.#storage.rename(tempPath, path)
    // The rename is durable only once the directory is; the caller deletes segments after this.
    this.#storage.syncDir(this.#dir)
    return { sequence: this.sequence, entryCount: this.#entryCount, path, size: this.#size }
  }

  /**
   * Gives up (a full disk, or shutdown): the descriptor is closed once, and the temporary file
   * goes, or stays for the next snapshot to replace (recovery never reads snap.tmp). Nothing else
   * changed. After finish() renamed the file there is nothing left to undo.
   */
  abort(): void {
    const fd = this.#fd
    this.#fd = undefined
    try {
      if (fd !== undefined) this.#storage.close(fd)
    } catch {
      // A close that fails still releases the descriptor (Linux close(2)); never retried.
    }
    try {
      const path = join(this.#dir, snapshotTempName)
      if (this.#storage.exists(path)) this.#storage.unlink(path)
    } catch {
      // Best effort, as above: the next snapshot unlinks it first.
    }
  }

  #open(): FileDescriptor {
    assert(this.#fd !== undefined, 'the snapshot is closed')
    return this.#fd
  }
}

/**
 * Opens `path` to write over it, or deletes it when it cannot be written (a file restored
 * read-only by hand, say): the snapshot then goes to a new file, as if there were none.
 */
function openInPlace(storage: Storage, path: string): FileDescriptor | undefined {
  try {
    return storage.openRewrite(path)
  } catch {
    storage.unlink(path)
    return undefined
  }
}

export type SnapshotRead =
  | { ok: true; sequence: number; entryCount: number }
  /** refused: the entry is whole, but `apply` refused it (the store's limits); else damage. */
  | { ok: false; offset: number; why: string; refused?: boolean }

/**
 * Checks a snapshot file whole (every frame and checksum, the footer's count), and only then
 * decodes each entry and hands it to `apply`, oldest first: a damaged snapshot must not
 * half-load. `apply` returns why an entry does not apply, if it does not; reading stops there.
 */
export function readSnapshot(
  bytes: Uint8Array,
  apply: (record: SetRecord, sequence: number) => string | undefined,
): SnapshotRead {
  const header = decodeSegmentHeader(bytes, snapshotMagic)
  if (!header.ok) return { ok: false, offset: 0, why: `bad header (${header.reason})` }
  const salt = header.salt
  let recordCount = 0
  let at = header.size
  let footer = decodeSnapshotFooter(bytes, at)
  while (footer === undefined) {
    const size = checkRecord(bytes, at, salt)
    if (size === 0) return { ok: false, offset: at, why: 'a damaged record' }
    recordCount++
    at += size
    footer = decodeSnapshotFooter(bytes, at)
  }
  if (footer !== recordCount) {
    return {
      ok: false,
      offset: at,
      why: `the footer counts ${footer}, the file has ${recordCount}`,
    }
  }
  const sequence = header.firstSequence
  for (at = header.size; recordCount > 0; recordCount--) {
    const decoded = decodeRecord(bytes, at, salt)
    if (!decoded.ok || decoded.record.op !== 'set' || decoded.record.sequence > sequence) {
      return { ok: false, offset: at, why: 'a record that is not an entry of this snapshot' }
    }
    const refused = apply(decoded.record, sequence)
    if (refused !== undefined) return { ok: false, offset: at, why: refused, refused: true }
    at += decoded.size
  }
  return { ok: true, sequence, entryCount: footer }
}
