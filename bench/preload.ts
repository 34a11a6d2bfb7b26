import assert from 'node:assert/strict'
import type { Dialect } from './dialects.js'

// The keys every load benchmark preloads and then reads, and how it preloads them. Key n is
// "key:" and 12 digits (16 bytes, as in bench:store); its value is "value:", the same 12 digits
// and ":", padded with "x" to the value size, so a check knows a preloaded value by its prefix
// and its length. The Lua prologue in bench/wrk.ts spells both the same way.

export const digits = (n: number) => String(n).padStart(12, '0')
export const key = (n: number) => `key:${digits(n)}`
export function valueText(n: number, size: number): string {
  return `value:${digits(n)}:`.padEnd(size, 'x')
}

export interface Keyspace {
  keyCount: number
  /** Bytes per value. */
  valueSize: number
}

/** Writes every key once, in batches of at most 1000 keys and 1 MiB of values. */
export async function preload(url: string, dialect: Dialect, keyspace: Keyspace): Promise<void> {
  const { keyCount, valueSize } = keyspace
  // 1000 is slabkv's default --max-batch-ops; 1 MiB is well under its default body limit.
  const chunkSize = Math.max(1, Math.min(1000, Math.floor(2 ** 20 / valueSize)))
  for (let first = 0; first < keyCount; first += chunkSize) {
    const entries: [string, string][] = []
    for (let n = first; n < Math.min(keyCount, first + chunkSize); n++) {
      entries.push([key(n), valueText(n, valueSize)])
    }
    await dialect.setMany(url, entries)
  }
}

/** Reads the first, an early and the last preloaded key back, for the exact bytes. */
export async function checkPreloaded(
  url: string,
  dialect: Dialect,
  keyspace: Keyspace,
): Promise<void> {
  const { keyCount, valueSize } = keyspace
  for (const n of [0, 7, keyCount - 1]) {
    const got = await dialect.get(url, key(n))
    assert.equal(got.status, 200, `GET ${key(n)}: ${got.status}`)
    assert.equal(got.body, valueText(n, valueSize), `GET ${key(n)} answered other bytes`)
  }
}
