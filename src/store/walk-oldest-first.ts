import { decodeKey } from './key-codec.js'
import { I32, recordHeaderSize, type Slot, slotNone, type Views } from './layout.js'
import type { Entry } from './types.js'

// The resident entries from least to most recently used, a bounded number per call: the order
// a snapshot writes them in, so that loading it rebuilds the same LRU list (src/wal/snapshot.ts).

/** Called per entry; `value` is a view into the arena, valid during the call only. */
export type VisitEntry = (key: string, value: Uint8Array, entry: Omit<Entry, 'value'>) => void

/**
 * Visits up to `countMax` entries from least to most recently used, starting at `cursor` (the
 * next slot to visit; undefined to start at the tail), and returns the cursor to continue with,
 * or slotNone at the end. Only for a store nobody changes meanwhile (a copy): the cursor is a
 * slot, which a change could free or give to another key between calls.
 */
export function walkOldestFirst(
  v: Views,
  cursor: Slot | undefined,
  countMax: number,
  visit: VisitEntry,
): Slot {
  let slot = cursor ?? (v.headerI32[I32.lruTail]! as Slot)
  for (let count = 0; slot !== slotNone && count < countMax; count++) {
    const keyOffset = v.loc[slot]! + recordHeaderSize
    const keySize = v.keySizes[slot]!
    visit(
      decodeKey(v.arena, keyOffset, keySize),
      v.arena.subarray(keyOffset + keySize, keyOffset + keySize + v.valueSizes[slot]!),
      {
        contentType: v.contentTypes[slot]!,
        version: v.versions[slot]!,
        expiresAt: v.expiresAt[slot]!,
      },
    )
    slot = v.prev[slot]! as Slot
  }
  return slot
}
