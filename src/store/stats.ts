import { F64, I32, I64, type Views } from './layout.js'
import type { StoreStats } from './types.js'

// The store's counters and limits as one object, read from the buffer's header: the figures
// /v1/stats and /metrics report. Every thread's operations count here, not only this one's.

/**
 * The counters in the header and the limits in the layout. The caller holds the store lock
 * (Store.stats), so no operation is half counted. The two words the WAL writer publishes to
 * threads that wait on them (durableSequence, walState) are read with Atomics, as written.
 */
export function readStats(v: Views): StoreStats {
  const i32 = v.headerI32
  const f64 = v.headerF64
  const limits = v.layout.limits
  return {
    entryCount: i32[I32.entryCount]!,
    entryCountMax: limits.entryCountMax,
    bytesUsed: f64[F64.bytesUsed]!,
    memorySizeMax: limits.memorySizeMax,
    hits: f64[F64.hits]!,
    misses: f64[F64.misses]!,
    sets: f64[F64.sets]!,
    deletes: f64[F64.deletes]!,
    evictions: f64[F64.evictions]!,
    expirations: f64[F64.expirations]!,
    arenaBytesMoved: f64[F64.arenaBytesMoved]!,
    sequence: f64[F64.sequence]!,
    durableSequence: Number(Atomics.load(v.headerI64, I64.durableSequence)),
    walState: Atomics.load(i32, I32.walState),
    walGroupCommits: f64[F64.walGroupCommits]!,
    walRecordsWritten: f64[F64.walRecordsWritten]!,
    walBytesWritten: f64[F64.walBytesWritten]!,
    walSnapshots: f64[F64.walSnapshots]!,
  }
}
