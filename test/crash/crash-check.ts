import type { StoreLimits } from '../../src/store/layout.js'
import { Store } from '../../src/store/store.js'
import type { MutationRecord, SetRecord } from '../../src/store/types.js'
import { recover, replayInto } from '../../src/wal/recovery.js'
import type { Storage } from '../../src/wal/storage.js'

// The check the crash enumerations share: what recovery rebuilt must be exactly the state after
// some prefix 1..R of the mutations the workload made, with R at least the highest sequence
// number acknowledged before the crash. Every acknowledged write is then present or superseded
// by a later one, and nothing that was never written appears.

export interface LiveEntry {
  value: Uint8Array
  version: number
  contentType: number
}

/** The live entries after mutations 1..sequence, as the store's peek would show them at nowMs. */
export function modelAt(history: readonly MutationRecord[], sequence: number, nowMs: number) {
  const entries = new Map<string, SetRecord>()
  for (const record of history) {
    if (record.sequence > sequence) break
    if (record.op === 'set') entries.set(record.key, record)
    else if (record.op === 'clear') entries.clear()
    else if (record.op !== 'commit') entries.delete(record.key)
  }
  for (const [key, record] of entries) {
    if (record.expiresAt !== 0 && record.expiresAt <= nowMs) entries.delete(key)
  }
  return entries
}

/**
 * Boot recovery of `dir` into a fresh store of `limits`, and every entry it holds at nowMs.
 * Throws what recovery throws (CorruptLogError when it refuses to start).
 */
export function recoverLive(storage: Storage, dir: string, limits: StoreLimits, nowMs: number) {
  const store = Store.create({ limits, clock: () => nowMs })
  const report = recover(storage, dir, replayInto(store))
  const live = new Map<string, LiveEntry>()
  for (let cursor: number | null = 0; cursor !== null; ) {
    const page = store.scan('', cursor, 1000)
    for (const item of page.items) live.set(item.key, store.peek(item.key)!)
    cursor = page.cursor
  }
  return { live, sequence: report.sequence }
}

/**
 * What is wrong with a recovery that reached `sequence` and holds `live`, or undefined: a prefix
 * shorter than what was acknowledged, longer than what was written, or another state than the
 * model's after it.
 */
export function judgeRecovery(
  history: readonly MutationRecord[],
  acknowledged: number,
  nowMs: number,
  recovered: { live: Map<string, LiveEntry>; sequence: number },
): string | undefined {
  const { live, sequence } = recovered
  const lastSequence = history.at(-1)?.sequence ?? 0
  if (sequence < acknowledged) return `recovered up to ${sequence}, acknowledged ${acknowledged}`
  if (sequence > lastSequence) return `recovered ${sequence}, but only ${lastSequence} were written`
  // A batch goes whole or not at all: recovery never stops between its records and its commit.
  if (history.find((record) => record.sequence === sequence)?.grouped) {
    return `recovered up to ${sequence}, inside a batch (before its commit)`
  }
  const model = modelAt(history, sequence, nowMs)
  const wrong = [...new Set([...model.keys(), ...live.keys()])].filter((key) => {
    const want = model.get(key)
    const got = live.get(key)
    if (want === undefined || got === undefined) return want !== got
    return (
      want.sequence !== got.version ||
      want.contentType !== got.contentType ||
      Buffer.compare(want.value, got.value) !== 0
    )
  })
  return wrong.length > 0 ? `keys differ from the model: ${wrong}` : undefined
}
