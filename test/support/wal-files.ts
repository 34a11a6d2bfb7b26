import {
  decodeRecord,
  decodeSegmentHeader,
  segmentMagic,
  snapshotFooterSize,
  snapshotMagic,
} from '../../src/wal/record.js'

// Walking the log's files as the writer left them: where the header ends, where each record
// starts, with the salt the file's header names (src/wal/record.ts, format version 2).

/** Where each record of a segment starts, and where the last one ends (the file's length). */
export function recordStarts(segment: Uint8Array): number[] {
  const header = decodeSegmentHeader(segment, segmentMagic)
  if (!header.ok) throw new Error(`the segment's header does not decode: ${header.reason}`)
  const starts = [header.size]
  for (let at = header.size; at < segment.length; ) {
    const decoded = decodeRecord(segment, at, header.salt)
    if (!decoded.ok) throw new Error(`the log does not decode at ${at}: ${decoded.reason}`)
    at += decoded.size
    starts.push(at)
  }
  return starts
}

/** Where each entry of a snapshot starts, and where its footer starts. */
export function snapshotRecordStarts(snapshot: Uint8Array): number[] {
  const header = decodeSegmentHeader(snapshot, snapshotMagic)
  if (!header.ok) throw new Error(`the snapshot's header does not decode: ${header.reason}`)
  const starts = [header.size]
  for (let at = header.size; at < snapshot.length - snapshotFooterSize; ) {
    const decoded = decodeRecord(snapshot, at, header.salt)
    if (!decoded.ok) throw new Error(`the snapshot does not decode at ${at}`)
    at += decoded.size
    starts.push(at)
  }
  return starts
}

/** The salt a file's header names (0 for format version 1). */
export function saltOf(file: Uint8Array, magic = segmentMagic): number {
  const header = decodeSegmentHeader(file, magic)
  if (!header.ok) throw new Error(`the header does not decode: ${header.reason}`)
  return header.salt
}
