import { describe, expect, it } from 'vitest'
import { CurveCollector, curveSizes } from '../../../src/mrc/collector.js'
import { ShardsEstimator } from '../../../src/mrc/shards.js'
import {
  accessClear,
  accessMiss,
  accessRemoval,
  thresholdAll,
} from '../../../src/store/access-ring.js'
import { F64, I32 } from '../../../src/store/layout.js'
import { Store } from '../../../src/store/store.js'
import { prng, testSeed } from '../../support/random.js'

/**
 * slabkv's LRU as the definition gives it, one per size: a recency list of entries of a byte
 * size, where a get that finds its key makes it the most recent and a get that misses changes
 * nothing, and a set puts the entry first and evicts from the end until the bytes fit.
 * Slow and obviously right.
 */
class ReferenceLru {
  readonly entries: { key: number; size: number }[] = []
  hits = 0
  constructor(readonly memorySize: number) {}
  #take(key: number) {
    const at = this.entries.findIndex((entry) => entry.key === key)
    return at < 0 ? undefined : this.entries.splice(at, 1)[0]
  }
  get(key: number) {
    const entry = this.#take(key)
    if (entry === undefined) return
    this.hits += 1
    this.entries.unshift(entry)
  }
  set(key: number, size: number) {
    this.#take(key)
    if (size > this.memorySize) return
    this.entries.unshift({ key, size })
    let used = this.entries.reduce((sum, entry) => sum + entry.size, 0)
    while (used > this.memorySize) used -= this.entries.pop()!.size
  }
  remove(key: number) {
    this.#take(key)
  }
  has(key: number) {
    return this.entries.some((entry) => entry.key === key)
  }
}

describe('ShardsEstimator', () => {
  const sizes = [100, 300, 1000, 3000, 10_000, 30_000]

  it('gives the exact curve of byte-limited LRUs for readers who never refill a miss', () => {
    const random = prng(testSeed('shards exact'))
    const keyCount = 60
    const estimator = new ShardsEstimator({
      memorySizes: sizes,
      sampleKeysMax: keyCount,
      refillShare: 0,
    })
    const stores = sizes.map((size) => new ReferenceLru(size))
    // The "real" store the records come from is the 3,000-byte one.
    const real = stores[3]!
    let gets = 0
    for (let step = 0; step < 20_000; step++) {
      const key = Math.floor(random() ** 2 * keyCount)
      const size = 1 + Math.floor(random() * 900)
      const roll = random()
      if (roll < 0.7) {
        // Gets that miss are not followed by a set: every size must keep its own contents.
        const found = real.entries.find((entry) => entry.key === key)
        estimator.access(key, found === undefined ? accessMiss : found.size)
        for (const store of stores) store.get(key)
        gets += 1
      } else if (roll < 0.95) {
        estimator.access(key, -size)
        for (const store of stores) store.set(key, size)
      } else {
        estimator.access(key, accessRemoval)
        for (const store of stores) store.remove(key)
      }
    }
    expect(estimator.threshold).toBe(thresholdAll)
    expect(estimator.sampledKeyCount).toBe(keyCount)
    expect(estimator.accessCount).toBe(gets)
    const curve = estimator.curve()
    curve.forEach((point, i) => {
      expect(point.memorySize).toBe(sizes[i])
      expect(point.hitRatio).toBeCloseTo(stores[i]!.hits / gets, 12)
    })
    // Not the LRU of reuse distances: sizes differ in what a miss leaves behind.
    expect(new Set(curve.map((point) => point.hitRatio)).size).toBeGreaterThan(3)
  })

  it('gives the exact curve for cache-aside clients, and measures that they refill', () => {
    const random = prng(testSeed('shards exact cache-aside'))
    const keyCount = 60
    const keySizes = Array.from({ length: keyCount }, () => 1 + Math.floor(random() * 900))
    const estimator = new ShardsEstimator({ memorySizes: sizes, sampleKeysMax: keyCount })
    // Each store is its own client's: a get that misses is followed by the set of the key.
    const stores = sizes.map((size) => new ReferenceLru(size))
    const real = stores[3]!
    let gets = 0
    for (let step = 0; step < 20_000; step++) {
      const key = Math.floor(random() ** 2 * keyCount)
      const size = keySizes[key]!
      if (random() < 0.9) {
        const found = real.has(key)
        estimator.access(key, found ? size : accessMiss)
        if (!found) estimator.access(key, -size)
        for (const store of stores) {
          const hits = store.hits
          store.get(key)
          if (store.hits === hits) store.set(key, size)
        }
        gets += 1
      } else {
        estimator.access(key, -size)
        for (const store of stores) store.set(key, size)
      }
    }
    expect(estimator.refillShare).toBe(1)
    expect(estimator.accessCount).toBe(gets)
    estimator.curve().forEach((point, i) => {
      expect(point.hitRatio).toBeCloseTo(stores[i]!.hits / gets, 12)
    })
  })

  it('measures no refill from readers whose sets do not follow their misses', () => {
    const random = prng(testSeed('shards refill share'))
    const estimator = new ShardsEstimator({ memorySizes: sizes })
    const present = new Set<number>()
    for (let step = 0; step < 200_000; step++) {
      const key = Math.floor(random() * 5000)
      if (random() < 0.2) {
        estimator.access(key, -100)
        present.add(key)
      } else estimator.access(key, present.has(key) ? 100 : accessMiss)
    }
    expect(estimator.refillShare).toBeLessThan(0.02)
  })

  it('counts a key set before it started, and found by the store, at the store’s size and up', () => {
    const estimator = new ShardsEstimator({ memorySizes: sizes, storeMemorySize: 1000 })
    estimator.access(7, 200)
    estimator.access(7, 200)
    expect(estimator.curve().map((point) => point.hitRatio)).toEqual([0, 0, 1, 1, 1, 1])
    // A key it has not seen that the store did not find either is a miss everywhere.
    estimator.access(8, accessMiss)
    estimator.access(8, accessMiss)
    expect(estimator.curve().map((point) => point.hitRatio)).toEqual([0, 0, 0.5, 0.5, 0.5, 0.5])
  })

  it('never holds more keys than its limit, and lowers the threshold to make room', () => {
    const estimator = new ShardsEstimator({ memorySizes: sizes, sampleKeysMax: 100 })
    const random = prng(testSeed('shards fixed size'))
    let threshold = estimator.threshold
    for (let step = 0; step < 50_000; step++) {
      const sampled = Math.floor(random() * 5000) * 858_993 // 5,000 keys spread over 2^32
      estimator.access(sampled, random() < 0.5 ? -100 : 100)
      expect(estimator.sampledKeyCount).toBeLessThanOrEqual(100)
      expect(estimator.threshold).toBeLessThanOrEqual(threshold)
      threshold = estimator.threshold
    }
    expect(estimator.sampledKeyCount).toBe(100)
    // The 101st smallest of 5,000 hashes: about 101 / 5,000 of the range.
    expect(estimator.rate).toBeGreaterThan(0.012)
    expect(estimator.rate).toBeLessThan(0.03)
    for (const point of estimator.curve()) {
      expect(point.hitRatio).toBeGreaterThanOrEqual(0)
      expect(point.hitRatio).toBeLessThanOrEqual(1)
    }
  })

  it('counts a get after a delete as a miss at every size', () => {
    const estimator = new ShardsEstimator({ memorySizes: sizes })
    estimator.access(1, -50)
    estimator.access(1, 50)
    estimator.access(1, accessRemoval)
    estimator.access(1, accessMiss)
    estimator.access(1, accessMiss)
    expect(estimator.curve().map((point) => point.hitRatio)).toEqual(sizes.map(() => 1 / 3))
  })

  it('counts a get after a clear as a miss at every size', () => {
    const estimator = new ShardsEstimator({ memorySizes: sizes })
    estimator.access(1, -50)
    estimator.access(2, -50)
    estimator.access(1, 50)
    estimator.access(0, accessClear)
    estimator.access(1, accessMiss)
    estimator.access(2, accessMiss)
    estimator.access(2, -50)
    estimator.access(2, 50)
    // Before the clear, a hit at 50 + 50 bytes; after it, two cold misses and a hit at 50.
    expect(estimator.curve().map((point) => point.hitRatio)).toEqual(sizes.map(() => 2 / 4))
  })

  it('counts as hits at every size the gets the rate says the sample missed (SHARDS_adj)', () => {
    const estimator = new ShardsEstimator({ memorySizes: sizes })
    estimator.noteGets(4)
    estimator.access(1, -50)
    estimator.access(1, 50)
    estimator.access(2, accessMiss)
    // Four gets at rate 1, two sampled: the other two count as hits at every size.
    expect(estimator.curve().map((point) => point.hitRatio)).toEqual(sizes.map(() => 3 / 4))
    expect(estimator.accessCount).toBe(4)
  })
})

describe('CurveCollector', () => {
  it('reads the curve at 25 sizes from 1/8× to 8×, the store’s own among them', () => {
    const sizes = curveSizes(1_000_000)
    expect(sizes.length).toBe(25)
    expect(sizes[0]).toBe(125_000)
    expect(sizes[12]).toBe(1_000_000)
    expect(sizes[24]).toBe(8_000_000)
  })

  it('follows the store, stops sampling on stop, and starts from nothing on reset', () => {
    let now = 5000
    const store = Store.create({
      limits: {
        entryCountMax: 100,
        memorySizeMax: 1000,
        keySizeMax: 16,
        valueSizeMax: 100,
        headroomPerMille: 16,
      },
    })
    const collector = new CurveCollector(store.views, { clock: () => now })
    const value = new Uint8Array(90)
    for (let round = 0; round < 5; round++) {
      for (const key of ['a', 'b', 'c']) if (store.get(key) === undefined) store.set(key, value)
    }
    collector.drain()
    let curve = collector.curve()
    expect(curve.accessCount).toBe(15)
    expect(curve.sampledKeyCount).toBe(3)
    expect(curve.since).toBe(5000)
    // Three cold misses in 15 gets; every other get is at 3 × 91 bytes.
    for (const point of curve.points) {
      expect(point.hitRatio).toBeCloseTo(point.memorySize >= 273 ? 12 / 15 : 0, 12)
    }
    now = 9000
    collector.reset()
    curve = collector.curve()
    expect(curve).toMatchObject({ accessCount: 0, sampledKeyCount: 0, since: 9000 })
    collector.stop()
    expect(store.views.headerF64[F64.accessThreshold]).toBe(0)
    store.get('a')
    collector.drain()
    expect(collector.curve().sampledKeyCount).toBe(0)
  })

  it('lowers the rate to keep to its budget of sampled accesses, down to its fewest keys', () => {
    let now = 0
    const keyCount = 3000
    const store = Store.create({
      limits: {
        entryCountMax: keyCount,
        memorySizeMax: keyCount * 40,
        keySizeMax: 16,
        valueSizeMax: 100,
        headroomPerMille: 16,
      },
    })
    const collector = new CurveCollector(store.views, {
      clock: () => now,
      sampledAccessesPerSecondMax: 2000,
      sampleKeysMin: 500,
    })
    const keys = Array.from({ length: keyCount }, (_, i) => `key-${i}`)
    const value = new Uint8Array(20)
    for (const key of keys) store.set(key, value)
    /** One second of `perKey` gets of every key; returns the accesses the threads sampled. */
    const second = (perKey: number) => {
      const before = store.views.headerI32[I32.accessRingHead]!
      for (let round = 0; round < perKey; round++) for (const key of keys) store.get(key)
      const sampled = store.views.headerI32[I32.accessRingHead]! - before
      now += 1000
      collector.drain()
      return sampled
    }
    // 9,000 accesses in the first second, every one sampled: the rate drops to about 2/9.
    expect(second(2)).toBe(2 * keyCount)
    const afterFirst = collector.curve().sampledKeyCount
    expect(afterFirst).toBeGreaterThan(500)
    expect(afterFirst).toBeLessThan(keyCount * 0.3)
    // The next second keeps to the budget.
    expect(second(1)).toBeLessThanOrEqual(2000 * 1.1)
    // Ten times the load: the rate would have to drop to 1/50, but 500 keys stay.
    second(20)
    second(20)
    expect(collector.curve().sampledKeyCount).toBe(500)
    // The curve still reads: a hit at every size large enough to hold every key.
    const last = collector.curve().points.at(-1)!
    expect(last.hitRatio).toBeGreaterThan(0.9)
  })
})
