import { describe, expect, it } from 'vitest'
import {
  decodeKey,
  encodeKey,
  hashKey,
  KeyProbe,
  probeEquals,
  probeKey,
  utf8Size,
  writeProbe,
} from '../../../src/store/key-codec.js'
import { prng, testSeed } from '../../support/random.js'

const samples = ['a', 'key:0001', 'é', '€uro', '😀', 'a/b c%2F', 'mixed-ü-😀-z', 'x'.repeat(300)]

const alphabet = ['a', 'Z', '~', 'é', 'ß', '€', '中', '😀', '𝄞']

function randomKey(random: () => number): string {
  let text = ''
  const length = Math.floor(random() * 12)
  for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)]
  return text
}

/**
 * The hash as key-codec.ts defines it, written out from that definition over the bytes alone:
 * murmur3's block mixing over the little-endian words, the last zero-padded, then the size and
 * murmur3's finalizer. verify.ts and every thread rely on each path of probeKey agreeing with it.
 */
function referenceHash(bytes: Uint8Array, seed: number): number {
  let h = seed | 0
  for (let i = 0; i < bytes.length; i += 4) {
    let k = 0
    for (let j = 0; j < 4 && i + j < bytes.length; j++) k |= bytes[i + j]! << (8 * j)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    h ^= Math.imul(k, 0x1b873593)
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  h ^= bytes.length
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return h ^ (h >>> 16)
}

describe('key codec', () => {
  it('computes the UTF-8 size of well-formed strings without encoding them', () => {
    for (const text of samples) expect(utf8Size(text), text).toBe(encodeKey(text).length)
  })

  it('agrees with TextEncoder on random well-formed strings', () => {
    const random = prng(testSeed('key-codec'))
    for (let run = 0; run < 2000; run++) {
      const text = randomKey(random)
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

  it('hashes deterministically per seed and differently across seeds', () => {
    expect(hashKey('key:0001', 7)).toBe(hashKey('key:0001', 7))
    expect(hashKey('key:0001', 7)).not.toBe(hashKey('key:0001', 8))
    expect(hashKey('key:0001', 7)).not.toBe(hashKey('key:0002', 7))
  })

  it('spreads sequential keys evenly over the low bits the index masks with', () => {
    const buckets = new Array<number>(256).fill(0)
    for (let i = 0; i < 256 * 64; i++) buckets[hashKey(`key:${i}`, 1)! & 255]! += 1
    // 64 expected per bucket; a weak hash over sequential keys piles them into few buckets.
    expect(Math.max(...buckets)).toBeLessThan(110)
    expect(Math.min(...buckets)).toBeGreaterThan(30)
  })

  it('probes a key into its UTF-8 bytes, zero-padded to whole words, on both paths', () => {
    const random = prng(testSeed('key-probe'))
    const probe = new KeyProbe(64)
    for (let run = 0; run < 2000; run++) {
      const text = randomKey(random)
      const hash = probeKey(text, 5, probe)
      const encoded = encodeKey(text)
      expect(probe.size, text).toBe(encoded.length)
      const padded = new Uint8Array(Math.ceil(encoded.length / 4) * 4)
      padded.set(encoded)
      expect(probe.bytes.subarray(0, padded.length), text).toEqual(padded)
      expect(hash, text).toBe(referenceHash(encoded, 5))
    }
  })

  it('refuses keys over the capacity in bytes, and lone surrogates', () => {
    const probe = new KeyProbe(6)
    expect(probeKey('abcdef', 0, probe)).toBeTypeOf('number')
    expect(probeKey('abcdefg', 0, probe)).toBeUndefined()
    expect(probeKey('ab€', 0, probe)).toBeTypeOf('number') // 5 bytes
    expect(probeKey('abc€', 0, probe)).toBeTypeOf('number') // 6 bytes
    expect(probeKey('abcd€', 0, probe)).toBeUndefined() // 7 bytes in 5 code units
    for (const text of ['\ud800', 'a\udc00', '\ud83dx']) {
      expect(probeKey(text, 0, probe), JSON.stringify(text)).toBeUndefined()
    }
  })

  it('compares a probed key with stored bytes at any offset, byte by byte', () => {
    const shared = new SharedArrayBuffer(64)
    const view = new DataView(shared)
    const bytes = new Uint8Array(shared)
    const probe = new KeyProbe(32)
    for (const text of ['k', 'key', 'key:', 'key:0001', 'key:00001', 'ключ-😀']) {
      const encoded = encodeKey(text)
      for (const offset of [0, 1, 3, 5]) {
        bytes.fill(0x55)
        probeKey(text, 0, probe)
        writeProbe(probe, view, offset)
        expect(bytes.subarray(offset, offset + encoded.length), text).toEqual(encoded)
        // Not a byte beyond the key's own is written.
        expect(bytes.subarray(0, offset).every((b) => b === 0x55)).toBe(true)
        expect(bytes.subarray(offset + encoded.length).every((b) => b === 0x55)).toBe(true)
        expect(probeEquals(probe, view, offset), text).toBe(true)
        for (let i = 0; i < encoded.length; i++) {
          bytes[offset + i]! ^= 1
          expect(probeEquals(probe, view, offset), `${text}, byte ${i}`).toBe(false)
          bytes[offset + i]! ^= 1
        }
      }
    }
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
