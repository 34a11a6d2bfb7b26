// Keys arrive as JavaScript strings and live in the arena as UTF-8 bytes. Encoding every key
// with TextEncoder on every lookup is the cost a naive shared-buffer table pays (it halves
// throughput), so the common case never encodes: one pass over the string's code units yields
// the hash and tells whether the key is pure ASCII, in which case its UTF-8 bytes are its code
// units and comparison and copying work on the string directly. Only non-ASCII keys take the
// TextEncoder path.
//
// The hash is defined over UTF-16 code units, not bytes. That is well defined because a key
// must be well-formed UTF-16 (no lone surrogates), which makes strings and their UTF-8 bytes a
// one-to-one mapping: verify.ts decodes the stored bytes and re-hashes the string.

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** Where hashKey leaves the key's UTF-8 size, so one pass yields both without allocating. */
export interface KeySizeOut {
  size: number
}
const sizeScratch: KeySizeOut = { size: 0 }

/**
 * FNV-1a over code units, seeded, then murmur3's finalizer so the low bits the index masks with
 * depend on every input bit. The per-store random seed keeps a client from precomputing keys
 * that collide in every store; it is not a keyed PRF, so it raises the bar rather than closing
 * the door on hash flooding.
 *
 * The same pass counts the key's UTF-8 size into `out` (as utf8Size does): the lookup path needs
 * both, and one loop over the string is measurably cheaper than two.
 */
export function hashKey(key: string, seed: number, out: KeySizeOut = sizeScratch): number {
  let h = (0x811c9dc5 ^ seed) | 0
  let size = key.length
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    h = Math.imul(h ^ c, 0x01000193)
    if (c >= 0x80) size += c < 0x800 ? 1 : c >= 0xd800 && c <= 0xdfff ? 1 : 2
  }
  out.size = size
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h
}

/** True when every code unit is below 0x80, so the UTF-8 bytes are the code units themselves. */
export function isAscii(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    if (key.charCodeAt(i) > 0x7f) return false
  }
  return true
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

/** Encodes into `target` at `offset`; the caller has sized the room with utf8Size. */
export function encodeInto(text: string, target: Uint8Array, offset: number): void {
  encoder.encodeInto(text, target.subarray(offset))
}

/** Copies an ASCII string's code units as bytes: faster than TextEncoder for short keys. */
export function writeAscii(text: string, target: Uint8Array, offset: number): void {
  for (let i = 0; i < text.length; i++) target[offset + i] = text.charCodeAt(i)
}

/** True when the ASCII string equals the bytes at target[offset, offset + text.length). */
export function asciiEquals(text: string, bytes: Uint8Array, offset: number): boolean {
  for (let i = 0; i < text.length; i++) {
    if (bytes[offset + i] !== text.charCodeAt(i)) return false
  }
  return true
}

export function bytesEqual(a: Uint8Array, b: Uint8Array, bOffset: number, size: number): boolean {
  for (let i = 0; i < size; i++) {
    if (a[i] !== b[bOffset + i]) return false
  }
  return true
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
