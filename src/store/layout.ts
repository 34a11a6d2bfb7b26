import assert from 'node:assert/strict'
import { lockStatsLength } from './lock-stats.js'

// The one owner of the SharedArrayBuffer's layout. Every offset, header word and array length
// is computed here, from the configuration alone, so a thread that attaches to an existing
// buffer recomputes exactly the layout the creating thread used. No other module computes an
// offset. docs/architecture.md#the-shared-buffer draws the regions and says what each holds.
// Arrays are laid out widest first so every typed array starts on its natural alignment.

export type Slot = number & { readonly brand: 'Slot' }
/** The "null" link. Never 0, which is a real slot. */
export const slotNone = -1 as Slot

export const layoutMagic = 0x736c6162 // "slab"
export const layoutVersion = 5

/** Indices into the header's Int32Array. */
export const I32 = {
  magic: 0,
  version: 1,
  lock: 2,
  lruHead: 3,
  lruTail: 4,
  freeSlotHead: 5,
  entryCount: 6,
  heapSize: 7,
  hashSeed: 8,
  entryCountMax: 9,
  keySizeMax: 10,
  valueSizeMax: 11,
  indexSlotCount: 12,
  headroomPerMille: 13,
  sweepCursor: 14,
  walRingSize: 15,
  /** Where the next record goes, a byte offset in the ring; written only under the store lock. */
  walRingHead: 16,
  /** The first byte the WAL writer has not yet written to disk; written only by the writer. */
  walRingTail: 17,
  /** Bumped by a producer that appended while the writer sleeps on it. */
  walWriterWake: 18,
  /** 1 while the writer sleeps (or is about to) on walWriterWake. */
  walWriterSleeping: 19,
  /** Bumped by the writer after it frees ring space, when walSpaceWaiting is set. */
  walSpaceWake: 20,
  /** 1 while a producer waits for ring space. */
  walSpaceWaiting: 21,
  /** The log's state: 0 ok, 1 read-only (the disk is full), 2 failed (a sync failed). */
  walState: 22,
  /** Set to 1 by the main thread to make the WAL writer flush, sync and return. */
  walStop: 23,
  /**
   * The salt the log's records are checksummed with (src/wal/record.ts), as an i32: drawn by the
   * WAL writer before any record is appended, read by whoever encodes or checks one.
   */
  walSalt: 24,
  /**
   * 1 while the WAL writer thread holds the store lock (to copy the store for a snapshot). A
   * thread that dies there runs no finally: the main thread then releases the lock for it
   * (src/wal/writer-thread.ts), which is safe because that hold only reads the store.
   */
  walWriterHoldsLock: 25,
  /**
   * One past the highest slot allocated since the last reset: every slot from here on is free
   * and was never used (lru-list.ts hands out untouched slots in order, after released ones), so
   * a scan stops here instead of visiting every slot of a mostly empty table.
   */
  slotHighWater: 26,
  /** GET /v1/watch streams open across every handler thread, against --max-watchers. */
  watcherCount: 27,
  /** The access ring's next record to write (a record index); written only under the store lock. */
  accessRingHead: 28,
  /** The access ring's next record to read; written only by its reader, the main thread. */
  accessRingTail: 29,
} as const
const headerI32Count = 32

/** The values of I32.walState: what the log can do now (src/wal/writer.ts sets it). */
export const walStateOk = 0
/** The disk is full: writes are refused until the writer's retry fits. */
export const walStateReadOnly = 1
/** A sync failed: nothing more becomes durable, and the process exits. */
export const walStateFailed = 2

/** Indices into the header's BigInt64Array. */
export const I64 = {
  /** Every record up to this sequence number may be acknowledged (src/wal/writer.ts says when). */
  durableSequence: 0,
} as const
const headerI64Count = 2

/** Indices into the header's Float64Array. */
export const F64 = {
  memorySizeMax: 0,
  arenaSize: 1,
  bytesUsed: 2,
  arenaHead: 3,
  arenaTail: 4,
  arenaUsed: 5,
  sequence: 6,
  hits: 7,
  misses: 8,
  sets: 9,
  deletes: 10,
  evictions: 11,
  expirations: 12,
  arenaBytesMoved: 13,
  // Written by the WAL writer thread alone; others read them for stats only.
  walGroupCommits: 14,
  walRecordsWritten: 15,
  walBytesWritten: 16,
  walSnapshots: 17,
  /** What a read that finds nothing waits for (Store.missSequence says what it holds). */
  missSequence: 18,
  /** An access is sampled when its key's sampling hash is below this (access-ring.ts). */
  accessThreshold: 19,
  /** Sampled accesses the full access ring could not take, counted under the store lock. */
  accessDropped: 20,
} as const
const headerF64Count = 24

export interface StoreLimits {
  /** Most entries resident at once (PyKV's "capacity"). */
  entryCountMax: number
  /** Most bytes of keys plus values resident at once, counted exactly. */
  memorySizeMax: number
  /** Largest key in UTF-8 bytes. At most 65,535: key sizes are stored in 16 bits. */
  keySizeMax: number
  /** Largest value in bytes. */
  valueSizeMax: number
  /**
   * Arena bytes beyond the worst case, in thousandths of memorySizeMax. The arena is never
   * short of space (see arena.ts); headroom only bounds how much the cleaner copies per insert
   * when the store is full of bytes: at most about 1000 / headroomPerMille bytes per byte.
   * Each 1‰ costs memorySizeMax / 1000 bytes.
   */
  headroomPerMille: number
  /**
   * Bytes of the ring that carries log records from the handler threads to the WAL writer.
   * Absent: the larger of 4 MiB and twice the largest record (walRingSizeMin). A full ring makes
   * writers wait for the disk, so it only needs to cover a burst between two group commits.
   */
  walRingSize?: number
}

/** The limits a store gets when none is given; slabkv serve's defaults (src/config.ts). */
export const storeLimitsDefault: StoreLimits = {
  // PyKV's "capacity". Costs about 64 bytes of structure per entry, allocated up front.
  entryCountMax: 1_000_000,
  // What users size a cache by: bytes of keys plus values, counted exactly.
  memorySizeMax: 256 * 1024 * 1024,
  // As memcached and most HTTP caches; a longer key is refused, never truncated.
  keySizeMax: 1024,
  // As memcached's default item size; raising it costs nothing until used.
  valueSizeMax: 1024 * 1024,
  // 1/64 of memorySizeMax: bounds the arena cleaner's copying at about 64× the bytes it frees
  // in the worst case, for 1.6% more memory. See arena.ts.
  headroomPerMille: 16,
}

/** The most bytes one log record can take for these limits (src/wal/record.ts's framing). */
export function walRecordSizeMax(limits: StoreLimits): number {
  // Framing (17) + key size (2) + content type (1) + expiresAt (8), then the key and value.
  return 28 + limits.keySizeMax + limits.valueSizeMax
}

/** The most bytes a delete, eviction or expiry record can take: framing, key size, the key. */
export function walRemovalRecordSizeMax(limits: StoreLimits): number {
  return 19 + limits.keySizeMax
}

/**
 * A ring must take the largest record while it is reserved beside one eviction's record, with a
 * record's worth to spare for a wrap (the room check in src/wal/ring.ts): a set of the largest
 * value that must evict then always gets somewhere, one eviction at a time if need be.
 */
export function walRingSizeMin(limits: StoreLimits): number {
  return 2 * walRecordSizeMax(limits) + walRemovalRecordSizeMax(limits) + 8
}

export function walRingSizeOf(limits: StoreLimits): number {
  return limits.walRingSize ?? Math.max(4 * 1024 * 1024, walRingSizeMin(limits))
}

/** Records the access ring holds: 256 KiB whatever the store's size (access-ring.ts). */
export const accessRingCapacity = 32_768

/** The arena record header: the owner slot of a live record, or minus the size of a dead one. */
export const recordHeaderSize = 4

export interface Layout {
  readonly limits: StoreLimits
  readonly indexSlotCount: number
  readonly arenaSize: number
  readonly walRingSize: number
  readonly byteLength: number
  readonly offsets: Readonly<Record<ArrayName, number>>
}

/** The typed arrays the layout places: every view but the arena's second one. */
type ArrayName = Exclude<keyof Views, 'buffer' | 'layout' | 'arenaView'>

/** The typed-array views one thread holds over the shared buffer. */
export interface Views {
  readonly buffer: SharedArrayBuffer
  readonly layout: Layout
  readonly headerI32: Int32Array
  readonly headerF64: Float64Array
  readonly headerI64: BigInt64Array
  /** The store lock's counters, per operation (lock-stats.ts). */
  readonly lockStats: Float64Array
  readonly index: Int32Array
  readonly hashes: Int32Array
  readonly prev: Int32Array
  readonly next: Int32Array
  readonly heapPos: Int32Array
  readonly heap: Int32Array
  readonly loc: Uint32Array
  readonly valueSizes: Uint32Array
  readonly versions: Float64Array
  readonly expiresAt: Float64Array
  readonly keySizes: Uint16Array
  readonly contentTypes: Uint8Array
  readonly arena: Uint8Array
  /** The arena again, for reading and writing unaligned 32-bit words of keys and values. */
  readonly arenaView: DataView
  readonly walRing: Uint8Array
  /** Sampled accesses on their way to the miss-ratio curve (access-ring.ts). */
  readonly accessRing: Int32Array
}

/** Node 20 refuses typed arrays longer than 2^32 elements, and arena offsets are stored in u32. */
const arenaSizeLimit = 2 ** 32 - 1

export function nextPowerOfTwo(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}

export function computeLayout(limits: StoreLimits): Layout {
  const { entryCountMax, memorySizeMax, keySizeMax, valueSizeMax, headroomPerMille } = limits
  assert(Number.isSafeInteger(entryCountMax) && entryCountMax >= 1, 'entryCountMax must be ≥ 1')
  assert(entryCountMax <= 2 ** 28, 'entryCountMax must be ≤ 2^28')
  assert(Number.isSafeInteger(memorySizeMax) && memorySizeMax >= 1, 'memorySizeMax must be ≥ 1')
  assert(Number.isSafeInteger(keySizeMax) && keySizeMax >= 1, 'keySizeMax must be ≥ 1')
  assert(keySizeMax <= 0xffff, 'keySizeMax must be ≤ 65535')
  assert(Number.isSafeInteger(valueSizeMax) && valueSizeMax >= 0, 'valueSizeMax must be ≥ 0')
  assert(Number.isSafeInteger(headroomPerMille) && headroomPerMille >= 0)
  assert(headroomPerMille <= 1000, 'headroomPerMille must be ≤ 1000')

  // Load factor ≤ 0.5 keeps linear-probe runs short; a power of two makes the modulo a mask.
  const indexSlotCount = nextPowerOfTwo(2 * entryCountMax)
  // Worst case: every resident record carries its header; then the headroom on top.
  const arenaSize =
    memorySizeMax +
    recordHeaderSize * entryCountMax +
    Math.ceil((memorySizeMax * headroomPerMille) / 1000)
  assert(arenaSize <= arenaSizeLimit, `the arena (${arenaSize} bytes) must be < 4 GiB`)
  const walRingSize = walRingSizeOf(limits)
  assert(Number.isSafeInteger(walRingSize), 'walRingSize must be an integer')
  assert(walRingSize >= walRingSizeMin(limits), 'walRingSize must hold two of the largest records')
  assert(walRingSize < 2 ** 31, 'walRingSize must be < 2 GiB (its offsets are i32 words)')

  const offsets = {} as Record<ArrayName, number>
  let at = 0
  const place = (name: ArrayName, bytesPerElement: number, length: number) => {
    assert(at % bytesPerElement === 0, `${name} would be misaligned`)
    offsets[name] = at
    at += bytesPerElement * length
  }
  // The two headers come first, at fixed offsets, so attachViews can read the limits before it
  // knows the rest of the layout. 32 i32 words keep the f64 arrays after them 8-byte aligned.
  place('headerF64', 8, headerF64Count)
  place('headerI64', 8, headerI64Count)
  place('headerI32', 4, headerI32Count)
  place('lockStats', 8, lockStatsLength)
  place('versions', 8, entryCountMax)
  place('expiresAt', 8, entryCountMax)
  place('index', 4, indexSlotCount)
  place('hashes', 4, entryCountMax)
  place('prev', 4, entryCountMax)
  place('next', 4, entryCountMax)
  place('heapPos', 4, entryCountMax)
  place('heap', 4, entryCountMax)
  place('loc', 4, entryCountMax)
  place('valueSizes', 4, entryCountMax)
  place('keySizes', 2, entryCountMax)
  place('contentTypes', 1, entryCountMax)
  place('arena', 1, arenaSize)
  place('walRing', 1, walRingSize)
  at = Math.ceil(at / 4) * 4 // After the rings, as a snapshot's copy stops at the arena.
  place('accessRing', 4, 2 * accessRingCapacity)

  return {
    limits: { ...limits, walRingSize },
    indexSlotCount,
    arenaSize,
    walRingSize,
    byteLength: at,
    offsets,
  }
}

function viewsOf(buffer: SharedArrayBuffer, layout: Layout): Views {
  const o = layout.offsets
  const n = layout.limits.entryCountMax
  return {
    buffer,
    layout,
    headerI32: new Int32Array(buffer, o.headerI32, headerI32Count),
    headerF64: new Float64Array(buffer, o.headerF64, headerF64Count),
    headerI64: new BigInt64Array(buffer, o.headerI64, headerI64Count),
    lockStats: new Float64Array(buffer, o.lockStats, lockStatsLength),
    index: new Int32Array(buffer, o.index, layout.indexSlotCount),
    hashes: new Int32Array(buffer, o.hashes, n),
    prev: new Int32Array(buffer, o.prev, n),
    next: new Int32Array(buffer, o.next, n),
    heapPos: new Int32Array(buffer, o.heapPos, n),
    heap: new Int32Array(buffer, o.heap, n),
    loc: new Uint32Array(buffer, o.loc, n),
    valueSizes: new Uint32Array(buffer, o.valueSizes, n),
    versions: new Float64Array(buffer, o.versions, n),
    expiresAt: new Float64Array(buffer, o.expiresAt, n),
    keySizes: new Uint16Array(buffer, o.keySizes, n),
    contentTypes: new Uint8Array(buffer, o.contentTypes, n),
    arena: new Uint8Array(buffer, o.arena, layout.arenaSize),
    arenaView: new DataView(buffer, o.arena, layout.arenaSize),
    walRing: new Uint8Array(buffer, o.walRing, layout.walRingSize),
    accessRing: new Int32Array(buffer, o.accessRing, 2 * accessRingCapacity),
  }
}

/**
 * Keys and values move between the arena and private memory as 32-bit words: little-endian
 * words through a DataView on the arena side, the host's order in Int32Arrays on the other
 * (key-codec.ts, value-copy.ts). The two agree only on a little-endian host, which every
 * platform Node ships for but s390x is; refusing to start there beats storing reversed bytes.
 */
function assertLittleEndian(): void {
  assert.equal(
    new Uint8Array(Uint16Array.of(1).buffer)[0],
    1,
    'slabkv needs a little-endian host (its store moves key and value bytes as 32-bit words)',
  )
}

/**
 * Allocates the buffer and writes the header. The structures fill in their own initial state
 * (store.ts calls each module's reset), so this module stays the owner of where, not of what.
 */
export function createViews(limits: StoreLimits): Views {
  assertLittleEndian()
  const layout = computeLayout(limits)
  const views = viewsOf(new SharedArrayBuffer(layout.byteLength), layout)
  const h = views.headerI32
  h[I32.magic] = layoutMagic
  h[I32.version] = layoutVersion
  h[I32.entryCountMax] = limits.entryCountMax
  h[I32.keySizeMax] = limits.keySizeMax
  h[I32.valueSizeMax] = limits.valueSizeMax
  h[I32.indexSlotCount] = layout.indexSlotCount
  h[I32.headroomPerMille] = limits.headroomPerMille
  h[I32.walRingSize] = layout.walRingSize
  views.headerF64[F64.memorySizeMax] = limits.memorySizeMax
  views.headerF64[F64.arenaSize] = layout.arenaSize
  return views
}

/** Rebuilds the views of a buffer another thread created, from the limits in its header. */
export function attachViews(buffer: SharedArrayBuffer): Views {
  assertLittleEndian()
  // The headers sit at fixed offsets (computeLayout places them first), so the limits can be
  // read before the rest of the layout is known.
  const probe = new Int32Array(buffer, 8 * (headerF64Count + headerI64Count), headerI32Count)
  const f64 = new Float64Array(buffer, 0, headerF64Count)
  assert.equal(probe[I32.magic], layoutMagic, 'not a slabkv buffer')
  assert.equal(probe[I32.version], layoutVersion, 'unsupported slabkv buffer version')
  const layout = computeLayout({
    entryCountMax: probe[I32.entryCountMax]!,
    memorySizeMax: f64[F64.memorySizeMax]!,
    keySizeMax: probe[I32.keySizeMax]!,
    valueSizeMax: probe[I32.valueSizeMax]!,
    headroomPerMille: probe[I32.headroomPerMille]!,
    walRingSize: probe[I32.walRingSize]!,
  })
  assert.equal(layout.byteLength, buffer.byteLength, 'buffer size does not match its header')
  return viewsOf(buffer, layout)
}
