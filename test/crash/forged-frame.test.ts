import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { MutationRecord } from '../../src/store/types.js'
import { segmentName } from '../../src/wal/files.js'
import { encodedSize, encodeRecord, encodeSegmentHeaderVersion1 } from '../../src/wal/record.js'
import { CorruptLogError, recover } from '../../src/wal/recovery.js'
import { realStorage } from '../../src/wal/storage.js'
import { recordStarts } from '../support/wal-files.js'
import { expectStoreIs, filler, freshStore, LogSession } from './wal-log.js'

// A client controls the bytes of its values, so it can put a well-formed log record inside one:
// a frame with a plausible sequence number and a checksum that holds. If the server then crashes
// while writing that value, recovery looks past the torn record for valid ones; were the forged
// frame to pass, the torn tail would look like damage with valid records after it, and the server
// would refuse to start until an operator repaired the log. Format version 2 checksums every
// record with the segment's salt, which no client sees, so a forged frame never passes: every
// cut inside such a value recovers as a torn tail. The same file in format version 1 (no salt)
// shows the attack working, so the check can tell the difference.

const root = mkdtempSync(join(tmpdir(), 'slabkv-forged-'))
const segment = segmentName(1)
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** Frames a client can build without the salt: version 1's, and a few guesses at a salt. */
function forgedFrames(sequence: number): Uint8Array {
  const frames: Uint8Array[] = []
  for (const salt of [0, 1, 0xffffffff]) {
    for (const forged of [
      { op: 'delete', sequence, key: 'victim' },
      { op: 'delete', sequence: sequence + 1, key: 'victim' },
      {
        op: 'set',
        sequence: sequence + 1,
        key: 'victim',
        value: new Uint8Array(3),
        contentType: 0,
        expiresAt: 0,
      },
    ] satisfies MutationRecord[]) {
      const bytes = new Uint8Array(encodedSize(forged))
      encodeRecord(forged, bytes, 0, salt)
      frames.push(bytes)
    }
  }
  return new Uint8Array(Buffer.concat([filler(5, 1), ...frames, filler(7, 2)]))
}

/** Cuts a copy of `file` at every offset inside its last record; what recovery made of each. */
function cutEverywhereInLastRecord(name: string, file: Uint8Array) {
  const starts = recordStarts(file)
  const lastStart = starts.at(-2)!
  const outcomes: { length: number; kind: 'torn' | 'corrupt'; sequence: number }[] = []
  for (let length = lastStart + 1; length < file.length; length++) {
    const dir = join(root, `${name}-${length}`)
    mkdirSync(dir)
    writeFileSync(join(dir, segment), file.subarray(0, length))
    const store = freshStore()
    try {
      const report = recover(realStorage, dir, (record, after) => store.replay(record, after))
      expect(report.tornBytesCut, `${name} cut to ${length}`).toBe(length - lastStart)
      outcomes.push({ length, kind: 'torn', sequence: report.sequence })
    } catch (error) {
      if (!(error instanceof CorruptLogError)) throw error
      outcomes.push({ length, kind: 'corrupt', sequence: error.damage.sequence })
    }
  }
  return outcomes
}

describe('a value that holds a forged log record', () => {
  it('never passes for a record: every cut inside it is a torn tail (format version 2)', () => {
    const dir = join(root, 'original')
    const session = new LogSession(realStorage, dir)
    for (let i = 0; i < 5; i++) expect(session.handle.set(`k${i}`, filler(40, i)).ok).toBe(true)
    session.writer.step()
    const next = session.handle.sequence + 1
    expect(session.handle.set('attack', forgedFrames(next)).ok).toBe(true)
    session.writer.step()
    session.writer.close()
    const file = readFileSync(join(dir, segment))
    const outcomes = cutEverywhereInLastRecord('v2', file)
    expect(outcomes.length).toBeGreaterThan(250)
    expect(outcomes.filter((outcome) => outcome.kind === 'corrupt')).toEqual([])
    // And what precedes the torn record is all there.
    const store = freshStore()
    const dirCut = join(root, 'v2-check')
    mkdirSync(dirCut)
    copyFileSync(join(dir, segment), join(dirCut, segment))
    truncateSync(join(dirCut, segment), file.length - 1)
    recover(realStorage, dirCut, (record, after) => store.replay(record, after))
    expectStoreIs(store, session.records.slice(0, -1), 'the records before the torn one')
  })

  it('did pass in format version 1, which had no salt: the same cuts were taken for corruption', () => {
    const records: MutationRecord[] = []
    for (let i = 0; i < 5; i++) {
      records.push({
        op: 'set',
        sequence: i + 1,
        key: `k${i}`,
        value: filler(40, i),
        contentType: 0,
        expiresAt: 0,
      })
    }
    records.push({
      op: 'set',
      sequence: 6,
      key: 'attack',
      value: forgedFrames(6),
      contentType: 0,
      expiresAt: 0,
    })
    const parts = [encodeSegmentHeaderVersion1(1)]
    for (const record of records) {
      const bytes = new Uint8Array(encodedSize(record))
      encodeRecord(record, bytes, 0, 0)
      parts.push(bytes)
    }
    const outcomes = cutEverywhereInLastRecord('v1', Buffer.concat(parts))
    // Once a whole forged frame precedes the cut, version 1 refuses to start.
    expect(outcomes.filter((outcome) => outcome.kind === 'corrupt').length).toBeGreaterThan(100)
    // A version 1 log that is whole still loads.
    const dir = join(root, 'v1-whole')
    mkdirSync(dir)
    writeFileSync(join(dir, segment), Buffer.concat(parts))
    const store = freshStore()
    const report = recover(realStorage, dir, (record, after) => store.replay(record, after))
    expect(report.sequence).toBe(6)
    expectStoreIs(store, records, 'a whole version 1 log')
  })
})
