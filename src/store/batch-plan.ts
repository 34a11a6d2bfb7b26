import type { Slot, StoreLimits } from './layout.js'
import type { BatchChange, LogRoom, MutationOp } from './types.js'

// A batch's plan (StoreTransaction.prepare): what its changes need of the store and of the log
// at most, worked out on sizes alone before any of them is applied. The store then makes that
// room once, up front, and the batch applies whole: none of its ops evicts or waits for the log.

/** A key the batch writes, as the store holds it before the batch. */
export interface BatchKey {
  keySize: number
  /** The entry's bytes, key and value; -1 when the key is absent. */
  size: number
  /** slotNone when the key is absent. */
  slot: Slot
}

export interface BatchPlan {
  /** Bytes and entries the batch's own keys hold now. */
  size: number
  count: number
  /** The most bytes and entries they hold at any point of the batch. */
  sizePeak: number
  countPeak: number
  /** Log bytes of the batch's records, its commit record included, and the largest record. */
  recordSize: number
  recordSizeMax: number
}

/**
 * Plays the changes in order on sizes alone, for the most bytes and entries the batch's own keys
 * hold at any point, and the log bytes of their records. `written` holds every key a set or
 * delete of the batch names; a get changes nothing and takes no record. A key the batch only
 * reads is not its own: what its later ops evict, a later read may miss, as when the same ops
 * run one by one. Refuses with batch_too_large when the batch's own entries could never fit the
 * limits, or its records the log.
 */
export function planBatch(
  changes: readonly BatchChange[],
  written: ReadonlyMap<string, BatchKey>,
  limits: StoreLimits,
  logRoom: LogRoom | undefined,
): BatchPlan | 'batch_too_large' {
  const recordSizeOf = (op: MutationOp, keySize: number, valueSize: number) =>
    logRoom === undefined ? 0 : logRoom.recordSize(op, keySize, valueSize)
  const sizes = new Map<string, number>()
  let size = 0
  let count = 0
  for (const [key, entry] of written) {
    sizes.set(key, entry.size)
    if (entry.size < 0) continue
    size += entry.size
    count++
  }
  const sizeNow = size
  const countNow = count
  let sizePeak = size
  let countPeak = count
  let recordSize = 0
  let recordSizeMax = 0
  for (const change of changes) {
    if (change.op === 'get') continue
    const keySize = written.get(change.key)!.keySize
    const sizeBefore = sizes.get(change.key)!
    const present = sizeBefore >= 0
    let record = 0
    if (change.op === 'set') {
      const sizeAfter = keySize + change.valueSize
      size += sizeAfter - (present ? sizeBefore : 0)
      if (!present) count++
      sizes.set(change.key, sizeAfter)
      record = recordSizeOf('set', keySize, change.valueSize)
    } else if (present) {
      size -= sizeBefore
      count--
      sizes.set(change.key, -1)
      record = recordSizeOf('delete', keySize, 0)
    }
    sizePeak = Math.max(sizePeak, size)
    countPeak = Math.max(countPeak, count)
    recordSize += record
    recordSizeMax = Math.max(recordSizeMax, record)
  }
  if (sizePeak > limits.memorySizeMax || countPeak > limits.entryCountMax) return 'batch_too_large'
  // The commit record that closes the batch's group of records.
  recordSize += recordSizeOf('commit', 0, 0)
  // Beside its reserved records, the log must take at least one eviction's (made one at a
  // time across retries if need be), or the batch could never get room: that is what the room
  // check of an eviction asks for, with the larger record's worth for a wrap.
  const evictionSizeMax = recordSizeOf('evict', limits.keySizeMax, 0)
  const roomNeeded = recordSize + evictionSizeMax + Math.max(recordSizeMax, evictionSizeMax)
  if (logRoom !== undefined && roomNeeded > logRoom.capacity) return 'batch_too_large'
  return { size: sizeNow, count: countNow, sizePeak, countPeak, recordSize, recordSizeMax }
}
