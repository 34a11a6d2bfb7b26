import type { StoreLimits } from '../../src/store/layout.js'
import type { MutationRecord } from '../../src/store/types.js'
import { prng } from './random.js'

// A reproducible stream of log records of random kinds and sizes, up to the largest the limits
// allow, for the WAL ring tests: the producer thread and the test that checks what comes out
// build the same stream from the same seed.

export function ringRecords(
  seed: number,
  count: number,
  limits: Pick<StoreLimits, 'keySizeMax' | 'valueSizeMax'>,
): MutationRecord[] {
  const random = prng(seed)
  const below = (n: number) => Math.floor(random() * n)
  const records: MutationRecord[] = []
  for (let sequence = 1; sequence <= count; sequence++) {
    const kind = below(10)
    const key = 'k'.repeat(1 + below(limits.keySizeMax)).replace(/^k/, String(sequence % 10))
    if (kind === 0) {
      records.push({ op: 'clear', sequence, key: '' })
    } else if (kind < 3) {
      records.push({ op: (['delete', 'evict', 'expire'] as const)[below(3)]!, sequence, key })
    } else {
      const value = Uint8Array.from({ length: below(limits.valueSizeMax + 1) }, () => below(256))
      records.push({
        op: 'set',
        sequence,
        key,
        value,
        contentType: below(256),
        expiresAt: below(2) === 0 ? 0 : 1_700_000_000_000 + below(1e9),
      })
    }
  }
  return records
}
