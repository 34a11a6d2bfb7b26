import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { walStateOk } from '../../../src/store/layout.js'
import {
  contents,
  dataFiles,
  openWal,
  recoverStore,
  snapshotContents,
  type Wal,
  walDir,
} from '../../support/wal-harness.js'

// Each snapshot is written over the previous one's file (snap.tmp), which the WAL writer keeps
// when a newer snapshot makes it redundant: overwriting blocks and cached pages that exist costs
// the kernel a fraction of appending to a new file. What must hold: the new snapshot is exactly
// itself, whether the old file was longer (cut to size) or shorter (grown); the file kept is
// the redundant snapshot, not the newest; and a full disk deletes it, since it only saves work.

const tempPath = join(walDir, 'snap.tmp')

/**
 * Rewrites 20 keys with `valueSize`-byte values until a snapshot's copy is taken, then steps
 * until it is written and settled, with no write since the copy: the store is what it holds.
 */
function snapshotWith(wal: Wal, valueSize: number, fill: number): { name: string; size: number } {
  const snapshots = wal.store.stats().walSnapshots
  for (let i = 0; !wal.writer.snapshotInProgress; i++) {
    expect(i, 'a snapshot begins').toBeLessThan(2000)
    wal.store.set(`key-${i % 20}`, new Uint8Array(valueSize).fill(fill))
    wal.writer.step()
  }
  for (let step = 0; step < 100 && wal.store.stats().walSnapshots === snapshots; step++) {
    wal.writer.step()
  }
  expect(wal.store.stats().walSnapshots).toBe(snapshots + 1)
  // The files it made redundant go one per step; then nothing is due.
  for (let step = 0; step < 20 && wal.writer.idleTimeoutMs() === 0; step++) wal.writer.step()
  const newest = dataFiles(wal.disk).snapshots.at(-1)!
  return { name: newest.name, size: wal.disk.size(join(walDir, newest.name)) }
}

/** The snapshot file's entries, as contents() lists a store's. */
function snapshotRows(wal: Wal, name: string): string[] {
  const { rows, read } = snapshotContents(wal.disk.read(join(walDir, name)))
  expect(read.ok).toBe(true)
  return rows
}

describe("a snapshot written over the previous snapshot's file", () => {
  it('is exactly itself whether the old file was longer or shorter, and keeps only the redundant one', () => {
    const wal = openWal({ snapshotLogSizeMin: 4096 })
    const first = snapshotWith(wal, 150, 1)
    const firstBytes = wal.disk.read(join(walDir, first.name))
    // Nothing to reuse yet: the first snapshot is appended to a new file, and so is the second,
    // which makes the first redundant: the first's file is then kept.
    expect(wal.disk.exists(tempPath)).toBe(false)
    const second = snapshotWith(wal, 150, 2)
    expect(wal.calls.writeAt).toBe(0)
    expect(wal.disk.read(tempPath)).toEqual(firstBytes)

    let previous = { ...second, bytes: wal.disk.read(join(walDir, second.name)) }
    // Shorter than the file it overwrites, then longer, then shorter again.
    for (const [round, valueSize] of [60, 200, 20].entries()) {
      const writesBefore = wal.calls.writeAt
      const appendsBefore = wal.calls.openAppend
      const next = snapshotWith(wal, valueSize, round + 3)
      // Written in place: no new file for it (the segment rotation opens one, and only that).
      expect(wal.calls.writeAt).toBeGreaterThan(writesBefore)
      expect(wal.calls.openAppend - appendsBefore).toBe(1)
      expect(snapshotRows(wal, next.name)).toEqual(contents(wal.store))
      expect(dataFiles(wal.disk).snapshots.map((s) => s.name)).toEqual([next.name])
      // The one it made redundant is kept, byte for byte, for the next to write over.
      expect(wal.disk.read(tempPath)).toEqual(previous.bytes)
      previous = { ...next, bytes: wal.disk.read(join(walDir, next.name)) }
    }
    const { store } = recoverStore(wal.storage)
    expect(contents(store)).toEqual(contents(wal.store))
  })

  it('is deleted instead of kept when the disk has no room for its new name', () => {
    let refused = 0
    const wal = openWal({ snapshotLogSizeMin: 4096 }, undefined, (inner) => ({
      ...inner,
      rename: (from, to) => {
        if (to === tempPath && refused++ === 0) {
          throw Object.assign(new Error('ENOSPC: no space left'), { code: 'ENOSPC' })
        }
        inner.rename(from, to)
      },
    }))
    snapshotWith(wal, 150, 1)
    const second = snapshotWith(wal, 150, 2)
    expect(refused).toBe(1)
    expect(wal.disk.exists(tempPath)).toBe(false)
    expect(dataFiles(wal.disk).snapshots.map((s) => s.name)).toEqual([second.name])
    // The next one appends to a new file, and keeps the one before it as usual.
    const secondBytes = wal.disk.read(join(walDir, second.name))
    snapshotWith(wal, 150, 3)
    expect(wal.calls.writeAt).toBe(0)
    expect(wal.disk.read(tempPath)).toEqual(secondBytes)
  })

  it('is deleted and replaced by a new file when it cannot be opened for writing', () => {
    const wal = openWal({ snapshotLogSizeMin: 4096 })
    snapshotWith(wal, 150, 1)
    snapshotWith(wal, 150, 2)
    expect(wal.disk.exists(tempPath)).toBe(true)
    // A file restored read-only by hand, say: the writer must not stop over a file it only keeps.
    wal.disk.failNext('openRewrite', 'EACCES')
    const third = snapshotWith(wal, 80, 3)
    expect(wal.calls.writeAt).toBe(0)
    expect(snapshotRows(wal, third.name)).toEqual(contents(wal.store))
    expect(wal.walState()).toBe(walStateOk)
  })

  it('is not deleted by a full disk while a snapshot is being written into it', () => {
    const wal = openWal({ snapshotLogSizeMin: 4096 })
    snapshotWith(wal, 150, 1)
    snapshotWith(wal, 150, 2)
    for (let i = 0; !wal.writer.snapshotInProgress; i++) {
      expect(i, 'a snapshot begins').toBeLessThan(2000)
      wal.store.set(`key-${i % 20}`, new Uint8Array(150).fill(3))
      wal.writer.step()
    }
    const expected = contents(wal.store)
    // The snapshot overwrites a file as large as itself, so it needs no space; the log does.
    wal.disk.capacityBytes = wal.disk.usedBytes
    wal.store.set('key-full', new Uint8Array(100))
    for (let step = 0; step < 5; step++) wal.writer.step()
    expect(wal.writer.readOnly).toBe(true)
    expect(wal.calls.writeAt).toBeGreaterThan(0)
    const snapshots = wal.store.stats().walSnapshots
    wal.disk.capacityBytes = Number.POSITIVE_INFINITY
    for (let step = 0; step < 50 && wal.store.stats().walSnapshots === snapshots; step++) {
      wal.clock.now += 1000
      wal.writer.step()
    }
    const newest = dataFiles(wal.disk).snapshots.at(-1)!
    expect(snapshotRows(wal, newest.name)).toEqual(expected)
  })

  it('is deleted when the disk fills, and the log writes into the space it frees', () => {
    const wal = openWal({ snapshotLogSizeMin: 4096 })
    snapshotWith(wal, 150, 1)
    snapshotWith(wal, 150, 2)
    expect(wal.disk.exists(tempPath)).toBe(true)
    wal.disk.capacityBytes = wal.disk.usedBytes
    wal.store.set('key-full', new Uint8Array(100).fill(9))
    wal.writer.step()
    expect(wal.writer.readOnly).toBe(true)
    // The next step deletes it, before the retry is due.
    wal.writer.step()
    expect(wal.disk.exists(tempPath)).toBe(false)
    expect(wal.writer.readOnly).toBe(true)
    wal.clock.now += 1000
    wal.writer.step()
    expect(wal.writer.readOnly).toBe(false)
    expect(wal.durable()).toBe(wal.store.sequence)
  })
})
