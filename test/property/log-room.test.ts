import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  I32,
  type StoreLimits,
  walRingSizeMin,
  walStateFailed,
  walStateOk,
  walStateReadOnly,
} from '../../src/store/layout.js'
import { Store } from '../../src/store/store.js'
import type { BatchChange, MutationRecord, StoreResult } from '../../src/store/types.js'
import { verifyStore } from '../../src/store/verify.js'
import { decodeRecord } from '../../src/wal/record.js'
import { WalRing } from '../../src/wal/ring.js'
import { testSeed } from '../support/random.js'

// The store and a small WAL ring that drains only when the test says, so that the ring is often
// full. The rules the full-disk and crash paths must keep, checked after every run:
//
//   - No sequence number is taken for a record that is not logged: what drains from the ring is
//     every sequence from the first to the store's last, once each, in order.
//   - Nothing waits for room while holding the lock: every operation returns at once (a wait
//     here would hang this single thread), refusing with log_full when the ring is short.
//   - What the ring carried is the store: replaying it into a fresh store gives the same entries.
//   - A batch applies whole or not at all, and a refusal (log_full) applies nothing the caller
//     asked for: the model of what was acknowledged agrees with the store.
//   - hasRoom() never promises room that is not there: the ring's append asserts it.

const runCount = Number(process.env.PROPERTY_RUNS ?? 500)

const limits: StoreLimits = {
  entryCountMax: 128,
  memorySizeMax: 400,
  keySizeMax: 8,
  valueSizeMax: 150,
  headroomPerMille: 0,
}
// Many small entries, then a large one, make one set evict many: its own record must stay
// reserved while the evictions' records go in.
const keys = Array.from({ length: 120 }, (_, i) => `k${i}`)
const sizeArb = fc.oneof(
  { weight: 4, arbitrary: fc.nat(2) },
  { weight: 1, arbitrary: fc.nat(limits.valueSizeMax) },
)

type Step =
  | { kind: 'set'; key: number; size: number; ttlMs: number | undefined }
  | { kind: 'delete' | 'get'; key: number }
  | { kind: 'batch'; ops: { op: 'set' | 'delete' | 'get'; key: number; size: number }[] }
  | { kind: 'drain'; countMax: number }
  | { kind: 'tick'; ms: number }
  | { kind: 'sweep' }
  | { kind: 'clear' }
  | { kind: 'state'; state: number }

const keyArb = fc.nat(keys.length - 1)
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      key: keyArb,
      size: sizeArb,
      ttlMs: fc.option(fc.integer({ min: 1, max: 3000 }), { nil: undefined }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constantFrom('delete' as const, 'get' as const), key: keyArb }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('batch' as const),
      ops: fc.array(
        fc.record({
          op: fc.constantFrom('set' as const, 'delete' as const, 'get' as const),
          key: keyArb,
          size: sizeArb,
        }),
        { minLength: 1, maxLength: 5 },
      ),
    }),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('drain' as const), countMax: fc.nat(4) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.nat(2000) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'sweep' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('state' as const),
      state: fc.constantFrom(walStateOk, walStateReadOnly, walStateFailed),
    }),
  },
)

/** Entries as a sorted text, for comparing two stores. */
function entries(store: Store): string[] {
  const rows: string[] = []
  store.walkOldestFirst(undefined, Number.POSITIVE_INFINITY, (key, value, entry) => {
    rows.push(`${key}=${Buffer.from(value).toString('hex')} v${entry.version} x${entry.expiresAt}`)
  })
  return rows.sort()
}

const fill = (size: number, seed: number) =>
  Uint8Array.from({ length: size }, (_, i) => (i + seed) & 0xff)

describe('a store whose log has room only now and then', () => {
  it('never waits under the lock, never numbers a record it did not log, and logs exactly what it applied', () => {
    const seed = testSeed('log room')
    const counts = { logFull: 0, batches: 0, batchesApplied: 0, tooLarge: 0, drained: 0 }
    fc.assert(
      fc.property(
        fc.array(stepArb, { minLength: 20, maxLength: 200 }),
        fc.integer({ min: 0, max: 400 }),
        (steps, extraRingSize) => {
          let now = 1_000_000
          const clock = () => now
          const ringLimits = { ...limits, walRingSize: walRingSizeMin(limits) + extraRingSize }
          const base = Store.create({ limits: ringLimits, clock, hashSeed: 3 })
          const ring = new WalRing(base.views)
          const store = Store.attach(base.buffer, {
            clock,
            onMutation: (record) => ring.append(record),
            logRoom: ring,
          })
          const drained: MutationRecord[] = []
          const drain = (countMax: number) => {
            for (let i = 0; i < countMax; i++) {
              const readable = ring.readable()
              if (readable === undefined) return
              const bytes = ring.bytes(readable.start, readable.end)
              for (let at = 0; at < bytes.length; ) {
                const decoded = decodeRecord(bytes, at, ring.salt)
                if (!decoded.ok) throw new Error(`a damaged record in the ring at ${at}`)
                drained.push(decoded.record)
                at += decoded.size
              }
              ring.release(readable.end)
            }
          }
          // What was acknowledged, per key: the value of the last set that returned ok, unless
          // a later delete returned ok. Evictions and expiries may take any key away.
          const acknowledged = new Map<string, Uint8Array | undefined>()
          const refusedApplying = (result: StoreResult<object>) => {
            if (!result.ok && result.code === 'log_full') counts.logFull++
          }
          for (const [i, step] of steps.entries()) {
            if (step.kind === 'set') {
              const value = fill(step.size, i)
              const result = store.set(keys[step.key]!, value, { ttlMs: step.ttlMs })
              refusedApplying(result)
              if (result.ok) acknowledged.set(keys[step.key]!, value)
            } else if (step.kind === 'delete') {
              const result = store.delete(keys[step.key]!)
              refusedApplying(result)
              if (result.ok) acknowledged.set(keys[step.key]!, undefined)
            } else if (step.kind === 'get') store.get(keys[step.key]!)
            else if (step.kind === 'batch') {
              counts.batches++
              const changes: BatchChange[] = step.ops.map((op) =>
                op.op === 'set'
                  ? { op: 'set', key: keys[op.key]!, valueSize: op.size }
                  : { op: op.op, key: keys[op.key]! },
              )
              const applied = store.atomically((tx) => {
                const ready = tx.prepare(changes)
                if (!ready.ok) {
                  if (ready.code === 'batch_too_large') counts.tooLarge++
                  refusedApplying(ready)
                  return undefined
                }
                return step.ops.map((op, j) => {
                  if (op.op === 'get') return tx.get(keys[op.key]!) !== undefined
                  if (op.op === 'delete') return tx.delete(keys[op.key]!).ok
                  const result = tx.set(keys[op.key]!, fill(op.size, i + j))
                  // prepare() made room: a set inside a prepared batch is never refused.
                  expect(result.ok).toBe(true)
                  return true
                })
              })
              if (applied !== undefined) {
                counts.batchesApplied++
                for (const [j, op] of step.ops.entries()) {
                  const key = keys[op.key]!
                  if (op.op === 'set') acknowledged.set(key, fill(op.size, i + j))
                  if (op.op === 'delete' && applied[j]) acknowledged.set(key, undefined)
                }
              }
            } else if (step.kind === 'drain') drain(step.countMax)
            else if (step.kind === 'tick') now += step.ms
            else if (step.kind === 'sweep') store.sweep(100)
            else if (step.kind === 'clear') {
              if (store.clear().ok) acknowledged.clear()
            } else if (step.kind === 'state') {
              Atomics.store(base.views.headerI32, I32.walState, step.state)
            }
            expect(verifyStore(base.buffer)).toEqual([])
            // An acknowledged value is in the store, or an eviction or expiry took it: never
            // another value, and never back after an acknowledged delete.
            for (const [key, value] of acknowledged) {
              const entry = store.peek(key)
              if (entry === undefined) continue
              expect(value, `${key} is back after a delete`).toBeDefined()
              expect(Buffer.compare(entry.value, value!), `${key} holds another value`).toBe(0)
            }
          }
          Atomics.store(base.views.headerI32, I32.walState, walStateOk)
          drain(Number.POSITIVE_INFINITY)
          counts.drained += drained.length
          // Every number from 1 to the store's last, once each, in order: no gap, no drop.
          expect(drained.map((record) => record.sequence)).toEqual(
            Array.from({ length: store.sequence }, (_, j) => j + 1),
          )
          const replayed = Store.create({ limits, clock, hashSeed: 4 })
          for (const record of drained) expect(replayed.replay(record)).toBeUndefined()
          expect(entries(replayed)).toEqual(entries(store))
        },
      ),
      { seed, numRuns: runCount },
    )
    console.log('log room:', counts)
    // The runs must reach what they claim to test: refusals, batches both ways.
    expect(counts.logFull).toBeGreaterThan(0)
    expect(counts.batchesApplied).toBeGreaterThan(0)
    expect(counts.batchesApplied).toBeLessThan(counts.batches)
  })
})
