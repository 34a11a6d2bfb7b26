import { join } from 'node:path'
import { exitCorrupt, exitFailed, exitOk } from '../exit-codes.js'
import type { StoreLimits } from '../store/layout.js'
import { Store } from '../store/store.js'
import { classify } from './files.js'
import { cutLog, type Inspection, inspect, replayInto } from './recovery.js'
import type { Storage } from './storage.js'

// `slabkv wal check DIR` and `slabkv wal repair DIR`: what an operator runs when the server
// refuses to start over a corrupt log. Check changes nothing; repair cuts the log at the damage,
// keeping every cut byte in .broken files, so that the server can start with what precedes it.
//
// Both replay the log into a store with the limits the server would start with (the same
// options), exactly as boot recovery does: a directory the server would refuse is never called
// clean, and the refusal names the same file, offset and sequence.

/** Exit codes (src/exit-codes.ts): clean, a torn tail (harmless: the next start cuts it), corrupt. */
export const walExitClean = exitOk
export const walExitTorn = exitFailed
export const walExitCorrupt = exitCorrupt

/** What recovery would make of the directory, replayed into a store of `limits`. */
function inspectAsRecovery(storage: Storage, dir: string, limits: StoreLimits): Inspection {
  return inspect(storage, dir, replayInto(Store.create({ limits })))
}

export function walCheck(
  storage: Storage,
  dir: string,
  print: (line: string) => void,
  limits: StoreLimits,
): number {
  const found = inspectAsRecovery(storage, dir, limits)
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
  if (damage.kind === 'refused') {
    print(
      `state: REFUSED in ${damage.file} at offset ${damage.offset} (sequence ${damage.sequence}): ${damage.why}. ` +
        'Nothing is damaged: a server started with these limits refuses this log; start (and check) with the limits it was written with',
    )
    return walExitCorrupt
  }
  print(
    `state: CORRUPT in ${damage.file} at offset ${damage.offset} (sequence ${damage.sequence}): ${damage.why}. ` +
      'Valid records follow the damage; `slabkv wal repair` cuts the log there and keeps the rest in .broken files',
  )
  return walExitCorrupt
}

export function walRepair(
  storage: Storage,
  dir: string,
  print: (line: string) => void,
  limits: StoreLimits,
): number {
  const found = inspectAsRecovery(storage, dir, limits)
  const damage = found.damage
  if (damage === undefined) {
    print('nothing to repair: the log is clean')
    return walExitClean
  }
  if (damage.kind === 'refused') {
    print(
      `nothing to repair: ${damage.file} is whole, but at offset ${damage.offset} (sequence ${damage.sequence}) ${damage.why}. ` +
        'Start with the limits the log was written with; cutting it would lose acknowledged writes',
    )
    return walExitCorrupt
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
  const { kept } = cutLog(storage, dir, damage.file, damage.offset, later)
  print(
    `cut ${damage.file} at offset ${damage.offset}; the log now ends at sequence ${found.sequence}. ` +
      `Cut bytes kept in: ${kept.map((name) => join(dir, name)).join(', ')}`,
  )
  return walExitClean
}
