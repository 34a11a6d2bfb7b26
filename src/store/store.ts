import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { AccessSampler } from './access-ring.js'
import { Arena } from './arena.js'
import { type BatchKey, planBatch } from './batch-plan.js'
import { ExpiryHeap } from './expiry-heap.js'
import { expiresAtOf } from './expiry-time.js'
import { HashIndex } from './hash-index.js'
import {
  decodeKey,
  KeyProbe,
  type KeyRefusal,
  keyRefusal,
  probeEquals,
  probeKey,
  writeProbe,
} from './key-codec.js'
import {
  attachViews,
  createViews,
  F64,
  I32,
  type Layout,
  recordHeaderSize,
  type Slot,
  type StoreLimits,
  slotNone,
  storeLimitsDefault,
  type Views,
} from './layout.js'
import { Mutex } from './lock.js'
import { LockMeter, type LockOperationStats, lockOp, readLockStats } from './lock-stats.js'
import { LruList } from './lru-list.js'
import { scanPage } from './scan.js'
import { readStats } from './stats.js'
import { copyStore } from './store-copy.js'
import type {
  BatchChange,
  CreateStoreOptions,
  DeleteOptions,
  Entry,
  LogRoom,
  MutationOp,
  MutationRecord,
  RemovalRecord,
  ScanPage,
  SetOptions,
  StoreErrorCode,
  StoreOptions,
  StoreResult,
  StoreStats,
  StoreTransaction,
} from './types.js'
import { copyValue } from './value-copy.js'
import { type VisitEntry, walkOldestFirst } from './walk-oldest-first.js'

// get/set/delete = hash index + LRU list + expiry heap + arena, under one Atomics lock. This is
// the only module that composes the structures, and the only place that evicts.
//
// Every public method takes the lock, works synchronously, and releases it before returning, so
// the lock is never held across an await. Several threads may each hold a Store over the same
// buffer (Store.attach); all state lives in the buffer, none in the object.

const logFull = { ok: false, code: 'log_full' } as const

/** Why a set's create or replace case refused, having changed nothing the caller asked for. */
type SetRefusal = 'key_exists' | 'version_mismatch' | 'log_full'

export class Store {
  readonly views: Views
  readonly #lock: Mutex
  /** This thread's side of the lock's counters (lock-stats.ts). */
  readonly #lockMeter: LockMeter
  readonly #index: HashIndex
  readonly #lru: LruList
  readonly #heap: ExpiryHeap
  readonly #arena: Arena
  /** Samples gets, sets and removals for the miss-ratio curve (access-ring.ts). */
  readonly #sampler: AccessSampler
  readonly #clock: () => number
  readonly #onMutation: ((record: MutationRecord) => void) | undefined
  readonly #onUnlocked: (() => void) | undefined
  readonly #logRoom: LogRoom | undefined
  /**
   * Log bytes promised to records this hold of the lock has yet to append (a set's own record
   * while it evicts for room; a prepared batch's records), and the largest of them. Every room
   * check counts them, so what is promised stays available. Zero when the lock is released.
   */
  #reservedSize = 0
  #reservedSizeMax = 0
  /** True from a batch's prepare() to the end of its lock hold: its records are reserved. */
  #prepared = false
  /** Records of the prepared batch's group so far; a commit record closes them (record.ts). */
  #groupedCount = 0
  #commitSequence = 0
  /** Entries this handle evicted, by the limit that made each go (see evictedForMemory). */
  #evictedForMemory = 0
  #evictedForEntries = 0
  readonly #seed: number
  readonly #limits: StoreLimits
  readonly #transaction: StoreTransaction
  /** True while this thread holds the lock through this object: catches reentrant calls. */
  #inside = false
  /** True while replay() applies a logged record: its removals take no sequence number. */
  #replaying = false
  /**
   * The time as this hold of the lock sees it, read from the clock on first need (NaN until
   * then). One operation, or one transaction, sees one instant: were the clock read twice, an
   * entry a set found alive could expire before that set made room, and be reclaimed while
   * being written.
   */
  #now = Number.NaN
  /** #instant, as a function made once: what expiresAtOf calls for a TTL, allocating nothing. */
  readonly #instantOf = (): number => this.#instant()
  /** #isExpired, as a function made once: what scanPage asks of each entry it looks at. */
  readonly #isExpiredOf = (slot: Slot): boolean => this.#isExpired(slot)

  // The key being looked up, shared with #matches so the index's probe loop calls one
  // long-lived closure instead of allocating one per lookup.
  readonly #key: KeyProbe
  readonly #matches: (slot: Slot) => boolean

  static create(options: CreateStoreOptions = {}): Store {
    const limits = { ...storeLimitsDefault, ...options.limits }
    const views = createViews(limits)
    views.headerI32[I32.hashSeed] = options.hashSeed ?? randomInt(2 ** 31)
    const store = new Store(views, options)
    store.#reset()
    return store
  }

  /** A second handle on a buffer created by Store.create, typically in another thread. */
  static attach(buffer: SharedArrayBuffer, options: StoreOptions = {}): Store {
    return new Store(attachViews(buffer), options)
  }

  private constructor(views: Views, options: StoreOptions) {
    this.views = views
    const v = views
    this.#lock = new Mutex(v.headerI32, I32.lock)
    this.#lockMeter = new LockMeter(v.lockStats, options.lockMeter)
    this.#index = new HashIndex(v.index, v.hashes)
    this.#lru = new LruList(v.headerI32, v.prev, v.next)
    this.#heap = new ExpiryHeap(v.headerI32, v.heap, v.heapPos, v.expiresAt)
    this.#arena = new Arena(v.headerF64, v.arena, v.loc, v.keySizes, v.valueSizes)
    this.#sampler = new AccessSampler(v)
    this.#clock = options.clock ?? Date.now
    this.#onMutation = options.onMutation
    this.#onUnlocked = options.onUnlocked
    this.#logRoom = options.logRoom
    this.#seed = v.headerI32[I32.hashSeed]!
    this.#limits = v.layout.limits
    const probe = new KeyProbe(this.#limits.keySizeMax)
    this.#key = probe
    const arenaView = v.arenaView
    const keySizes = v.keySizes
    const loc = v.loc
    this.#matches = (slot: Slot) =>
      keySizes[slot] === probe.size && probeEquals(probe, arenaView, loc[slot]! + recordHeaderSize)
    this.#transaction = {
      get: (key) => this.#get(key, true),
      peek: (key) => this.#get(key, false),
      set: (key, value, setOptions) => this.#set(key, value, setOptions),
      delete: (key, deleteOptions) => this.#delete(key, deleteOptions),
      peekVersion: (key) => this.#peekVersion(key),
      prepare: (changes) => this.#prepare(changes),
    }
  }

  get buffer(): SharedArrayBuffer {
    return this.views.buffer
  }

  get layout(): Layout {
    return this.views.layout
  }

  /** Returns the entry and makes it the most recently used. */
  get(key: string): Entry | undefined {
    this.#enter(lockOp.get)
    try {
      return this.#get(key, true)
    } finally {
      this.#leave()
    }
  }

  /** Returns the entry without changing its recency. */
  peek(key: string): Entry | undefined {
    this.#enter(lockOp.peek)
    try {
      return this.#get(key, false)
    } finally {
      this.#leave()
    }
  }

  set(
    key: string,
    value: Uint8Array,
    options?: SetOptions,
  ): StoreResult<{ version: number; created: boolean }> {
    this.#enter(lockOp.set)
    try {
      return this.#set(key, value, options)
    } finally {
      this.#leave()
    }
  }

  delete(key: string, options?: DeleteOptions): StoreResult<{ sequence: number }> {
    this.#enter(lockOp.delete)
    try {
      return this.#delete(key, options)
    } finally {
      this.#leave()
    }
  }

  /** The version of a live entry, or undefined; copies nothing and changes nothing. */
  peekVersion(key: string): number | undefined {
    this.#enter(lockOp.peek_version)
    try {
      return this.#peekVersion(key)
    } finally {
      this.#leave()
    }
  }

  /**
   * Runs `body` with the lock held, so its operations are atomic with respect to every thread.
   * `body` must be synchronous and must use only the transaction it is given.
   */
  atomically<T>(body: (transaction: StoreTransaction) => T): T {
    this.#enter(lockOp.transaction)
    try {
      const result = body(this.#transaction)
      // A prepared batch's records are one group: the commit record closes it (record.ts).
      if (this.#groupedCount > 0) this.#commitGroup()
      return result
    } finally {
      this.#leave()
    }
  }

  /**
   * The sequence number of the commit record this handle's latest prepared transaction wrote, read
   * like `sequence` right after atomically() returns; 0 before any. What a batch's answer waits
   * for: without its commit durable, a crash drops the whole batch.
   */
  get commitSequence(): number {
    return this.#commitSequence
  }

  /**
   * How many entries this handle has evicted since it was made because the new bytes would not
   * fit --max-memory; evictedForEntries, because one more entry would not fit --max-entries.
   * Read like `commitSequence`: taken before and right after an operation, the difference is
   * what that operation evicted (stats() counts every thread's evictions, this handle's only).
   */
  get evictedForMemory(): number {
    return this.#evictedForMemory
  }

  get evictedForEntries(): number {
    return this.#evictedForEntries
  }

  /**
   * One page of the resident keys that start with `prefix`, in slot order, from slot `cursor` on
   * (scan.ts), under the lock. Pass the page's cursor back to continue; null ends the scan.
   */
  scan(prefix: string, cursor: number, limit: number): ScanPage {
    assert(Number.isSafeInteger(cursor) && cursor >= 0, 'cursor must be a slot number')
    assert(Number.isSafeInteger(limit) && limit >= 0, 'limit must be ≥ 0')
    const prefixBytes = new TextEncoder().encode(prefix)
    this.#enter(lockOp.scan)
    try {
      return scanPage(this.views, prefixBytes, cursor, limit, this.#isExpiredOf)
    } finally {
      this.#leave()
    }
  }

  /**
   * The sweep, only if the lock is free at once; undefined otherwise. For a thread that must never
   * wait on the lock (the main thread, which watches the others and must stay free to).
   */
  trySweep(countMax: number): number | undefined {
    const sweep = () => this.#reclaimExpired(this.#clock(), countMax)
    return this.tryExclusively(sweep, 'sweep')?.value
  }

  /** Reclaims up to `countMax` expired entries; returns how many. The incremental sweep. */
  sweep(countMax: number): number {
    this.#enter(lockOp.sweep)
    try {
      return this.#reclaimExpired(this.#clock(), countMax)
    } finally {
      this.#leave()
    }
  }

  /** Removes every entry. O(entryCountMax): it resets every structure. */
  clear(): StoreResult<{ sequence: number }> {
    this.#enter(lockOp.clear)
    try {
      if (!this.#hasLogRoom('clear', 0, 0)) return logFull
      this.#reset()
      this.#sampler.clear()
      return { ok: true, sequence: this.#emit('clear', '') }
    } finally {
      this.#leave()
    }
  }

  /** The store lock's counters, every thread's, per operation (lock-stats.ts); under the lock. */
  lockStats(): LockOperationStats[] {
    this.#enter(lockOp.stats)
    try {
      return readLockStats(this.views.lockStats)
    } finally {
      this.#leave()
    }
  }

  /** The counters and limits (stats.ts), read under the lock. */
  stats(): StoreStats {
    this.#enter(lockOp.stats)
    try {
      return readStats(this.views)
    } finally {
      this.#leave()
    }
  }

  /**
   * The sequence number of the latest mutation, read without the lock. After any operation of
   * this thread returns, it is at least that operation's (the lock orders the memory); a read
   * that found nothing waits for this one to be durable, since some logged delete, eviction or
   * expiry up to here may be why.
   */
  get sequence(): number {
    return this.views.headerF64[F64.sequence]!
  }

  /**
   * What a read that found nothing waits for, read like `sequence`: the latest delete, eviction
   * or clear, or the version of the latest write found expired, whichever is newer. Any of them
   * may be why the key is absent, and the absence must survive a crash before anyone is told.
   * For an expiry the write is what counts, not the expiry's own record: the write carries its
   * expiry time, so once the write is durable the key stays absent after a crash with or
   * without the expire record; before, a crash could bring back the value the write replaced.
   */
  get missSequence(): number {
    return this.views.headerF64[F64.missSequence]!
  }

  /**
   * Applies one logged mutation during recovery, giving it exactly its logged sequence number.
   * Removals the current limits force while replaying (a smaller --max-memory than the log was
   * written with) take no sequence number and are not reported: they are not in the log.
   * A snapshot's entries come in recency order, not version order: each passes the snapshot's
   * sequence, which the store's sequence becomes; log records pass none and must ascend.
   * Returns why a logged set does not apply under this store's limits (a key or value larger
   * than they allow), changing nothing; recovery reports that as the record's damage.
   */
  replay(record: MutationRecord, snapshotSequence?: number): StoreErrorCode | undefined {
    this.#enter(lockOp.replay)
    this.#replaying = true
    try {
      const f64 = this.views.headerF64
      const sequenceAfter = snapshotSequence ?? record.sequence
      assert(record.sequence <= sequenceAfter, 'a snapshot entry is newer than its snapshot')
      assert(sequenceAfter >= f64[F64.sequence]!, 'replayed records must ascend')
      if (snapshotSequence === undefined) {
        assert(record.sequence > f64[F64.sequence]!, 'replayed log records must ascend')
      }
      const sequenceBefore = f64[F64.sequence]!
      f64[F64.sequence] = record.sequence - 1
      switch (record.op) {
        case 'set': {
          const result = this.#set(record.key, record.value, {
            expiresAt: record.expiresAt,
            contentType: record.contentType,
          })
          if (!result.ok) {
            f64[F64.sequence] = sequenceBefore
            return result.code
          }
          break
        }
        case 'delete':
        case 'evict':
        case 'expire': {
          const hash = this.#probe(record.key)
          const position = hash === undefined ? -1 : this.#index.find(hash, this.#matches)
          if (position >= 0) this.#remove(this.#index.slotAt(position), position, record.op)
          break
        }
        case 'clear':
          this.#reset()
          break
        case 'commit':
          // A commit changes nothing; it only took its number (recovery applied its group).
          break
      }
      f64[F64.sequence] = sequenceAfter
      return undefined
    } finally {
      this.#replaying = false
      this.#leave()
    }
  }

  /**
   * Runs `body` holding the lock, or returns undefined at once when another thread holds it. The
   * WAL writer takes the lock this way, so it can go on draining the ring for a producer that
   * waits for ring space while holding the lock.
   */
  tryExclusively<T>(
    body: () => T,
    operation: 'snapshot' | 'sweep' = 'snapshot',
  ): { value: T } | undefined {
    assert(!this.#inside, 'the store lock is not reentrant')
    if (!this.#lock.tryLock()) return undefined
    this.#lockMeter.acquiredAtOnce(lockOp[operation])
    this.#inside = true
    this.#now = Number.NaN
    try {
      return { value: body() }
    } finally {
      this.#leave()
    }
  }

  /**
   * A private copy of the store, as a store no other thread knows: what a snapshot serializes
   * while writes go on (store-copy.ts). Only inside tryExclusively, so the copy is consistent.
   * `target` is the buffer to copy into, as large as this one; the caller allocates it and
   * touches its pages beforehand, so the lock is held for a memory copy and no page faults.
   */
  copy(target = new SharedArrayBuffer(this.buffer.byteLength)): Store {
    assert(this.#inside, 'copy() needs the lock held')
    return new Store(copyStore(this.views, target), { clock: this.#clock })
  }

  /**
   * Visits up to `countMax` entries from least to most recently used (walk-oldest-first.ts),
   * under the lock. Only for a store nobody changes meanwhile (a copy): the cursor is a slot.
   */
  walkOldestFirst(cursor: Slot | undefined, countMax: number, visit: VisitEntry): Slot {
    this.#enter(lockOp.walk)
    try {
      return walkOldestFirst(this.views, cursor, countMax, visit)
    } finally {
      this.#leave()
    }
  }

  /** Why a key would be refused, or undefined when it is acceptable. Takes no lock. */
  checkKey(key: string): KeyRefusal | undefined {
    return keyRefusal(key, this.#limits.keySizeMax)
  }

  /** Takes the lock for the operation whose counters start at `op` (lockOp). */
  #enter(op: number): void {
    // Not assert(): on the path of every operation, its call measurably cost a get.
    if (this.#inside) {
      throw new assert.AssertionError({
        message: 'the store lock is not reentrant: use the transaction inside atomically()',
      })
    }
    const meter = this.#lockMeter
    const startedAt = meter.beforeLock()
    const how = this.#lock.lock()
    meter.acquired(op, how, startedAt)
    this.#inside = true
    this.#now = Number.NaN
  }

  #leave(): void {
    this.#reservedSize = 0
    this.#reservedSizeMax = 0
    this.#prepared = false
    this.#groupedCount = 0
    this.#inside = false
    this.#lockMeter.releasing()
    this.#lock.unlock()
    this.#onUnlocked?.()
  }

  /**
   * Prepares #matches for `key` and returns its hash, or undefined when the key could never be
   * stored (so no lookup can find it).
   */
  #probe(key: string): number | undefined {
    if (key.length === 0) return undefined
    return probeKey(key, this.#seed, this.#key)
  }

  /** The bytes the record of such a change takes in the log; 0 without a bounded log. */
  #recordSize(op: MutationOp, keySize: number, valueSize: number): number {
    return this.#logRoom === undefined ? 0 : this.#logRoom.recordSize(op, keySize, valueSize)
  }

  /**
   * Whether the log can take one more record of this kind now, on top of what this hold of the
   * lock has promised (#reservedSize). Replay logs nothing, so it always can.
   */
  #hasLogRoom(op: MutationOp, keySize: number, valueSize: number): boolean {
    if (this.#logRoom === undefined || this.#replaying) return true
    const size = this.#logRoom.recordSize(op, keySize, valueSize)
    return this.#logRoom.hasRoom(this.#reservedSize + size, Math.max(this.#reservedSizeMax, size))
  }

  #get(key: string, touch: boolean): Entry | undefined {
    const v = this.views
    const hash = this.#probe(key)
    const position = hash === undefined ? -1 : this.#index.find(hash, this.#matches)
    if (position < 0) {
      if (touch) {
        v.headerF64[F64.misses]! += 1
        if (hash !== undefined) this.#sampler.get(hash, 0)
      }
      return undefined
    }
    const slot = this.#index.slotAt(position)
    if (this.#isExpired(slot)) {
      // Reclaimed when the log has room for the expiry; otherwise it stays until a sweep or a
      // later read finds room. Absent either way.
      this.#remove(slot, position, 'expire')
      if (touch) {
        v.headerF64[F64.misses]! += 1
        this.#sampler.get(hash!, 0)
      }
      return undefined
    }
    const valueOffset = this.#arena.keyOffset(slot) + v.keySizes[slot]!
    const valueSize = v.valueSizes[slot]!
    if (touch) {
      this.#lru.moveToFront(slot)
      v.headerF64[F64.hits]! += 1
      this.#sampler.get(hash!, v.keySizes[slot]! + valueSize)
    }
    const value = copyValue(v.arenaView, valueOffset, valueSize)
    return {
      value,
      contentType: v.contentTypes[slot]!,
      version: v.versions[slot]!,
      expiresAt: v.expiresAt[slot]!,
    }
  }

  #peekVersion(key: string): number | undefined {
    const hash = this.#probe(key)
    const position = hash === undefined ? -1 : this.#index.find(hash, this.#matches)
    if (position < 0) return undefined
    const slot = this.#index.slotAt(position)
    return this.#isExpired(slot) ? undefined : this.views.versions[slot]!
  }

  /**
   * A set, checked before anything changes: the key, the value's size, the entry's size and the
   * expiry. Then written with its own record's room in the log promised, which a prepared batch
   * has done for all of its records at once.
   */
  #set(
    key: string,
    value: Uint8Array,
    options?: SetOptions,
  ): StoreResult<{ version: number; created: boolean }> {
    const limits = this.#limits
    const hash = this.#probe(key)
    if (hash === undefined) return { ok: false, code: this.checkKey(key)! }
    const keySize = this.#key.size
    const valueSize = value.byteLength
    if (valueSize > limits.valueSizeMax) return { ok: false, code: 'value_too_large' }
    if (keySize + valueSize > limits.memorySizeMax) return { ok: false, code: 'entry_too_large' }
    const expiresAt = expiresAtOf(options, this.#instantOf)
    if (expiresAt === undefined) return { ok: false, code: 'ttl_invalid' }
    // A prepared batch reserved this record with the rest of its own.
    if (this.#prepared) return this.#setReserved(key, hash, value, expiresAt, options)
    if (!this.#hasLogRoom('set', keySize, valueSize)) return logFull
    // The set's own record stays promised while expiries and evictions make room for it, so
    // that their records cannot take the space it needs.
    const recordSize = this.#recordSize('set', keySize, valueSize)
    this.#reservedSize = recordSize
    this.#reservedSizeMax = recordSize
    try {
      return this.#setReserved(key, hash, value, expiresAt, options)
    } finally {
      this.#reservedSize = 0
      this.#reservedSizeMax = 0
    }
  }

  /** A reserved record is being appended: what it takes is no longer only promised. */
  #consumeReserved(size: number): void {
    this.#reservedSize = Math.max(0, this.#reservedSize - size)
  }

  /**
   * #set once its own record has room in the log: the key probed, the options checked. The key
   * is created or its entry replaced, and either way the entry then gets its version, metadata
   * and record (#finishSet).
   */
  #setReserved(
    key: string,
    hash: number,
    value: Uint8Array,
    expiresAt: number,
    options: SetOptions | undefined,
  ): StoreResult<{ version: number; created: boolean }> {
    const position = this.#findLive(hash)
    if (position === 'log_full') return logFull
    const created = position < 0
    const slot = created
      ? this.#create(hash, position, value, options)
      : this.#replace(this.#index.slotAt(position), value, options)
    if (typeof slot === 'string') return slot === 'log_full' ? logFull : { ok: false, code: slot }
    return this.#finishSet(slot, key, value, expiresAt, options, created)
  }

  /**
   * The index position of the probed key's live entry, or minus one minus where it would go
   * (as HashIndex.find). An entry found expired is reclaimed first, so that a set meets it as
   * absent, as every read already does: an ifAbsent set succeeds, an ifVersion set fails.
   * 'log_full' when the log has no room for that expiry's record.
   */
  #findLive(hash: number): number | 'log_full' {
    const position = this.#index.find(hash, this.#matches)
    if (position < 0) return position
    const slot = this.#index.slotAt(position)
    if (!this.#isExpired(slot)) return position
    if (this.#remove(slot, position, 'expire') === undefined) return 'log_full'
    return this.#index.find(hash, this.#matches)
  }

  /**
   * A set of an absent key, at `position` (minus one minus where it goes). Room for its bytes
   * and one more entry comes first, before anything of it is written; evictions move index
   * entries, so after any the key's position is looked up again.
   */
  #create(
    hash: number,
    position: number,
    value: Uint8Array,
    options: SetOptions | undefined,
  ): Slot | SetRefusal {
    // No version to compare with: an ifVersion set of an absent key always fails.
    if (options?.ifVersion !== undefined) return 'version_mismatch'
    const v = this.views
    const keySize = this.#key.size
    const valueSize = value.byteLength
    const room = this.#makeRoom(keySize + valueSize, 1)
    if (room === 'log_full') return 'log_full'
    if (room === 'moved') position = this.#index.find(hash, this.#matches)
    const slot = this.#lru.allocate()
    assert(slot !== slotNone, 'makeRoom left no free slot')
    v.keySizes[slot] = keySize
    v.valueSizes[slot] = valueSize
    this.#writeRecord(slot, value)
    this.#index.insertAt(-position - 1, slot, hash)
    this.#lru.pushFront(slot)
    v.headerI32[I32.entryCount]! += 1
    v.headerF64[F64.bytesUsed]! += keySize + valueSize
    return slot
  }

  /**
   * A set of a present key, whose conditions are checked against its entry. The entry goes to
   * the front of the LRU list before room is made, so that the evictions a larger value needs
   * can never pick the entry being written; its slot and index position stay as they are.
   */
  #replace(slot: Slot, value: Uint8Array, options: SetOptions | undefined): Slot | SetRefusal {
    const v = this.views
    if (options?.ifAbsent) return 'key_exists'
    if (options?.ifVersion !== undefined && v.versions[slot] !== options.ifVersion) {
      return 'version_mismatch'
    }
    this.#lru.moveToFront(slot)
    const valueSize = value.byteLength
    const valueSizeOld = v.valueSizes[slot]!
    if (this.#makeRoom(valueSize - valueSizeOld, 0) === 'log_full') return 'log_full'
    if (valueSize === valueSizeOld) this.#replaceInPlace(slot, value)
    else this.#replaceMoving(slot, value)
    v.headerF64[F64.bytesUsed]! += valueSize - valueSizeOld
    return slot
  }

  /**
   * A value of the same size overwrites the old one where it lies: the arena record keeps its
   * place and its length, so nothing is marked dead or appended, and the cleaner is left no dead
   * bytes to skip.
   */
  #replaceInPlace(slot: Slot, value: Uint8Array): void {
    this.views.arena.set(value, this.#arena.keyOffset(slot) + this.#key.size)
  }

  /**
   * A value of another size needs another record: a record's length in the arena's log is its
   * key and value sizes (arena.ts). The old record is marked dead while the slot still has its
   * old size, and the key and new value are appended at the head as a new one.
   */
  #replaceMoving(slot: Slot, value: Uint8Array): void {
    this.#arena.free(slot)
    this.views.valueSizes[slot] = value.byteLength
    this.#writeRecord(slot, value)
  }

  /**
   * What every set does once its bytes are in place: the entry takes the next sequence number
   * as its version, and its content type and expiry, which the expiry heap follows (the slot
   * goes in, moves, or comes out). Then the set is counted and, unless replayed, reported with
   * its value; a prepared batch's record was reserved, and now takes its room.
   */
  #finishSet(
    slot: Slot,
    key: string,
    value: Uint8Array,
    expiresAt: number,
    options: SetOptions | undefined,
    created: boolean,
  ): StoreResult<{ version: number; created: boolean }> {
    const v = this.views
    const version = this.#nextSequence()
    v.versions[slot] = version
    v.contentTypes[slot] = options?.contentType ?? 0
    const expiresAtOld = v.expiresAt[slot]!
    v.expiresAt[slot] = expiresAt
    if (expiresAt !== 0) {
      if (this.#heap.has(slot)) this.#heap.update(slot)
      else this.#heap.add(slot)
    } else if (expiresAtOld !== 0) {
      this.#heap.remove(slot)
    }
    v.headerF64[F64.sets]! += 1
    if (this.#replaying) return { ok: true, version, created }
    const keySize = this.#key.size
    this.#sampler.set(v.hashes[slot]!, keySize + value.byteLength)
    if (this.#prepared) this.#consumeReserved(this.#recordSize('set', keySize, value.byteLength))
    this.#onMutation?.({
      op: 'set',
      sequence: version,
      key,
      value,
      contentType: v.contentTypes[slot]!,
      expiresAt,
      ...this.#group(),
    })
    return { ok: true, version, created }
  }

  #delete(key: string, options?: DeleteOptions): StoreResult<{ sequence: number }> {
    const hash = this.#probe(key)
    const position = hash === undefined ? -1 : this.#index.find(hash, this.#matches)
    if (position < 0) return { ok: false, code: 'not_found' }
    const slot = this.#index.slotAt(position)
    if (this.#isExpired(slot)) {
      this.#remove(slot, position, 'expire')
      return { ok: false, code: 'not_found' }
    }
    if (options?.ifVersion !== undefined && this.views.versions[slot] !== options.ifVersion) {
      return { ok: false, code: 'version_mismatch' }
    }
    const sequence = this.#remove(slot, position, 'delete')
    return sequence === undefined ? logFull : { ok: true, sequence }
  }

  /**
   * Prepares a batch (StoreTransaction.prepare). Expired entries among the batch's keys go first,
   * so its ops meet none (the instant cannot move within this hold of the lock). The plan
   * (batch-plan.ts) gives the most bytes and entries the batch's own keys hold at any point, and
   * the log bytes of its records. Those records are reserved, the batch's own entries moved to
   * the front of the LRU list, and room made for that peak: every entry the batch does not touch
   * goes before any it does, and the batch's own entries never need more than the limits (else
   * batch_too_large), so no op of the batch evicts anything.
   */
  #prepare(changes: readonly BatchChange[]): StoreResult<object> {
    assert(!this.#prepared, 'a batch is prepared once')
    const v = this.views
    const writes = new Set<string>()
    for (const change of changes) if (change.op !== 'get') writes.add(change.key)
    const written = new Map<string, BatchKey>()
    const seen = new Set<string>()
    for (const change of changes) {
      if (seen.has(change.key)) continue
      seen.add(change.key)
      const hash = this.#probe(change.key)
      assert(hash !== undefined, 'a batch key is checked before prepare')
      const position = this.#findLive(hash)
      if (position === 'log_full') return logFull
      const slot = position < 0 ? slotNone : this.#index.slotAt(position)
      const keySize = this.#key.size
      const size = slot === slotNone ? -1 : keySize + v.valueSizes[slot]!
      if (writes.has(change.key)) written.set(change.key, { keySize, size, slot })
    }
    const plan = planBatch(changes, written, this.#limits, this.#logRoom)
    if (plan === 'batch_too_large') return { ok: false, code: plan }
    const logRoom = this.#logRoom
    if (logRoom !== undefined && !logRoom.hasRoom(plan.recordSize, plan.recordSizeMax)) {
      return logFull
    }
    this.#reservedSize = plan.recordSize
    this.#reservedSizeMax = plan.recordSizeMax
    for (const key of written.values()) {
      if (key.slot !== slotNone) this.#lru.moveToFront(key.slot)
    }
    const room = this.#makeRoom(plan.sizePeak - plan.size, plan.countPeak - plan.count)
    if (room === 'log_full') return logFull
    this.#prepared = true
    return { ok: true }
  }

  /**
   * Makes room for `bytes` more key and value bytes and `slots` more entries. Expired entries go
   * first, all of them, and only then live ones from the LRU tail. Says whether anything was
   * removed ('moved': index positions changed), or that the log had no room for a removal's
   * record ('log_full': the entry does not fit yet; what was removed before stays removed).
   */
  #makeRoom(bytes: number, slots: number): 'fits' | 'moved' | 'log_full' {
    if (this.#fits(bytes, slots)) return 'fits'
    const now = this.#instant()
    this.#reclaimExpired(now, Number.POSITIVE_INFINITY)
    if (this.#fits(bytes, slots)) return 'moved'
    // A live entry goes only once every expired one has: an expiry the log could not take yet
    // waits, and so does the entry that needs the room.
    const oldestExpiry = this.#heap.peek()
    if (oldestExpiry !== slotNone && this.views.expiresAt[oldestExpiry]! <= now) return 'log_full'
    while (!this.#fits(bytes, slots)) {
      const tail = this.#lru.tail
      assert(tail !== slotNone, 'nothing left to evict, yet the entry does not fit')
      // Which limit to name to an operator who wants fewer evictions: the entry count when it
      // is over, else the bytes (one eviction can be over both; the count is the one it cures).
      const forEntries = this.views.headerI32[I32.entryCount]! + slots > this.#limits.entryCountMax
      if (this.#remove(tail, this.#index.positionOf(tail), 'evict') === undefined) {
        return 'log_full'
      }
      if (this.#replaying) continue
      if (forEntries) this.#evictedForEntries++
      else this.#evictedForMemory++
    }
    return 'moved'
  }

  #fits(bytes: number, slots: number): boolean {
    const v = this.views
    return (
      v.headerI32[I32.entryCount]! + slots <= this.#limits.entryCountMax &&
      v.headerF64[F64.bytesUsed]! + bytes <= this.#limits.memorySizeMax
    )
  }

  /** Reclaims up to `countMax` expired entries, as many as the log has room for; returns how many. */
  #reclaimExpired(now: number, countMax: number): number {
    let count = 0
    while (count < countMax) {
      const slot = this.#heap.peek()
      if (slot === slotNone || this.views.expiresAt[slot]! > now) break
      if (this.#remove(slot, this.#index.positionOf(slot), 'expire') === undefined) break
      count++
    }
    return count
  }

  /**
   * Takes a resident slot out of every structure, reports why, and returns the record's
   * sequence; or changes nothing and returns undefined when the log has no room for the record.
   */
  #remove(slot: Slot, position: number, op: 'delete' | 'evict' | 'expire'): number | undefined {
    const v = this.views
    const keySize = v.keySizes[slot]!
    if (this.#prepared) {
      // A prepared batch made its room beforehand: it evicts nothing, and its deletes are
      // reserved. An expiry (a get op's key) still needs room of its own.
      assert(op !== 'evict', 'a prepared batch evicted')
      if (op === 'expire' && !this.#hasLogRoom(op, keySize, 0)) return undefined
      if (op === 'delete') this.#consumeReserved(this.#recordSize(op, keySize, 0))
    } else if (!this.#hasLogRoom(op, keySize, 0)) return undefined
    if (op === 'expire') this.#noteMiss(v.versions[slot]!)
    // An eviction is the cache's own doing, which the curve models; the others are the workload's.
    if (op !== 'evict' && !this.#replaying) this.#sampler.removal(v.hashes[slot]!)
    const key = this.#onMutation ? decodeKey(v.arena, this.#arena.keyOffset(slot), keySize) : ''
    this.#index.removeAt(position)
    this.#lru.remove(slot)
    if (v.expiresAt[slot] !== 0) this.#heap.remove(slot)
    this.#arena.free(slot)
    v.headerI32[I32.entryCount]! -= 1
    v.headerF64[F64.bytesUsed]! -= keySize + v.valueSizes[slot]!
    v.keySizes[slot] = 0 // Key size 0 marks a free slot (keys are at least one byte).
    v.valueSizes[slot] = 0
    v.expiresAt[slot] = 0
    this.#lru.release(slot)
    const counter = op === 'delete' ? F64.deletes : op === 'evict' ? F64.evictions : F64.expirations
    v.headerF64[counter]! += 1
    return this.#emit(op, key)
  }

  /** Appends the slot's record: the key #probe prepared, then `value`. */
  #writeRecord(slot: Slot, value: Uint8Array): void {
    const keyOffset = this.#arena.allocate(slot)
    const v = this.views
    writeProbe(this.#key, v.arenaView, keyOffset)
    v.arena.set(value, keyOffset + this.#key.size)
  }

  /**
   * Whether the slot's entry has expired, which makes it absent to every read. A read that takes
   * it for absent must wait for the write that set its expiry (missSequence), so that is noted.
   * Reads the clock only for entries that expire: most have no TTL, and Date.now() is not free.
   */
  #isExpired(slot: Slot): boolean {
    const expiresAt = this.views.expiresAt[slot]!
    if (expiresAt === 0 || expiresAt > this.#instant()) return false
    this.#noteMiss(this.views.versions[slot]!)
    return true
  }

  /** Raises missSequence to `sequence`: a miss from now on may owe its absence to it. */
  #noteMiss(sequence: number): void {
    const f64 = this.views.headerF64
    if (sequence > f64[F64.missSequence]!) f64[F64.missSequence] = sequence
  }

  #instant(): number {
    if (Number.isNaN(this.#now)) this.#now = this.#clock()
    return this.#now
  }

  #nextSequence(): number {
    const f64 = this.views.headerF64
    f64[F64.sequence]! += 1
    return f64[F64.sequence]!
  }

  /** Reports a removal or a clear; sets report themselves, with their value. */
  #emit(op: RemovalRecord['op'] | 'clear', key: string): number {
    if (this.#replaying) return this.views.headerF64[F64.sequence]!
    const sequence = this.#nextSequence()
    // An expiry's own record need not be durable before a miss is told (see missSequence).
    if (op !== 'expire') this.#noteMiss(sequence)
    this.#onMutation?.(
      op === 'clear'
        ? { op, sequence, key: '', ...this.#group() }
        : { op, sequence, key, ...this.#group() },
    )
    return sequence
  }

  /** Marks the record as one of the prepared batch's group, when there is one. */
  #group(): { grouped?: true } {
    if (!this.#prepared) return {}
    this.#groupedCount++
    return { grouped: true }
  }

  /** Closes the prepared batch's group with its commit record, whose room prepare() reserved. */
  #commitGroup(): void {
    const sequence = this.#nextSequence()
    this.#commitSequence = sequence
    this.#groupedCount = 0
    this.#onMutation?.({ op: 'commit', sequence, key: '' })
  }

  #reset(): void {
    const v = this.views
    this.#index.reset()
    this.#lru.reset()
    this.#heap.reset()
    this.#arena.reset()
    v.keySizes.fill(0)
    v.valueSizes.fill(0)
    v.expiresAt.fill(0)
    v.headerI32[I32.entryCount] = 0
    v.headerF64[F64.bytesUsed] = 0
  }
}
