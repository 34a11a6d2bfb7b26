import { describe, expect, it } from 'vitest'
import { type StoreLimits, walRingSizeMin } from '../../../src/store/layout.js'
import { Store } from '../../../src/store/store.js'
import type { BatchChange } from '../../../src/store/types.js'
import { verifyStore } from '../../../src/store/verify.js'
import { WalRing } from '../../../src/wal/ring.js'

// The store asks its log for room before every change (src/store/types.ts, LogRoom). These are
// the cases a random workload reaches only now and then, built by hand: a set that must evict
// many entries, and batches, whose records must stay reserved while they make room.

const limitsSmall: StoreLimits = {
  entryCountMax: 200,
  memorySizeMax: 400,
  keySizeMax: 8,
  valueSizeMax: 150,
  headroomPerMille: 0,
}

function storeWithRing(walRingSize = walRingSizeMin(limitsSmall)) {
  const base = Store.create({ limits: { ...limitsSmall, walRingSize }, hashSeed: 5 })
  const ring = new WalRing(base.views)
  const store = Store.attach(base.buffer, { onMutation: (r) => ring.append(r), logRoom: ring })
  const drain = () => {
    for (let readable = ring.readable(); readable; readable = ring.readable()) {
      ring.release(readable.end)
    }
  }
  return { base, ring, store, drain }
}

/** Fills the store with one-byte values under short keys until its bytes are full. */
function fillWithSmallEntries(store: Store, drain: () => void): string[] {
  const keys: string[] = []
  for (let i = 0; store.stats().bytesUsed + 4 <= limitsSmall.memorySizeMax; i++) {
    const key = `s${i}`
    expect(store.set(key, new Uint8Array(1)).ok).toBe(true)
    keys.push(key)
    drain()
  }
  return keys
}

describe('a set that must evict many entries to fit', () => {
  it('keeps its own record reserved: it refuses (log_full) before the evictions use its room', () => {
    const { store, ring, drain } = storeWithRing()
    fillWithSmallEntries(store, drain)
    const sequence = store.sequence
    // A 150-byte value needs about 40 four-byte entries gone: about 850 bytes of eviction
    // records, more than the smallest ring (407 bytes) holds beside the set's own 181.
    const result = store.set('big', new Uint8Array(150))
    expect(result).toEqual({ ok: false, code: 'log_full' })
    expect(store.peek('big')).toBeUndefined()
    // What it evicted is logged, numbered, and in the ring; the set took no number.
    const readable = ring.readable()!
    expect(readable.sequenceLast).toBe(store.sequence)
    expect(store.stats().evictions).toBe(store.sequence - sequence)
    expect(verifyStore(store.buffer)).toEqual([])
    // Retried as the writer drains, it gets there: the smallest ring takes an eviction or two
    // beside the reserved set each time.
    let attempts = 0
    for (let r = result; !r.ok; r = store.set('big', new Uint8Array(150))) {
      drain()
      attempts++
      expect(attempts).toBeLessThan(100)
    }
    expect(store.peek('big')?.value.byteLength).toBe(150)
  })
})

describe('a prepared batch', () => {
  it('evicts only entries the batch does not touch, so none of its ops evicts', () => {
    const { store, drain } = storeWithRing(64 * 1024)
    const keys = fillWithSmallEntries(store, drain)
    // The least recently used entry is the batch's own: it must survive the room made.
    const oldest = keys[0]!
    const changes: BatchChange[] = [
      { op: 'set', key: oldest, valueSize: 60 },
      { op: 'set', key: 'new', valueSize: 60 },
    ]
    const evictionsBefore = store.stats().evictions
    store.atomically((tx) => {
      expect(tx.prepare(changes)).toEqual({ ok: true })
      // A set that had to evict here would fail an assertion: a prepared batch evicts nothing.
      expect(tx.set(oldest, new Uint8Array(60)).ok).toBe(true)
      expect(tx.set('new', new Uint8Array(60)).ok).toBe(true)
    })
    expect(store.peek(oldest)?.value.byteLength).toBe(60)
    expect(store.peek('new')?.value.byteLength).toBe(60)
    expect(store.stats().evictions).toBeGreaterThan(evictionsBefore)
    expect(verifyStore(store.buffer)).toEqual([])
  })

  it('keeps its records reserved while it evicts: it refuses (log_full) rather than run short mid-batch', () => {
    // Two 150-byte sets need about 80 small entries gone: some 1,700 bytes of eviction records.
    // A 2,000-byte ring takes them all, but then not the sets' own 358 bytes: only a batch that
    // keeps those reserved stops evicting in time (and gets there across retries).
    const { store, drain } = storeWithRing(2000)
    fillWithSmallEntries(store, drain)
    const changes: BatchChange[] = [
      { op: 'set', key: 'x', valueSize: 150 },
      { op: 'set', key: 'y', valueSize: 150 },
    ]
    const sequence = store.sequence
    let result = store.atomically((tx) => tx.prepare(changes))
    expect(result).toEqual({ ok: false, code: 'log_full' })
    expect(store.peek('x')).toBeUndefined()
    expect(store.sequence).toBeGreaterThan(sequence) // Evictions made room, each one logged.
    let attempts = 0
    while (!result.ok) {
      drain()
      attempts++
      expect(attempts).toBeLessThan(20)
      result = store.atomically((tx) => {
        const ready = tx.prepare(changes)
        if (!ready.ok) return ready
        expect(tx.set('x', new Uint8Array(150)).ok).toBe(true)
        expect(tx.set('y', new Uint8Array(150)).ok).toBe(true)
        return ready
      })
    }
    expect(store.peek('x')?.value.byteLength).toBe(150)
    expect(store.peek('y')?.value.byteLength).toBe(150)
    expect(verifyStore(store.buffer)).toEqual([])
  })

  it('refuses (batch_too_large), changing nothing, when its own entries could never fit together', () => {
    const { store, drain } = storeWithRing(64 * 1024)
    fillWithSmallEntries(store, drain)
    const before = store.stats()
    const changes: BatchChange[] = [
      { op: 'set', key: 'x', valueSize: 150 },
      { op: 'set', key: 'y', valueSize: 150 },
      { op: 'set', key: 'z', valueSize: 150 },
    ]
    expect(store.atomically((tx) => tx.prepare(changes))).toEqual({
      ok: false,
      code: 'batch_too_large',
    })
    expect(store.stats()).toEqual(before)
  })

  it('refuses (batch_too_large) when its records could never fit the log, however empty', () => {
    const { store } = storeWithRing()
    const changes: BatchChange[] = [
      { op: 'set', key: 'x', valueSize: 150 },
      { op: 'set', key: 'y', valueSize: 10 },
    ]
    // 179 + 39 bytes of records, the largest (179) for a wrap, and one eviction's 27: more than
    // the 406 bytes the smallest ring holds.
    expect(store.atomically((tx) => tx.prepare(changes))).toEqual({
      ok: false,
      code: 'batch_too_large',
    })
  })
})

describe('batch plans a review found wanting', () => {
  /** A store whose clock is late enough that a TTL under a microsecond adds nothing to it. */
  function lateStore(limits: StoreLimits, walRingSize = walRingSizeMin(limits)) {
    const now = 1_765_000_000_000
    const base = Store.create({ limits: { ...limits, walRingSize }, hashSeed: 5 })
    const ring = new WalRing(base.views)
    const store = Store.attach(base.buffer, {
      onMutation: (r) => ring.append(r),
      logRoom: ring,
      clock: () => now,
    })
    return { ring, store }
  }

  it('never writes an entry expired at birth: a later op of the batch on its key needs no expiry', () => {
    const limits = { ...limitsSmall, entryCountMax: 100, memorySizeMax: 10_000 }
    const { store } = lateStore(limits)
    const big = new Uint8Array(130)
    const outcome = store.atomically((tx) => {
      expect(
        tx.prepare([
          { op: 'set', key: 'k', valueSize: big.byteLength },
          { op: 'set', key: 'k', valueSize: 0 },
        ]),
      ).toEqual({ ok: true })
      // 1e-9 ms on top of today's clock is no time at all in a double.
      expect(tx.set('k', big, { ttlMs: 1e-9 }).ok).toBe(true)
      return tx.set('k', new Uint8Array(0))
    })
    expect(outcome.ok).toBe(true)
    expect(store.peek('k')?.value.byteLength).toBe(0)
  })

  it('refuses at once (batch_too_large) a batch whose evictions could never get log room', () => {
    // A 64-byte key's eviction takes 83 bytes of log, more than each of the batch's small sets:
    // the room an eviction asks for beside the batch's records never fits the smallest ring.
    const limits = {
      ...limitsSmall,
      entryCountMax: 2,
      memorySizeMax: 10_000,
      keySizeMax: 64,
      valueSizeMax: 8,
    }
    const { store, ring } = lateStore(limits)
    expect(store.set('a'.repeat(64), new Uint8Array(0)).ok).toBe(true)
    expect(store.set('b'.repeat(64), new Uint8Array(0)).ok).toBe(true)
    for (let readable = ring.readable(); readable; readable = ring.readable())
      ring.release(readable.end)
    const changes: BatchChange[] = Array.from({ length: 6 }, () => ({
      op: 'set',
      key: 'n',
      valueSize: 0,
    }))
    expect(store.atomically((tx) => tx.prepare(changes))).toEqual({
      ok: false,
      code: 'batch_too_large',
    })
  })

  it('counts against the batch only the entries it writes, not one it only reads', () => {
    const limits = { ...limitsSmall, entryCountMax: 100, memorySizeMax: 100, valueSizeMax: 80 }
    const { store } = lateStore(limits, 64 * 1024)
    expect(store.set('g', new Uint8Array(59)).ok).toBe(true) // 60 of 100 bytes.
    // Read g, then write 51 bytes: one by one, the write evicts g after it was read.
    const ready = store.atomically((tx) => {
      expect(tx.get('g')).toBeDefined()
      return tx.prepare([
        { op: 'get', key: 'g' },
        { op: 'set', key: 'n', valueSize: 50 },
      ])
    })
    expect(ready).toEqual({ ok: true })
  })
})
