import { describe, expect, it } from 'vitest'
import { Store } from '../../src/store/store.js'
import { classify } from '../../src/wal/files.js'
import { CorruptLogError, inspect, recover } from '../../src/wal/recovery.js'
import { SimulatedDisk } from '../support/simulated-disk.js'
import { recordStarts } from '../support/wal-files.js'
import { clockStartMs, filler, LogSession, limits } from './wal-log.js'

// The decision table calls damage corruption when a valid record follows it "in the same or a
// later file". Here the damage ends segment 1 (its synced tail lost: the rest of it unreadable),
// and segment 2 holds whole, valid, acknowledged records that follow it in sequence.

const dir = '/data'

describe('damage at the end of a segment that a later segment follows', () => {
  it('is corruption when the later segment holds valid records, however many were lost before them', () => {
    const disk = new SimulatedDisk()
    const store = Store.create({
      limits: { ...limits, entryCountMax: 1024, memorySizeMax: 1 << 20 },
      clock: () => clockStartMs,
    })
    const session = new LogSession(disk, dir, store, { segmentSizeMax: 4096 })
    for (let i = 0; i < 150; i++) session.handle.set(`k${i}`, filler(8, i))
    session.writer.step() // ~4.5 KB in one group commit; the segment is full: a new one starts.
    for (let i = 0; i < 2; i++) session.handle.set(`late${i}`, filler(8, i))
    session.writer.close()
    const files = disk.snapshotFiles()
    const segments = classify([...files.keys()].map((p) => p.slice(dir.length + 1))).segments
    expect(segments.map((s) => s.firstSequence)).toEqual([1, 151])
    // Segment 1 loses everything after its 20th record's first bytes (a lost extent, a bad sector
    // run read as garbage): nothing valid follows the damage inside segment 1 itself.
    const first = `${dir}/${segments[0]!.name}`
    const damaged = files.get(first)!.slice()
    const cutAt = recordStarts(damaged)[20]! + 10
    damaged.fill(0, cutAt)
    const damagedFiles = new Map(files).set(first, damaged)
    const found = inspect(SimulatedDisk.fromFiles(damagedFiles), dir)
    expect(found.damage).toMatchObject({ kind: 'corrupt', file: segments[0]!.name })
    // Boot recovery must refuse, not cut segment 1 and move segment 2 (acknowledged records
    // 151 and 152) aside to a .broken file with a mere warning.
    const disk2 = SimulatedDisk.fromFiles(damagedFiles)
    expect(() => recover(disk2, dir, () => undefined)).toThrow(CorruptLogError)
    expect(disk2.list(dir).sort()).toEqual(segments.map((s) => s.name))
  })
})
