import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { Store } from '../store/store.js'
import type { MutationRecord } from '../store/types.js'
import { classify } from './files.js'
import {
  checkRecord,
  decodeRecord,
  decodeSegmentHeader,
  recordOverheadSize,
  segmentHeaderSize,
  sequenceAt,
} from './record.js'
import { readSnapshot } from './snapshot.js'
import { isNoSpace, type Storage } from './storage.js'

// Recovery reads a data directory: the newest snapshot, then every record after it, in sequence
// order, handing each to the caller (replay into the store, or nothing for `slabkv wal check`).
//
// When a record or a segment header does not check out, what it means depends on what follows
// it. The decision table (as Redis's aof.c separates a truncated tail from a format error, and
// TigerBeetle's journal tabulates its recovery cases):
//
//   what is bad                  a valid record follows it?   decision
//   ─────────────────────────    ─────────────────────────    ──────────────────────────────────
//   record or segment header     no                           torn tail: what a crash during a
//   (frame, checksum, content)                                write leaves. Cut it off (the bytes
//                                                              go to a .broken file), warn, go on.
//   record or segment header     yes (same or later file),    corruption: the disk damaged data
//                                or a later segment starts     that was once whole. Refuse to
//                                past it                       start; name file, offset, sequence.
//   a record's sequence is not   -                            corruption (a record or a file is
//   the one expected                                           missing)
//   snapshot, anywhere           -                            corruption (a snapshot is renamed
//                                                              into place only once synced whole)
//   the log ends inside a group  -                            torn tail from the group's first
//   (a batch without its commit)                               record: a batch goes whole or not
//                                                              at all (its answer waited for the
//                                                              commit); so does a torn tail that
//                                                              starts inside a group
//   a whole record that does     -                            refused: the store's limits are
//   not apply to the store                                     smaller than the log was written
//   (a key or value too large)                                 with. Refuse to start, name the
//                                                              record and the limit; nothing is
//                                                              damaged, so repair cuts nothing.
//
// A torn tail can only hold unacknowledged writes: an acknowledged record was synced, and every
// record after the first unsynced byte is unsynced too. Corruption can hide acknowledged data,
// so it needs an operator: `slabkv wal repair` cuts the log at the damage (keeping the cut bytes).
// "Valid" means a whole frame whose checksum holds, with the file's salt, and whose sequence
// number fits the gap; CRC-32 detects every single-bit error, so a flip cannot make a bad record
// pass, and the salt keeps a frame a client wrote inside a value from passing (record.ts).
// A segment header is synced before the segment's first record is written, so a bad header
// "follows" itself when the file holds anything past a header: its records cannot be checked
// without the salt the header holds, but their presence is enough to rule out a torn write.
// The same holds for a later segment whose header is bad.

export type Damage =
  | {
      kind: 'torn'
      file: string
      /** Where the cut goes; 0 with a bad header means the whole file. */
      offset: number
      size: number
      /** Segments after the torn one, holding nothing valid: they go too. */
      emptyAfter: string[]
    }
  | { kind: 'corrupt'; file: string; offset: number; sequence: number; why: string }
  | { kind: 'refused'; file: string; offset: number; sequence: number; why: string }

/** What replays a record: undefined when it applied, else why it does not (see replayInto). */
export type Apply = (record: MutationRecord, snapshotSequence?: number) => string | undefined

export interface Inspection {
  snapshot: { file: string; sequence: number; entryCount: number } | undefined
  segments: { file: string; firstSequence: number; size: number }[]
  recordCount: number
  /** Bytes of log read after the snapshot. */
  logSize: number
  /** The last sequence number that loaded (the snapshot's when no record followed it). */
  sequence: number
  damage: Damage | undefined
}

/** The log cannot be loaded as it is: damage, or a record the store's limits refuse. */
export class CorruptLogError extends Error {
  constructor(readonly damage: Extract<Damage, { kind: 'corrupt' | 'refused' }>) {
    super(
      damage.kind === 'corrupt'
        ? `the log is corrupt in ${damage.file} at offset ${damage.offset} (sequence ${damage.sequence}): ` +
            `${damage.why}; valid records follow, so this is damage, not a torn write. ` +
            '`slabkv wal check DIR` reports; `slabkv wal repair DIR` cuts the log there.'
        : `a record in ${damage.file} at offset ${damage.offset} (sequence ${damage.sequence}) ` +
            `does not apply: ${damage.why}. Nothing is damaged: start with the limits the log ` +
            'was written with (`slabkv wal check DIR` takes the same options, to try them).',
    )
  }
}

/**
 * Replays into `store`: what boot recovery does, and what `slabkv wal check` does to find every
 * record a start would refuse. A refusal names the limit that refused it.
 */
export function replayInto(store: Store): Apply {
  const limits = store.layout.limits
  return (record, snapshotSequence) => {
    const code = store.replay(record, snapshotSequence)
    if (code === undefined) return undefined
    const keySize = Buffer.byteLength(record.key, 'utf8')
    const valueSize = record.op === 'set' ? record.value.byteLength : 0
    const why =
      code === 'key_too_large'
        ? `its key is ${keySize} bytes, over --max-key-size (${limits.keySizeMax})`
        : code === 'value_too_large'
          ? `its value is ${valueSize} bytes, over what --max-value-size lets the store hold (${limits.valueSizeMax})`
          : code === 'entry_too_large'
            ? `its key and value are ${keySize + valueSize} bytes, over --max-memory (${limits.memorySizeMax})`
            : `no writer makes such a record (${code})`
    return `a logged ${record.op} ${why}`
  }
}

/**
 * Reads everything and hands each mutation to `apply` in order, stopping at the first damage.
 * Changes nothing on disk.
 */
export function inspect(
  storage: Storage,
  dir: string,
  apply: Apply = () => undefined,
  onProgress: (bytesRead: number) => void = () => {},
): Inspection {
  const files = classify(storage.exists(dir) ? storage.list(dir) : [])
  const result: Inspection = {
    snapshot: undefined,
    segments: [],
    recordCount: 0,
    logSize: 0,
    sequence: 0,
    damage: undefined,
  }
  const newest = files.snapshots.at(-1)
  if (newest !== undefined) {
    const read = readSnapshot(storage.read(join(dir, newest.name)), apply)
    if (!read.ok) {
      result.damage = {
        kind: read.refused ? 'refused' : 'corrupt',
        file: newest.name,
        offset: read.offset,
        sequence: newest.sequence,
        why: `snapshot: ${read.why}`,
      }
      return result
    }
    result.snapshot = { file: newest.name, sequence: read.sequence, entryCount: read.entryCount }
    result.sequence = read.sequence
  }

  // Segments that end before the snapshot begins (a crash came between the snapshot's rename
  // and their deletion) hold nothing to replay.
  const segments = files.segments.filter(
    (_segment, i) =>
      (files.segments[i + 1]?.firstSequence ?? Number.POSITIVE_INFINITY) > result.sequence + 1,
  )
  let bytesRead = 0
  // A group of records (a batch) is applied only once its commit record is read; until then its
  // records wait here, with where they lie. One a crash cut short is part of the torn tail.
  let group: OpenGroup | undefined
  const expected = () => (group?.sequenceLast ?? result.sequence) + 1
  for (const [i, segment] of segments.entries()) {
    const bytes = storage.read(join(dir, segment.name))
    result.segments.push({
      file: segment.name,
      firstSequence: segment.firstSequence,
      size: bytes.length,
    })
    bytesRead += bytes.length
    result.logSize += bytes.length
    const later = segments.slice(i + 1)
    const header = decodeSegmentHeader(bytes)
    if (!header.ok) {
      const why = `bad segment header (${header.reason})`
      const damage = judge(storage, dir, segment.name, bytes, 0, expected(), why, later)
      result.damage = tornFromGroup(storage, dir, damage, group, segments)
      return result
    }
    if (header.firstSequence > expected()) {
      result.damage = {
        kind: 'corrupt',
        file: segment.name,
        offset: 0,
        sequence: expected(),
        why: `the segment starts at ${header.firstSequence}: records are missing`,
      }
      return result
    }
    const salt = header.salt
    let at = header.size
    while (at < bytes.length) {
      const size = checkRecord(bytes, at, salt)
      if (size === 0) {
        const decoded = decodeRecord(bytes, at, salt)
        const why = decoded.ok ? 'bad record' : `bad record (${decoded.reason})`
        const damage = judge(storage, dir, segment.name, bytes, at, expected(), why, later)
        result.damage = tornFromGroup(storage, dir, damage, group, segments)
        return result
      }
      const sequence = sequenceAt(bytes, at)
      if (sequence >= expected()) {
        const decoded = decodeRecord(bytes, at, salt)
        const corrupt = (why: string): Inspection => {
          const damage = {
            kind: 'corrupt',
            file: segment.name,
            offset: at,
            sequence: expected(),
            why,
          }
          result.damage = damage as Damage
          return result
        }
        if (!decoded.ok) return corrupt(`a malformed record (${decoded.reason})`)
        if (sequence !== expected())
          return corrupt(`sequence ${sequence} where ${expected()} belongs`)
        const record = decoded.record
        if (record.grouped) {
          group ??= {
            file: segment.name,
            offset: at,
            segmentIndex: i,
            records: [],
            sequenceLast: 0,
          }
          group.records.push({ record, file: segment.name, offset: at })
          group.sequenceLast = sequence
        } else {
          if (group !== undefined && record.op !== 'commit') {
            return corrupt(`a ${record.op} record inside a group, before its commit`)
          }
          for (const member of [
            ...(group?.records ?? []),
            { record, file: segment.name, offset: at },
          ]) {
            const refused = apply(member.record)
            if (refused !== undefined) {
              result.damage = {
                kind: 'refused',
                file: member.file,
                offset: member.offset,
                sequence: member.record.sequence,
                why: refused,
              }
              return result
            }
            result.recordCount++
          }
          group = undefined
          result.sequence = sequence
        }
      }
      at += size
    }
    onProgress(bytesRead)
  }
  // The log ends inside a group: its commit never reached the disk, so neither did the batch.
  if (group !== undefined) {
    result.damage = tornFromGroup(storage, dir, undefined, group, segments)
  }
  return result
}

/** A group of records read, not yet applied: it waits for its commit record. */
interface OpenGroup {
  /** Where its first record lies. */
  file: string
  offset: number
  segmentIndex: number
  records: { record: MutationRecord; file: string; offset: number }[]
  sequenceLast: number
}

/**
 * A torn tail inside an open group starts where the group does: a batch a crash cut short goes
 * whole, never in part. With no damage (the log just ends), the group is the torn tail. Damage
 * that is not torn, or no open group, is left as it is.
 */
function tornFromGroup(
  storage: Storage,
  dir: string,
  damage: Damage | undefined,
  group: OpenGroup | undefined,
  segments: { name: string }[],
): Damage | undefined {
  if (group === undefined || (damage !== undefined && damage.kind !== 'torn')) return damage
  const emptyAfter = segments.slice(group.segmentIndex + 1).map((segment) => segment.name)
  const size =
    storage.size(join(dir, group.file)) -
    group.offset +
    emptyAfter.reduce((sum, name) => sum + storage.size(join(dir, name)), 0)
  return { kind: 'torn', file: group.file, offset: group.offset, size, emptyAfter }
}

/** The decision table's first two rows: torn tail when nothing valid follows, else corruption. */
function judge(
  storage: Storage,
  dir: string,
  file: string,
  bytes: Uint8Array,
  offset: number,
  sequence: number,
  why: string,
  later: { name: string; firstSequence: number }[],
): Damage {
  // A later segment's records start at the sequence its name gives, however many records the
  // rest of this file held: its search is bounded from there, not from the damage's sequence.
  // A segment named after the damaged record's sequence was started only once every record
  // before it had been synced (a rotation syncs first; a restart's recovery syncs every segment),
  // so its mere presence, empty or not, says the damaged record was once whole. One named at the
  // damaged record's own sequence or earlier may be what a crash left of a segment being started.
  const followed =
    later.some((segment) => segment.firstSequence > sequence) ||
    (offset === 0
      ? writtenPastHeader(bytes)
      : hasValidRecord(bytes, offset + 1, sequence, saltOf(bytes))) ||
    later.some((segment) => {
      const laterBytes = storage.read(join(dir, segment.name))
      const header = decodeSegmentHeader(laterBytes)
      if (!header.ok) return writtenPastHeader(laterBytes)
      const from = Math.max(sequence, segment.firstSequence)
      return hasValidRecord(laterBytes, header.size, from, header.salt)
    })
  if (followed) return { kind: 'corrupt', file, offset, sequence, why }
  const emptyAfter = later.map((segment) => segment.name)
  return { kind: 'torn', file, offset, size: bytes.length - offset, emptyAfter }
}

/**
 * Whether a whole record with a plausible sequence number, checksummed with the file's salt,
 * starts anywhere at or after `from`. Records after the damaged one would carry sequence numbers
 * from `sequence` up by at most one per smallest record; checking that first keeps the scan
 * cheap (few offsets reach the CRC). The salt is what keeps a frame a client built inside a
 * value from counting (format version 2; version 1 files have none, see record.ts).
 */
function hasValidRecord(bytes: Uint8Array, from: number, sequence: number, salt: number): boolean {
  const sequenceMax = sequence + Math.ceil(bytes.length / recordOverheadSize)
  for (let at = from; at + recordOverheadSize <= bytes.length; at++) {
    const candidate = sequenceAt(bytes, at)
    if (candidate < sequence || candidate > sequenceMax) continue
    if (checkRecord(bytes, at, salt) > 0) return true
  }
  return false
}

/**
 * Whether a segment whose header does not check out holds anything past a header. The writer
 * syncs a segment's header before it appends the first record, so a crash can tear a header
 * only while nothing follows it: bytes past it mean the header was once whole, and was damaged.
 * (Its records cannot be checked: their salt is in the damaged header.)
 */
function writtenPastHeader(bytes: Uint8Array): boolean {
  // The largest header of any version: a shorter file holds a (torn) header at most.
  return bytes.length > segmentHeaderSize
}

/** The salt of a segment whose header checked out (judge is called past it). */
function saltOf(bytes: Uint8Array): number {
  const header = decodeSegmentHeader(bytes)
  assert(header.ok, 'a record is judged only in a segment whose header holds')
  return header.salt
}

/** A cut that must keep its bytes found no room for them: nothing was cut. */
export class CutNotKeptError extends Error {}

/**
 * Cuts a file at `offset`: the bytes from there go to `<file>.at-<offset>.broken` first
 * (synced), then the file is truncated (or removed, at 0) and synced, and the `later` segments
 * are renamed to .broken too. Boot recovery does this for a torn tail; `slabkv wal repair` for
 * corruption.
 *
 * On a full disk the copy may not fit. Repair may cut acknowledged records, so it must keep them
 * (`keepRequired`): it throws CutNotKeptError, having cut nothing. A torn tail holds nothing
 * acknowledged, so boot recovery cuts it anyway, rather than refuse to start on a full disk (a
 * crash while the disk was full leaves exactly that), and says how many bytes it did not keep.
 */
export function cutLog(
  storage: Storage,
  dir: string,
  file: string,
  offset: number,
  later: string[],
  keepRequired = true,
): { kept: string[]; notKeptSize: number } {
  const kept: string[] = []
  let notKeptSize = 0
  const path = join(dir, file)
  const cut = storage.read(path).subarray(offset)
  if (cut.length > 0) {
    const brokenName = brokenNameFor(storage, dir, `${file}.at-${offset}`, cut)
    if (keepCopy(storage, dir, brokenName, cut)) kept.push(brokenName)
    else if (keepRequired) {
      throw new CutNotKeptError(
        `the disk is full: the ${cut.length} bytes to cut from ${file} cannot be kept in ` +
          `${brokenName}; nothing was cut. Free some space and run it again`,
      )
    } else notKeptSize = cut.length
  }
  if (offset === 0) {
    storage.unlink(path) // A segment with no valid header has nothing to keep.
  } else {
    storage.truncate(path, offset)
    const fd = storage.openAppend(path)
    storage.fdatasync(fd) // The shorter length must survive a crash, or the cut bytes return.
    storage.close(fd)
  }
  for (const name of later) {
    const brokenName = brokenNameFor(storage, dir, name)
    storage.rename(join(dir, name), join(dir, brokenName))
    kept.push(brokenName)
  }
  storage.syncDir(dir)
  return { kept, notKeptSize }
}

/**
 * A name for bytes cut from a file: `<stem>.broken`, or `<stem>.2.broken` and on when an earlier
 * cut took that name for other bytes. Segment names come back (a header-only segment's name is
 * the next one's too), so a second repair must not overwrite the bytes a first one kept. A file
 * that holds a prefix of `bytes` is this very cut, interrupted by a crash: its name is reused.
 */
function brokenNameFor(storage: Storage, dir: string, stem: string, bytes?: Uint8Array): string {
  for (let n = 1; ; n++) {
    const name = n === 1 ? `${stem}.broken` : `${stem}.${n}.broken`
    const path = join(dir, name)
    if (!storage.exists(path)) return name
    if (bytes === undefined) continue
    const existing = storage.read(path)
    if (Buffer.compare(existing, bytes.subarray(0, existing.length)) === 0) return name
  }
}

/** Writes `bytes` to `name`, durably; false, leaving no such file, when the disk is full. */
function keepCopy(storage: Storage, dir: string, name: string, bytes: Uint8Array): boolean {
  const path = join(dir, name)
  // Left by this cut when a crash interrupted it: the same bytes, written again from the start.
  if (storage.exists(path)) storage.truncate(path, 0)
  const fd = storage.openAppend(path)
  try {
    storage.append(fd, bytes)
    storage.fdatasync(fd)
  } catch (error) {
    storage.close(fd)
    if (!isNoSpace(error)) throw error
    storage.unlink(path)
    return false
  }
  storage.close(fd)
  // The copy's name must be durable before the original bytes go: repair may cut acknowledged
  // records, and a crash must not lose them from both places.
  storage.syncDir(dir)
  return true
}

export interface RecoveryReport {
  snapshot: string | null
  snapshotEntryCount: number
  segmentCount: number
  recordsReplayed: number
  bytesRead: number
  tornBytesCut: number
  brokenFiles: string[]
  /** Torn bytes cut without a copy: the disk had no room for the .broken file. */
  tornBytesNotKept: number
  sequence: number
  durationMs: number
}

/**
 * Boot recovery: replays the directory into `apply`; cuts a torn tail off; throws
 * CorruptLogError on corruption.
 */
export function recover(
  storage: Storage,
  dir: string,
  apply: Apply,
  onProgress?: (bytesRead: number) => void,
): RecoveryReport & { logSize: number } {
  const startedAt = performance.now()
  storage.mkdirp(dir)
  const inspection = inspect(storage, dir, apply, onProgress)
  const damage = inspection.damage
  if (damage?.kind === 'corrupt' || damage?.kind === 'refused') throw new CorruptLogError(damage)
  const cut =
    damage === undefined
      ? { kept: [], notKeptSize: 0 }
      : cutLog(storage, dir, damage.file, damage.offset, damage.emptyAfter, false)
  // What was replayed may have been only in the page cache: written by a process that died
  // before its fdatasync (or ran with --fsync no). The writer publishes everything recovered as
  // durable, so it must be durable first, or a power loss after the restart could drop records
  // that later acknowledged writes depend on (PostgreSQL syncs its data directory the same way
  // at crash recovery).
  for (const segment of inspection.segments) {
    const path = join(dir, segment.file)
    if (!storage.exists(path)) continue // A segment cut away whole above.
    const fd = storage.openAppend(path)
    storage.fdatasync(fd)
    storage.close(fd)
  }
  storage.syncDir(dir)
  return {
    snapshot: inspection.snapshot?.file ?? null,
    snapshotEntryCount: inspection.snapshot?.entryCount ?? 0,
    segmentCount: inspection.segments.length,
    recordsReplayed: inspection.recordCount,
    bytesRead: inspection.logSize,
    tornBytesCut: damage?.size ?? 0,
    brokenFiles: cut.kept,
    tornBytesNotKept: cut.notKeptSize,
    sequence: inspection.sequence,
    durationMs: Math.round(performance.now() - startedAt),
    logSize: inspection.logSize - (damage?.size ?? 0),
  }
}
