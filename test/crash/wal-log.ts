import { expect } from 'vitest'
import { Store } from '../../src/store/store.js'
import type { MutationRecord } from '../../src/store/types.js'
import { verifyStore } from '../../src/store/verify.js'
import { WalRing } from '../../src/wal/ring.js'
import type { Storage } from '../../src/wal/storage.js'
import { WalWriter, type WalWriterOptions } from '../../src/wal/writer.js'

// Logs for the torn-tail and bit-flip tests, produced the real way: a store, the WAL ring over
// its buffer, a write-through handle, and the WAL writer driven step by step in this thread.
// Every record the store emits is also kept (copied) here, so a test can compute from them the
// state recovery must rebuild: a Map that applies set, delete, evict, expire and clear.

/** Small on purpose: the workload below fills it and forces an eviction. */
export const limits = { entryCountMax: 16, memorySizeMax: 2048, keySizeMax: 64, valueSizeMax: 1024 }

/** A fixed instant: recovered stores read this clock, so nothing expires while a test runs. */
export const clockStartMs = 1_700_000_000_000

export interface ModelEntry {
  value: Uint8Array
  contentType: number
  expiresAt: number
  version: number
}

/** A store, a ring and a writer over `dir`; mutate through `handle`, then step and close. */
export class LogSession {
  readonly records: MutationRecord[] = []
  readonly handle: Store
  readonly writer: WalWriter
  nowMs = clockStartMs

  constructor(
    storage: Storage,
    dir: string,
    readonly store: Store = Store.create({ limits, clock: () => clockStartMs }),
    options: Partial<WalWriterOptions> = {},
  ) {
    storage.mkdirp(dir) // Boot recovery makes it; a first log has none before it.
    const ring = new WalRing(store.views)
    this.handle = Store.attach(store.buffer, {
      clock: () => this.nowMs,
      onMutation: (record) => {
        ring.append(record)
        // The value is the caller's buffer, not a copy.
        this.records.push(record.op === 'set' ? { ...record, value: record.value.slice() } : record)
      },
      logRoom: ring,
    })
    this.writer = new WalWriter(store, ring, {
      storage,
      dir,
      fsync: 'always',
      segmentSizeMax: 1024 * 1024,
      snapshotLogSizeMin: 2 ** 40,
      noSpaceRetryMs: 100,
      clock: () => this.nowMs,
      ...options,
    })
    this.writer.open()
  }
}

/** `size` bytes that differ from record to record (a value never looks like a frame). */
export function filler(size: number, salt: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 31 + salt * 7 + 1) & 0xff)
}

/**
 * Fourteen records: values of 0 to 700 bytes, content types, TTLs (one runs out and is reclaimed
 * as an expire record), non-ASCII keys, deletes, and as the last three a delete, the eviction a
 * full store makes, and the set that needed the room.
 */
export function writeWorkload(
  session: LogSession,
  step: () => unknown = () => session.writer.step(),
) {
  const { handle } = session
  const set = (key: string, size: number, options: Parameters<Store['set']>[2] = {}) => {
    expect(handle.set(key, filler(size, size), options).ok).toBe(true)
    step()
  }
  const del = (key: string) => {
    expect(handle.delete(key).ok).toBe(true)
    step()
  }
  set('a', 0)
  set('b', 1, { contentType: 3 })
  set('ключ-ü', 100, { ttlMs: 3_600_000, contentType: 1 })
  set('c', 300, { ttlMs: 1000 })
  set('a', 50)
  set('g', 10)
  del('g')
  session.nowMs += 2000
  expect(handle.get('c')).toBeUndefined() // Its TTL ran out: an expire record.
  step()
  set('d', 700)
  set('e', 500)
  set('f', 673) // 2,040 of 2,048 bytes used.
  expect(handle.get('ключ-ü')).toBeDefined() // So that 'a' is the least recently used.
  del('b')
  set('🔑', 40, { ttlMs: 3_600_000, contentType: 2 }) // Needs room: evicts 'a'.
}

/** A few more records, as a server would write after recovery. */
export function writeMore(
  session: LogSession,
  label: string,
  step: () => unknown = () => session.writer.step(),
): void {
  const { handle } = session
  expect(handle.set(`more-${label}`, filler(33, 5)).ok).toBe(true)
  expect(handle.set('a', filler(7, 9), { contentType: 4 }).ok).toBe(true)
  step()
  expect(handle.delete('a').ok).toBe(true)
  expect(handle.set(`über-${label}`, filler(120, 3), { ttlMs: 60_000 }).ok).toBe(true)
  step()
}

/** The resident set after applying `records` in order. */
export function modelAfter(records: readonly MutationRecord[]): Map<string, ModelEntry> {
  const model = new Map<string, ModelEntry>()
  for (const record of records) {
    if (record.op === 'set') {
      model.set(record.key, {
        value: record.value,
        contentType: record.contentType,
        expiresAt: record.expiresAt,
        version: record.sequence,
      })
    } else if (record.op === 'clear') model.clear()
    else if (record.op !== 'commit') model.delete(record.key)
  }
  return model
}

/** Every resident entry of `store`, read through scan and peek (which changes no recency). */
export function storeState(store: Store): Map<string, ModelEntry> {
  const state = new Map<string, ModelEntry>()
  for (let cursor: number | null = 0; cursor !== null; ) {
    const page = store.scan('', cursor, 1000)
    for (const item of page.items) {
      const entry = store.peek(item.key)
      if (entry === undefined) throw new Error(`scan found ${item.key}, peek did not`)
      state.set(item.key, { ...entry, value: new Uint8Array(entry.value) })
    }
    cursor = page.cursor
  }
  return state
}

/** The store holds exactly the model, its sequence is the last record's, its structures check. */
export function expectStoreIs(store: Store, records: readonly MutationRecord[], what: string) {
  const sorted = (map: Map<string, ModelEntry>) => [...map].sort(([a], [b]) => (a < b ? -1 : 1))
  expect(sorted(storeState(store)), what).toEqual(sorted(modelAfter(records)))
  expect(store.sequence, what).toBe(records.at(-1)?.sequence ?? 0)
  expect(verifyStore(store.buffer), what).toEqual([])
}

/** A store like the one the log was written from, empty, to recover into. */
export function freshStore(): Store {
  return Store.create({ limits, clock: () => clockStartMs })
}
