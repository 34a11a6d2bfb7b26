import { describe, expect, it } from 'vitest'
import { copyValue } from '../../../src/store/value-copy.js'

describe('copyValue', () => {
  const shared = new SharedArrayBuffer(64 * 1024)
  const bytes = new Uint8Array(shared)
  const view = new DataView(shared)
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 255

  it('returns private bytes that later writes to the shared buffer do not reach', () => {
    // Sizes around the 4-byte words and 16-byte steps the copy moves, and around the pool's limit.
    for (const size of [0, 1, 3, 4, 5, 15, 16, 17, 100, 4096, 4097, 20_000]) {
      const expected = bytes.slice(13, 13 + size)
      const copy = copyValue(view, 13, size)
      expect(copy.buffer).not.toBe(shared)
      expect(copy.buffer instanceof SharedArrayBuffer).toBe(false)
      expect(copy).toEqual(expected)
      bytes.fill(0xee, 13, 13 + size)
      expect(copy).toEqual(expected)
      for (let i = 13; i < 13 + size; i++) bytes[i] = (i * 7) & 255
    }
  })

  it('never hands out overlapping bytes, across chunk boundaries too', () => {
    // 3,000 copies of 100 bytes cross several 64 KiB chunks; each is stamped after it is taken,
    // so a copy that shares bytes with another would be overwritten by it.
    const copies = Array.from({ length: 3000 }, (_, n) => {
      const copy = copyValue(view, n, 100)
      copy.fill(n & 255)
      return copy
    })
    copies.forEach((copy, n) => {
      expect(copy.byteLength).toBe(100)
      expect(copy.every((byte) => byte === (n & 255))).toBe(true)
      expect(copy.byteOffset % 8).toBe(0)
    })
  })

  it('reads from where the view starts, not from the start of the buffer', () => {
    const window = new DataView(shared, 1001, 500)
    for (const [offset, size] of [
      [0, 37],
      [7, 100],
      [463, 37],
    ] as const) {
      expect(copyValue(window, offset, size)).toEqual(
        bytes.slice(1001 + offset, 1001 + offset + size),
      )
    }
    expect(() => copyValue(window, 480, 37)).toThrow(RangeError)
  })
})
