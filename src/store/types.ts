// The store's public vocabulary: what callers pass in and what comes back. Errors a client can
// cause are values, not exceptions, because they cross thread boundaries (structured clone drops
// custom error classes and their fields).

import type { StoreLimits } from './layout.js'
import type { LockMeterOptions } from './lock-stats.js'

export type StoreErrorCode =
  | 'key_empty'
  | 'key_too_large'
  | 'key_invalid'
  | 'value_too_large'
  | 'entry_too_large'
  | 'ttl_invalid'
  | 'key_exists'
  | 'version_mismatch'
  | 'not_found'
  /**
   * The log had no room for the records this change needs right now. Nothing the caller asked
   * for was applied (expiries or evictions made on its behalf may have been, each one logged).
   * Never a client's error: the caller waits for the log to drain, outside the lock, and tries
   * again (src/http/respond.ts, whenLogged).
   */
  | 'log_full'
  /** A batch's own entries need more than the store holds, or its records more than the log. */
  | 'batch_too_large'

export type StoreResult<T> = ({ ok: true } & T) | { ok: false; code: StoreErrorCode }

/** A resident entry as a read returns it. */
export interface Entry {
  /**
   * A private copy of the bytes (src/store/value-copy.ts). A small value shares its underlying
   * ArrayBuffer with other values: use its byteOffset and byteLength, not .buffer alone.
   */
  value: Uint8Array
  /** A small tag the caller maps to a media type; the store only keeps it. */
  contentType: number
  /** The sequence number of the write that produced this value. */
  version: number
  /** Epoch milliseconds after which the entry is gone, or 0 for never. */
  expiresAt: number
}

export interface SetOptions {
  /** Time to live in milliseconds from now; must be a positive finite number. */
  ttlMs?: number
  /** Absolute expiry in epoch milliseconds (replay uses this); ttlMs wins when both are given. */
  expiresAt?: number
  contentType?: number
  /** Write only when the key is absent (create). */
  ifAbsent?: boolean
  /** Write only when the key exists with exactly this version (compare-and-set). */
  ifVersion?: number
}

export interface DeleteOptions {
  ifVersion?: number
}

/** One resident entry in a scan page: metadata only, never the value. */
export interface ScanItem {
  key: string
  valueSize: number
  contentType: number
  version: number
  expiresAt: number
}

export interface ScanPage {
  items: ScanItem[]
  /** Pass back to continue; null when no matching entry follows (the scan is over). */
  cursor: number | null
  /**
   * True when the call stopped at its bound of slots examined, not at the next match or the
   * end: whether a match follows the cursor is not known yet.
   */
  boundReached: boolean
}

/** What a log record does: the kind of a MutationRecord. */
export type MutationOp = MutationRecord['op']

/**
 * The bounded log a store's mutations go to (the WAL ring, src/wal/ring.ts). The store asks it
 * before every change and applies none whose record it cannot take at once. So nothing waits for
 * room while holding the store lock (every thread would wait behind it), and no sequence number
 * is ever taken for a record that is not logged: recovery needs them contiguous.
 */
export interface LogRoom {
  /** The bytes the record of such a change takes in the log. */
  recordSize(op: MutationOp, keySize: number, valueSize: number): number
  /** Whether records of `size` bytes in all, none larger than `sizeMax`, fit now without waiting. */
  hasRoom(size: number, sizeMax: number): boolean
  /** The most bytes of records hasRoom can ever grant at once (the log holds no more). */
  readonly capacity: number
}

/** One op of a batch, as Store's transaction prepare() needs to know it. */
export type BatchChange =
  | { op: 'get' | 'delete'; key: string }
  | { op: 'set'; key: string; valueSize: number }

/**
 * Every change to the resident set, in the order it was applied (the lock's order), so a log
 * can replay exactly the same resident set. `sequence` increases by one per record; for a set it
 * is also the entry's new version. A union on `op`: a switch over it is exhaustive, and what only
 * a set carries (its value) is there for certain once `op` says 'set'.
 */
export type MutationRecord = SetRecord | RemovalRecord | ClearRecord | CommitRecord

/** What every record but a commit may be: part of a group that a later commit record closes. */
interface Groupable {
  /**
   * Part of a group that a later commit record closes: recovery applies the group's records
   * only once it reaches that commit. A batch's changes are one group. Absent when not.
   */
  grouped?: true
}

/** A key written: created or replaced. */
export interface SetRecord extends Groupable {
  op: 'set'
  sequence: number
  key: string
  /** The caller's bytes, not a copy; a listener that keeps them must copy. */
  value: Uint8Array
  contentType: number
  /** Epoch milliseconds, or 0 for never (Entry.expiresAt). */
  expiresAt: number
}

/** A key gone: deleted by a client, evicted for room, or reclaimed once expired. */
export interface RemovalRecord extends Groupable {
  op: 'delete' | 'evict' | 'expire'
  sequence: number
  key: string
}

/** Every key gone at once. */
export interface ClearRecord extends Groupable {
  op: 'clear'
  sequence: number
  /** A clear names no key; empty, so a record's key can be read without asking its kind. */
  key: ''
}

/**
 * Changes nothing: closes a group of records that must apply together or not at all (a batch's
 * changes), so recovery can drop a group a crash cut short. Never part of a group itself.
 */
export interface CommitRecord {
  op: 'commit'
  sequence: number
  /** A commit names no key; empty, as a clear's. */
  key: ''
  grouped?: never
}

export interface StoreStats {
  entryCount: number
  entryCountMax: number
  bytesUsed: number
  memorySizeMax: number
  hits: number
  misses: number
  sets: number
  deletes: number
  evictions: number
  expirations: number
  /** Bytes of live records the arena's cleaner has moved; a measure of fragmentation work. */
  arenaBytesMoved: number
  sequence: number
  /** Every mutation up to this one may be acknowledged (the WAL writer publishes it). */
  durableSequence: number
  /** 0 ok, 1 read-only (disk full), 2 failed (src/wal/writer.ts). */
  walState: number
  /** Group commits: each is one write and, with --fsync always, one fdatasync. */
  walGroupCommits: number
  walRecordsWritten: number
  walBytesWritten: number
  walSnapshots: number
}

export interface StoreOptions {
  /** Epoch milliseconds. Injectable so tests can move time. */
  clock?: () => number
  /**
   * Called under the lock for every change to the resident set, in apply order. It must not
   * call back into the store (the lock is not reentrant) and must not throw.
   */
  onMutation?: (record: MutationRecord) => void
  /**
   * Called after the lock is released, once per hold: where what onMutation started and need not
   * hold the lock for goes, such as waking the log's writer (a system call).
   */
  onUnlocked?: () => void
  /**
   * The log onMutation feeds, when it is bounded: asked before every change, which the store
   * refuses (log_full) rather than apply without room for its record. Absent: always room.
   */
  logRoom?: LogRoom
  /** The lock counters' clock and sampling rate (lock-stats.ts); tests pass a fake clock. */
  lockMeter?: LockMeterOptions
}

export interface CreateStoreOptions extends StoreOptions {
  limits?: Partial<StoreLimits>
  /** Fixes the hash seed (tests); otherwise random per store. */
  hashSeed?: number
}

/** The operations available inside Store.atomically(); valid only during the callback. */
export interface StoreTransaction {
  get(key: string): Entry | undefined
  peek(key: string): Entry | undefined
  set(
    key: string,
    value: Uint8Array,
    options?: SetOptions,
  ): StoreResult<{ version: number; created: boolean }>
  delete(key: string, options?: DeleteOptions): StoreResult<{ sequence: number }>
  /** The version of a live entry, or undefined; copies nothing and changes nothing. */
  peekVersion(key: string): number | undefined
  /**
   * Makes room for a batch's changes, in the log and in the store, before any of them is
   * applied, so that the batch then applies whole: its sets and deletes need no eviction and
   * find room for their records. Call it once, after checking the batch's conditions and before
   * its first change; get ops need no room but count as keys the batch touches. Refuses with
   * log_full (retry), or batch_too_large when the batch's own entries or records could never fit.
   */
  prepare(changes: readonly BatchChange[]): StoreResult<object>
}
