import { bytesEqual, decodeKey } from './key-codec.js'
import { I32, recordHeaderSize, type Slot, type Views } from './layout.js'
import type { ScanItem, ScanPage } from './types.js'

// Listing keys by prefix, a page at a time, in slot order: what GET /v1/keys pages through.

/** How many slots one scan call examines at most, so a sparse table cannot hold the lock long. */
export const scanSlotsPerCallMax = 4096

/**
 * One page of the resident keys that start with `prefix` (UTF-8 bytes), in slot order, from slot
 * `cursor` on. The caller holds the store lock. `isExpired` says whether a slot's entry has
 * expired, which makes it absent here as to every read (and notes what a read that misses it
 * waits for: Store's missSequence).
 *
 * An entry resident for the whole scan keeps its slot, so it is returned exactly once; entries
 * added or removed meanwhile may or may not appear. Slots past the high-water mark were never
 * used and are not visited: a few keys in a large table are one page whose cursor is null.
 *
 * A page that fills looks on for the next matching entry, so that a scan never ends in an empty
 * page: the cursor is that entry's slot (the next call starts with it), or null when none
 * follows. `limit` 0 only looks: no items, the cursor at the next match. Each call examines at
 * most scanSlotsPerCallMax slots, so a sparse table cannot hold the lock long; a call that stops
 * there says so (boundReached) and may hold fewer than `limit` items, or none.
 */
export function scanPage(
  v: Views,
  prefix: Uint8Array,
  cursor: number,
  limit: number,
  isExpired: (slot: Slot) => boolean,
): ScanPage {
  const items: ScanItem[] = []
  const slotEnd = v.headerI32[I32.slotHighWater]!
  const end = Math.min(slotEnd, cursor + scanSlotsPerCallMax)
  let slot = cursor
  for (; slot < end; slot++) {
    const keySize = v.keySizes[slot]!
    if (keySize === 0) continue // A free slot.
    if (keySize < prefix.length) continue
    if (isExpired(slot as Slot)) continue
    const keyOffset = v.loc[slot]! + recordHeaderSize
    if (!bytesEqual(prefix, v.arena, keyOffset, prefix.length)) continue
    if (items.length === limit) break // The next page starts here.
    items.push({
      key: decodeKey(v.arena, keyOffset, keySize),
      valueSize: v.valueSizes[slot]!,
      contentType: v.contentTypes[slot]!,
      version: v.versions[slot]!,
      expiresAt: v.expiresAt[slot]!,
    })
  }
  return {
    items,
    cursor: slot < slotEnd ? slot : null,
    boundReached: slot === end && slot < slotEnd,
  }
}
