import { describe, expect, it } from 'vitest'
import { ExpiryHeap } from '../../../src/store/expiry-heap.js'
import { type Slot, slotNone } from '../../../src/store/layout.js'
import { prng, testSeed } from '../../support/random.js'

function makeHeap(slotCount: number) {
  const expiresAt = new Float64Array(slotCount)
  const heap = new ExpiryHeap(
    new Int32Array(16),
    new Int32Array(slotCount),
    new Int32Array(slotCount),
    expiresAt,
  )
  heap.reset()
  return { heap, expiresAt }
}

describe('expiry heap', () => {
  it('is empty after reset', () => {
    const { heap } = makeHeap(4)
    expect(heap.size).toBe(0)
    expect(heap.peek()).toBe(slotNone)
    expect(heap.has(0 as Slot)).toBe(false)
  })

  it('yields slots in expiry order', () => {
    const { heap, expiresAt } = makeHeap(8)
    const times = [50, 10, 40, 30, 20]
    times.forEach((time, slot) => {
      expiresAt[slot] = time
      heap.add(slot as Slot)
    })
    const popped: number[] = []
    while (heap.size > 0) {
      const slot = heap.peek()
      popped.push(expiresAt[slot]!)
      heap.remove(slot)
    }
    expect(popped).toEqual([10, 20, 30, 40, 50])
  })

  it('reorders a slot whose expiry changed', () => {
    const { heap, expiresAt } = makeHeap(4)
    for (const slot of [0, 1, 2]) {
      expiresAt[slot] = 10 * (slot + 1)
      heap.add(slot as Slot)
    }
    expiresAt[2] = 1
    heap.update(2 as Slot)
    expect(heap.peek()).toBe(2)
    expiresAt[2] = 99
    heap.update(2 as Slot)
    expect(heap.peek()).toBe(0)
  })

  it('matches a sorted model through random adds, updates and removals', () => {
    const random = prng(testSeed('expiry-heap'))
    const { heap, expiresAt } = makeHeap(64)
    const model = new Map<number, number>()
    for (let step = 0; step < 20_000; step++) {
      const slot = Math.floor(random() * 64) as Slot
      const action = random()
      if (!model.has(slot)) {
        expiresAt[slot] = Math.floor(random() * 1000)
        heap.add(slot)
        model.set(slot, expiresAt[slot]!)
      } else if (action < 0.5) {
        heap.remove(slot)
        model.delete(slot)
      } else {
        expiresAt[slot] = Math.floor(random() * 1000)
        heap.update(slot)
        model.set(slot, expiresAt[slot]!)
      }
      expect(heap.size).toBe(model.size)
      if (model.size > 0) expect(expiresAt[heap.peek()]).toBe(Math.min(...model.values()))
    }
  })
})
