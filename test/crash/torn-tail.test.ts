import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MutationRecord } from '../../src/store/types.js'
import { segmentName } from '../../src/wal/files.js'
import { segmentHeaderSize } from '../../src/wal/record.js'
import { type RecoveryReport, recover } from '../../src/wal/recovery.js'
import { realStorage } from '../../src/wal/storage.js'
import { recordStarts } from '../support/wal-files.js'
import { expectStoreIs, freshStore, LogSession, writeMore, writeWorkload } from './wal-log.js'

// A crash during a write leaves the log's last record cut short: a torn tail. Recovery must cut
// it off, keep the cut bytes in a .broken file, load exactly the records wholly before the cut,
// and leave a log that takes more writes and recovers again. As Redis's tests/integration/aof.tcl
// does, the torn files are made by hand: one log written the real way (store, ring, WAL writer,
// real files, --fsync always), then one copy truncated at every byte offset inside its last
// three records, each in its own directory on the real disk.

const root = mkdtempSync(join(tmpdir(), 'slabkv-torn-'))
const segment = segmentName(1)
let original: Uint8Array
let records: MutationRecord[]
/** Where each record starts; the last element is the end of the last record. */
let starts: number[]

beforeAll(() => {
  const dir = join(root, 'original')
  const session = new LogSession(realStorage, dir)
  writeWorkload(session)
  session.writer.close()
  expect(readdirSync(dir)).toEqual([segment])
  original = readFileSync(join(dir, segment))
  records = session.records
  starts = recordStarts(original)
})

afterAll(() => {
  rmSync(root, { recursive: true, force: true })
})

/** A directory holding the log truncated to `length` bytes. */
function cutCopy(name: string, length: number): string {
  const dir = join(root, name)
  mkdirSync(dir)
  copyFileSync(join(root, 'original', segment), join(dir, segment))
  truncateSync(join(dir, segment), length)
  return dir
}

function recoverInto(dir: string) {
  const store = freshStore()
  const report = recover(realStorage, dir, (record, after) => store.replay(record, after))
  return { store, report }
}

/** Writes more through a writer on the recovered store, then recovers the directory again. */
function appendMoreAndRecover(dir: string, recovered: ReturnType<typeof recoverInto>) {
  const before = records.filter((r) => r.sequence <= recovered.report.sequence)
  const session = new LogSession(realStorage, dir, recovered.store)
  writeMore(session, String(recovered.report.sequence))
  session.writer.close()
  expect(session.records[0]?.sequence).toBe(recovered.report.sequence + 1)
  const again = recoverInto(dir)
  const what = `recovered again after writing ${session.records.length} more records`
  expect(again.report.tornBytesCut, what).toBe(0)
  expect(again.report.brokenFiles, what).toEqual([])
  expectStoreIs(again.store, [...before, ...session.records], what)
}

function expectNoDamage(report: RecoveryReport, dir: string) {
  expect(report.tornBytesCut).toBe(0)
  expect(report.brokenFiles).toEqual([])
  expect(readdirSync(dir).filter((name) => name.endsWith('.broken'))).toEqual([])
}

describe('a log cut short inside its last three records', () => {
  it('ends with a delete, an eviction and a set, and holds all fourteen records', () => {
    expect(records.map((r) => r.op)).toEqual([
      ...['set', 'set', 'set', 'set', 'set', 'set', 'delete', 'expire', 'set', 'set', 'set'],
      ...['delete', 'evict', 'set'],
    ])
    expect(records.map((r) => r.sequence)).toEqual(records.map((_, i) => i + 1))
    expect(starts.length).toBe(records.length + 1)
    expect(starts.at(-1)).toBe(original.length)
  })

  const cutCount = () => original.length - starts.at(-4)! + 1
  it('recovers exactly the records wholly before each cut, and the log takes more writes', () => {
    const lengths = Array.from({ length: cutCount() }, (_, i) => starts.at(-4)! + i)
    for (const length of lengths) {
      const dir = cutCopy(`cut-${length}`, length)
      const recovered = recoverInto(dir)
      const { report } = recovered
      // The records wholly before the cut, and the start of the one it tore (if any).
      const whole = starts.filter((start) => start <= length).length - 1
      const tornStart = starts[whole]!
      const what = `log cut to ${length} bytes (record ${whole + 1} starts at ${tornStart})`
      expectStoreIs(recovered.store, records.slice(0, whole), what)
      expect(report.recordsReplayed, what).toBe(whole)
      if (length === tornStart) {
        expectNoDamage(report, dir)
      } else {
        const broken = `${segment}.at-${tornStart}.broken`
        expect(report.tornBytesCut, what).toBe(length - tornStart)
        expect(report.brokenFiles, what).toEqual([broken])
        expect(readFileSync(join(dir, broken)), what).toEqual(
          Buffer.from(original.subarray(tornStart, length)),
        )
        expect(readFileSync(join(dir, segment)), what).toEqual(
          Buffer.from(original.subarray(0, tornStart)),
        )
      }
      appendMoreAndRecover(dir, recovered)
      rmSync(dir, { recursive: true })
    }
    console.log(`torn tail: ${lengths.length} cuts from ${lengths[0]} to ${lengths.at(-1)} bytes`)
  })

  it('recovers empty from the only segment cut inside its header, with a torn-tail report', () => {
    for (let length = 1; length < segmentHeaderSize; length++) {
      const dir = cutCopy(`header-${length}`, length)
      const recovered = recoverInto(dir)
      const what = `segment cut to ${length} bytes`
      expectStoreIs(recovered.store, [], what)
      expect(recovered.report.tornBytesCut, what).toBe(length)
      expect(recovered.report.brokenFiles, what).toEqual([`${segment}.at-0.broken`])
      expect(readFileSync(join(dir, `${segment}.at-0.broken`)), what).toEqual(
        Buffer.from(original.subarray(0, length)),
      )
      // A segment with no whole header holds nothing: it goes, its bytes kept in the copy.
      expect(readdirSync(dir), what).toEqual([`${segment}.at-0.broken`])
      appendMoreAndRecover(dir, recovered)
      rmSync(dir, { recursive: true })
    }
  })

  it('recovers empty, cutting nothing, from a segment that is empty or holds only its header', () => {
    for (const length of [0, segmentHeaderSize]) {
      const dir = cutCopy(`empty-${length}`, length)
      const recovered = recoverInto(dir)
      expectStoreIs(recovered.store, [], `segment cut to ${length} bytes`)
      expect(recovered.report.tornBytesCut).toBe(0)
      appendMoreAndRecover(dir, recovered)
      rmSync(dir, { recursive: true })
    }
  })
})
