import { describe, expect, it } from 'vitest'
import { StorageFailedError } from '../../src/durability.js'
import { I32, walRingSizeMin, walStateFailed, walStateReadOnly } from '../../src/store/layout.js'
import { Store } from '../../src/store/store.js'
import { WalRing } from '../../src/wal/ring.js'
import { prng, testSeed } from '../support/seed.js'
import { contents, openWal, recoverStore } from '../support/wal-harness.js'

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

  /** A store whose ring (607 usable bytes) nobody drains, and `fill` bytes of records in it. */
  function undrainedRing(clock: () => number = Date.now) {
    const base = Store.create({ limits: { ...limits, walRingSize: walRingSizeMin(limits) }, clock })
    const ring = new WalRing(base.views)
    const store = Store.attach(base.buffer, { clock, onMutation: (r) => ring.append(r) })
    return { base, ring, store }
  }

  it('throws StorageFailedError instead of waiting forever once the log failed', () => {
    const { base, store } = undrainedRing()
    // A set of a 250-byte value under a 6-byte key is a 284-byte record: two fit, not three.
    store.set('fill-1', new Uint8Array(250))
    store.set('fill-2', new Uint8Array(250))
    Atomics.store(base.views.headerI32, I32.walState, walStateFailed)
    expect(() => store.set('fill-3', new Uint8Array(250))).toThrow(StorageFailedError)
    // The store lock was released on the way out: the store still answers.
    expect(store.peek('fill-1')).toBeDefined()
  })

  it('drops an expiry rather than wait while the disk is full; replay hides the entry anyway', () => {
    let now = 1_000
    const { base, ring, store } = undrainedRing(() => now)
    store.set('short', text('lives 10 ms'), { ttlMs: 10 }) // 44 bytes
    store.set('fill-1', new Uint8Array(250)) // 284
    store.set('fill-2', new Uint8Array(240)) // 274: 5 bytes stay free, an expiry needs 24
    Atomics.store(base.views.headerI32, I32.walState, walStateReadOnly)
    now += 20
    const before = ring.readable()
    expect(store.get('short')).toBeUndefined() // Expires here, and must not block.
    expect(ring.readable()).toEqual(before)
    expect(store.stats().expirations).toBe(1)
  })
})
