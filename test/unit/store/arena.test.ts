import { describe, expect, it } from 'vitest'
import { Arena } from '../../../src/store/arena.js'
import { createViews, recordHeaderSize, type Slot } from '../../../src/store/layout.js'
import { prng, testSeed } from '../../support/random.js'

/** An arena over a real layout; the tests play the store's part of setting sizes first. */
function makeArena(entryCountMax: number, memorySizeMax: number, headroomPerMille = 0) {
  const views = createViews({
    entryCountMax,
    memorySizeMax,
    keySizeMax: 64,
    valueSizeMax: memorySizeMax,
    headroomPerMille,
  })
  const arena = new Arena(views.headerF64, views.arena, views.loc, views.keySizes, views.valueSizes)
  arena.reset()
  const live = new Map<Slot, number>() // slot → payload size
  const place = (slot: Slot, keySize: number, valueSize: number) => {
    views.keySizes[slot] = keySize
    views.valueSizes[slot] = valueSize
    const offset = arena.allocate(slot)
    // Every payload byte names its owner, so a record moved wrong or overwritten shows.
    views.arena.fill(slot + 1, offset, offset + keySize + valueSize)
    live.set(slot, keySize + valueSize)
  }
  const free = (slot: Slot) => {
    arena.free(slot)
    live.delete(slot)
  }
  const check = () => {
    for (const [slot, size] of live) {
      const offset = arena.keyOffset(slot)
      const payload = views.arena.subarray(offset, offset + size)
      expect(
        payload.every((byte) => byte === slot + 1),
        `payload of slot ${slot}`,
      ).toBe(true)
    }
  }
  return { arena, views, place, free, check, live }
}

describe('arena', () => {
  it('appends records one after another, each behind its 4-byte owner header', () => {
    const { arena, place } = makeArena(4, 40)
    place(0 as Slot, 2, 3)
    place(1 as Slot, 1, 1)
    expect(arena.keyOffset(0 as Slot)).toBe(recordHeaderSize)
    expect(arena.keyOffset(1 as Slot)).toBe(2 * recordHeaderSize + 5)
    expect(arena.readHeader(0)).toBe(0)
    expect(arena.used).toBe(2 * recordHeaderSize + 7)
  })

  it('marks a freed record dead with minus its size', () => {
    const { arena, place, free } = makeArena(4, 40)
    place(0 as Slot, 2, 3)
    free(0 as Slot)
    expect(arena.readHeader(0)).toBe(-(recordHeaderSize + 5))
  })

  it('compacts live records when the free space is scattered between them', () => {
    // 4 entries × (4 + 10) bytes fill the arena exactly; freeing two leaves two 14-byte holes,
    // and a 20-byte payload fits only once the cleaner has slid the live records together.
    const { arena, place, free, check, live } = makeArena(4, 40)
    for (const slot of [0, 1, 2, 3]) place(slot as Slot, 2, 8)
    expect(arena.used).toBe(arena.size)
    free(0 as Slot)
    free(2 as Slot)
    place(0 as Slot, 4, 20)
    check()
    expect([...live.keys()].sort()).toEqual([0, 1, 3])
  })

  it('pads the end of the buffer and wraps rather than splitting a record', () => {
    const { arena, place, free, check } = makeArena(4, 40)
    place(0 as Slot, 1, 19) // 24 bytes at 0
    place(1 as Slot, 1, 19) // 24 bytes at 24; 8 bytes remain before the end (56)
    free(0 as Slot)
    place(2 as Slot, 1, 11) // 16 bytes: the 8 at the end become padding, the record goes to 0
    expect(arena.keyOffset(2 as Slot)).toBe(recordHeaderSize)
    check()
  })

  it('never fails an allocation that fits, and never corrupts a payload, under random churn', () => {
    const random = prng(testSeed('arena'))
    for (const headroom of [0, 50]) {
      const entryCountMax = 16
      const memorySizeMax = 300
      const { arena, place, free, check, live } = makeArena(entryCountMax, memorySizeMax, headroom)
      const free_ = [...Array(entryCountMax).keys()] as Slot[]
      let liveBytes = 0
      for (let step = 0; step < 20_000; step++) {
        const keySize = 1 + Math.floor(random() * 8)
        const valueSize = Math.floor(random() * 60)
        // Free random records until the new one fits the limits, as the store's eviction would.
        while (
          free_.length === 0 ||
          liveBytes + keySize + valueSize > memorySizeMax ||
          (live.size > 0 && random() < 0.3)
        ) {
          const victims = [...live.keys()]
          const victim = victims[Math.floor(random() * victims.length)]!
          liveBytes -= live.get(victim)!
          free(victim)
          free_.push(victim)
        }
        const slot = free_.splice(Math.floor(random() * free_.length), 1)[0]!
        place(slot, keySize, valueSize)
        liveBytes += keySize + valueSize
        if (step % 50 === 0) check()
      }
      check()
      expect(arena.used).toBeLessThanOrEqual(arena.size)
    }
  })
})
