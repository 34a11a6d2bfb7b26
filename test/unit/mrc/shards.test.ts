import { describe, expect, it } from 'vitest'
import { CurveCollector, curveSizes } from '../../../src/mrc/collector.js'
import { Fenwick } from '../../../src/mrc/fenwick.js'
import { ShardsEstimator } from '../../../src/mrc/shards.js'
import {
  accessClear,
  accessMiss,
  accessRemoval,
  thresholdAll,
} from '../../../src/store/access-ring.js'
import { F64 } from '../../../src/store/layout.js'
import { Store } from '../../../src/store/store.js'
import { prng, testSeed } from '../../support/random.js'

describe('Fenwick', () => {
  it('sums prefixes as a plain array does, after adds and rebuilds', () => {
    const random = prng(testSeed('fenwick'))
    for (const capacity of [1, 2, 7, 64, 100]) {
      const tree = new Fenwick(capacity)
      const plain = new Float64Array(capacity + 1)
      for (let step = 0; step < 2000; step++) {
        if (step % 500 === 499) {
          const values = Array.from({ length: Math.floor(random() * capacity) }, () => random())
          tree.rebuild(values)
          plain.fill(0)
          values.forEach((value, i) => {
            plain[i + 1] = value
          })
        } else {
          const position = 1 + Math.floor(random() * capacity)
          const amount = Math.floor(random() * 100) - 50
          tree.add(position, amount)
          plain[position]! += amount
        }
        const position = Math.floor(random() * (capacity + 1))
        const want = plain.subarray(0, position + 1).reduce((a, b) => a + b, 0)
        expect(tree.prefix(position)).toBeCloseTo(want, 6)
        expect(tree.total).toBeCloseTo(
          plain.reduce((a, b) => a + b, 0),
          6,
        )
      }
    }
  })
})

/**
 * The curve as the definition gives it: a recency list of the present keys, where a get's
 * distance is its own size plus the sizes of every key above it. Slow and obviously right.
 */
class StackModel {
  readonly stack: { key: number; size: number }[] = []
  readonly hits: number[]
  gets = 0
  constructor(readonly sizes: readonly number[]) {
    this.hits = sizes.map(() => 0)
  }
  #take(key: number) {
    const at = this.stack.findIndex((entry) => entry.key === key)
    return at < 0 ? undefined : { at, entry: this.stack.splice(at, 1)[0]! }
  }
  has(key: number) {
    return this.stack.some((entry) => entry.key === key)
  }
  get(key: number, code: number) {
    this.gets += 1
    const at = this.stack.findIndex((entry) => entry.key === key)
    if (at < 0) {
      if (code > 0) this.stack.unshift({ key, size: code })
      return
    }
    const size = code > 0 ? code : this.stack[at]!.size
    let distance = size
    for (let i = 0; i < at; i++) distance += this.stack[i]!.size
    this.sizes.forEach((memorySize, i) => {
      if (distance <= memorySize) this.hits[i]! += 1
    })
    this.#take(key)
    this.stack.unshift({ key, size })
  }
  set(key: number, size: number) {
    this.#take(key)
    this.stack.unshift({ key, size })
  }
  remove(key: number) {
    this.#take(key)
  }
}

describe('ShardsEstimator', () => {
  const sizes = [100, 300, 1000, 3000, 10_000, 30_000]

  it('gives the exact byte-weighted LRU curve when every key is sampled', () => {
    const random = prng(testSeed('shards exact'))
    const keyCount = 60
    // Fewer slots than accesses many times over: access times are compacted again and again.
    const estimator = new ShardsEstimator({ memorySizes: sizes, sampleKeysMax: keyCount })
    const model = new StackModel(sizes)
    for (let step = 0; step < 20_000; step++) {
      const key = Math.floor(random() ** 2 * keyCount)
      const size = 1 + Math.floor(random() * 900)
      const roll = random()
      if (roll < 0.6) {
        // A get the real store found (its size) or not (0: evicted there, or absent).
        const code = model.has(key) && random() < 0.7 ? size : random() < 0.2 ? size : accessMiss
        model.get(key, code)
        estimator.access(key, code)
      } else if (roll < 0.95) {
        model.set(key, size)
        estimator.access(key, -size)
      } else {
        model.remove(key)
        estimator.access(key, accessRemoval)
      }
    }
    expect(estimator.threshold).toBe(thresholdAll)
    expect(estimator.sampledKeyCount).toBe(keyCount)
    expect(estimator.accessCount).toBe(model.gets)
    const curve = estimator.curve()
    curve.forEach((point, i) => {
      expect(point.memorySize).toBe(sizes[i])
      expect(point.hitRatio).toBeCloseTo(model.hits[i]! / model.gets, 12)
    })
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

  it('adds to the shortest distances what the rate says the sample missed (SHARDS_adj)', () => {
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
})
