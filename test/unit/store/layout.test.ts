import { describe, expect, it } from 'vitest'
import {
  attachViews,
  computeLayout,
  createViews,
  nextPowerOfTwo,
  recordHeaderSize,
  type StoreLimits,
} from '../../../src/store/layout.js'

const limits: StoreLimits = {
  entryCountMax: 1000,
  memorySizeMax: 50_000,
  keySizeMax: 100,
  valueSizeMax: 4096,
  headroomPerMille: 16,
}

describe('layout', () => {
  it('sizes the hash index as a power of two at least twice the entry limit', () => {
    expect(computeLayout(limits).indexSlotCount).toBe(2048)
    expect(computeLayout({ ...limits, entryCountMax: 1024 }).indexSlotCount).toBe(2048)
    expect(computeLayout({ ...limits, entryCountMax: 1025 }).indexSlotCount).toBe(4096)
    expect(nextPowerOfTwo(1)).toBe(1)
    expect(nextPowerOfTwo(3)).toBe(4)
  })

  it('sizes the arena for the byte limit, one header per entry and the headroom', () => {
    const layout = computeLayout(limits)
    expect(layout.arenaSize).toBe(50_000 + recordHeaderSize * 1000 + 800)
  })

  it('starts every typed array on its natural alignment', () => {
    const layout = computeLayout({ ...limits, entryCountMax: 7, memorySizeMax: 13 })
    const views = createViews({ ...limits, entryCountMax: 7, memorySizeMax: 13 })
    for (const [name, offset] of Object.entries(layout.offsets)) {
      const view = views[name as keyof typeof views] as ArrayBufferView & {
        BYTES_PER_ELEMENT: number
      }
      expect(offset % view.BYTES_PER_ELEMENT, name).toBe(0)
      expect(view.byteOffset, name).toBe(offset)
    }
  })

  it('lays no two arrays over the same bytes', () => {
    const views = createViews(limits)
    const ranges = Object.values(views)
      // The arena's DataView is a second view of the arena, checked below.
      .filter((view): view is Uint8Array => ArrayBuffer.isView(view) && !(view instanceof DataView))
      .map((view) => [view.byteOffset, view.byteOffset + view.byteLength] as const)
      .sort((a, b) => a[0] - b[0])
    for (let i = 1; i < ranges.length; i++)
      expect(ranges[i]![0]).toBeGreaterThanOrEqual(ranges[i - 1]![1])
    expect(ranges.at(-1)![1]).toBe(views.buffer.byteLength)
    expect([views.arenaView.byteOffset, views.arenaView.byteLength]).toEqual([
      views.arena.byteOffset,
      views.arena.byteLength,
    ])
  })

  it('rebuilds the same layout from the header when another thread attaches', () => {
    const views = createViews(limits)
    const attached = attachViews(views.buffer)
    expect(attached.layout).toEqual(views.layout)
  })

  it('refuses a buffer that is not a slabkv store', () => {
    expect(() => attachViews(new SharedArrayBuffer(4096))).toThrow(/not a slabkv buffer/)
  })

  it('refuses limits it cannot honour, naming the bound', () => {
    expect(() => computeLayout({ ...limits, entryCountMax: 0 })).toThrow(/entryCountMax/)
    expect(() => computeLayout({ ...limits, keySizeMax: 70_000 })).toThrow(/keySizeMax/)
    expect(() => computeLayout({ ...limits, memorySizeMax: 2 ** 32 })).toThrow(/arena/)
    expect(() => computeLayout({ ...limits, headroomPerMille: -1 })).toThrow()
  })
})
