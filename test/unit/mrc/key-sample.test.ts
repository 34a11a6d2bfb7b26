import { describe, expect, it } from 'vitest'
import { curveSizes } from '../../../src/mrc/collector.js'
import { KeySample } from '../../../src/mrc/key-sample.js'
import { ShardsEstimator } from '../../../src/mrc/shards.js'
import { thresholdAll } from '../../../src/store/access-ring.js'
import { accessRingCapacity } from '../../../src/store/layout.js'
import { prng, testSeed } from '../../support/random.js'

describe('KeySample', () => {
  it('finds every key it holds and no other, through collisions and removals', () => {
    const random = prng(testSeed('key sample table'))
    for (const keysMax of [1, 3, 100, 1000]) {
      const sample = new KeySample(keysMax)
      const held = new Map<number, number>()
      // Hashes that share their low bits, so that probe runs are long and wrap the table.
      const hashOf = () => ((Math.floor(random() * 64) << 20) | Math.floor(random() * 8)) >>> 0
      for (let step = 0; step < 20_000; step++) {
        const hash = hashOf()
        const slot = sample.slotOf(hash)
        if (hash >= sample.threshold) continue
        if (slot >= 0) {
          expect(held.get(hash)).toBe(slot)
          continue
        }
        expect(held.has(hash)).toBe(false)
        held.set(hash, sample.add(hash))
        if (sample.isOverFull) {
          const largest = Math.max(...held.keys())
          expect(sample.dropLargest()).toBe(held.get(largest))
          held.delete(largest)
          expect(sample.threshold).toBe(largest)
        }
        expect(sample.count).toBe(held.size)
        for (const [key, at] of held) expect(sample.slotOf(key)).toBe(at)
        expect(new Set(held.values()).size).toBe(held.size)
      }
    }
  })

  it('starts keeping every key', () => {
    const sample = new KeySample(10)
    expect(sample.threshold).toBe(thresholdAll)
    expect(sample.rate).toBe(1)
  })
})

describe('the curve’s memory', () => {
  it('stays under 2 MB with the access ring, whatever the store’s size and keys', () => {
    const ringBytes = 2 * accessRingCapacity * Int32Array.BYTES_PER_ELEMENT
    for (const memorySizeMax of [2 ** 16, 2 ** 30, 2 ** 40]) {
      const estimator = new ShardsEstimator({ memorySizes: curveSizes(memorySizeMax) })
      const before = estimator.byteLength
      // A million distinct keys: the sample stays at its limit, and nothing grows.
      for (let key = 0; key < 1_000_000; key++) estimator.access((key * 2_654_435_761) >>> 0, -500)
      expect(estimator.sampledKeyCount).toBe(estimator.sampleKeysMax)
      expect(estimator.byteLength).toBe(before)
      console.log(`curve memory: estimator ${before} B + ring ${ringBytes} B`)
      expect(before + ringBytes).toBeLessThanOrEqual(2_000_000)
    }
  })
})
