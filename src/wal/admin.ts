import { join } from 'node:path'
import { classify } from './files.js'
import { cutLog, inspect } from './recovery.js'
import type { Storage } from './storage.js'

// `slabkv wal check DIR` and `slabkv wal repair DIR`: what an operator runs when the server
// refuses to start over a corrupt log. Check changes nothing; repair cuts the log at the damage,
// keeping every cut byte in .broken files, so that the server can start with what precedes it.

/** Exit codes: what a script can rely on. */
export const walExitClean = 0
/** A torn tail: harmless, the next start cuts it off by itself. */
export const walExitTorn = 1
/** Corruption: the server refuses to start until it is repaired. Also `slabkv serve`'s code. */
export const walExitCorrupt = 4

export function walCheck(storage: Storage, dir: string, print: (line: string) => void): number {
  const found = inspect(storage, dir)
  print(`data directory: ${dir}`)
  print(
    found.snapshot === undefined
      ? 'snapshot: none'
      : `snapshot: ${found.snapshot.file} (sequence ${found.snapshot.sequence}, ${found.snapshot.entryCount} entries)`,
  )
  print(
    `segments read: ${found.segments.map((s) => `${s.file} (${s.size} bytes)`).join(', ') || 'none'}`,
  )
  print(`records after the snapshot: ${found.recordCount}; last sequence: ${found.sequence}`)
  const damage = found.damage
  if (damage === undefined) {
    print('state: clean')
    return walExitClean
  }
  if (damage.kind === 'torn') {
    print(
      `state: torn tail in ${damage.file} at offset ${damage.offset} (${damage.size} bytes): ` +
        'a crash cut a write short; the next start cuts it off (nothing acknowledged is in it)',
    )
    return walExitTorn
  }
  print(
    `state: CORRUPT in ${damage.file} at offset ${damage.offset} (sequence ${damage.sequence}): ${damage.why}. ` +
      'Valid records follow the damage; `slabkv wal repair` cuts the log there and keeps the rest in .broken files',
  )
  return walExitCorrupt
}

export function walRepair(storage: Storage, dir: string, print: (line: string) => void): number {
  const found = inspect(storage, dir)
  const damage = found.damage
  if (damage === undefined) {
    print('nothing to repair: the log is clean')
    return walExitClean
  }
  const files = classify(storage.list(dir))
  if (files.snapshots.some((s) => s.name === damage.file)) {
    print(
      `${damage.file} is damaged at offset ${damage.offset}: a snapshot cannot be cut; ` +
        'restore the data directory from a backup, or move it aside to start empty',
    )
    return walExitCorrupt
  }
  const damaged = files.segments.find((s) => s.name === damage.file)
  const later = files.segments
    .filter((s) => damaged !== undefined && s.firstSequence > damaged.firstSequence)
    .map((s) => s.name)
  const kept = cutLog(storage, dir, damage.file, damage.offset, later)
  print(
    `cut ${damage.file} at offset ${damage.offset}; the log now ends at sequence ${found.sequence}. ` +
      `Cut bytes kept in: ${kept.map((name) => join(dir, name)).join(', ')}`,
  )
  return walExitClean
}
