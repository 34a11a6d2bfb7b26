import assert from 'node:assert/strict'
import { join } from 'node:path'
import { type Slot, slotNone } from '../store/layout.js'
import type { Store } from '../store/store.js'
import type { MutationRecord } from '../store/types.js'
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
  segmentHeaderSize,
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

export class SnapshotWriter {
  readonly #storage: Storage
  readonly #dir: string
  readonly #copy: Store
  readonly sequence: number
  readonly #fd: FileDescriptor
  #cursor: Slot | undefined
  #entryCount = 0

  constructor(storage: Storage, dir: string, copy: Store, sequence: number) {
    this.#storage = storage
    this.#dir = dir
    this.#copy = copy
    this.sequence = sequence
    const path = join(dir, snapshotTempName)
    if (storage.exists(path)) storage.unlink(path) // Left by a crash mid-snapshot.
    this.#fd = storage.openAppend(path)
    storage.append(this.#fd, encodeSegmentHeader(sequence, snapshotMagic))
  }

  /** Writes up to `countMax` more entries; returns whether any remain. */
  step(countMax: number): boolean {
    if (this.#cursor === slotNone) return false
    const records: MutationRecord[] = []
    let size = 0
    this.#cursor = this.#copy.walkOldestFirst(this.#cursor, countMax, (key, value, entry) => {
      const record: MutationRecord = {
        op: 'set',
        sequence: entry.version,
        key,
        value: value.slice(), // The view is valid during the visit only.
        contentType: entry.contentType,
        expiresAt: entry.expiresAt,
      }
      records.push(record)
      size += encodedSize(record)
    })
    const bytes = new Uint8Array(size)
    let at = 0
    for (const record of records) at += encodeRecord(record, bytes, at)
    this.#storage.append(this.#fd, bytes)
    this.#entryCount += records.length
    return this.#cursor !== slotNone
  }

  /** Makes the snapshot durable under its final name. */
  finish(): { sequence: number; entryCount: number; path: string } {
    assert(this.#cursor === slotNone, 'the snapshot is not complete')
    this.#storage.append(this.#fd, encodeSnapshotFooter(this.#entryCount))
    // The data first: a renamed file whose data is not durable could be a torn snapshot.
    this.#storage.fdatasync(this.#fd)
    this.#storage.close(this.#fd)
    const path = join(this.#dir, snapshotName(this.sequence))
    this.#storage.rename(join(this.#dir, snapshotTempName), path)
    // The rename is durable only once the directory is; the caller deletes segments after this.
    this.#storage.syncDir(this.#dir)
    return { sequence: this.sequence, entryCount: this.#entryCount, path }
  }

  /** Gives up (a full disk, or shutdown): the temporary file goes, nothing else changed. */
  abort(): void {
    try {
      this.#storage.close(this.#fd)
      this.#storage.unlink(join(this.#dir, snapshotTempName))
    } catch {
      // Best effort: recovery ignores snap.tmp, and the next snapshot replaces it.
    }
  }
}

export type SnapshotRead =
  | { ok: true; sequence: number; entryCount: number }
  | { ok: false; offset: number; why: string }

/**
 * Checks a snapshot file whole (every frame and checksum, the footer's count), and only then
 * decodes each entry and hands it to `apply`, oldest first: a damaged snapshot must not
 * half-load.
 */
export function readSnapshot(
  bytes: Uint8Array,
  apply: (record: MutationRecord, sequence: number) => void,
): SnapshotRead {
  const header = decodeSegmentHeader(bytes, snapshotMagic)
  if (!header.ok) return { ok: false, offset: 0, why: `bad header (${header.reason})` }
  let recordCount = 0
  let at = segmentHeaderSize
  let footer = decodeSnapshotFooter(bytes, at)
  while (footer === undefined) {
    const size = checkRecord(bytes, at)
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
  for (at = segmentHeaderSize; recordCount > 0; recordCount--) {
    const decoded = decodeRecord(bytes, at)
    if (!decoded.ok || decoded.record.op !== 'set' || decoded.record.sequence > sequence) {
      return { ok: false, offset: at, why: 'a record that is not an entry of this snapshot' }
    }
    apply(decoded.record, sequence)
    at += decoded.size
  }
  return { ok: true, sequence, entryCount: footer }
}
