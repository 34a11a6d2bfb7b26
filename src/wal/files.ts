// The files of a data directory and their names. Sequence numbers are zero-padded to 16 digits
// (sequence numbers stay below 2^53), so names sort in sequence order as plain strings.
//
//   wal-<first sequence>.log     a log segment: records from that sequence on
//   snap-<sequence>.snap         a snapshot covering every mutation up to that sequence
//   snap.tmp                     a snapshot being written, or the previous snapshot's file, kept
//                                for the next one to write over (snapshot.ts); never read
//   <name>.broken                bytes recovery or repair cut from <name>, kept for inspection

export const snapshotTempName = 'snap.tmp'

const segmentPattern = /^wal-(\d{16})\.log$/
const snapshotPattern = /^snap-(\d{16})\.snap$/

export function segmentName(firstSequence: number): string {
  return `wal-${String(firstSequence).padStart(16, '0')}.log`
}

export function snapshotName(sequence: number): string {
  return `snap-${String(sequence).padStart(16, '0')}.snap`
}

export interface DataFiles {
  /** Ascending by first sequence. */
  segments: { name: string; firstSequence: number }[]
  /** Ascending by sequence. */
  snapshots: { name: string; sequence: number }[]
}

export function classify(names: string[]): DataFiles {
  const segments: DataFiles['segments'] = []
  const snapshots: DataFiles['snapshots'] = []
  for (const name of names) {
    const segment = segmentPattern.exec(name)
    if (segment) segments.push({ name, firstSequence: Number(segment[1]) })
    const snapshot = snapshotPattern.exec(name)
    if (snapshot) snapshots.push({ name, sequence: Number(snapshot[1]) })
  }
  segments.sort((a, b) => a.firstSequence - b.firstSequence)
  snapshots.sort((a, b) => a.sequence - b.sequence)
  return { segments, snapshots }
}
