import assert from 'node:assert/strict'
import { Arena } from './arena.js'
import { attachViews, I32, type Views } from './layout.js'

// A private copy of a store's buffer, as a store no other thread knows: what a snapshot
// serializes while writes go on (src/wal/writer.ts takes it, src/wal/snapshot.ts writes it out).

/**
 * Copies into `target` (a buffer as large as `from`'s) every byte a store over it can read, and
 * returns the views over the copy. The caller holds `from`'s lock, so the copy is consistent;
 * the caller allocates `target` and touches its pages beforehand, so the lock is held for a
 * memory copy and no page faults.
 *
 * Bytes no read reaches are not copied, so the target's own bytes there stay as they were:
 * everything before the arena (headers, entry table, hash index) is copied, and of the arena
 * only its log. The arena's free space is never read, and the WAL ring, which lies after the
 * arena, is the log's business, not a snapshot's. Writes wait for this copy, so it is kept to
 * the bytes that matter: half the buffer when the arena is half full.
 */
export function copyStore(from: Views, target: SharedArrayBuffer): Views {
  assert.equal(target.byteLength, from.buffer.byteLength, 'the copy target has the wrong size')
  const arenaStart = from.arena.byteOffset
  const to = new Uint8Array(target)
  const bytes = new Uint8Array(from.buffer)
  to.set(bytes.subarray(0, arenaStart))
  const arena = new Arena(from.headerF64, from.arena, from.loc, from.keySizes, from.valueSizes)
  for (const [start, end] of arena.logRanges()) {
    to.set(bytes.subarray(arenaStart + start, arenaStart + end), arenaStart + start)
  }
  const copy = attachViews(target)
  copy.headerI32[I32.lock] = 0 // Copied while held; nobody holds the copy's lock.
  return copy
}
