import { describe, expect, it } from 'vitest'
import type { MutationRecord } from '../../../src/store/types.js'
import {
  checkRecord,
  decodeRecord,
  decodeSegmentHeader,
  encodedSize,
  encodeRecord,
  encodeSegmentHeader,
  encodeSegmentHeaderVersion1,
  recordOverheadSize,
  segmentHeaderSize,
} from '../../../src/wal/record.js'

/** A salt as a writer draws one: every record of its files is checksummed with it. */
const salt = 0x9e3779b9

const records: MutationRecord[] = [
  {
    op: 'set',
    sequence: 1,
    key: 'a',
    value: new TextEncoder().encode('one'),
    contentType: 1,
    expiresAt: 0,
  },
  {
    op: 'set',
    sequence: 2 ** 40 + 5,
    key: 'ключ/😀',
    value: Uint8Array.from([0, 255, 10, 13, 124]),
    contentType: 255,
    expiresAt: 1_764_000_000_123,
  },
  { op: 'set', sequence: 3, key: 'empty', value: new Uint8Array(0), contentType: 0, expiresAt: 0 },
  { op: 'delete', sequence: 4, key: 'a' },
  { op: 'evict', sequence: 5, key: 'b' },
  { op: 'expire', sequence: 6, key: 'c' },
  { op: 'clear', sequence: 7, key: '' },
]

function encode(record: MutationRecord): Uint8Array {
  const bytes = new Uint8Array(encodedSize(record))
  expect(encodeRecord(record, bytes, 0, salt)).toBe(bytes.length)
  return bytes
}

describe('WAL record format', () => {
  it('reads back every kind of record exactly as written', () => {
    for (const record of records) {
      const decoded = decodeRecord(encode(record), 0, salt)
      expect(decoded.ok, record.op).toBe(true)
      if (!decoded.ok) continue
      const got = decoded.record
      expect(got).toEqual(
        record.op === 'set' && got.op === 'set' ? { ...record, value: got.value } : record,
      )
      if (record.op === 'set') {
        expect(got.op === 'set' && Buffer.compare(got.value, record.value)).toBe(0)
      }
    }
  })

  it('reads records laid back to back, each from where the last ended', () => {
    const sizes = records.map(encodedSize)
    const log = new Uint8Array(sizes.reduce((a, b) => a + b, 0))
    let offset = 0
    for (const record of records) offset += encodeRecord(record, log, offset, salt)
    const sequences: number[] = []
    for (let at = 0; at < log.length; ) {
      const decoded = decodeRecord(log, at, salt)
      if (!decoded.ok) throw new Error(`record at ${at}: ${decoded.reason}`)
      sequences.push(decoded.record.sequence)
      at += decoded.size
    }
    expect(sequences).toEqual(records.map((record) => record.sequence))
  })

  it('reports a record cut at any byte as truncated', () => {
    for (const record of records) {
      const bytes = encode(record)
      for (let cut = 0; cut < bytes.length; cut++) {
        expect(decodeRecord(bytes.subarray(0, cut), 0, salt), `${record.op} cut at ${cut}`).toEqual(
          {
            ok: false,
            reason: 'truncated',
          },
        )
      }
    }
  })

  it('detects every single-bit flip, in every field', () => {
    let flips = 0
    for (const record of records) {
      const bytes = encode(record)
      for (let bit = 0; bit < bytes.length * 8; bit++) {
        const damaged = bytes.slice()
        damaged[bit >> 3]! ^= 1 << (bit & 7)
        expect(decodeRecord(damaged, 0, salt).ok, `${record.op}, bit ${bit}`).toBe(false)
        flips++
      }
    }
    expect(flips).toBeGreaterThan(1000)
  })

  it('adds a fixed overhead around the payload', () => {
    expect(encodedSize({ op: 'clear', sequence: 1, key: '' })).toBe(recordOverheadSize)
    expect(encodedSize({ op: 'delete', sequence: 1, key: 'é' })).toBe(recordOverheadSize + 2 + 2)
  })

  it('refuses to encode past the end of its buffer', () => {
    const record = records[0]!
    expect(() => encodeRecord(record, new Uint8Array(encodedSize(record) - 1), 0, salt)).toThrow(
      /does not fit/,
    )
  })

  it('checks a record only with the salt it was written with', () => {
    for (const record of records) {
      const bytes = encode(record)
      expect(checkRecord(bytes, 0, salt), record.op).toBe(bytes.length)
      expect(checkRecord(bytes, 0, 0), record.op).toBe(0)
      expect(checkRecord(bytes, 0, (salt ^ 1) >>> 0), record.op).toBe(0)
      expect(decodeRecord(bytes, 0, salt + 1), record.op).toEqual({ ok: false, reason: 'checksum' })
    }
  })

  it('reads back a segment header and rejects a damaged one', () => {
    const header = encodeSegmentHeader(2 ** 35 + 9, salt)
    expect(header.length).toBe(segmentHeaderSize)
    expect(decodeSegmentHeader(header)).toEqual({
      ok: true,
      version: 2,
      firstSequence: 2 ** 35 + 9,
      salt,
      size: 24,
    })
    expect(decodeSegmentHeader(header.subarray(0, segmentHeaderSize - 1))).toEqual({
      ok: false,
      reason: 'truncated',
    })
    const wrongMagic = header.slice()
    wrongMagic[0]! ^= 0xff
    expect(decodeSegmentHeader(wrongMagic)).toEqual({ ok: false, reason: 'magic' })
    for (const at of [4, 9, 17]) {
      const damaged = header.slice()
      damaged[at]! ^= 1 // The version, the sequence, the salt: each one is under the checksum.
      expect(decodeSegmentHeader(damaged), `byte ${at}`).toEqual({ ok: false, reason: 'checksum' })
    }
  })

  it('still reads a version 1 header: no salt, records checksummed from 0', () => {
    const header = encodeSegmentHeaderVersion1(77)
    expect(header.length).toBe(20)
    expect(decodeSegmentHeader(header)).toEqual({
      ok: true,
      version: 1,
      firstSequence: 77,
      salt: 0,
      size: 20,
    })
    const unknown = header.slice()
    new DataView(unknown.buffer).setUint16(4, 3, true)
    expect(decodeSegmentHeader(unknown)).toEqual({ ok: false, reason: 'checksum' })
  })
})
