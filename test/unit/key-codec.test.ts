import { describe, expect, it } from 'vitest'
import {
  asciiEquals,
  decodeKey,
  encodeKey,
  hashKey,
  isAscii,
  utf8Size,
} from '../../src/store/key-codec.js'
import { prng, testSeed } from '../support/seed.js'

const samples = ['a', 'key:0001', 'é', '€uro', '😀', 'a/b c%2F', 'mixed-ü-😀-z', 'x'.repeat(300)]

describe('key codec', () => {
  it('computes the UTF-8 size of well-formed strings without encoding them', () => {
    for (const text of samples) expect(utf8Size(text), text).toBe(encodeKey(text).length)
  })

  it('agrees with TextEncoder on random well-formed strings', () => {
    const random = prng(testSeed('key-codec'))
    const alphabet = ['a', 'Z', '~', 'é', 'ß', '€', '中', '😀', '𝄞']
    for (let run = 0; run < 2000; run++) {
      let text = ''
      const length = Math.floor(random() * 12)
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)]
      expect(utf8Size(text)).toBe(encodeKey(text).length)
      expect(decodeKey(encodeKey(text), 0, utf8Size(text))).toBe(text)
    }
  })

  it('never reports a string with a lone surrogate as ASCII-sized', () => {
    for (const text of ['\ud800', 'a\udc00', '\ud83dx']) {
      expect(utf8Size(text)).not.toBe(text.length)
      expect(text.isWellFormed()).toBe(false)
    }
  })

  it('tells ASCII from non-ASCII', () => {
    expect(isAscii('key:0001')).toBe(true)
    expect(isAscii('é')).toBe(false)
    expect(isAscii('\u007f')).toBe(true)
    expect(isAscii('\u0080')).toBe(false)
  })

  it('hashes deterministically per seed and differently across seeds', () => {
    expect(hashKey('key:0001', 7)).toBe(hashKey('key:0001', 7))
    expect(hashKey('key:0001', 7)).not.toBe(hashKey('key:0001', 8))
    expect(hashKey('key:0001', 7)).not.toBe(hashKey('key:0002', 7))
  })

  it('spreads sequential keys evenly over the low bits the index masks with', () => {
    const buckets = new Array<number>(256).fill(0)
    for (let i = 0; i < 256 * 64; i++) buckets[hashKey(`key:${i}`, 1) & 255]! += 1
    // 64 expected per bucket; a weak hash over sequential keys piles them into few buckets.
    expect(Math.max(...buckets)).toBeLessThan(110)
    expect(Math.min(...buckets)).toBeGreaterThan(30)
  })

  it('compares an ASCII string with stored bytes', () => {
    const bytes = new Uint8Array([0, 107, 101, 121, 0])
    expect(asciiEquals('key', bytes, 1)).toBe(true)
    expect(asciiEquals('kez', bytes, 1)).toBe(false)
  })

  it('decodes keys stored in a SharedArrayBuffer', () => {
    const shared = new Uint8Array(new SharedArrayBuffer(64))
    const encoded = encodeKey('ключ-😀')
    shared.set(encoded, 3)
    expect(decodeKey(shared, 3, encoded.length)).toBe('ключ-😀')
    shared.set(encodeKey('plain'), 20)
    expect(decodeKey(shared, 20, 5)).toBe('plain')
  })
})
