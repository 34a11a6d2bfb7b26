import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { StorageFailedError } from '../../../src/durability.js'
import { F64, walStateFailed, walStateOk, walStateReadOnly } from '../../../src/store/layout.js'
import type { Store } from '../../../src/store/store.js'
import { logDurability } from '../../../src/wal/durability.js'
import { prng, testSeed } from '../../support/random.js'
import { recordStarts } from '../../support/wal-files.js'
import {
  churn,
  contents,
  dataFiles,
  openWal,
  recoverStore,
  snapshotContents,
  type Wal,
  walDir,
  walLimits,
} from '../../support/wal-harness.js'

// The WAL writer driven a step at a time in one thread, on a simulated disk: what each --fsync
// mode acknowledges and when, group commit, segments and snapshots, and the two storage errors
// (a full disk is survived read-only; a failed sync is fail-stop).

const seed = testSeed('wal writer')
const text = (value: string) => new TextEncoder().encode(value)

function expectRecovers(wal: Wal, storage = wal.storage): Store {
  const { store } = recoverStore(storage)
  expect(contents(store)).toEqual(contents(wal.store))
  expect(store.sequence).toBe(wal.store.sequence)
  return store
}

describe('WAL writer, --fsync always', () => {
  it('publishes a write as durable only after the fdatasync covering it, which a crash keeps', () => {
    const wal = openWal()
    const random = prng(seed)
    for (let round = 0; round < 20; round++) {
      churn(wal, random, 30)
      const last = wal.store.sequence
      expect(wal.durable()).toBeLessThan(last)
      const syncs = wal.calls.fdatasync
      expect(wal.writer.step()).toBe(true)
      expect(wal.calls.fdatasync).toBe(syncs + 1)
      expect(wal.durable()).toBe(last)
      expectRecovers(wal, wal.disk.crash(prng(seed + round)))
    }
  })

  it('covers a hundred writes with one write and one fdatasync (group commit)', () => {
    const wal = openWal()
    for (let i = 0; i < 100; i++) wal.store.set(`key-${i % 50}`, text(`value ${i}`))
    const f64 = wal.store.views.headerF64
    const before = { ...wal.calls, commits: f64[F64.walGroupCommits]! }
    const records = f64[F64.walRecordsWritten]!
    expect(wal.writer.step()).toBe(true)
    expect(wal.calls.append - before.append).toBe(1)
    expect(wal.calls.fdatasync - before.fdatasync).toBe(1)
    expect(wal.store.stats().walGroupCommits).toBe(before.commits + 1)
    expect(f64[F64.walRecordsWritten]! - records).toBe(wal.store.sequence)
    expect(wal.durable()).toBe(wal.store.sequence)
    expect(wal.writer.step()).toBe(false) // Nothing new: no write, no sync.
    expect(wal.calls.fdatasync - before.fdatasync).toBe(1)
  })
})

describe('WAL writer, --fsync no and everysec', () => {
  it('with no, publishes after the write and never syncs', () => {
    const wal = openWal({ fsync: 'no' })
    const syncs = wal.calls.fdatasync
    for (let round = 0; round < 5; round++) {
      churn(wal, prng(seed + round), 20)
      wal.writer.step()
      expect(wal.durable()).toBe(wal.store.sequence)
      wal.clock.now += 5000
    }
    expect(wal.calls.fdatasync).toBe(syncs)
  })

  it('with everysec, publishes after the write and syncs once a second has passed', () => {
    const wal = openWal({ fsync: 'everysec' })
    wal.store.set('a', text('1'))
    wal.writer.step() // The first write after start finds no sync yet: it syncs.
    const syncs = wal.calls.fdatasync
    for (const [advanceMs, synced] of [
      [300, false],
      [600, false],
      [99, false],
      [1, true],
      [999, false],
      [1, true],
    ] as const) {
      wal.clock.now += advanceMs
      wal.store.set('a', text(String(wal.clock.now)))
      wal.writer.step()
      expect(wal.durable(), `at +${advanceMs} ms`).toBe(wal.store.sequence)
      expect(wal.calls.fdatasync - syncs, `at +${advanceMs} ms`).toBe(synced ? 1 : 0)
      if (synced) expect(wal.writer.idleTimeoutMs()).toBe(1000)
      if (synced) wal.calls.fdatasync = syncs
    }
    // A sync is due even with nothing new to write, once the second passes.
    wal.store.set('a', text('last'))
    wal.writer.step()
    expect(wal.writer.idleTimeoutMs()).toBe(1000)
    wal.clock.now += 1000
    expect(wal.writer.step()).toBe(false)
    expect(wal.calls.fdatasync).toBe(syncs + 1)
  })
})

describe('WAL writer segments and snapshots', () => {
  it('starts a new segment once one reaches segmentSizeMax, each continuing the last', () => {
    const wal = openWal({ segmentSizeMax: 4096 })
    const random = prng(seed)
    for (let round = 0; round < 40; round++) {
      churn(wal, random, 10)
      wal.writer.step()
    }
    const { segments } = dataFiles(wal.disk)
    expect(segments.length).toBeGreaterThan(3)
    for (const [i, segment] of segments.entries()) {
      const size = wal.disk.size(join(walDir, segment.name))
      if (i < segments.length - 1) expect(size).toBeGreaterThanOrEqual(4096)
      if (i > 0) expect(segment.firstSequence).toBeGreaterThan(segments[i - 1]!.firstSequence)
    }
    const { report } = recoverStore(wal.storage)
    expect(report.segmentCount).toBe(segments.length)
    expectRecovers(wal)
  })

  it('writes a snapshot past snapshotLogSizeMin holding every entry in LRU order, and deletes the log it covers', () => {
    const wal = openWal({ snapshotLogSizeMin: 16 * 1024, segmentSizeMax: 8 * 1024 })
    const random = prng(seed)
    // Reads before the copy is taken change the recency order the snapshot records.
    while (!wal.writer.snapshotInProgress) {
      churn(wal, random, 20, true)
      wal.writer.step()
    }
    expect(dataFiles(wal.disk).snapshots).toEqual([])
    // The copy was taken in that step; with nothing written since, the next step completes it.
    wal.writer.step()
    // The files it covers go one per step, so that deleting them never holds up a group commit.
    const covered = () =>
      dataFiles(wal.disk).segments.filter((segment) => segment.firstSequence <= wal.store.sequence)
    expect(covered().length).toBeGreaterThan(0)
    for (let left = covered().length; left > 0; left--) {
      wal.writer.step()
      expect(covered().length).toBe(left - 1)
    }
    const { snapshots, segments } = dataFiles(wal.disk)
    expect(snapshots).toEqual([expect.objectContaining({ sequence: wal.store.sequence })])
    expect(wal.store.stats().walSnapshots).toBe(1)
    expect(wal.disk.exists(join(walDir, 'snap.tmp'))).toBe(false)
    expect(segments.map((segment) => segment.firstSequence)).toEqual([wal.store.sequence + 1])
    const { rows: entries, read } = snapshotContents(
      wal.disk.read(join(walDir, snapshots[0]!.name)),
    )
    expect(read).toMatchObject({ ok: true, entryCount: wal.store.stats().entryCount })
    expect(entries).toEqual(contents(wal.store))
    expect(entries.some((row) => !row.endsWith(' x0'))).toBe(true)
  })
})

describe('WAL writer storage errors', () => {
  it('turns read-only on a full disk, keeps no partial record, and writes the same records once space returns', () => {
    const wal = openWal({ noSpaceRetryMs: 500 })
    wal.store.set('before', text('the disk fills'))
    wal.writer.step()
    const durable = wal.durable()
    const [segment] = dataFiles(wal.disk).segments
    const path = join(walDir, segment!.name)
    const size = wal.disk.size(path)
    wal.disk.capacityBytes = wal.disk.usedBytes + 40
    for (let i = 0; i < 5; i++) wal.store.set(`key-${i}`, new Uint8Array(30).fill(i))

    expect(wal.writer.step()).toBe(false)
    expect(wal.walState()).toBe(walStateReadOnly)
    expect(wal.durable()).toBe(durable)
    expect(wal.disk.size(path)).toBe(size)
    // Whole records to the end: recordStarts throws at anything else.
    expect(recordStarts(wal.disk.read(path)).at(-1)).toBe(size)

    wal.disk.capacityBytes = Number.POSITIVE_INFINITY
    wal.clock.now += 499
    expect(wal.writer.step()).toBe(false) // Not retried before noSpaceRetryMs.
    expect(wal.walState()).toBe(walStateReadOnly)
    wal.clock.now += 1
    expect(wal.writer.step()).toBe(true)
    expect(wal.walState()).toBe(walStateOk)
    expect(wal.durable()).toBe(wal.store.sequence)
    expectRecovers(wal, wal.disk.crash(prng(seed)))
  })

  it('opens read-only on a full disk, and starts its segment at the first retry once space returns', () => {
    // A restart after a crash while the disk was full: recovery read the log, but not one byte
    // more fits, not even a new segment's header.
    let full = true
    const wal = openWal({ noSpaceRetryMs: 1000 }, walLimits, (inner) => ({
      ...inner,
      append: (fd, bytes) => {
        if (full) throw Object.assign(new Error('ENOSPC: no space left'), { code: 'ENOSPC' })
        inner.append(fd, bytes)
      },
    }))
    expect(wal.walState()).toBe(walStateReadOnly)
    expect(dataFiles(wal.disk).segments).toEqual([]) // The header that did not fit left no file.
    expect(wal.disk.openFileCount).toBe(0)
    expect(wal.writer.step()).toBe(false)
    full = false
    wal.clock.now += 999
    wal.writer.step()
    expect(wal.walState()).toBe(walStateReadOnly) // Not before the retry is due.
    wal.clock.now += 1
    wal.writer.step()
    expect(wal.walState()).toBe(walStateOk)
    wal.store.set('after', text('accepted'))
    wal.writer.step()
    expect(wal.durable()).toBe(wal.store.sequence)
    expectRecovers(wal, wal.disk.crash(prng(seed)))
  })

  it('keeps the old segment when a full disk refuses the next one, and rotates once space returns', () => {
    const wal = openWal({ noSpaceRetryMs: 500, segmentSizeMax: 200 })
    for (let i = 0; i < 4; i++) wal.store.set(`key-${i}`, new Uint8Array(40).fill(i))
    // The records fit, the new segment's 20-byte header does not.
    const recordSize = 17 + 2 + 'key-0'.length + 1 + 8 + 40 // Framing, key, type, expiry, value.
    wal.disk.capacityBytes = wal.disk.usedBytes + 4 * recordSize + 10
    expect(wal.writer.step()).toBe(true)
    expect(wal.durable()).toBe(wal.store.sequence)
    expect(wal.walState()).toBe(walStateReadOnly)
    expect(dataFiles(wal.disk).segments).toHaveLength(1)

    wal.disk.capacityBytes = Number.POSITIVE_INFINITY
    wal.clock.now += 500
    wal.writer.step()
    expect(wal.walState()).toBe(walStateOk)
    expect(dataFiles(wal.disk).segments).toHaveLength(2)
    wal.store.set('after', text('in the new segment'))
    wal.writer.step()
    expect(wal.durable()).toBe(wal.store.sequence)
    expectRecovers(wal, wal.disk.crash(prng(seed)))
  })

  it('takes writes again within one retry once space returns, after a full disk refused a snapshot its new segment', () => {
    // A store of 48 MiB: a snapshot's copy target is touched 2 MiB a step. Were it dropped when
    // the rotation failed, a returning disk would wait for it to be touched again, 2 MiB a retry.
    const limits = { ...walLimits, memorySizeMax: 48 * 1024 * 1024, walRingSize: 256 * 1024 }
    const wal = openWal({ noSpaceRetryMs: 1000, snapshotLogSizeMin: 4096 }, limits)
    for (let i = 0; i < 40; i++) wal.store.set(`key-${i}`, new Uint8Array(200).fill(i))
    wal.writer.step()
    expect(wal.durable()).toBe(wal.store.sequence)
    // The disk is full from here: the snapshot's copy goes on in memory, its new segment fails.
    wal.disk.capacityBytes = wal.disk.usedBytes
    for (let step = 0; step < 200 && wal.walState() !== walStateReadOnly; step++) {
      wal.writer.step()
      wal.clock.now += 1
    }
    expect(wal.walState()).toBe(walStateReadOnly)
    expect(dataFiles(wal.disk).segments).toHaveLength(1)

    wal.disk.capacityBytes = Number.POSITIVE_INFINITY
    const returnedAt = wal.clock.now
    while (wal.walState() !== walStateOk && wal.clock.now - returnedAt <= 10_000) {
      wal.clock.now += 100
      wal.writer.step()
    }
    expect(wal.walState()).toBe(walStateOk)
    expect(wal.clock.now - returnedAt).toBeLessThanOrEqual(2000)
    wal.store.set('after', text('accepted again'))
    wal.writer.step()
    expect(wal.durable()).toBe(wal.store.sequence)
    expectRecovers(wal, wal.disk.crash(prng(seed)))
  })

  it('closes the snapshot file exactly once, whichever of its storage calls a full disk refuses', () => {
    for (const refused of ['header', 'rename'] as const) {
      const closes = new Map<number, number>()
      let snapshotFd: number | undefined
      let refusedYet = false
      const noSpace = () => Object.assign(new Error('ENOSPC: no space left'), { code: 'ENOSPC' })
      const wal = openWal({ snapshotLogSizeMin: 2048 }, walLimits, (inner) => ({
        ...inner,
        openAppend: (path) => {
          const fd = inner.openAppend(path)
          if (path.endsWith('snap.tmp')) snapshotFd = fd
          return fd
        },
        append: (fd, bytes) => {
          if (!refusedYet && refused === 'header' && fd === snapshotFd) {
            refusedYet = true
            throw noSpace()
          }
          inner.append(fd, bytes)
        },
        rename: (from, to) => {
          if (!refusedYet && refused === 'rename') {
            refusedYet = true
            throw noSpace()
          }
          inner.rename(from, to)
        },
        close: (fd) => {
          closes.set(fd, (closes.get(fd) ?? 0) + 1)
          inner.close(fd)
        },
      }))
      for (let i = 0; i < 30; i++) wal.store.set(`key-${i}`, new Uint8Array(100).fill(i))
      for (let step = 0; step < 50 && !refusedYet; step++) wal.writer.step()
      expect(refusedYet, refused).toBe(true)
      wal.writer.step()
      expect(
        [...closes.values()].every((count) => count === 1),
        refused,
      ).toBe(true)
      // Only the open segment's descriptor remains, and no temporary file.
      expect(wal.disk.openFileCount, refused).toBe(1)
      expect(wal.disk.exists(join(walDir, 'snap.tmp')), refused).toBe(false)
    }
  })

  it('fails stop on a failed fdatasync: the step throws and every waiter gets StorageFailedError', async () => {
    const wal = openWal()
    const durability = logDurability(wal.store.views)
    wal.store.set('a', text('1'))
    const sequence = wal.store.sequence
    const pending = durability.waitFor(sequence)
    expect(pending).toBeInstanceOf(Promise)
    wal.disk.failNextFdatasync()
    expect(() => wal.writer.step()).toThrow(/EIO/)
    expect(wal.walState()).toBe(walStateFailed)
    expect(wal.durable()).toBeLessThan(sequence)
    await expect(pending).rejects.toBeInstanceOf(StorageFailedError)
    expect(durability.refusal()).toBe('storage_failed')
    await expect(durability.waitFor(sequence)).rejects.toBeInstanceOf(StorageFailedError)
  })

  it('writes and syncs what is left on close, whatever the mode', () => {
    for (const fsync of ['always', 'everysec', 'no'] as const) {
      const wal = openWal({ fsync })
      wal.store.set('a', text('1'))
      wal.writer.step()
      churn(wal, prng(seed), 40)
      const syncs = wal.calls.fdatasync
      wal.writer.close()
      expect(wal.calls.fdatasync, fsync).toBe(syncs + 1)
      expect(wal.durable(), fsync).toBe(wal.store.sequence)
      expectRecovers(wal, wal.disk.crash(prng(seed)))
    }
  })
})
