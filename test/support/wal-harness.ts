import type { StoreLimits } from '../../src/store/layout.js'
import { Store } from '../../src/store/store.js'
import type { Entry, MutationRecord } from '../../src/store/types.js'
import { classify } from '../../src/wal/files.js'
import { recover } from '../../src/wal/recovery.js'
import { WalRing } from '../../src/wal/ring.js'
import { readSnapshot } from '../../src/wal/snapshot.js'
import type { Storage } from '../../src/wal/storage.js'
import { WalWriter, type WalWriterOptions } from '../../src/wal/writer.js'
import { SimulatedDisk } from './simulated-disk.js'

// A whole write path in one thread, for driving the WAL writer a step at a time: a store whose
// mutations go through the ring, the writer on a simulated disk, a clock the test moves, and a
// count of every storage call.

export const walDir = '/data'

export const walLimits: StoreLimits = {
  entryCountMax: 64,
  memorySizeMax: 64 * 1024,
  keySizeMax: 32,
  valueSizeMax: 512,
  headroomPerMille: 0,
  walRingSize: 64 * 1024,
}

export type Calls = Record<keyof Storage, number>

/** Every operation of the Storage interface, so wrappers can delegate each of them. */
export const storageOperations = [
  'mkdirp',
  'list',
  'exists',
  'size',
  'read',
  'openAppend',
  'append',
  'openRewrite',
  'writeAt',
  'fdatasync',
  'close',
  'truncate',
  'rename',
  'unlink',
  'syncDir',
] as const satisfies readonly (keyof Storage)[]

/** `disk`'s own operations, each passed through `wrap` (which sees the operation's name). */
export function delegatingStorage(
  disk: Storage,
  wrap: (
    op: keyof Storage,
    call: (...args: unknown[]) => unknown,
  ) => (...args: unknown[]) => unknown = (_op, call) => call,
): Storage {
  return Object.fromEntries(
    storageOperations.map((op) => [
      op,
      wrap(op, (...args: unknown[]) =>
        (disk[op] as (...a: unknown[]) => unknown).apply(disk, args),
      ),
    ]),
  ) as unknown as Storage
}

/** A storage that delegates to `disk` and counts each call by operation. */
export function countingStorage(disk: SimulatedDisk): { storage: Storage; calls: Calls } {
  const calls = Object.fromEntries(storageOperations.map((op) => [op, 0])) as Calls
  const storage = delegatingStorage(disk, (op, call) => (...args) => {
    calls[op]++
    return call(...args)
  })
  return { storage, calls }
}

export interface Wal {
  /** Writes go here: its onMutation appends to the ring. */
  store: Store
  /** Every mutation the store reported, in order (values are the callers' bytes, not copies). */
  records: MutationRecord[]
  /** The writer's own handle on the same buffer (in the server, another thread's). */
  base: Store
  writer: WalWriter
  disk: SimulatedDisk
  storage: Storage
  calls: Calls
  clock: { now: number }
  /** The live stats the writer publishes. */
  durable(): number
  walState(): number
}

export function openWal(
  options: Partial<Omit<WalWriterOptions, 'clock'>> = {},
  limits: StoreLimits = walLimits,
  /** Stands between the writer and the (counting) disk, e.g. to refuse one call. */
  wrapStorage: (storage: Storage) => Storage = (storage) => storage,
): Wal {
  const clock = { now: 1_750_000_000_000 }
  const now = () => clock.now
  // The writer's own handle, without onMutation: in the server it is another thread's.
  const base = Store.create({ limits, clock: now, hashSeed: 1 })
  const ring = new WalRing(base.views)
  const records: MutationRecord[] = []
  const store = Store.attach(base.buffer, {
    clock: now,
    onMutation: (record) => {
      records.push(record)
      ring.append(record)
    },
    logRoom: ring,
  })
  const disk = new SimulatedDisk()
  disk.mkdirp(walDir)
  const { storage, calls } = countingStorage(disk)
  const writer = new WalWriter(base, ring, {
    storage: wrapStorage(storage),
    dir: walDir,
    fsync: 'always',
    segmentSizeMax: 1024 * 1024,
    snapshotLogSizeMin: 1024 * 1024,
    noSpaceRetryMs: 1000,
    clock: now,
    ...options,
  })
  writer.open()
  return {
    store,
    records,
    base,
    writer,
    disk,
    storage,
    calls,
    clock,
    durable: () => store.stats().durableSequence,
    walState: () => store.stats().walState,
  }
}

/** A fresh store holding what recovery makes of `storage`'s data directory. */
export function recoverStore(
  storage: Storage,
  now = () => 1_750_000_000_000,
  limits: StoreLimits = walLimits,
) {
  const store = Store.create({ limits, clock: now, hashSeed: 2 })
  const report = recover(storage, walDir, (record, after) => store.replay(record, after))
  return { store, report }
}

/** One entry with everything a log must keep of it. */
function entryRow(key: string, value: Uint8Array, entry: Omit<Entry, 'value'>): string {
  const bytes = Buffer.from(value).toString('hex')
  return `${key} ${bytes} v${entry.version} t${entry.contentType} x${entry.expiresAt}`
}

/** Every entry, least recently used first, with everything a log must keep of it. */
export function contents(store: Store): string[] {
  const rows: string[] = []
  store.walkOldestFirst(undefined, Number.POSITIVE_INFINITY, (key, value, entry) => {
    rows.push(entryRow(key, value, entry))
  })
  return rows
}

/** A snapshot file's entries, listed as contents() lists a store's, and what reading it said. */
export function snapshotContents(bytes: Uint8Array) {
  const rows: string[] = []
  const read = readSnapshot(bytes, (record) => {
    const { sequence: version, contentType, expiresAt } = record
    rows.push(entryRow(record.key, record.value, { version, contentType, expiresAt }))
    return undefined
  })
  return { rows, read }
}

export function dataFiles(disk: SimulatedDisk) {
  return classify(disk.list(walDir))
}

/** Random sets (some with a TTL), deletes, and sometimes reads, over more keys than fit. */
export function churn(wal: Wal, random: () => number, count: number, reads = false): void {
  for (let i = 0; i < count; i++) {
    const key = `key-${Math.floor(random() * 100)}`
    const roll = random()
    if (roll < 0.15) wal.store.delete(key)
    else if (reads && roll < 0.3) wal.store.get(key)
    else {
      const value = Uint8Array.from({ length: Math.floor(random() * 300) }, () => random() * 256)
      const ttlMs = random() < 0.3 ? 3_600_000 + Math.floor(random() * 1000) : undefined
      wal.store.set(key, value, { contentType: Math.floor(random() * 20), ttlMs })
    }
  }
}
