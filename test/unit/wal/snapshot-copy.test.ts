import { describe, expect, it } from 'vitest'
import { I32 } from '../../../src/store/layout.js'
import { openWal, type Wal } from '../../support/wal-harness.js'

// The copy of the store a snapshot serializes: taken while the writer says it holds the store
// lock, and into which buffer. A finished snapshot's buffer is the next one's copy target for
// 10 s (its pages touched already, where a fresh buffer costs a page fault per page), then it
// is let go.

/** Every buffer the writer copied the store into, in order. */
function recordCopies(wal: Wal): { targets: (SharedArrayBuffer | undefined)[]; held: number[] } {
  const base = wal.base
  const header = base.views.headerI32
  const seen = { targets: [] as (SharedArrayBuffer | undefined)[], held: [] as number[] }
  const copy = base.copy.bind(base)
  base.copy = (target) => {
    seen.held.push(Atomics.load(header, I32.walWriterHoldsLock))
    seen.targets.push(target)
    return copy(target)
  }
  return seen
}

/** Writes enough to make a snapshot due, and steps the writer until it is written. */
function writeSnapshot(wal: Wal, round: number): void {
  const snapshots = wal.store.stats().walSnapshots
  // Three times over 20 keys: the log since the last snapshot outgrows it, as a snapshot needs.
  for (let i = 0; i < 60; i++) wal.store.set(`key-${i % 20}`, new Uint8Array(100).fill(round))
  for (let step = 0; step < 1000 && wal.store.stats().walSnapshots === snapshots; step++) {
    wal.writer.step()
  }
  expect(wal.store.stats().walSnapshots).toBe(snapshots + 1)
  // The files it made redundant go one per step; then the writer has nothing due.
  for (let step = 0; step < 10; step++) wal.writer.step()
}

describe("a snapshot's copy of the store", () => {
  it('is taken while the writer says it holds the store lock, exactly then', () => {
    const wal = openWal({ snapshotLogSizeMin: 1024 })
    const { held } = recordCopies(wal)
    writeSnapshot(wal, 1)
    expect(held).toEqual([1])
    expect(Atomics.load(wal.base.views.headerI32, I32.walWriterHoldsLock)).toBe(0)
  })

  it("goes into the last snapshot's buffer within 10 s of it, and into a fresh one after", () => {
    const wal = openWal({ snapshotLogSizeMin: 1024 })
    const { targets } = recordCopies(wal)
    writeSnapshot(wal, 1)
    // Kept, the buffer asks for no work: the writer sleeps as long as it would without it.
    expect(wal.writer.idleTimeoutMs()).toBe(1000)
    wal.clock.now += 9_999
    wal.writer.step()
    writeSnapshot(wal, 2)
    wal.clock.now += 10_000
    wal.writer.step()
    writeSnapshot(wal, 3)
    expect(targets).toHaveLength(3)
    expect(targets.every((target) => target?.byteLength === wal.base.buffer.byteLength)).toBe(true)
    expect(targets[1]).toBe(targets[0])
    expect(targets[2]).not.toBe(targets[1])
  })
})
