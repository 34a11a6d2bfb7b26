import { describe, expect, it } from 'vitest'
import {
  AccessSampler,
  accessClear,
  accessesDropped,
  accessMiss,
  accessRemoval,
  drainAccessRing,
  samplingHash,
  setAccessThreshold,
  thresholdAll,
} from '../../../src/store/access-ring.js'
import { accessRingCapacity, createViews, I32 } from '../../../src/store/layout.js'
import { Store } from '../../../src/store/store.js'

const limits = {
  entryCountMax: 100,
  memorySizeMax: 10_000,
  keySizeMax: 64,
  valueSizeMax: 8000,
  headroomPerMille: 16,
}

function drained(views: Parameters<typeof drainAccessRing>[0]): [number, number][] {
  const records: [number, number][] = []
  drainAccessRing(views, (sampled, code) => records.push([sampled, code]))
  return records
}

describe('access ring', () => {
  it('writes nothing while the threshold is 0 (the curve off)', () => {
    const views = createViews(limits)
    const sampler = new AccessSampler(views)
    sampler.get(1, 10)
    sampler.set(2, 10)
    sampler.removal(3)
    expect(drained(views)).toEqual([])
  })

  it('carries gets, misses, sets and removals in order, across the wrap', () => {
    const views = createViews(limits)
    setAccessThreshold(views, thresholdAll)
    const sampler = new AccessSampler(views)
    // Start near the end of the i32 counters too, so their wrap at 2^32 is crossed.
    views.headerI32[I32.accessRingHead] = 2 ** 31 - 3
    views.headerI32[I32.accessRingTail] = 2 ** 31 - 3
    for (let round = 0; round < 3; round++) {
      const count = accessRingCapacity - 5
      for (let i = 0; i < count; i++) {
        if (i % 4 === 0) sampler.get(i, i + 1)
        else if (i % 4 === 1) sampler.get(i, 0)
        else if (i % 4 === 2) sampler.set(i, i + 1)
        else sampler.removal(i)
      }
      const records = drained(views)
      expect(records.length).toBe(count)
      records.forEach(([sampled, code], i) => {
        expect(sampled).toBe(samplingHash(i))
        const want = [i + 1, accessMiss, -(i + 1), accessRemoval][i % 4]
        expect(code).toBe(want)
      })
    }
    expect(accessesDropped(views)).toBe(0)
  })

  it('drops and counts what a full ring cannot take, and never waits', () => {
    const views = createViews(limits)
    setAccessThreshold(views, thresholdAll)
    const sampler = new AccessSampler(views)
    for (let i = 0; i < accessRingCapacity + 10; i++) sampler.get(i, 5)
    expect(accessesDropped(views)).toBe(10)
    const records = drained(views)
    expect(records.length).toBe(accessRingCapacity)
    expect(records.at(-1)![0]).toBe(samplingHash(accessRingCapacity - 1))
    sampler.get(7, 5)
    expect(drained(views)).toEqual([[samplingHash(7), 5]])
  })

  it('keeps exactly the hashes below the threshold, about threshold / 2^32 of the keys', () => {
    const views = createViews(limits)
    const threshold = thresholdAll / 8
    setAccessThreshold(views, threshold)
    const sampler = new AccessSampler(views)
    for (let i = 0; i < 20_000; i++) sampler.get(Math.imul(i, 0x9e3779b1), 1)
    const records = drained(views)
    for (const [sampled] of records) expect(sampled).toBeLessThan(threshold)
    expect(records.length / 20_000).toBeGreaterThan(0.11)
    expect(records.length / 20_000).toBeLessThan(0.14)
  })

  it('is written by the store: a get, a miss, a set, a delete, an expiry; not a peek or an eviction', () => {
    let now = 1000
    const store = Store.create({ limits, hashSeed: 7, clock: () => now })
    setAccessThreshold(store.views, thresholdAll)
    const value = new Uint8Array(10)
    store.set('a', value)
    store.get('a')
    store.peek('a')
    store.get('b')
    store.delete('a')
    store.set('t', value, { ttlMs: 1000 })
    now += 5000
    store.get('t')
    store.set('big1', new Uint8Array(6000))
    store.set('big2', new Uint8Array(6000)) // evicts big1: not recorded
    store.clear()
    const codes = drained(store.views).map(([, code]) => code)
    expect(codes).toEqual([
      -11,
      11,
      accessMiss,
      accessRemoval,
      -11,
      accessRemoval,
      accessMiss,
      -6004,
      -6004,
      accessClear,
    ])
  })
})
