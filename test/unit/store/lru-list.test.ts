import { describe, expect, it } from 'vitest'
import { I32, type Slot, slotNone } from '../../../src/store/layout.js'
import { LruList } from '../../../src/store/lru-list.js'

function makeList(slotCount: number) {
  const list = new LruList(new Int32Array(16), new Int32Array(slotCount), new Int32Array(slotCount))
  list.reset()
  return list
}

function order(list: LruList): number[] {
  const slots: number[] = []
  for (let slot = list.head; slot !== slotNone; slot = list.nextOf(slot)) slots.push(slot)
  return slots
}

function reverseOrder(list: LruList): number[] {
  const slots: number[] = []
  for (let slot = list.tail; slot !== slotNone; slot = list.prevOf(slot)) slots.push(slot)
  return slots
}

describe('LRU list', () => {
  it('hands out every slot once, then none', () => {
    const list = makeList(3)
    expect([list.allocate(), list.allocate(), list.allocate(), list.allocate()]).toEqual([
      0,
      1,
      2,
      slotNone,
    ])
  })

  it('reuses a released slot first', () => {
    const list = makeList(3)
    const a = list.allocate()
    list.allocate()
    list.release(a)
    expect(list.allocate()).toBe(a)
  })

  it('keeps the most recently pushed at the head and the oldest at the tail', () => {
    const list = makeList(4)
    for (const slot of [0, 1, 2]) list.pushFront(slot as Slot)
    expect(order(list)).toEqual([2, 1, 0])
    expect(reverseOrder(list)).toEqual([0, 1, 2])
  })

  it('moves a touched slot to the head and keeps links mutual', () => {
    const list = makeList(4)
    for (const slot of [0, 1, 2, 3]) list.pushFront(slot as Slot)
    list.moveToFront(1 as Slot)
    expect(order(list)).toEqual([1, 3, 2, 0])
    list.moveToFront(0 as Slot)
    expect(order(list)).toEqual([0, 1, 3, 2])
    expect(reverseOrder(list)).toEqual([2, 3, 1, 0])
  })

  it('unlinks from the head, the middle and the tail', () => {
    const list = makeList(4)
    for (const slot of [0, 1, 2, 3]) list.pushFront(slot as Slot)
    list.remove(3 as Slot)
    list.remove(1 as Slot)
    list.remove(0 as Slot)
    expect(order(list)).toEqual([2])
    expect(list.tail).toBe(2)
    list.remove(2 as Slot)
    expect(list.head).toBe(slotNone)
    expect(list.tail).toBe(slotNone)
  })

  it('keeps its head and tail in the shared header words', () => {
    const header = new Int32Array(16)
    const list = new LruList(header, new Int32Array(2), new Int32Array(2))
    list.reset()
    list.pushFront(1 as Slot)
    expect(header[I32.lruHead]).toBe(1)
    expect(header[I32.lruTail]).toBe(1)
  })
})
