import { basename } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import type { MutationRecord } from '../../src/store/types.js'
import { classify } from '../../src/wal/files.js'
import { sequenceAt } from '../../src/wal/record.js'
import { inspect } from '../../src/wal/recovery.js'
import { prng, testSeed } from '../support/random.js'
import { SimulatedDisk } from '../support/simulated-disk.js'
import { recordStarts, snapshotRecordStarts } from '../support/wal-files.js'
import { LogSession, modelAfter, writeMore, writeWorkload } from './wal-log.js'

// A disk that flips one bit of a log: CRC-32 catches every single-bit error, so recovery must
// notice every flip and judge it by the decision table in src/wal/recovery.ts. A flip in the
// last record looks exactly like a torn write (nothing valid follows it); a flip anywhere before
// it, the segment header included, is corruption, since the records after it still check out.
// Either way nothing at or after the damaged record may reach the store. A snapshot is renamed
// into place only once whole and synced, so any flip in one is corruption, and loads nothing.
//
// The logs are written the real way (store, ring, WAL writer) onto a simulated disk; each flip
// then runs inspect() over a fresh simulated disk holding the flipped bytes.

const seed = testSeed('bit flip')
const dir = '/data'

/** A data directory as inspect reads it when nothing is damaged. */
interface Layout {
  files: Map<string, Uint8Array>
  /** What inspect hands to `apply`, in order: a snapshot's entries, then the log's records. */
  applied: MutationRecord[]
}

/** Where one file's parts start (header, records, a snapshot's footer); the last is its end. */
function partStarts(name: string, bytes: Uint8Array): number[] {
  if (name.endsWith('.log')) return [0, ...recordStarts(bytes)]
  return [0, ...snapshotRecordStarts(bytes), bytes.length]
}

function inspectFiles(files: Map<string, Uint8Array>) {
  const applied: MutationRecord[] = []
  const inspection = inspect(SimulatedDisk.fromFiles(files), dir, (record) => {
    applied.push(record)
    return undefined
  })
  return { inspection, applied }
}

const describeRecords = (records: MutationRecord[]) =>
  records.map((r) => `${r.op} ${r.sequence} ${r.key}`)

let plain: Layout
let snapshotted: Layout

beforeAll(() => {
  const disk = new SimulatedDisk()
  const session = new LogSession(disk, dir)
  writeWorkload(session)
  session.writer.close()
  plain = { files: disk.snapshotFiles(), applied: session.records }

  // With the smallest snapshot threshold, the steps after the workload prepare the copy,
  // snapshot all of it, start a new segment and delete the old one (bounded: a few steps).
  // Close then writes the records after it without starting another.
  const snapshotDisk = new SimulatedDisk()
  const writing = new LogSession(snapshotDisk, dir, undefined, { snapshotLogSizeMin: 1 })
  const noStep = () => {}
  writeWorkload(writing, noStep)
  const hasSnapshot = () => snapshotDisk.list(dir).some((name) => name.endsWith('.snap'))
  for (let step = 0; step < 100 && !hasSnapshot(); step++) writing.writer.step()
  expect(hasSnapshot()).toBe(true)
  writeMore(writing, 'after', noStep)
  writing.writer.close()
  const entryCount = modelAfter(session.records).size
  const found = inspectFiles(snapshotDisk.snapshotFiles())
  snapshotted = { files: snapshotDisk.snapshotFiles(), applied: found.applied }
  expect(found.inspection.damage).toBeUndefined()
  expect(found.inspection.snapshot?.entryCount).toBe(entryCount)
  // The snapshot holds the resident set the workload left, each entry at its version.
  const entries = found.applied.slice(0, entryCount).map((r) => `${r.key} ${r.sequence}`)
  const resident = [...modelAfter(session.records)].map(([key, e]) => `${key} ${e.version}`)
  expect(entries.sort()).toEqual(resident.sort())
  expect(describeRecords(found.applied.slice(entryCount))).toEqual(
    describeRecords(writing.records.slice(session.records.length)),
  )
})

interface Counts {
  torn: number
  corrupt: number
  total: number
}

/** `count` random flips in a file of `size` bytes: a byte offset and a mask with one bit set. */
function* randomFlips(size: number, count: number, random: () => number) {
  for (let i = 0; i < count; i++) {
    yield [Math.floor(random() * size), 1 << Math.floor(random() * 8)] as const
  }
}

/** Every single-bit flip in a file of `size` bytes. */
function* everyFlip(size: number) {
  for (let offset = 0; offset < size; offset++) {
    for (let bit = 0; bit < 8; bit++) yield [offset, 1 << bit] as const
  }
}

/**
 * Applies each flip to `file` in `layout`, one at a time (the rest of the directory as it was),
 * and checks what inspect makes of it against the decision table.
 */
function flipBits(
  layout: Layout,
  file: string,
  flips: (size: number) => Iterable<readonly [number, number]>,
): Counts {
  const name = basename(file)
  const original = layout.files.get(file)!
  const starts = partStarts(name, original)
  const isSnapshot = classify([name]).snapshots.length === 1
  // The entries and records inspect hands on before it reaches this file.
  const firstRecordSequence = isSnapshot ? 0 : sequenceAt(original, starts[1]!)
  const before = layout.applied.findIndex((r) => r.sequence === firstRecordSequence)
  const counts: Counts = { torn: 0, corrupt: 0, total: 0 }
  for (const [offset, mask] of flips(original.length)) {
    const flipped = original.slice()
    flipped[offset]! ^= mask
    const { inspection, applied } = inspectFiles(new Map(layout.files).set(file, flipped))
    const what = `byte ${offset} of ${name} xor ${mask} (replay with SEED=${seed})`
    // The part the flip fell in: 0 the header, then one per record (and a snapshot's footer).
    const part = starts.findLastIndex((start) => start <= offset)
    const partStart = starts[part]!
    const damage = inspection.damage
    expect(damage, what).toBeDefined()
    expect(damage?.file, what).toBe(name)
    expect(damage?.offset, what).toBe(partStart)
    expect(damage!.offset, what).toBeLessThanOrEqual(offset)
    counts.total++
    if (isSnapshot) {
      expect(damage, what).toMatchObject({
        kind: 'corrupt',
        sequence: classify([name]).snapshots[0]!.sequence,
      })
      expect(applied, what).toEqual([])
      counts.corrupt++
      continue
    }
    const recordIndex = Math.max(0, part - 1) // A flip in the header loses the first record on.
    const isLast = part === starts.length - 2
    if (isLast) {
      expect(damage, what).toMatchObject({ kind: 'torn', size: original.length - partStart })
      counts.torn++
    } else {
      const sequence = sequenceAt(original, starts[recordIndex + 1]!)
      expect(damage, what).toMatchObject({ kind: 'corrupt', sequence })
      counts.corrupt++
    }
    const expected = layout.applied.slice(0, before + recordIndex)
    expect(describeRecords(applied), what).toEqual(describeRecords(expected))
  }
  return counts
}

describe('one flipped bit anywhere in a data directory', () => {
  // One stream per test, so that one test replays alone (-t) with the same flips.

  it('is found every time in a segment: torn in its last record, corrupt before it', () => {
    const [file, ...others] = [...plain.files.keys()]
    expect(others).toEqual([])
    const counts = flipBits(plain, file!, (size) => randomFlips(size, 10_000, prng(seed)))
    console.log(`bit flips in ${basename(file!)}:`, counts)
    expect(counts.total).toBe(10_000)
    expect(counts.torn).toBeGreaterThan(0)
    expect(counts.corrupt).toBeGreaterThan(0)
  })

  it('is found every time in a snapshot, always as corruption, and loads nothing', () => {
    expect([...snapshotted.files.keys()].map((path) => basename(path)).sort()).toEqual([
      'snap-0000000000000014.snap',
      'wal-0000000000000015.log',
    ])
    const file = [...snapshotted.files.keys()].find((path) => path.endsWith('.snap'))!
    const counts = flipBits(snapshotted, file, (size) => randomFlips(size, 3_000, prng(seed + 1)))
    console.log(`bit flips in ${basename(file)}:`, counts)
    expect(counts).toEqual({ torn: 0, corrupt: 3_000, total: 3_000 })
  })

  it('is found every time in the segment after a snapshot, the snapshot loaded first', () => {
    const file = [...snapshotted.files.keys()].find((path) => path.endsWith('.log'))!
    const counts = flipBits(snapshotted, file, (size) => randomFlips(size, 2_000, prng(seed + 2)))
    console.log(`bit flips in ${basename(file)} after the snapshot:`, counts)
    expect(counts.total).toBe(2_000)
  })

  it('is found for every one of the bits of the segment, flipped in turn', () => {
    const [file] = [...plain.files.keys()]
    const counts = flipBits(plain, file!, everyFlip)
    console.log(`every bit of ${basename(file!)} flipped:`, counts)
    expect(counts.total).toBe(plain.files.get(file!)!.length * 8)
  })

  it('fails its own check when the flip changes nothing (a canary: the checker can fail)', () => {
    const [file] = [...plain.files.keys()]
    expect(() => flipBits(plain, file!, () => [[100, 0]])).toThrow(/byte 100/)
  })
})
