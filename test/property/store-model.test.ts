import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeKey, hashKey } from '../../src/store/key-codec.js'
import { F64, type StoreLimits } from '../../src/store/layout.js'
import { Store } from '../../src/store/store.js'
import type { Entry, MutationRecord, SetOptions } from '../../src/store/types.js'
import { verifyStore } from '../../src/store/verify.js'
import { testSeed } from '../support/random.js'
import { ModelLru, recordText } from './model-lru.js'

// Random sequences of operations against the real store and the Map-based model, comparing
// after every step what each returned, the mutation records each produced (op, key and what a
// set wrote, in order, with consecutive sequence numbers) and the counters; verifyStore() then
// walks every structure in the buffer. The limits are tiny, so inserts often evict, the arena
// cleaner keeps moving records and keys share home positions in the index (and some share whole
// hashes); keys mix 1- to 4-byte characters so their sizes vary; the clock jumps past TTLs and
// moves while an operation runs. Steps alternate between two handles on one buffer, and some run
// inside atomically().

/** Runs per property; raise it for a soak (PROPERTY_RUNS=20000). */
const runCount = Number(process.env.PROPERTY_RUNS ?? 1000)
const clockStart = 1_000_000

type VersionPick = 'none' | 'current' | 'stale' | 'unused'
type Expiry =
  | { kind: 'none' }
  | { kind: 'ttl'; ms: number }
  | { kind: 'at'; fromNowMs: number }
  | { kind: 'invalid'; ttlMs: number }
type Op =
  | {
      kind: 'set'
      key: number
      /** Mostly a few bytes; otherwise thousandths of valueSizeMax + 3, so some are too large. */
      valueSize: { bytes: number } | { perMille: number }
      fill: number
      expiry: Expiry
      ifAbsent: boolean
      ifVersion: VersionPick
      contentType: number | undefined
    }
  | { kind: 'get' | 'peek'; key: number }
  | { kind: 'delete'; key: number; ifVersion: VersionPick }
  | { kind: 'scan'; key: number; prefixLength: number; limit: number }
  | { kind: 'sweep'; countMax: number }
  | { kind: 'clear' }
  | { kind: 'tick'; ms: number }

interface Scenario {
  limits: StoreLimits
  hashSeed: number
  /** How far the clock moves at each read within one step, as Date.now() moves mid-operation. */
  clockDriftMs: number
  keys: string[]
  ops: Op[]
}

const limitsArb = fc
  .record({
    entryCountMax: fc.integer({ min: 1, max: 8 }),
    memorySizeMax: fc.integer({ min: 8, max: 200 }),
    keySizeMax: fc.integer({ min: 4, max: 12 }),
    valueSizeMax: fc.oneof(fc.integer({ min: 8, max: 48 }), fc.integer({ min: 0, max: 200 })),
    headroomPerMille: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 })),
  })
  .map((l) => ({ ...l, valueSizeMax: Math.min(l.valueSizeMax, l.memorySizeMax) }))

/**
 * Pairs of distinct keys of equal UTF-8 size whose full 32-bit hashes are equal under hash seed
 * 0, so the index must compare key bytes: ASCII with ASCII, ASCII with not, and neither. Found by
 * hashing a million random keys of each shape (5 UTF-8 bytes) and keeping the first equal
 * hashes; the last test below fails if a change to the hash stops them colliding.
 */
const collidingKeys = [
  ['xYY]8', 'rv91s'],
  ['cZ*"/', 'Ű>f:'],
  ['œKqu', 'ŸO6F'],
] as const
const collisionSeed = 0

// 'é' is 2 UTF-8 bytes, '€' 3, '😀' 4 (and 2 UTF-16 code units); the empty key and lone
// surrogates are refused.
const keyArb = fc.oneof(
  {
    arbitrary: fc
      .array(fc.constantFrom('a', 'a', 'b', 'b', 'é', '€', '😀'), { minLength: 1, maxLength: 3 })
      .map((chars) => chars.join('')),
    weight: 20,
  },
  { arbitrary: fc.constantFrom(...collidingKeys.flat()), weight: 6 },
  { arbitrary: fc.constantFrom('', '\ud83d', 'a\udc00'), weight: 1 },
)

const versionArb = fc.oneof(
  { arbitrary: fc.constant<VersionPick>('none'), weight: 8 },
  { arbitrary: fc.constantFrom<VersionPick>('current', 'current', 'stale', 'unused'), weight: 2 },
)
const keyIndexArb = fc.nat(11)

const expiryArb = fc.oneof(
  { arbitrary: fc.constant<Expiry>({ kind: 'none' }), weight: 6 },
  {
    arbitrary: fc
      .oneof(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 30, max: 3000 }), fc.constant(0.5))
      .map((ms): Expiry => ({ kind: 'ttl', ms })),
    weight: 4,
  },
  {
    arbitrary: fc
      .integer({ min: -20, max: 200 })
      .map((fromNowMs): Expiry => ({ kind: 'at', fromNowMs })),
    weight: 1,
  },
  {
    arbitrary: fc
      .constantFrom(0, -5, Number.NaN, Number.POSITIVE_INFINITY)
      .map((ttlMs): Expiry => ({ kind: 'invalid', ttlMs })),
    weight: 1,
  },
)

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      key: keyIndexArb,
      valueSize: fc.oneof(
        { arbitrary: fc.record({ bytes: fc.nat(8) }), weight: 2 },
        { arbitrary: fc.record({ perMille: fc.nat(999) }), weight: 1 },
      ),
      fill: fc.nat(255),
      expiry: expiryArb,
      ifAbsent: fc.constantFrom(false, false, false, false, true),
      ifVersion: versionArb,
      contentType: fc.option(fc.nat(255), { nil: undefined }),
    }),
    weight: 32,
  },
  { arbitrary: fc.record({ kind: fc.constant('get' as const), key: keyIndexArb }), weight: 12 },
  { arbitrary: fc.record({ kind: fc.constant('peek' as const), key: keyIndexArb }), weight: 4 },
  {
    arbitrary: fc.record({
      kind: fc.constant('delete' as const),
      key: keyIndexArb,
      ifVersion: versionArb,
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('scan' as const),
      key: keyIndexArb,
      prefixLength: fc.nat(3),
      limit: fc.integer({ min: 1, max: 4 }),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('sweep' as const), countMax: fc.nat(4) }),
    weight: 4,
  },
  { arbitrary: fc.constant<Op>({ kind: 'clear' }), weight: 1 },
  {
    arbitrary: fc
      .oneof(
        { arbitrary: fc.integer({ min: 0, max: 10 }), weight: 3 },
        { arbitrary: fc.integer({ min: 10, max: 5000 }), weight: 1 },
      )
      .map((ms): Op => ({ kind: 'tick', ms })),
    weight: 6,
  },
)

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  limits: limitsArb,
  hashSeed: fc.oneof(fc.constant(collisionSeed), fc.nat(2 ** 31 - 1)),
  clockDriftMs: fc.constantFrom(0, 0, 1, 3),
  keys: fc.uniqueArray(keyArb, { minLength: 1, maxLength: 12, size: 'max' }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 60, size: 'max' }),
})

/** Runs one scenario against the real store, or against `wrap(store)`, which plants a bug. */
function check(scenario: Scenario, wrap: (store: Store) => Store = (store) => store): void {
  const { limits, hashSeed, clockDriftMs, keys, ops } = scenario
  // The store must see one instant per operation, the first it reads; the model is given that
  // one. A step that read the clock leaves it at the last time it read.
  let now = clockStart
  let clockReadCount = 0
  const clock = () => now + clockDriftMs * clockReadCount++
  const records: MutationRecord[] = []
  const texts: string[] = []
  const onMutation = (record: MutationRecord) => {
    records.push(record)
    // A set's value is the caller's array, which this test scribbles on afterwards: keep text.
    const set = record.op === 'set' ? record : undefined
    texts.push(recordText(record.op, record.key, set))
  }
  const store = Store.create({ limits, hashSeed, clock, onMutation })
  // Steps alternate between the creating handle and a second one attached to the same buffer,
  // as another thread would hold it, and every third read or write runs as a transaction.
  const handles = [wrap(store), wrap(Store.attach(store.buffer, { clock, onMutation }))]
  const model = new ModelLru(limits)
  const reads = { hits: 0, misses: 0 }

  for (const [step, op] of ops.entries()) {
    const handle = handles[step % 2]!
    const writer = step % 3 === 2 ? inTransactions(handle) : handle
    const at = `step ${step} at ${now - clockStart} ms: ${fc.stringify(op)}`
    const recordsBefore = records.length
    const modelRecordsBefore = model.records.length
    const sequenceBefore = model.sequence
    const key = keys[('key' in op ? op.key : 0) % keys.length]!
    const versionOf = (pick: VersionPick) => {
      const current = model.entries.get(key)?.version ?? model.sequence
      if (pick === 'none') return undefined
      return pick === 'current' ? current : pick === 'stale' ? current - 1 : model.sequence + 1
    }

    switch (op.kind) {
      case 'set': {
        const size =
          'bytes' in op.valueSize
            ? op.valueSize.bytes
            : Math.floor((op.valueSize.perMille * (limits.valueSizeMax + 3)) / 1000)
        const value = Uint8Array.from({ length: size }, (_, i) => (op.fill + 7 * i) & 0xff)
        const options: SetOptions = { ifAbsent: op.ifAbsent, ifVersion: versionOf(op.ifVersion) }
        if (op.contentType !== undefined) options.contentType = op.contentType
        if (op.expiry.kind === 'ttl') options.ttlMs = op.expiry.ms
        if (op.expiry.kind === 'at') options.expiresAt = now + op.expiry.fromNowMs
        if (op.expiry.kind === 'invalid') options.ttlMs = op.expiry.ttlMs
        const expected = model.set(key, value, now, options)
        expect(writer.set(key, value, options), at).toEqual(expected)
        value.fill(0xee) // The store must have copied the bytes, not kept the caller's array.
        break
      }
      case 'get':
      case 'peek': {
        const touch = op.kind === 'get'
        const expected = model.get(key, now, touch)
        const entry = touch ? writer.get(key) : writer.peek(key)
        expect(entry && comparable(entry), at).toEqual(expected && comparable(expected))
        if (entry) expect(entry.value.buffer, at).toBeInstanceOf(ArrayBuffer)
        if (touch && expected) reads.hits++
        else if (touch) reads.misses++
        break
      }
      case 'delete': {
        const ifVersion = versionOf(op.ifVersion)
        const expected = model.delete(key, now, ifVersion)
        expect(writer.delete(key, { ifVersion }), at).toEqual(expected)
        break
      }
      case 'scan': {
        // A lone surrogate would reach the store as U+FFFD, so prefixes keep whole characters.
        const characters = Array.from(key).filter((character) => character.isWellFormed())
        const prefix = characters.slice(0, op.prefixLength).join('')
        const found = new Map<string, object>()
        let cursor: number | null = 0
        while (cursor !== null) {
          clockReadCount = 0 // Each page is an operation of its own: the model's instant again.
          const page = handle.scan(prefix, cursor, op.limit)
          expect(page.items.length, at).toBeLessThanOrEqual(op.limit)
          // A few slots: no call reaches its bound, so only a full page has a next one, and
          // only a listing of nothing has an empty page.
          expect(page.boundReached, at).toBe(false)
          if (page.cursor !== null) expect(page.items.length, `${at}: a full page`).toBe(op.limit)
          if (cursor !== 0) expect(page.items.length, `${at}: a later page`).toBeGreaterThan(0)
          expect(page.cursor === null || page.cursor > cursor, `${at}: the cursor advances`).toBe(
            true,
          )
          for (const { key: itemKey, ...item } of page.items) {
            expect(found.has(itemKey), `${at}: ${itemKey} appears once`).toBe(false)
            found.set(itemKey, item)
          }
          cursor = page.cursor
        }
        const expected = new Map<string, object>()
        for (const [k, e] of model.entries) {
          if (!k.startsWith(prefix) || (e.expiresAt !== 0 && e.expiresAt <= now)) continue
          const { value, ...rest } = e
          expected.set(k, { valueSize: value.byteLength, ...rest })
        }
        expect(sorted(found), at).toEqual(sorted(expected))
        break
      }
      case 'sweep': {
        // The heap pops the earliest expiry first; among equal times the order is the heap's,
        // so the model takes the keys the store chose after checking the choice was allowed.
        const expired = model.expiredKeys(now)
        const count = handle.sweep(op.countMax)
        expect(count, at).toBe(Math.min(op.countMax, expired.length))
        const taken = records.slice(recordsBefore).map((record) => record.key)
        expect(new Set(taken).size, `${at}: one record per reclaimed key`).toBe(count)
        const left = new Set(expired)
        for (const k of taken) {
          expect(left.delete(k), `${at}: ${k} had expired`).toBe(true)
        }
        const expiresAt = (k: string) => model.entries.get(k)!.expiresAt
        const latestTaken = Math.max(...taken.map(expiresAt))
        for (const k of left) {
          expect(
            expiresAt(k),
            `${at}: ${k} expired no earlier than those swept`,
          ).toBeGreaterThanOrEqual(latestTaken)
        }
        for (const k of taken) model.remove(k, 'expire')
        break
      }
      case 'clear':
        model.clear()
        handle.clear()
        break
      case 'tick':
        now += op.ms
        break
    }
    now += clockDriftMs * Math.max(0, clockReadCount - 1)
    clockReadCount = 0

    expect(canonical(texts.slice(recordsBefore)), `${at}: mutation records`).toEqual(
      canonical(model.records.slice(modelRecordsBefore)),
    )
    const sequences = records.slice(recordsBefore).map((record) => record.sequence)
    const expectedSequences = Array.from(
      { length: model.sequence - sequenceBefore },
      (_, i) => sequenceBefore + 1 + i,
    )
    expect(sequences, `${at}: sequence numbers`).toEqual(expectedSequences)
    const tally = (op: string) => records.filter((record) => record.op === op).length
    expect(handle.stats(), `${at}: stats`).toMatchObject({
      entryCount: model.entries.size,
      bytesUsed: model.bytesUsed,
      sequence: model.sequence,
      hits: reads.hits,
      misses: reads.misses,
      sets: tally('set'),
      deletes: tally('delete'),
      evictions: tally('evict'),
      expirations: tally('expire'),
    })
    expect(verifyStore(store.buffer), `${at}: verifyStore`).toEqual([])
  }
}

const comparable = ({ value, ...rest }: Entry) => ({ value: Array.from(value), ...rest })
const sorted = (map: Map<string, object>) => [...map].sort(([a], [b]) => (a < b ? -1 : 1))

/**
 * Expiries reclaimed together (before an eviction, or by a sweep) leave in heap order, which
 * among equal times is the heap's business; the store reclaims all of them, so compare each run
 * of consecutive expiries as a set.
 */
function canonical(texts: string[]): string[] {
  const out: string[] = []
  let run: string[] = []
  for (const text of [...texts, '']) {
    if (text.startsWith('expire ')) {
      run.push(text)
      continue
    }
    out.push(...run.sort())
    run = []
    if (text !== '') out.push(text)
  }
  return out
}

/** The reads and writes of `store`, each run as a transaction. */
function inTransactions(store: Store): Pick<Store, 'get' | 'peek' | 'set' | 'delete'> {
  return {
    get: (key) => store.atomically((transaction) => transaction.get(key)),
    peek: (key) => store.atomically((transaction) => transaction.peek(key)),
    set: (key, value, options) =>
      store.atomically((transaction) => transaction.set(key, value, options)),
    delete: (key, options) => store.atomically((transaction) => transaction.delete(key, options)),
  }
}

/** The real store, except that get() forgets to refresh recency (it counts hits and misses). */
function forgetful(store: Store): Store {
  const get = (key: string) => {
    const entry = store.peek(key)
    store.views.headerF64[entry ? F64.hits : F64.misses]! += 1
    return entry
  }
  return new Proxy(store, {
    get: (target, name) => {
      if (name === 'get') return get
      const value = Reflect.get(target, name, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

describe('the store against a model LRU', () => {
  // About 3 ms a run on a 2-core machine; a soak gets time in proportion.
  const timeoutMs = Math.max(120_000, 20 * runCount)
  it(
    'agrees with the model after every step of random operation sequences',
    () => {
      const seed = testSeed('store-model property')
      fc.assert(
        fc.property(scenarioArb, (scenario) => check(scenario)),
        { numRuns: runCount, seed },
      )
    },
    timeoutMs,
  )

  it('notices a store whose get() forgets to refresh recency', () => {
    const details = fc.check(
      fc.property(scenarioArb, (scenario) => check(scenario, forgetful)),
      { numRuns: 1000, seed: 1, endOnFailure: true },
    )
    expect(details.failed).toBe(true)
  })

  it('plants keys whose hashes really collide', () => {
    for (const [a, b] of collidingKeys) {
      expect(hashKey(a, collisionSeed), `${a} and ${b}`).toBe(hashKey(b, collisionSeed))
      expect(encodeKey(a).byteLength, `${a} and ${b}`).toBe(encodeKey(b).byteLength)
    }
  })
})
