import { describe, expect, it } from 'vitest'
import { type StoreLimits, walRingSizeMin } from '../../src/store/layout.js'
import { Store } from '../../src/store/store.js'
import type { BatchChange, MutationRecord, SetRecord, StoreResult } from '../../src/store/types.js'
import { walCheck } from '../../src/wal/admin.js'
import { CorruptLogError, recover, replayInto } from '../../src/wal/recovery.js'
import { WalRing } from '../../src/wal/ring.js'
import type { Storage } from '../../src/wal/storage.js'
import { WalWriter } from '../../src/wal/writer.js'
import { prng, testSeed } from '../support/random.js'
import { SimulatedCrash, SimulatedDisk } from '../support/simulated-disk.js'
import { judgeRecovery, recoverLive } from './crash-check.js'

// The generative test of the log's edges: a seeded workload that runs into a full disk, gets
// space back, and has TTL expiries (some shorter than the way to the disk), reads, sweeps,
// segment rotations and snapshots in between, through a ring small enough to fill while the
// disk is full. It is crashed before every storage operation in turn, and each crash image is
// checked:
//
//   - Recovery succeeds without repair, and `slabkv wal check` agrees (clean or a torn tail).
//   - It holds the exact state after some prefix of the mutations at least as long as the
//     acknowledged one (test/crash/crash-check.ts).
//   - No read was answered with state the crash took back: a value read had its version
//     recovered, and a miss had recovered whatever explains it (a delete, an eviction, a clear,
//     or the write whose expiry it was).
//
// The crash images keep unsynced appends whole or torn at a byte (ext4 data=ordered, XFS), not
// with a lost page before a kept one: such a hole looks exactly like damage followed by valid
// records, which recovery refuses and `wal repair` cuts (test/crash/simulated-crash.test.ts
// covers that disk with repair allowed).
//
// The requests the HTTP layer makes are played here in one thread: a write is refused while the
// log is read-only, and waits for room (the writer steps) when the store says log_full; a read
// waits for the sequence number its answer depends on (the hit's version, or missSequence).
// Two planted bugs must each make the check fail: an expiry that takes a number but is not logged
// (the ring "dropping" it while the disk is full), and a miss that waits only for the latest
// delete, eviction or clear, not for the write whose expiry it is.

const dir = '/data'
const limits: StoreLimits = {
  entryCountMax: 64,
  memorySizeMax: 2400,
  keySizeMax: 8,
  valueSizeMax: 120,
  headroomPerMille: 0,
}
/**
 * A ring twice the smallest these limits allow: a burst of writes between group commits fills
 * it (they wait for room), and while the disk is full it takes a few expiries before it is full
 * too (later expiries then stay in place until it drains).
 */
const ringLimits = { ...limits, walRingSize: 2 * walRingSizeMin(limits) }
const operationCountPerRun = 500
const imagesPerCrashPoint = 4
/** The disk fills here and space returns here (operation indices of the workload). */
const diskFullAt = 150
const spaceReturnsAt = 230

type Planted = 'none' | 'drop an expiry record' | 'skip the wait for an expired write'

interface Read {
  key: string
  /** The version read, or undefined for a miss. */
  version: number | undefined
  /** store.sequence right after the read: the state it saw. */
  seen: number
  nowMs: number
  /** The sequence number the answer waited for: answered once that was durable. */
  wait: number
}

interface Outcome {
  /** An error the run ended with, other than the simulated crash (a failed invariant, say). */
  error?: string
  history: MutationRecord[]
  acknowledged: number
  reads: Read[]
  nowMs: number
  counts: Record<string, number>
}

/** Runs the workload until it ends or the disk crashes; the same seed makes the same workload. */
function runWorkload(disk: SimulatedDisk, seed: number, planted: Planted): Outcome {
  const random = prng(seed)
  let nowMs = 1_000_000
  const clock = () => nowMs
  const history: MutationRecord[] = []
  const counts: Record<string, number> = {
    refused: 0,
    logFull: 0,
    expiriesInReadOnly: 0,
    expiriesDeferred: 0,
    batches: 0,
    missesByExpiry: 0,
    snapshots: 0,
  }
  const store = Store.create({ limits: ringLimits, clock, hashSeed: 11 })
  const ring = new WalRing(store.views)
  let removalSequence = 0 // What the planted bug waits for: the rule before missSequence.
  let writer: WalWriter | undefined
  const writing = Store.attach(store.buffer, {
    clock,
    logRoom: ring,
    onMutation: (record) => {
      history.push(record.op === 'set' ? { ...record, value: record.value.slice() } : record)
      if (record.op !== 'set' && record.op !== 'expire') removalSequence = record.sequence
      if (record.op === 'expire' && writer?.readOnly) {
        counts.expiriesInReadOnly!++
        if (planted === 'drop an expiry record') return
      }
      ring.append(record)
    },
  })
  const outcome: Outcome = { history, acknowledged: 0, reads: [], nowMs, counts }
  const storage: Storage = disk
  const readOnly = () => writing.stats().walState !== 0
  /** A request's write: refused while read-only, retried while the log has no room. */
  const write = (attempt: () => StoreResult<object>) => {
    for (let tries = 0; tries < 4; tries++) {
      if (readOnly()) {
        counts.refused!++
        return
      }
      const result = attempt()
      if (result.ok || result.code !== 'log_full') return
      counts.logFull!++
      writer!.step() // The request waits; the writer drains meanwhile.
    }
  }
  try {
    recover(storage, dir, replayInto(store))
    writer = new WalWriter(store, ring, {
      storage,
      dir,
      fsync: 'always',
      segmentSizeMax: 1500,
      snapshotLogSizeMin: 2500,
      noSpaceRetryMs: 1000,
      clock,
      salt: 0x1234567,
    })
    writer.open()
    let lastKey = 'k0'
    for (let i = 0; i < operationCountPerRun; i++) {
      if (i === diskFullAt) {
        // Twenty-four short-lived entries, durable; then the disk fills, with a large write in
        // the ring. The entries expire while it is full: the ring takes the first expiries
        // (about a dozen fit beside the write) and the rest wait in place until it drains.
        for (let j = 0; j < 24; j++) {
          write(() =>
            writing.set(`expiry${String(j).padStart(2, '0')}`, new Uint8Array(1), { ttlMs: 100 }),
          )
        }
        writer.step()
        // Full until the writer says so: a step may first delete files a snapshot made
        // redundant and write into what they free, so each try has a write of its own.
        for (let j = 0; j < 10 && !readOnly(); j++) {
          write(() => writing.set(`full${j % 3}`, new Uint8Array(120).fill(j)))
          disk.capacityBytes = disk.usedBytes
          writer.step()
        }
        // Read-only, its next step deletes what the writer keeps only to save work (the previous
        // snapshot's file, kept for the next snapshot to write over): the space it frees is
        // taken too, so that the disk stays full until space returns.
        writer.step()
        disk.capacityBytes = Math.min(disk.capacityBytes, disk.usedBytes)
      }
      if (i === spaceReturnsAt) disk.capacityBytes = Number.POSITIVE_INFINITY
      // Often the key just written: a read soon after a short-lived write finds it expired.
      const key = random() < 0.4 ? lastKey : `k${Math.floor(random() * 24)}`
      lastKey = key
      const roll = random()
      const set = (ttlMs: number | undefined) => {
        const value = new Uint8Array(Math.floor(random() * limits.valueSizeMax)).fill(i % 251)
        write(() => writing.set(key, value, { ttlMs, contentType: i % 3 }))
      }
      const read = () => {
        const entry = writing.get(key)
        const wait =
          entry !== undefined
            ? entry.version
            : planted === 'skip the wait for an expired write'
              ? removalSequence
              : writing.missSequence
        const done: Read = { key, version: entry?.version, seen: writing.sequence, nowMs, wait }
        outcome.reads.push(done)
        const explained = explanation(history, done)
        // The reads the second planted bug answers too early: an expired write not yet logged
        // as removed, newer than any delete, eviction or clear.
        if (explained.byExpiry && explained.sequence > removalSequence) counts.missesByExpiry!++
      }
      if (i >= diskFullAt && i < spaceReturnsAt) {
        // While the disk is full, time passes and sweeps run: the TTLs written just before it
        // filled run out, and their expiries meet a log that cannot take them.
        nowMs += 5 + Math.floor(random() * 10)
        if (random() < 0.15) {
          writing.sweep(5)
          // An expired entry the sweep left: the ring had no room for its expiry.
          if (residentExpired(history, nowMs) > 0) counts.expiriesDeferred!++
        }
      }
      if (roll < 0.36) {
        // Some TTLs run out before the group commit that would make the write durable.
        const ttlRoll = random()
        set(ttlRoll < 0.15 ? 1 + Math.floor(random() * 30) : ttlRoll < 0.3 ? 2000 : undefined)
      } else if (roll < 0.44) {
        // A short-lived write read back once its TTL ran out, before any group commit: the
        // miss depends on a write the disk may not have yet.
        set(1 + Math.floor(random() * 20))
        nowMs += 25
        read()
      } else if (roll < 0.52) write(() => writing.delete(key))
      else if (roll < 0.66) read()
      else if (roll < 0.72) writing.sweep(5)
      else if (roll < 0.82) nowMs += 1 + Math.floor(random() * (random() < 0.7 ? 40 : 1500))
      else if (roll < 0.83) write(() => writing.clear())
      else if (roll < 0.86) {
        // A burst of large writes between two group commits: the ring fills, and they wait.
        for (let j = 0; j < 6; j++) {
          const value = new Uint8Array(100 + j).fill(j)
          write(() => writing.set(`b${j}`, value))
        }
      } else if (roll < 0.9) {
        // A batch: its records go to disk as one group, applied by recovery whole or not at all.
        const ops = Array.from({ length: 2 + Math.floor(random() * 3) }, (_, j) => ({
          key: j === 0 ? key : `k${Math.floor(random() * 24)}`,
          size: random() < 0.25 ? -1 : Math.floor(random() * 60),
        }))
        const changes: BatchChange[] = ops.map((op) =>
          op.size < 0
            ? { op: 'delete', key: op.key }
            : { op: 'set', key: op.key, valueSize: op.size },
        )
        write(() =>
          writing.atomically((tx) => {
            const ready = tx.prepare(changes)
            if (!ready.ok) return ready
            for (const op of ops) {
              if (op.size < 0) tx.delete(op.key)
              else tx.set(op.key, new Uint8Array(op.size).fill(i % 251))
            }
            counts.batches!++
            return ready
          }),
        )
      }
      // Not every operation gets its own group commit: durability lags behind the store.
      if (random() < 0.3) writer.step()
      outcome.acknowledged = writing.stats().durableSequence
      outcome.nowMs = nowMs
    }
    writer.close()
    outcome.acknowledged = writing.stats().durableSequence
  } catch (error) {
    // The writer stops on a broken invariant (its snapshot checks the log against the store):
    // in the server that is an exit, and here a finding.
    if (!(error instanceof SimulatedCrash)) outcome.error = String(error)
  }
  counts.snapshots = writing.stats().walSnapshots
  return outcome
}

/** How many entries the history leaves resident though expired by nowMs. */
function residentExpired(history: readonly MutationRecord[], nowMs: number): number {
  const resident = new Map<string, SetRecord>()
  for (const record of history) {
    if (record.op === 'set') resident.set(record.key, record)
    else if (record.op === 'clear') resident.clear()
    else if (record.op !== 'commit') resident.delete(record.key)
  }
  let count = 0
  for (const record of resident.values()) {
    if (record.expiresAt !== 0 && record.expiresAt <= nowMs) count++
  }
  return count
}

/**
 * The sequence number a read's answer depends on, from the history: a value read, its version; a
 * miss, the record that made the key absent: a delete, an eviction or a clear, or the write
 * whose expiry it was (found expired by time, or removed by an expire record). A miss of a key
 * the history says is present is the store's error: it depends on what cannot be.
 */
function explanation(history: readonly MutationRecord[], read: Read) {
  if (read.version !== undefined) return { sequence: read.version, byExpiry: false }
  let expired = false
  for (let i = history.length - 1; i >= 0; i--) {
    const record = history[i]!
    if (record.sequence > read.seen) continue
    if (record.op === 'clear') return { sequence: record.sequence, byExpiry: false }
    if (record.key !== read.key) continue
    if (record.op === 'expire') expired = true
    else if (record.op === 'set') {
      if (expired || (record.expiresAt !== 0 && record.expiresAt! <= read.nowMs)) {
        return { sequence: record.sequence, byExpiry: true }
      }
      return { sequence: Number.POSITIVE_INFINITY, byExpiry: false }
    } else return { sequence: record.sequence, byExpiry: false }
  }
  return { sequence: 0, byExpiry: false }
}

/** Crashes the workload before every storage operation; what went wrong, if anything. */
function enumerateCrashes(seed: number, planted: Planted, stopAtFirstFailure = false) {
  const clean = new SimulatedDisk()
  clean.mkdirp(dir)
  const full = runWorkload(clean, seed, planted)
  const operationCount = clean.operationCount
  const failures: string[] = []
  if (full.error !== undefined) failures.push(`the run without a crash failed: ${full.error}`)
  const random = prng(seed ^ 0x2545f491)
  let recoveries = 0
  let answeredReads = 0
  // Looking for a planted bug, the latest crash points go first: most of what it breaks shows
  // only once the disk has had space back and the log has moved on.
  const crashPoints = Array.from({ length: operationCount - 1 }, (_, i) => i + 1)
  if (stopAtFirstFailure) crashPoints.reverse()
  for (const crashAt of crashPoints) {
    const disk = new SimulatedDisk()
    disk.mkdirp(dir)
    disk.armCrash(crashAt)
    const outcome = runWorkload(disk, seed, planted)
    if (outcome.error !== undefined) failures.push(`crash point ${crashAt + 1}: ${outcome.error}`)
    for (let image = 0; image < imagesPerCrashPoint; image++) {
      const crashed = disk.crash(random, { pageHoles: false })
      const where = `crash before operation ${crashAt + 1}, image ${image}`
      recoveries++
      const checked = walCheck(crashed, dir, () => {}, limits)
      let recovered: ReturnType<typeof recoverLive>
      try {
        recovered = recoverLive(crashed, dir, limits, outcome.nowMs)
      } catch (error) {
        if (!(error instanceof CorruptLogError)) throw error
        failures.push(
          `${where}: recovery refused to start (wal check said ${checked}): ${error.message}`,
        )
        if (stopAtFirstFailure) return { full, operationCount, failures, recoveries, answeredReads }
        continue
      }
      if (checked !== 0 && checked !== 1) {
        failures.push(`${where}: wal check exited ${checked}, though recovery started`)
      }
      const wrong = judgeRecovery(outcome.history, outcome.acknowledged, outcome.nowMs, recovered)
      if (wrong !== undefined) failures.push(`${where}: ${wrong}`)
      for (const read of outcome.reads) {
        if (read.wait > outcome.acknowledged) continue // Never answered: still waiting.
        answeredReads++
        const needed = explanation(outcome.history, read).sequence
        if (recovered.sequence < needed) {
          const what = read.version === undefined ? 'a miss' : `version ${read.version}`
          failures.push(
            `${where}: ${read.key} was answered with ${what} (it waited for ${read.wait}), ` +
              `which needs ${needed}; recovery reached ${recovered.sequence}`,
          )
        }
      }
      if (stopAtFirstFailure && failures.length > 0) break
    }
    if (stopAtFirstFailure && failures.length > 0) break
  }
  return { full, operationCount, failures, recoveries, answeredReads }
}

describe('crashes through a full disk, space returning, expiries and snapshots', () => {
  it('recovers without repair at every crash point, holding every acknowledged write and every answered read', () => {
    const seed = testSeed('full disk crash')
    const { full, operationCount, failures, recoveries, answeredReads } = enumerateCrashes(
      seed,
      'none',
    )
    console.log(
      `full disk crash (seed ${seed}): ${operationCount} crash points × ${imagesPerCrashPoint} ` +
        `images = ${recoveries} recoveries, ${answeredReads} answered reads checked; ` +
        `${full.history.length} mutations; ${JSON.stringify(full.counts)}; failures: ${failures.length}`,
    )
    // The workload must reach what it claims to test, or the enumeration proves less.
    expect(full.counts.refused).toBeGreaterThan(0)
    expect(full.counts.logFull).toBeGreaterThan(0)
    expect(full.counts.expiriesInReadOnly).toBeGreaterThan(0)
    expect(full.counts.expiriesDeferred).toBeGreaterThan(0)
    expect(full.counts.missesByExpiry).toBeGreaterThan(0)
    expect(full.counts.snapshots).toBeGreaterThanOrEqual(1)
    expect(full.counts.batches).toBeGreaterThan(0)
    expect(full.history.some((record) => record.sequence > 0 && record.op === 'expire')).toBe(true)
    expect(failures.slice(0, 5)).toEqual([])
  })

  for (const planted of ['drop an expiry record', 'skip the wait for an expired write'] as const) {
    it(`catches a planted bug: ${planted}`, () => {
      const seed = testSeed(`full disk crash, ${planted}`)
      const { full, failures } = enumerateCrashes(seed, planted, true)
      console.log(
        `${planted} (${JSON.stringify(full.counts)}): found ${failures.length > 0 ? failures[0] : 'nothing'}`,
      )
      expect(failures.length).toBeGreaterThan(0)
    })
  }
})
