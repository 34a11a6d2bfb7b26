import { basename, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { I32, walRingSizeMin, walStateFailed, walStateReadOnly } from '../../../src/store/layout.js'
import { Store } from '../../../src/store/store.js'
import { walRepair } from '../../../src/wal/admin.js'
import { CutNotKeptError } from '../../../src/wal/recovery.js'
import { WalRing } from '../../../src/wal/ring.js'
import { prng, testSeed } from '../../support/random.js'
import { SimulatedDisk } from '../../support/simulated-disk.js'
import { recordStarts } from '../../support/wal-files.js'
import {
  contents,
  dataFiles,
  openWal,
  recoverStore,
  walDir,
  walLimits,
} from '../../support/wal-harness.js'

// What the log does at its edges: a restart after records that only reached the page cache,
// producers facing a ring that cannot drain because the log failed or the disk is full.

const seed = testSeed('wal failure modes')
const text = (value: string) => new TextEncoder().encode(value)

describe('recovery after records that were written but never synced', () => {
  it('makes what it replays durable before the writer publishes it, so a later power loss keeps it', () => {
    const wal = openWal({ fsync: 'no' })
    wal.store.set('a', text('written, never synced'))
    wal.store.set('b', text('also'))
    wal.writer.step() // --fsync no: written to the file, no fdatasync.
    // The process dies and restarts on the same disk: the page cache still holds the records.
    const restarted = recoverStore(wal.storage)
    expect(contents(restarted.store)).toEqual(contents(wal.store))
    const random = prng(seed)
    for (let crash = 0; crash < 30; crash++) {
      // A power loss after the restart: only what was synced survives.
      const { store } = recoverStore(wal.disk.crash(random))
      expect(contents(store), `power loss ${crash}`).toEqual(contents(wal.store))
    }
  })
})

describe('a producer facing a ring that cannot drain', () => {
  const limits = {
    entryCountMax: 64,
    memorySizeMax: 64 * 1024,
    keySizeMax: 16,
    valueSizeMax: 256,
    headroomPerMille: 0,
  }

  /** A store whose ring (642 usable bytes) nobody drains. */
  function undrainedRing(clock: () => number = Date.now) {
    const base = Store.create({ limits: { ...limits, walRingSize: walRingSizeMin(limits) }, clock })
    const ring = new WalRing(base.views)
    const store = Store.attach(base.buffer, {
      clock,
      onMutation: (r) => ring.append(r),
      logRoom: ring,
    })
    return { base, ring, store }
  }

  it('refuses a change once the log failed, applying nothing and taking no sequence number', () => {
    const { base, store } = undrainedRing()
    store.set('fill-1', new Uint8Array(250))
    Atomics.store(base.views.headerI32, I32.walState, walStateFailed)
    const sequence = store.sequence
    expect(store.set('fill-2', new Uint8Array(10))).toEqual({ ok: false, code: 'log_full' })
    expect(store.delete('fill-1')).toEqual({ ok: false, code: 'log_full' })
    expect(store.sequence).toBe(sequence)
    // The store lock was released on the way out: the store still answers, unchanged.
    expect(store.peek('fill-1')).toBeDefined()
    expect(store.peek('fill-2')).toBeUndefined()
  })

  it('refuses a set whose record does not fit, without waiting, and applies it once the writer drains', () => {
    const { ring, store } = undrainedRing()
    // A set of a 250-byte value under a 6-byte key is a 284-byte record; a second needs room for
    // itself plus one more of its size (a wrap may skip that much), which the 358 left lack.
    expect(store.set('fill-1', new Uint8Array(250)).ok).toBe(true)
    const sequence = store.sequence
    const refused = store.set('fill-2', new Uint8Array(250))
    expect(refused).toEqual({ ok: false, code: 'log_full' })
    expect(store.sequence).toBe(sequence)
    expect(store.peek('fill-2')).toBeUndefined()
    const readable = ring.readable()!
    ring.release(readable.end)
    expect(store.set('fill-2', new Uint8Array(250))).toMatchObject({
      ok: true,
      version: sequence + 1,
    })
  })

  it('leaves an expired entry in place while the ring has no room for its expiry, and reclaims it after', () => {
    let now = 1_000
    const { base, ring, store } = undrainedRing(() => now)
    const short = store.set('short', text('lives 10 ms'), { ttlMs: 10 }) // 44 bytes
    // Each fill takes at most half the free bytes, so it is accepted (room for itself, plus one
    // record's worth a wrap may skip); 39 bytes stay free, and the expiry's 24-byte record needs 48.
    for (const [key, size] of [
      ['fill-1', 256], // a 290-byte record, of 598 free
      ['fill-2', 120], // 154 of 308
      ['fill-3', 43], // 77 of 154
      ['fill-4', 4], // 38 of 77
    ] as const) {
      expect(store.set(key, new Uint8Array(size)).ok).toBe(true)
    }
    expect(ring.hasRoom(24, 24)).toBe(false)
    Atomics.store(base.views.headerI32, I32.walState, walStateReadOnly)
    now += 20
    const before = ring.readable()
    const sequence = store.sequence
    expect(store.get('short')).toBeUndefined() // Expired, and must not block.
    expect(store.sweep(10)).toBe(0)
    expect(ring.readable()).toEqual(before)
    expect(store.sequence).toBe(sequence) // No number taken for a record not logged.
    expect(store.stats().expirations).toBe(0)
    expect(store.stats().entryCount).toBe(5)
    // A read that found it absent waits for the write that set the expiry.
    expect(short.ok && store.missSequence).toBe(short.ok && short.version)
    // Space returns and the writer drains: the next read reclaims it, with the next number.
    ring.release(before!.end)
    Atomics.store(base.views.headerI32, I32.walState, 0)
    expect(store.get('short')).toBeUndefined()
    expect(store.stats().expirations).toBe(1)
    const expiry = ring.readable()!
    expect(expiry.recordCount).toBe(1)
    expect(expiry.sequenceLast).toBe(sequence + 1)
  })
})

describe('recovery on a full disk', () => {
  /** A log whose last record a crash tore, on a disk with no byte free. */
  function tornLogOnFullDisk() {
    const wal = openWal()
    for (let i = 0; i < 5; i++) wal.store.set(`key-${i}`, new Uint8Array(40).fill(i))
    wal.writer.step()
    wal.writer.close()
    const [segment] = dataFiles(wal.disk).segments
    const path = join(walDir, segment!.name)
    const size = wal.disk.size(path)
    wal.disk.truncate(path, size - 7)
    wal.disk.capacityBytes = wal.disk.usedBytes
    return { wal, path, size }
  }

  it('starts: it cuts a torn tail without the copy it has no room for, and says how much', () => {
    const { wal, path, size } = tornLogOnFullDisk()
    const { store, report } = recoverStore(wal.disk)
    expect(report.tornBytesNotKept).toBeGreaterThan(0)
    expect(report.brokenFiles).toEqual([])
    expect(wal.disk.size(path)).toBe(size - 7 - report.tornBytesNotKept)
    expect(store.sequence).toBe(4)
    expect(wal.disk.list(walDir).some((name) => name.endsWith('.broken'))).toBe(false)
  })

  it('repair cuts nothing when it cannot keep the bytes it would cut, and says so', () => {
    const wal = openWal()
    for (let i = 0; i < 5; i++) wal.store.set(`key-${i}`, new Uint8Array(40).fill(i))
    wal.writer.step()
    wal.writer.close()
    const path = join(walDir, dataFiles(wal.disk).segments[0]!.name)
    // Corruption, not a torn tail: a flipped byte with valid records after it.
    const bytes = wal.disk.read(path)
    const starts = recordStarts(bytes)
    const damaged = bytes.slice()
    damaged[starts[1]! + 14]! ^= 0x40
    const disk = SimulatedDisk.fromFiles([[path, damaged]])
    disk.capacityBytes = disk.usedBytes
    expect(() => walRepair(disk, walDir, () => {}, walLimits)).toThrow(CutNotKeptError)
    expect(disk.read(path)).toEqual(damaged)
    expect(disk.list(walDir)).toEqual([basename(path)])
  })
})
