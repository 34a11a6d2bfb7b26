import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeKey } from '../../src/store/key-codec.js'
import type { StoreLimits } from '../../src/store/layout.js'
import type { MutationOp } from '../../src/store/types.js'
import { testSeed } from '../support/random.js'
import { openWal, recoverStore, type Wal } from '../support/wal-harness.js'

// Keys from all of Unicode go through the log and come back byte for byte: set, then delete,
// eviction, expiry and clear records, segment rotations and a snapshot, then recovery into a
// fresh store. Every text that crosses bytes ↔ string is in this path: the key a set logs, the
// key a removal decodes from the arena, the key a snapshot decodes, the key recovery decodes.
// Keys that begin with U+FEFF matter most: a TextDecoder without ignoreBOM drops it, and the
// record then replays onto another key ("\uFEFFabc" onto "abc").

const runCount = Number(process.env.PROPERTY_RUNS ?? 300)

const limits: StoreLimits = {
  entryCountMax: 6,
  memorySizeMax: 500,
  keySizeMax: 48,
  valueSizeMax: 120,
  headroomPerMille: 0,
  walRingSize: 64 * 1024,
}

/** Characters text handling gets wrong: BOM, noncharacters, NUL and controls, combining marks, astral. */
const awkward = [
  '\uFEFF',
  '\uFFFE',
  '\uFFFF',
  '\u0000',
  '\u0001',
  '\u001F',
  '\u007F',
  '\u0085',
  '\u200B',
  '\u0301',
  '\u0308',
  'e\u0301',
  '\u{1F600}',
  '\u{10FFFF}',
  '\u{E0001}',
  '/',
  '%',
  'a',
]

const keyArb = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.oneof(fc.constantFrom(...awkward), fc.string({ unit: 'binary', maxLength: 4 })), {
      maxLength: 6,
    }),
  )
  .map(([bomFirst, parts]) => (bomFirst ? '\uFEFF' : '') + parts.join(''))
  .filter((key) => key.length > 0 && encodeKey(key).length <= limits.keySizeMax)

type Step =
  | { kind: 'set'; key: number; size: number; ttlMs: number | undefined }
  | { kind: 'delete' | 'get'; key: number }
  | { kind: 'tick'; ms: number }
  | { kind: 'sweep' }
  | { kind: 'clear' }

const stepArb = (keyCount: number): fc.Arbitrary<Step> =>
  fc.oneof(
    {
      weight: 16,
      arbitrary: fc.record({
        kind: fc.constant('set' as const),
        key: fc.nat(keyCount - 1),
        size: fc.nat(limits.valueSizeMax),
        ttlMs: fc.option(fc.integer({ min: 1, max: 5000 }), { nil: undefined }),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constantFrom('delete' as const, 'get' as const),
        key: fc.nat(keyCount - 1),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('tick' as const),
        ms: fc.integer({ min: 1, max: 4000 }),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'sweep' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
  )

const scenarioArb = fc.uniqueArray(keyArb, { minLength: 1, maxLength: 10 }).chain((keys) =>
  fc.record({
    keys: fc.constant(keys),
    steps: fc.array(stepArb(keys.length), { minLength: 10, maxLength: 80 }),
  }),
)

/**
 * Every entry with its key as UTF-8 bytes (hex), so a key that changed shows whatever changed;
 * sorted, since reads are not logged and recovery rebuilds recency from the writes alone.
 */
function keyBytesAndValues(store: Wal['store']): string[] {
  const rows: string[] = []
  store.walkOldestFirst(undefined, Number.POSITIVE_INFINITY, (key, value, entry) => {
    const keyHex = Buffer.from(encodeKey(key)).toString('hex')
    const valueHex = Buffer.from(value).toString('hex')
    rows.push(`${keyHex} ${valueHex} v${entry.version} x${entry.expiresAt}`)
  })
  return rows.sort()
}

describe('keys from all of Unicode through the log', () => {
  it('recover with the same key bytes and values, through every record type and a snapshot', () => {
    const seed = testSeed('wal keys')
    const seen = new Map<MutationOp, number>()
    let snapshotCount = 0
    fc.assert(
      fc.property(scenarioArb, ({ keys, steps }) => {
        const wal = openWal({ segmentSizeMax: 4096, snapshotLogSizeMin: 2048 }, limits)
        for (const [i, step] of steps.entries()) {
          if (step.kind === 'set') {
            const value = Uint8Array.from({ length: step.size }, (_, j) => (i * 31 + j) & 0xff)
            wal.store.set(keys[step.key]!, value, { ttlMs: step.ttlMs })
          } else if (step.kind === 'delete') wal.store.delete(keys[step.key]!)
          else if (step.kind === 'get') wal.store.get(keys[step.key]!)
          else if (step.kind === 'tick') wal.clock.now += step.ms
          else if (step.kind === 'sweep') wal.store.sweep(100)
          else wal.store.clear()
          wal.writer.step()
        }
        wal.writer.close()
        snapshotCount += wal.store.stats().walSnapshots
        for (const record of wal.records) seen.set(record.op, (seen.get(record.op) ?? 0) + 1)
        const { store } = recoverStore(wal.storage, () => wal.clock.now, limits)
        expect(keyBytesAndValues(store)).toEqual(keyBytesAndValues(wal.store))
      }),
      { seed, numRuns: runCount },
    )
    console.log('wal keys: records logged by kind', Object.fromEntries(seen), { snapshotCount })
    expect(snapshotCount).toBeGreaterThan(0)
    // The scenarios must reach every record type, or the property proves less than it says.
    for (const op of ['set', 'delete', 'evict', 'expire', 'clear'] as const) {
      expect(seen.get(op) ?? 0, op).toBeGreaterThan(0)
    }
  })

  it('keeps "\\uFEFFabc" and "abc" apart across a restart, through removals and a snapshot', () => {
    for (const snapshotLogSizeMin of [1024 * 1024, 1]) {
      const wal = openWal({ snapshotLogSizeMin }, limits)
      wal.store.set('abc', new TextEncoder().encode('REAL'))
      wal.store.set('\uFEFFabc', new TextEncoder().encode('EVIL'))
      wal.store.set('\uFEFF', new TextEncoder().encode('bom alone'))
      wal.store.set('\uFEFFgone', new Uint8Array(1))
      wal.store.delete('\uFEFFgone')
      wal.writer.step()
      wal.writer.step()
      wal.writer.close()
      const { store } = recoverStore(wal.storage, () => wal.clock.now, limits)
      expect(new TextDecoder().decode(store.get('abc')?.value)).toBe('REAL')
      expect(new TextDecoder().decode(store.get('\uFEFFabc')?.value)).toBe('EVIL')
      expect(store.get('\uFEFF')).toBeDefined()
      expect(store.get('\uFEFFgone')).toBeUndefined()
      expect(keyBytesAndValues(store)).toEqual(keyBytesAndValues(wal.store))
    }
  })
})
