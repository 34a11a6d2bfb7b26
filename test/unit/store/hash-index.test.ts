import { describe, expect, it } from 'vitest'
import { HashIndex } from '../../../src/store/hash-index.js'
import { type Slot, slotNone } from '../../../src/store/layout.js'
import { prng, testSeed } from '../../support/random.js'

function makeIndex(positionCount: number, slotCount: number) {
  const index = new HashIndex(new Int32Array(positionCount), new Int32Array(slotCount))
  index.reset()
  return index
}

/** Keys are slots here: a slot matches when it is the one asked for. */
const find = (index: HashIndex, hash: number, slot: number) =>
  index.find(hash, (candidate) => candidate === slot)

describe('hash index', () => {
  it('reports the empty position an absent hash belongs at', () => {
    const index = makeIndex(8, 4)
    expect(find(index, 5, 0)).toBe(-(5 + 1))
  })

  it('probes linearly past colliding entries and wraps at the end', () => {
    const index = makeIndex(8, 4)
    for (const slot of [0, 1, 2]) index.insertAt(-find(index, 7, slot) - 1, slot as Slot, 7)
    expect(find(index, 7, 0)).toBe(7)
    expect(find(index, 7, 1)).toBe(0)
    expect(find(index, 7, 2)).toBe(1)
    expect(index.positionOf(2 as Slot)).toBe(1)
  })

  it('shifts later members of a probe run back when an earlier one is removed', () => {
    const index = makeIndex(8, 4)
    for (const slot of [0, 1, 2]) index.insertAt(-find(index, 6, slot) - 1, slot as Slot, 6)
    index.removeAt(find(index, 6, 0))
    expect(find(index, 6, 1)).toBe(6)
    expect(find(index, 6, 2)).toBe(7)
    expect(index.slotAt(0)).toBe(slotNone)
  })

  it('does not move an entry before its home position', () => {
    const index = makeIndex(8, 4)
    index.insertAt(-find(index, 2, 0) - 1, 0 as Slot, 2)
    index.insertAt(-find(index, 3, 1) - 1, 1 as Slot, 3)
    index.removeAt(find(index, 2, 0))
    expect(find(index, 3, 1)).toBe(3)
  })

  it('keeps every remaining entry findable through random inserts and removals', () => {
    const random = prng(testSeed('hash-index'))
    const positions = 64
    const index = makeIndex(positions, 32)
    const hashes = new Map<number, number>()
    for (let step = 0; step < 20_000; step++) {
      const slot = Math.floor(random() * 32)
      if (hashes.has(slot)) {
        index.removeAt(find(index, hashes.get(slot)!, slot))
        hashes.delete(slot)
      } else {
        // Few distinct hashes, so runs collide, cluster and wrap around.
        const hash = Math.floor(random() * 6) * 11 - 3
        index.insertAt(-find(index, hash, slot) - 1, slot as Slot, hash)
        hashes.set(slot, hash)
      }
      if (step % 97 === 0) {
        for (const [known, hash] of hashes)
          expect(find(index, hash, known)).toBeGreaterThanOrEqual(0)
        let occupied = 0
        for (let p = 0; p < positions; p++) if (index.slotAt(p) !== slotNone) occupied++
        expect(occupied).toBe(hashes.size)
      }
    }
  })
})
