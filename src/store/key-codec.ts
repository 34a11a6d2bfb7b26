// Keys arrive as JavaScript strings and live in the arena as UTF-8 bytes. Encoding every key
// with TextEncoder on every lookup is the cost a naive shared-buffer table pays (it halves
// throughput), so the common case never calls it: one pass over a pure-ASCII key's code units
// packs them, four to a word, into the same little-endian 32-bit words its UTF-8 bytes make, and
// hashes the words as it goes. Only a key with a code unit ≥ 0x80 is encoded with TextEncoder
// (and then hashed from its bytes, to the same hash).
//
// A KeyProbe holds those words, so comparing a stored key and writing a new one each move four
// bytes per step (a DataView reads the arena's unaligned words) instead of one code unit: for a
// 16-byte key, 4 steps instead of 16, in the hash, the comparison and the write alike.

const encoder = new TextEncoder()
// ignoreBOM: a key that begins with U+FEFF keeps it (TextDecoder drops a leading BOM otherwise).
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** A key prepared for lookup: its UTF-8 bytes, packed into words, and its size. */
export class KeyProbe {
  /**
   * The key's bytes as little-endian 32-bit words (the host's order too: layout.ts refuses a
   * big-endian host); the bytes past `size` in the last word are 0.
   */
  readonly words: Int32Array
  /** The same memory as bytes. */
  readonly bytes: Uint8Array
  /** The largest key, in bytes, the probe holds. */
  readonly capacity: number
  /** The probed key's UTF-8 size in bytes. */
  size = 0

  constructor(capacity: number) {
    const buffer = new ArrayBuffer(Math.ceil(capacity / 4) * 4)
    this.words = new Int32Array(buffer)
    this.bytes = new Uint8Array(buffer)
    this.capacity = capacity
  }
}

/** murmur3's block step: mixes one 32-bit word into the running hash. */
function mixWord(hash: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51)
  k = (k << 15) | (k >>> 17)
  let h = hash ^ Math.imul(k, 0x1b873593)
  h = (h << 13) | (h >>> 19)
  return (Math.imul(h, 5) + 0xe6546b64) | 0
}

/** murmur3's finalizer, so the low bits the index masks with depend on every input bit. */
function finishHash(hash: number, size: number): number {
  let h = hash ^ size
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h
}

/**
 * Fills `probe` with `key` and returns the key's hash, or undefined when the key could never be
 * stored: over `probe.capacity` bytes, or not well-formed UTF-16 (a lone surrogate has no UTF-8).
 *
 * The hash is murmur3's mixing over the UTF-8 bytes as little-endian words, the last one padded
 * with zeros, then the size. The per-store random seed keeps a client from precomputing keys that
 * collide in every store; it is not a keyed PRF, so it raises the bar rather than closing the
 * door on hash flooding.
 */
export function probeKey(key: string, seed: number, probe: KeyProbe): number | undefined {
  const length = key.length
  if (length > probe.capacity) return undefined
  const words = probe.words
  let hash = seed | 0
  // Every code unit ORed together: under 0x80 exactly when the key is ASCII.
  let all = 0
  let w = 0
  let i = 0
  for (; i + 4 <= length; i += 4) {
    const c0 = key.charCodeAt(i)
    const c1 = key.charCodeAt(i + 1)
    const c2 = key.charCodeAt(i + 2)
    const c3 = key.charCodeAt(i + 3)
    all |= c0 | c1 | c2 | c3
    const word = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24)
    words[w++] = word
    hash = mixWord(hash, word)
  }
  if (i < length) {
    let word = 0
    for (let shift = 0; i < length; i++, shift += 8) {
      const c = key.charCodeAt(i)
      all |= c
      word |= c << shift
    }
    words[w] = word
    hash = mixWord(hash, word)
  }
  if (all < 0x80) {
    probe.size = length
    return finishHash(hash, length)
  }
  return probeEncoded(key, seed, probe)
}

/** The path of a key with a code unit ≥ 0x80: encode it, then hash its bytes. */
function probeEncoded(key: string, seed: number, probe: KeyProbe): number | undefined {
  const size = utf8Size(key)
  if (size > probe.capacity || !key.isWellFormed()) return undefined
  encoder.encodeInto(key, probe.bytes)
  const wordCount = Math.ceil(size / 4)
  // Zero the last word's padding, as the ASCII path leaves it.
  probe.bytes.fill(0, size, wordCount * 4)
  probe.size = size
  let hash = seed | 0
  for (let w = 0; w < wordCount; w++) hash = mixWord(hash, probe.words[w]!)
  return finishHash(hash, size)
}

/** True when the `probe.size` bytes at `offset` of `view` are the probed key's. */
export function probeEquals(probe: KeyProbe, view: DataView, offset: number): boolean {
  const words = probe.words
  const size = probe.size
  const wordCount = size >>> 2
  for (let w = 0; w < wordCount; w++) {
    if (view.getInt32(offset + w * 4, true) !== words[w]) return false
  }
  const bytes = probe.bytes
  for (let i = wordCount * 4; i < size; i++) {
    if (view.getUint8(offset + i) !== bytes[i]) return false
  }
  return true
}

/** Writes the probed key's `probe.size` bytes at `offset` of `view`. */
export function writeProbe(probe: KeyProbe, view: DataView, offset: number): void {
  const words = probe.words
  const size = probe.size
  const wordCount = size >>> 2
  for (let w = 0; w < wordCount; w++) view.setInt32(offset + w * 4, words[w]!, true)
  const bytes = probe.bytes
  for (let i = wordCount * 4; i < size; i++) view.setUint8(offset + i, bytes[i]!)
}

const hashProbe = new KeyProbe(0xffff)

/** The hash probeKey gives `key` (for checks that start from a decoded key). */
export function hashKey(key: string, seed: number): number | undefined {
  return probeKey(key, seed, hashProbe)
}

/**
 * UTF-8 byte size of a well-formed string, without encoding it. Each surrogate counts one byte
 * beyond its code unit, so a pair counts 4; a lone surrogate also makes the size differ from the
 * length, which is what sends callers on to check well-formedness.
 */
export function utf8Size(text: string): number {
  let size = text.length
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) size += c < 0x800 ? 1 : c >= 0xd800 && c <= 0xdfff ? 1 : 2
  }
  return size
}

export function bytesEqual(a: Uint8Array, b: Uint8Array, bOffset: number, size: number): boolean {
  for (let i = 0; i < size; i++) {
    if (a[i] !== b[bOffset + i]) return false
  }
  return true
}

/** Why a key cannot be stored. */
export type KeyRefusal = 'key_empty' | 'key_too_large' | 'key_invalid'

/** Why `key` would be refused under a key size limit of `keySizeMax` bytes, or undefined. */
export function keyRefusal(key: string, keySizeMax: number): KeyRefusal | undefined {
  if (key.length === 0) return 'key_empty'
  // A UTF-16 code unit is at most 3 UTF-8 bytes, and at least 1.
  if (key.length > keySizeMax) return 'key_too_large'
  const size = utf8Size(key)
  if (size !== key.length && !key.isWellFormed()) return 'key_invalid'
  if (size > keySizeMax) return 'key_too_large'
  return undefined
}

/** Decodes stored key bytes. Short ASCII keys skip TextDecoder, whose call overhead dominates them. */
export function decodeKey(bytes: Uint8Array, offset: number, size: number): string {
  if (size <= 64) {
    let ascii = true
    for (let i = 0; i < size; i++) {
      if (bytes[offset + i]! > 0x7f) {
        ascii = false
        break
      }
    }
    if (ascii)
      return String.fromCharCode.apply(null, bytes.subarray(offset, offset + size) as never)
  }
  // TextDecoder refuses views of a SharedArrayBuffer, so the bytes are copied out first.
  return decoder.decode(bytes.slice(offset, offset + size))
}

export function encodeKey(text: string): Uint8Array {
  return encoder.encode(text)
}
