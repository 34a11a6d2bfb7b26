import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { walStateOk, walStateReadOnly } from '../../../src/store/layout.js'
import { WalRing } from '../../../src/wal/ring.js'
import { WalWriter } from '../../../src/wal/writer.js'
import { prng, testSeed } from '../../support/random.js'
import {
  churn,
  contents,
  dataFiles,
  openWal,
  recoverStore,
  type Wal,
  walDir,
} from '../../support/wal-harness.js'

// Recovery from a snapshot the WAL writer wrote, and a snapshot meeting a full disk. Both
// failed once: Store.replay refused a snapshot's newest entry, and ENOSPC while a snapshot was
// written escaped step() and would have ended the writer thread.

const seed = testSeed('wal snapshot recovery')
const text = (value: string) => new TextEncoder().encode(value)

/** Steps the writer until `done` (a snapshot takes a few steps: it prepares its copy first). */
function stepUntil(wal: Wal, done: () => boolean): void {
  for (let step = 0; step < 100 && !done(); step++) wal.writer.step()
  expect(done()).toBe(true)
}

const snapshotBegun = (wal: Wal) => () => wal.writer.snapshotInProgress
const snapshotWritten = (wal: Wal) => () => dataFiles(wal.disk).snapshots.length === 1

/**
 * Writes until the first snapshot is on disk; returns it and the segments it covers that still
 * wait to be deleted (several, by the thresholds the callers pass).
 */
function writeUntilSnapshot(wal: Wal) {
  for (let i = 0; wal.store.stats().walSnapshots === 0; i++) {
    wal.store.set(`key-${i % 30}`, new Uint8Array(100).fill(i))
    wal.writer.step()
  }
  const snapshot = dataFiles(wal.disk).snapshots.at(-1)!
  const covered = () =>
    dataFiles(wal.disk).segments.filter((segment) => segment.firstSequence <= snapshot.sequence)
  expect(covered().length).toBeGreaterThan(1)
  return { snapshot, covered }
}

describe('WAL recovery from a snapshot', () => {
  it('recovers a snapshot whose newest entry is the last write before it', () => {
    const wal = openWal({ snapshotLogSizeMin: 1 })
    wal.store.set('a', text('1'))
    wal.store.set('b', text('2')) // Version 2, the snapshot's sequence.
    stepUntil(wal, snapshotWritten(wal))
    expect(contents(recoverStore(wal.storage).store)).toEqual(contents(wal.store))
  })

  it('recovers the same entries in the same LRU order from a snapshot and the log after it', () => {
    const wal = openWal({ snapshotLogSizeMin: 16 * 1024, segmentSizeMax: 8 * 1024 })
    const random = prng(seed)
    // Reads are not logged: only those before the snapshot's copy survive in the order.
    while (!wal.disk.exists(join(walDir, 'snap.tmp'))) {
      churn(wal, random, 20, true)
      wal.writer.step()
    }
    for (let round = 0; round < 10; round++) {
      churn(wal, random, 20, false)
      wal.writer.step()
    }
    // The newest: an older one may still wait for its turn to be deleted (one file per step).
    const snapshot = dataFiles(wal.disk).snapshots.at(-1)
    expect(snapshot).toBeDefined()
    const { store, report } = recoverStore(wal.storage)
    expect(report.snapshot).toBe(snapshot!.name)
    expect(report.recordsReplayed).toBe(wal.store.sequence - snapshot!.sequence)
    expect(contents(store)).toEqual(contents(wal.store))
    expect(store.sequence).toBe(wal.store.sequence)
    const crashed = recoverStore(wal.disk.crash(prng(seed))).store
    expect(contents(crashed)).toEqual(contents(wal.store))
  })
})

describe('WAL snapshot on a full disk', () => {
  it('abandons a snapshot the disk has no room for, keeps logging, and snapshots once space returns', () => {
    const wal = openWal({ snapshotLogSizeMin: 2000, noSpaceRetryMs: 500 })
    for (let i = 0; i < 40; i++) wal.store.set(`key-${i}`, new Uint8Array(100).fill(i))
    stepUntil(wal, snapshotBegun(wal))
    wal.disk.capacityBytes = wal.disk.usedBytes + 500
    expect(() => wal.writer.step()).not.toThrow()
    expect(wal.disk.exists(join(walDir, 'snap.tmp'))).toBe(false)
    expect(dataFiles(wal.disk).snapshots).toEqual([])
    wal.store.set('after', text('still logged'))
    wal.writer.step()
    expect(wal.walState()).toBe(walStateOk)
    expect(wal.durable()).toBe(wal.store.sequence)

    wal.disk.capacityBytes = Number.POSITIVE_INFINITY
    wal.clock.now += 500
    stepUntil(wal, snapshotWritten(wal))
    expect(contents(recoverStore(wal.storage).store)).toEqual(contents(wal.store))
  })

  it('deletes what a snapshot covers at once when the disk fills before their turn, and writes resume', () => {
    const wal = openWal({ snapshotLogSizeMin: 4000, segmentSizeMax: 1000, noSpaceRetryMs: 500 })
    const { covered } = writeUntilSnapshot(wal)
    // The disk fills while the covered segments wait their turn: the next writes (more than one
    // segment's worth) do not fit, even after the one deletion that step makes.
    wal.disk.capacityBytes = wal.disk.usedBytes + 20
    for (let i = 0; i < 6; i++) wal.store.set(`after-${i}`, new Uint8Array(400).fill(i))
    wal.writer.step()
    expect(wal.walState()).toBe(walStateReadOnly)
    expect(covered().length).toBeGreaterThan(0)
    // The retry deletes all the rest first, and then fits in the space they freed.
    wal.clock.now += 500
    wal.writer.step()
    expect(covered()).toEqual([])
    expect(wal.walState()).toBe(walStateOk)
    expect(wal.durable()).toBe(wal.store.sequence)
    expect(contents(recoverStore(wal.storage).store)).toEqual(contents(wal.store))
  })

  it('deletes the covered files a stop left behind once the writer starts again', () => {
    const wal = openWal({ snapshotLogSizeMin: 4000, segmentSizeMax: 1000 })
    const { snapshot, covered } = writeUntilSnapshot(wal)
    // The process stops here, with covered segments still waiting their turn.
    const { store } = recoverStore(wal.storage)
    const writer = new WalWriter(store, new WalRing(store.views), {
      storage: wal.storage,
      dir: walDir,
      fsync: 'always',
      segmentSizeMax: 1000,
      snapshotLogSizeMin: 4000,
      noSpaceRetryMs: 1000,
      clock: () => wal.clock.now,
    })
    writer.open()
    for (let step = 0; step < 20 && covered().length > 0; step++) writer.step()
    expect(covered()).toEqual([])
    expect(dataFiles(wal.disk).snapshots).toEqual([snapshot])
    expect(contents(recoverStore(wal.storage).store)).toEqual(contents(wal.store))
  })

  it('takes a covered file somebody else deleted as deleted, and goes on logging', () => {
    const wal = openWal({ snapshotLogSizeMin: 4000, segmentSizeMax: 1000 })
    const { covered } = writeUntilSnapshot(wal)
    const [first, ...rest] = covered()
    expect(rest.length).toBeGreaterThan(0)
    wal.disk.unlink(join(walDir, first!.name))
    for (let step = 0; step < 20 && covered().length > 0; step++) wal.writer.step()
    expect(covered()).toEqual([])
    wal.store.set('after', text('still logged'))
    wal.writer.step()
    expect(wal.walState()).toBe(walStateOk)
    expect(wal.durable()).toBe(wal.store.sequence)
    expect(contents(recoverStore(wal.storage).store)).toEqual(contents(wal.store))
  })
})
