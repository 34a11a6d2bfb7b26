import { describe, expect, it } from 'vitest'
import { valueText } from '../../../src/http/value-text.js'
import { prng, randomBytes, testSeed } from '../../support/random.js'

// A value inside JSON: text when its bytes are UTF-8 and JSON's escapes leave them no longer
// than base64; base64 otherwise. Whatever it picks, the value comes back exactly, and the text
// inside JSON is never more than base64's size (plus its quotes).

describe('valueText', () => {
  it('picks text for ordinary UTF-8, base64 for other bytes and for heavily escaped text', () => {
    expect(valueText(Buffer.from('héllo\n"world"'))).toEqual({
      value: 'héllo\n"world"',
      encoding: 'utf8',
    })
    expect(valueText(new Uint8Array([0xff, 0xfe])).encoding).toBe('base64')
    expect(valueText(new Uint8Array(3000).fill(1)).encoding).toBe('base64')
    expect(valueText(new Uint8Array(3000).fill(0x0a)).encoding).toBe('base64')
  })

  it('round-trips any bytes, and keeps the JSON text within base64 size', () => {
    const random = prng(testSeed('value text'))
    for (let i = 0; i < 2000; i++) {
      const size = Math.floor(random() * 64)
      // Mostly printable, some control characters, quotes and backslashes: both sides of the line.
      const bytes = randomBytes(random, size).map((byte) =>
        random() < 0.7 ? 0x20 + (byte % 95) : random() < 0.5 ? byte % 0x20 : byte,
      )
      const { value, encoding } = valueText(bytes)
      expect(Buffer.from(value, encoding).equals(Buffer.from(bytes))).toBe(true)
      const base64 = 4 * Math.ceil(size / 3)
      expect(Buffer.byteLength(JSON.stringify(value)) - 2).toBeLessThanOrEqual(base64)
    }
  })
})
