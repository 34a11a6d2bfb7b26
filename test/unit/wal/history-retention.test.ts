import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { walStateOk, walStateReadOnly } from '../../../src/store/layout.js'
import { decodeRecord } from '../../../src/wal/record.js'
import type { WalWriterOptions } from '../../../src/wal/writer.js'
import { prng, testSeed } from '../../support/random.js'
import { recordStarts, saltOf } from '../../support/wal-files.js'
import {
  churn,
  contents,
  dataFiles,
  openWal,
  recoverStore,
  type Wal,
  walDir,
  walLimits,
} from '../../support/wal-harness.js'

// The log a snapshot made redundant that the writer keeps for the change feed
// (historySizeRetained, --watch-history-size): how much of it, that it holds nothing the newest
// snapshot does not cover, and that a full disk deletes it before it refuses writes.

const seed = testSeed('wal history retention')
const noSpace = () => Object.assign(new Error('ENOSPC: no space left'), { code: 'ENOSPC' })

/** Small segments, so that a snapshot covers several. */
const options = {
  segmentSizeMax: 1024,
  snapshotLogSizeMin: 6 * 1024,
  historySizeRetained: 2600,
  noSpaceRetryMs: 1000,
} satisfies Partial<WalWriterOptions>

function withSizes(wal: Wal, upTo: number) {
  return dataFiles(wal.disk)
    .segments.filter((segment) => segment.firstSequence <= upTo)
    .map(({ name }) => ({ name, size: wal.disk.size(join(walDir, name)) }))
}

/** The sequence numbers of a segment's records, in order. */
function sequencesIn(wal: Wal, name: string): number[] {
  const bytes = wal.disk.read(join(walDir, name))
  const salt = saltOf(bytes)
  return recordStarts(bytes)
    .slice(0, -1)
    .map((at) => {
      const decoded = decodeRecord(bytes, at, salt)
      if (!decoded.ok) throw new Error(`${name} does not decode at ${at}`)
      return decoded.record.sequence
    })
}

/** Steps with no new writes until nothing is due (the snapshot written, its compaction done). */
function settle(wal: Wal): void {
  for (let step = 0; step < 50 && wal.writer.idleTimeoutMs() === 0; step++) wal.writer.step()
  expect(wal.writer.idleTimeoutMs()).toBeGreaterThan(0)
}

/**
 * Writes two records a step until a snapshot's copy is taken, then lets it finish. Returns the
 * snapshot's sequence and the segments it covers as they were before its compaction.
 */
function snapshotOnce(wal: Wal, key = 'key') {
  for (let i = 0; !wal.writer.snapshotInProgress; i++) {
    expect(i, 'a snapshot begins').toBeLessThan(500)
    for (let j = 0; j < 2; j++) wal.store.set(`${key}-${(2 * i + j) % 40}`, new Uint8Array(100))
    wal.writer.step()
  }
  const sequence = wal.store.sequence // Nothing was written since the copy.
  const covered = withSizes(wal, sequence)
  settle(wal)
  expect(dataFiles(wal.disk).snapshots.at(-1)?.sequence).toBe(sequence)
  return { sequence, covered }
}

function expectRecovers(wal: Wal): void {
  const { store } = recoverStore(wal.disk.crash(prng(seed)))
  expect(contents(store)).toEqual(contents(wal.store))
  expect(store.sequence).toBe(wal.store.sequence)
}

describe('WAL writer, history kept for the change feed', () => {
  it('keeps the newest covered segments up to historySizeRetained, and deletes them first on a full disk', () => {
    const events: string[] = []
    const wal = openWal({ ...options, onEvent: (message) => events.push(message) })
    const { sequence, covered } = snapshotOnce(wal)

    // Newest first, as many as fit: the oldest beyond the size are deleted.
    const kept: string[] = []
    let room = options.historySizeRetained
    for (const { name, size } of covered.toReversed()) {
      if (size > room) break
      room -= size
      kept.unshift(name)
    }
    expect(kept.length).toBeGreaterThanOrEqual(2)
    expect(kept.length).toBeLessThan(covered.length)
    expect(withSizes(wal, sequence).map(({ name }) => name)).toEqual(kept)
    const keptSize = covered
      .filter(({ name }) => kept.includes(name))
      .reduce((a, b) => a + b.size, 0)

    // Not one more byte fits. What waits is smaller than the history kept.
    wal.disk.capacityBytes = wal.disk.usedBytes
    for (let i = 0; i < 5; i++) wal.store.set(`after-${i}`, new Uint8Array(100).fill(i))
    expect(wal.writer.step()).toBe(false)
    expect(wal.walState()).toBe(walStateReadOnly)
    // The next step deletes them all, before the retry is due; the log after the snapshot stays.
    wal.writer.step()
    expect(withSizes(wal, sequence)).toEqual([])
    expect(dataFiles(wal.disk).segments.map((s) => s.firstSequence)).toEqual([sequence + 1])
    expect(wal.disk.capacityBytes - wal.disk.usedBytes).toBeGreaterThanOrEqual(keptSize)
    expect(wal.walState()).toBe(walStateReadOnly)

    // The first retry finds the space: the writes waiting are taken, and recovery has them.
    wal.clock.now += options.noSpaceRetryMs
    expect(wal.writer.step()).toBe(true)
    expect(wal.walState()).toBe(walStateOk)
    expect(wal.durable()).toBe(wal.store.sequence)
    expectRecovers(wal)
    expect(events).toContain('the disk is full: the history kept for watchers is deleted')
  })

  it('deletes the history kept when a full disk abandons a snapshot, and keeps the log', () => {
    let snapshotFd: number | undefined
    let refuseSnapshot = false
    let refused = 0
    const wal = openWal(options, walLimits, (inner) => ({
      ...inner,
      openAppend: (path) => {
        const fd = inner.openAppend(path)
        if (path.endsWith('snap.tmp')) snapshotFd = fd
        return fd
      },
      append: (fd, bytes) => {
        if (refuseSnapshot && fd === snapshotFd) {
          refused++
          throw noSpace()
        }
        inner.append(fd, bytes)
      },
    }))
    const first = snapshotOnce(wal)
    const names = () => withSizes(wal, first.sequence).map(({ name }) => name)
    const kept = names()
    expect(kept.length).toBeGreaterThanOrEqual(2)

    // The next snapshot does not fit, though the log still does.
    refuseSnapshot = true
    for (let i = 0; refused === 0; i++) {
      expect(i, 'a snapshot begins').toBeLessThan(500)
      wal.store.set(`next-${i % 40}`, new Uint8Array(100))
      wal.writer.step()
    }
    // The log is not read-only: one file a step, oldest first, so what is left has no hole.
    for (let left = kept.length; left > 0; left--) {
      expect(names()).toEqual(kept.slice(-left))
      wal.writer.step()
    }
    expect(names()).toEqual([])
    expect(wal.walState()).toBe(walStateOk)
    expect(dataFiles(wal.disk).snapshots.map((s) => s.sequence)).toEqual([first.sequence])
    wal.store.set('after', new Uint8Array(10))
    wal.writer.step()
    expect(wal.durable()).toBe(wal.store.sequence)
    expectRecovers(wal)
  })

  it('keeps no history from a snapshot that finishes in the step a full disk refused the next segment', () => {
    let refuseSegments = false
    const wal = openWal(options, walLimits, (inner) => ({
      ...inner,
      openAppend: (path) => {
        if (refuseSegments && path.endsWith('.log')) throw noSpace()
        return inner.openAppend(path)
      },
    }))
    snapshotOnce(wal, 'first')
    for (let i = 0; !wal.writer.snapshotInProgress; i++) {
      expect(i, 'a snapshot begins').toBeLessThan(500)
      wal.store.set(`second-${i % 40}`, new Uint8Array(100))
      wal.writer.step()
    }
    const sequence = wal.store.sequence
    expect(withSizes(wal, sequence).length).toBeGreaterThan(1)
    // The segment after the copy fills; the next one does not fit, and the snapshot finishes.
    for (let i = 0; i < 8; i++) wal.store.set(`third-${i}`, new Uint8Array(100))
    refuseSegments = true
    wal.writer.step()
    expect(wal.walState()).toBe(walStateReadOnly)
    expect(dataFiles(wal.disk).snapshots.at(-1)?.sequence).toBe(sequence)
    wal.writer.step() // The retry is not due: this step only deletes.
    expect(withSizes(wal, sequence)).toEqual([])

    refuseSegments = false
    wal.clock.now += options.noSpaceRetryMs
    wal.writer.step()
    expect(wal.walState()).toBe(walStateOk)
    wal.store.set('after', new Uint8Array(10))
    wal.writer.step()
    expect(wal.durable()).toBe(wal.store.sequence)
    expectRecovers(wal)
  })

  it('keeps nothing the newest snapshot does not cover, with no hole, through snapshots and full disks', () => {
    for (const historySizeRetained of [3000, 1024 * 1024]) {
      const random = prng(seed + historySizeRetained)
      const wal = openWal({ ...options, historySizeRetained })
      for (let round = 0; round < 300; round++) {
        const label = `history ${historySizeRetained}, round ${round}`
        churn(wal, random, 1 + Math.floor(random() * 4))
        // Now and then the disk fills to within a few records, and later has space again.
        if (random() < 0.04) wal.disk.capacityBytes = wal.disk.usedBytes + random() * 600
        else if (random() < 0.1) wal.disk.capacityBytes = Number.POSITIVE_INFINITY
        wal.writer.step()
        wal.clock.now += Math.floor(random() * 400)

        const { segments, snapshots: written } = dataFiles(wal.disk)
        const newest = written.at(-1)?.sequence ?? 0
        let previousLast: number | undefined
        for (const { name, firstSequence } of segments) {
          const sequences = sequencesIn(wal, name)
          if (firstSequence <= newest) {
            expect(sequences.at(-1) ?? firstSequence, label).toBeLessThanOrEqual(newest)
          }
          if (previousLast !== undefined) expect(firstSequence, label).toBe(previousLast + 1)
          previousLast = sequences.at(-1) ?? firstSequence - 1
        }
        // And the log the snapshot does not cover is all there, up to the last durable record.
        expect(segments[0]?.firstSequence, label).toBeLessThanOrEqual(newest + 1)
        expect(previousLast, label).toBeGreaterThanOrEqual(wal.durable())
        // While the log is read-only, a step whose retry is not due only deletes: no history
        // is left to stand between the waiting writes and the space.
        if (wal.writer.readOnly) {
          wal.writer.step()
          expect(withSizes(wal, newest), label).toEqual([])
        }
      }
      expect(wal.store.stats().walSnapshots, 'snapshots were written').toBeGreaterThan(1)
      wal.disk.capacityBytes = Number.POSITIVE_INFINITY
      wal.clock.now += options.noSpaceRetryMs
      wal.writer.step() // The retry, when the disk was full.
      settle(wal)
      expect(wal.durable()).toBe(wal.store.sequence)
      expectRecovers(wal)
    }
  })
})
