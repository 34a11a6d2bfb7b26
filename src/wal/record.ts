import assert from 'node:assert/strict'
import { crc32 } from 'node:zlib'
import type { MutationOp, MutationRecord } from '../store/types.js'

// The write-ahead log's on-disk format: segment headers and framed records. Little-endian
// throughout. Encoding checks its own output by decoding it again before anyone writes it
// (a pair of assertions around the disk); decoding never throws on bad bytes: it says
// what is wrong, and recovery decides what that means (torn tail or corruption).
//
// A record:
//
//   offset  size  field
//   0       4     length      bytes from `sequence` through the end of `payload`
//   4       8     sequence    u64 as two u32 (low, high); every record's is one more than the last
//   12      1     type        1 set, 2 delete, 3 evict, 4 expire, 5 clear, 6 commit; plus
//                             0x80 when the record is part of a group a commit closes
//   13      n     payload     by type, below
//   13 + n  4     crc32       over bytes 0 .. 13 + n, seeded with the file's salt: a damaged
//                             length fails the check too
//
//   set:                      [u16 key size][key UTF-8][u8 content type][f64 expiresAt][value]
//   delete, evict, expire:    [u16 key size][key UTF-8]
//   clear, commit:            (empty)
//
// A group is records that must apply together or not at all: a batch's changes. Each of them has
// the 0x80 bit, and a commit record (type 6, without it) follows the last. A crash can cut a group
// short (its records may go to disk over several writes, even two segments); recovery applies a
// group only once it reads its commit, and cuts an unfinished group off as part of a torn tail.
//
// A segment file starts with a header (format version 2, 24 bytes):
//
//   0  4  magic "SKVW"   4  2  format version (2)   6  2  reserved (0)
//   8  8  first sequence (two u32)                  16 4  salt
//   20 4  crc32 over bytes 0 .. 20
//
// The salt is random, drawn when a server starts; every record in the file is checksummed with
// it as the CRC's starting value. Client bytes inside a value can so never pass for a record:
// a frame that a client built inside a value checks out only with the salt, which no client
// sees (a guess holds one time in 2^32). Without it, a value holding a well-formed frame with a
// plausible sequence number turned a crash's torn tail into "valid records follow the damage",
// and the server refused to start. SQLite's WAL salts its checksums the same way.
//
// Format version 1 (the first release) has a 20-byte header without the salt, and checksums
// seeded with 0; such files still load. A file is written in one version only.
//
// A snapshot file is the same header with magic "SKVS" and the sequence number it covers (every
// mutation up to it is in the snapshot), then one set record per entry from least to most
// recently used (each with its entry's version as sequence), then a footer:
//
//   0  4  magic "SKVE"   4  4  entry count   8  4  crc32 over bytes 0 .. 8
//
// A snapshot is renamed into place only after it is complete and synced, so a missing footer
// or a bad record in a snapshot is damage, never a crash's torn tail.

export const segmentMagic = 0x57564b53 // "SKVW" read little-endian
export const snapshotMagic = 0x53564b53 // "SKVS"
const snapshotFooterMagic = 0x45564b53 // "SKVE"
export const snapshotFooterSize = 12
/** The version this code writes; it reads 1 and 2. */
export const formatVersion = 2
const headerSizeOf: (number | undefined)[] = [undefined, 20, 24]
/** The size of the header this code writes. */
export const segmentHeaderSize = 24
/** Bytes a record adds around its payload: length, sequence, type, checksum. */
export const recordOverheadSize = 17
const lengthFieldSize = 4
/** Sequence, type: the bytes the length counts before the payload. */
const fixedFieldsSize = 9

const typeOf: Record<MutationOp, number> = {
  set: 1,
  delete: 2,
  evict: 3,
  expire: 4,
  clear: 5,
  commit: 6,
}
const opOf: (MutationOp | undefined)[] = [
  undefined,
  'set',
  'delete',
  'evict',
  'expire',
  'clear',
  'commit',
]
/** The type byte's bit for a record of a group (see above). */
const groupedBit = 0x80

const encoder = new TextEncoder()
// ignoreBOM: a key may begin with U+FEFF, which is a character like any other here; without
// it TextDecoder drops a leading BOM, and replay would apply the record to another key.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export type DecodeFailure =
  /** Fewer bytes remain than the record needs: what a crash mid-write leaves at the tail. */
  | 'truncated'
  /** The checksum does not match: a torn or damaged record. */
  | 'checksum'
  /** The frame is impossible (a length or type no encoder writes), though its checksum held. */
  | 'malformed'

export type Decoded =
  | { ok: true; record: MutationRecord; size: number }
  | { ok: false; reason: DecodeFailure }

function payloadSize(record: MutationRecord, keySize: number): number {
  if (record.op === 'clear' || record.op === 'commit') return 0
  if (record.op !== 'set') return 2 + keySize
  return 2 + keySize + 1 + 8 + record.value.byteLength
}

/** The record's size on disk. */
export function encodedSize(record: MutationRecord): number {
  return recordOverheadSize + payloadSize(record, Buffer.byteLength(record.key, 'utf8'))
}

/** The size on disk of a record of this kind, from the key's UTF-8 size and the value's size. */
export function recordSize(op: MutationOp, keySize: number, valueSize: number): number {
  if (op === 'clear' || op === 'commit') return recordOverheadSize
  if (op !== 'set') return recordOverheadSize + 2 + keySize
  return recordOverheadSize + 2 + keySize + 1 + 8 + valueSize
}

/**
 * Writes the record at `offset`, checksummed with `salt` (the file's), and returns its size.
 * Then, with `verify` (the default), decodes what it wrote and compares: a record that would not
 * read back as itself must never reach the disk. The WAL ring passes false: it encodes under the
 * store lock, where a full decode would double the time every writer waits, and the WAL writer
 * checks each record's frame and checksum right before it writes it (ring.ts), off the lock.
 */
export function encodeRecord(
  record: MutationRecord,
  target: Uint8Array,
  offset: number,
  salt: number,
  verify = true,
): number {
  const keySize = Buffer.byteLength(record.key, 'utf8')
  assert(keySize <= 0xffff, 'a logged key is at most 65,535 bytes')
  const size = recordOverheadSize + payloadSize(record, keySize)
  assert(offset + size <= target.length, 'the record does not fit the buffer')
  const view = new DataView(target.buffer, target.byteOffset + offset, size)
  view.setUint32(0, size - lengthFieldSize - 4, true)
  view.setUint32(4, record.sequence % 2 ** 32, true)
  view.setUint32(8, Math.floor(record.sequence / 2 ** 32), true)
  view.setUint8(12, typeOf[record.op] | (record.grouped ? groupedBit : 0))
  let at = 13
  if (record.op !== 'clear' && record.op !== 'commit') {
    view.setUint16(at, keySize, true)
    // Straight into the target: no intermediate array for the key.
    const written = encoder.encodeInto(record.key, target.subarray(offset + at + 2)).written
    assert.equal(written, keySize, 'the key encodes to another size than measured')
    at += 2 + keySize
  }
  if (record.op === 'set') {
    view.setUint8(at, record.contentType)
    view.setFloat64(at + 1, record.expiresAt, true)
    at += 9
    target.set(record.value, offset + at)
    at += record.value.byteLength
  }
  view.setUint32(at, crc32(target.subarray(offset, offset + at), salt), true)
  if (!verify) return size

  const check = decodeRecord(target, offset, salt)
  assert(check.ok && check.size === size, 'an encoded record does not decode')
  assert(sameRecord(check.record, record), 'an encoded record decodes differently')
  return size
}

/** Reads the record at `offset` of a file salted with `salt`; never throws on bad bytes. */
export function decodeRecord(bytes: Uint8Array, offset: number, salt: number): Decoded {
  const available = bytes.length - offset
  if (available < recordOverheadSize) return { ok: false, reason: 'truncated' }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, available)
  const length = view.getUint32(0, true)
  const size = lengthFieldSize + length + 4
  if (length < fixedFieldsSize) return { ok: false, reason: 'malformed' }
  if (size > available) return { ok: false, reason: 'truncated' }
  const checksum = view.getUint32(size - 4, true)
  if (crc32(bytes.subarray(offset, offset + size - 4), salt) !== checksum)
    return { ok: false, reason: 'checksum' }

  const sequence = view.getUint32(4, true) + view.getUint32(8, true) * 2 ** 32
  const typeByte = view.getUint8(12)
  const op = opOf[typeByte & ~groupedBit]
  if (op === undefined || !Number.isSafeInteger(sequence)) return { ok: false, reason: 'malformed' }
  // A commit closes a group and is never part of one.
  const grouped = (typeByte & groupedBit) !== 0
  if (grouped && op === 'commit') return { ok: false, reason: 'malformed' }
  const group = grouped ? { grouped } : {}
  const end = size - 4
  let at = 13
  if (op === 'commit' || op === 'clear') {
    if (at !== end) return { ok: false, reason: 'malformed' }
    const record: MutationRecord =
      op === 'commit' ? { op, sequence, key: '' } : { op, sequence, key: '', ...group }
    return { ok: true, record, size }
  }
  if (at + 2 > end) return { ok: false, reason: 'malformed' }
  const keySize = view.getUint16(at, true)
  at += 2
  if (at + keySize > end) return { ok: false, reason: 'malformed' }
  let key: string
  try {
    key = decoder.decode(bytes.subarray(offset + at, offset + at + keySize))
  } catch {
    return { ok: false, reason: 'malformed' }
  }
  at += keySize
  if (op !== 'set')
    return at === end
      ? { ok: true, record: { op, sequence, key, ...group }, size }
      : { ok: false, reason: 'malformed' }
  if (at + 9 > end) return { ok: false, reason: 'malformed' }
  const contentType = view.getUint8(at)
  const expiresAt = view.getFloat64(at + 1, true)
  at += 9
  const value = bytes.slice(offset + at, offset + end)
  return {
    ok: true,
    record: { op, sequence, key, value, contentType, expiresAt, ...group },
    size,
  }
}

/**
 * The size of the well-framed record at `offset` whose checksum holds with `salt`, reading no
 * further than `end`; 0 otherwise. Checks the frame only, decoding nothing: the WAL writer's
 * check before it writes, and recovery's search for valid records past a bad one.
 */
export function checkRecord(
  bytes: Uint8Array,
  offset: number,
  salt: number,
  end = bytes.length,
): number {
  if (end - offset < recordOverheadSize) return 0
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, end - offset)
  const length = view.getUint32(0, true)
  if (length < fixedFieldsSize) return 0
  const size = lengthFieldSize + length + 4
  if (size > end - offset) return 0
  return crc32(bytes.subarray(offset, offset + size - 4), salt) === view.getUint32(size - 4, true)
    ? size
    : 0
}

/** Whether the record at `offset` is part of a group a later commit closes (see above). */
export function isGroupedAt(bytes: Uint8Array, offset: number): boolean {
  return (bytes[offset + 12]! & groupedBit) !== 0
}

/** The sequence field of the record at `offset`, whether or not the record is valid. */
export function sequenceAt(bytes: Uint8Array, offset: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 12)
  return view.getUint32(4, true) + view.getUint32(8, true) * 2 ** 32
}

/** A header of the current version (2), for a file whose records are checksummed with `salt`. */
export function encodeSegmentHeader(
  firstSequence: number,
  salt: number,
  magic = segmentMagic,
): Uint8Array {
  const header = new Uint8Array(segmentHeaderSize)
  const view = new DataView(header.buffer)
  view.setUint32(0, magic, true)
  view.setUint16(4, formatVersion, true)
  view.setUint32(8, firstSequence % 2 ** 32, true)
  view.setUint32(12, Math.floor(firstSequence / 2 ** 32), true)
  view.setUint32(16, salt >>> 0, true)
  view.setUint32(20, crc32(header.subarray(0, 20)), true)
  return header
}

/** A version 1 header: no salt, records checksummed from 0. What the first release wrote. */
export function encodeSegmentHeaderVersion1(
  firstSequence: number,
  magic = segmentMagic,
): Uint8Array {
  const header = new Uint8Array(headerSizeOf[1]!)
  const view = new DataView(header.buffer)
  view.setUint32(0, magic, true)
  view.setUint16(4, 1, true)
  view.setUint32(8, firstSequence % 2 ** 32, true)
  view.setUint32(12, Math.floor(firstSequence / 2 ** 32), true)
  view.setUint32(16, crc32(header.subarray(0, 16)), true)
  return header
}

export type DecodedHeader =
  | {
      ok: true
      version: number
      firstSequence: number
      /** What the file's record checksums start from (0 in version 1). */
      salt: number
      /** Where the first record starts. */
      size: number
    }
  | { ok: false; reason: 'truncated' | 'magic' | 'version' | 'checksum' }

/** Reads a header of either version. */
export function decodeSegmentHeader(bytes: Uint8Array, magic = segmentMagic): DecodedHeader {
  if (bytes.length < 8) return { ok: false, reason: 'truncated' }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
  if (view.getUint32(0, true) !== magic) return { ok: false, reason: 'magic' }
  const version = view.getUint16(4, true)
  const size = headerSizeOf[version]
  // An unknown version's size is unknown too; a damaged version field fails the checksum of
  // either known layout.
  if (size === undefined) {
    const asVersion2 =
      bytes.length >= 24 && crc32(bytes.subarray(0, 20)) === view.getUint32(20, true)
    const asVersion1 =
      bytes.length >= 20 && crc32(bytes.subarray(0, 16)) === view.getUint32(16, true)
    return { ok: false, reason: asVersion1 || asVersion2 ? 'version' : 'checksum' }
  }
  if (bytes.length < size) return { ok: false, reason: 'truncated' }
  if (crc32(bytes.subarray(0, size - 4)) !== view.getUint32(size - 4, true))
    return { ok: false, reason: 'checksum' }
  return {
    ok: true,
    version,
    firstSequence: view.getUint32(8, true) + view.getUint32(12, true) * 2 ** 32,
    salt: version === 1 ? 0 : view.getUint32(16, true),
    size,
  }
}

export function encodeSnapshotFooter(entryCount: number): Uint8Array {
  const footer = new Uint8Array(snapshotFooterSize)
  const view = new DataView(footer.buffer)
  view.setUint32(0, snapshotFooterMagic, true)
  view.setUint32(4, entryCount, true)
  view.setUint32(8, crc32(footer.subarray(0, 8)), true)
  return footer
}

/** The entry count a footer at `offset` records, or undefined when there is no valid footer. */
export function decodeSnapshotFooter(bytes: Uint8Array, offset: number): number | undefined {
  if (bytes.length - offset !== snapshotFooterSize) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, snapshotFooterSize)
  if (view.getUint32(0, true) !== snapshotFooterMagic) return undefined
  if (crc32(bytes.subarray(offset, offset + 8)) !== view.getUint32(8, true)) return undefined
  return view.getUint32(4, true)
}

function sameRecord(a: MutationRecord, b: MutationRecord): boolean {
  if (a.op !== b.op || a.sequence !== b.sequence || a.key !== b.key) return false
  if ((a.grouped ?? false) !== (b.grouped ?? false)) return false
  if (a.op !== 'set' || b.op !== 'set') return true
  return (
    a.contentType === b.contentType &&
    Object.is(a.expiresAt, b.expiresAt) &&
    Buffer.compare(a.value, b.value) === 0
  )
}
