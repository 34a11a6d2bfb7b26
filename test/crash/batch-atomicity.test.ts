import { describe, expect, it } from 'vitest'
import { I64 } from '../../src/store/layout.js'
import { Store } from '../../src/store/store.js'
import type { BatchChange } from '../../src/store/types.js'
import { recover, replayInto } from '../../src/wal/recovery.js'
import { prng, testSeed } from '../support/random.js'
import { SimulatedDisk } from '../support/simulated-disk.js'
import { recordStarts } from '../support/wal-files.js'
import { clockStartMs, filler, freshStore, LogSession, limits } from './wal-log.js'

// A batch is all or nothing while the server runs (one hold of the store lock), and must stay so
// across a crash. Its records reach the disk in pieces: the WAL writer drains the ring without
// the store lock, so a group commit can end inside a batch, and a power loss can tear one write
// at any byte. The log marks a batch's records as a group closed by a commit record; recovery
// applies a group only once it has read its commit, and nothing inside an unclosed group is ever
// published durable. Here a batch that moves a value from one key to another is caught by a
// crash in every way a crash can catch it: the store after recovery holds the state before the
// batch or after it, never both keys and never neither.

const dir = '/data'
const changes: BatchChange[] = [
  { op: 'set', key: 'to', valueSize: 10 },
  { op: 'delete', key: 'from' },
]

/** A log whose last records are the batch; the writer drains mid-batch when `drainInside`. */
function logWithBatch(drainInside: boolean, segmentSizeMax = 1024 * 1024) {
  const disk = new SimulatedDisk()
  const store = Store.create({ limits, clock: () => clockStartMs })
  const session = new LogSession(disk, dir, store, { segmentSizeMax })
  expect(session.handle.set('from', filler(10, 1)).ok).toBe(true)
  session.writer.step()
  const before = Number(Atomics.load(store.views.headerI64, I64.durableSequence))
  session.handle.atomically((tx) => {
    expect(tx.prepare(changes)).toEqual({ ok: true })
    expect(tx.set('to', filler(10, 1)).ok).toBe(true)
    // The writer, which never takes the store lock to drain, writes and syncs the first op.
    if (drainInside) session.writer.step()
    expect(tx.delete('from').ok).toBe(true)
  })
  // Synced, yet inside the batch: nothing of it may be published durable before its commit.
  expect(Number(Atomics.load(store.views.headerI64, I64.durableSequence))).toBe(before)
  return { disk, session }
}

function stateAfterRecovery(disk: SimulatedDisk) {
  const recovered = freshStore()
  recover(disk, dir, replayInto(recovered))
  return { from: recovered.peek('from') !== undefined, to: recovered.peek('to') !== undefined }
}

const before = { from: true, to: false }
const after = { from: false, to: true }

describe('a batch across a crash', () => {
  it('is lost whole when the process dies after a group commit that ended inside it', () => {
    const { disk } = logWithBatch(true)
    // Every image of the disk: what was synced (the batch's first op), and more or less of the
    // rest, never the commit record (it is still in the ring).
    const random = prng(testSeed('batch atomicity'))
    for (let image = 0; image < 50; image++) {
      expect(stateAfterRecovery(disk.crash(random, { pageHoles: false }))).toEqual(before)
    }
  })

  it('recovers before or after it, never between, when the log is cut at any byte of it', () => {
    for (const drainInside of [false, true]) {
      const { disk, session } = logWithBatch(drainInside)
      session.writer.step() // The commit too, now.
      expect(Number(Atomics.load(session.store.views.headerI64, I64.durableSequence))).toBe(
        session.store.sequence,
      )
      const files = disk.snapshotFiles()
      const [path, bytes] = [...files].find(([name]) => name.endsWith('.log'))!
      // The log's records: the set of 'from', then the batch (set, delete, commit).
      const starts = recordStarts(bytes)
      expect(starts.length).toBe(5)
      const batchStart = starts[1]!
      const seen = new Set<string>()
      for (let length = batchStart; length <= bytes.length; length++) {
        const cut = SimulatedDisk.fromFiles([[path, bytes.subarray(0, length)]])
        const state = stateAfterRecovery(cut)
        expect([before, after], `cut to ${length} of ${bytes.length} bytes`).toContainEqual(state)
        seen.add(JSON.stringify(state))
      }
      // The cuts reach both outcomes: before the commit's last byte, and with it.
      expect(seen.size, `drain inside: ${drainInside}`).toBe(2)
    }
  })

  it('is lost whole when its records span two segments and the second one is torn', () => {
    // Segments of 60 bytes: the writer rotates after each op of the batch, so its set, and its
    // delete and commit, lie in two segments.
    const { disk, session } = logWithBatch(true, 60)
    session.writer.step()
    const segments = [...disk.snapshotFiles()].filter(([name]) => name.endsWith('.log')).sort()
    const withCommit = segments.findLastIndex(([, bytes]) => bytes.length > 24)
    expect(withCommit).toBeGreaterThanOrEqual(2)
    // A crash before the next segment existed, its last write torn: the commit record is gone.
    const [lastPath, lastBytes] = segments[withCommit]!
    const files = new Map(segments.slice(0, withCommit))
    files.set(lastPath, lastBytes.subarray(0, lastBytes.length - 5))
    const cut = SimulatedDisk.fromFiles(files)
    expect(stateAfterRecovery(cut)).toEqual(before)
    // The group's first part was cut from its segment, and the segment after set aside.
    expect(cut.list(dir).filter((name) => name.endsWith('.broken')).length).toBe(2)
  })
})
