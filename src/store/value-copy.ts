// Values leave the shared buffer by copy: once the lock is released the arena may move or reuse
// their bytes. The copy is most of what a get costs beyond the lookup, so it is made cheap.
//
// Small values are carved out of a thread-private chunk, the way Node's Buffer.allocUnsafe uses
// its pool, but as plain Uint8Arrays: measured here (100-byte values, one thread), constructing a
// Buffer (a Uint8Array subclass) cost more than the memcpy, and a chunk 8 times larger than
// Node's pool pays for one ArrayBuffer allocation per ~600 values instead of per ~80.
//
// The bytes move as 32-bit words, read through a DataView (the value's offset in the arena is
// unaligned) and written to the chunk's Int32Array (every value starts 8-byte aligned there).
// That beats TypedArray.prototype.set, which V8 runs as a byte-at-a-time relaxed-atomic copy when
// the source is a SharedArrayBuffer: measured here, 100 bytes 118 → 58 ns and 1,000 bytes
// 560 → 330 ns with the view construction, a copy made, included.
//
// The price is the pool's: a value kept alive keeps its whole chunk alive. A server holds a value
// until its response is written, so a chunk lives about as long as the requests it served.

const chunkSize = 64 * 1024
/** Larger values get an ArrayBuffer of their own, so one of them never pins a chunk. */
const pooledSizeMax = 4 * 1024

let chunk = new ArrayBuffer(chunkSize)
let chunkWords = new Int32Array(chunk)
let chunkBytes = new Uint8Array(chunk)
let chunkUsed = 0

/** A private copy of the `size` bytes of `source` from `offset`. */
export function copyValue(source: DataView, offset: number, size: number): Uint8Array {
  if (size > pooledSizeMax) {
    const target = new ArrayBuffer(size)
    const bytes = new Uint8Array(target)
    copyWords(source, offset, size, new Int32Array(target, 0, size >>> 2), bytes, 0)
    return bytes
  }
  if (chunkUsed + size > chunkSize) {
    chunk = new ArrayBuffer(chunkSize)
    chunkWords = new Int32Array(chunk)
    chunkBytes = new Uint8Array(chunk)
    chunkUsed = 0
  }
  const start = chunkUsed
  // 8-byte aligned, as Node aligns its pool, so a caller may lay a wider typed array over it.
  chunkUsed = (start + size + 7) & ~7
  copyWords(source, offset, size, chunkWords, chunkBytes, start)
  return new Uint8Array(chunk, start, size)
}

/**
 * Copies `size` bytes from `source` at `offset` into the target, whose words and bytes are two
 * views of one buffer, at `start`, a multiple of 4. The DataView reads little-endian words and
 * the Int32Array stores them in the host's order, which layout.ts requires to be little-endian.
 */
function copyWords(
  source: DataView,
  offset: number,
  size: number,
  words: Int32Array,
  bytes: Uint8Array,
  start: number,
): void {
  let w = start >>> 2
  let o = offset
  // Four words a step: the unrolled loop measured ~1.5× faster than one word a step.
  for (const end = offset + (size & ~15); o < end; o += 16, w += 4) {
    words[w] = source.getInt32(o, true)
    words[w + 1] = source.getInt32(o + 4, true)
    words[w + 2] = source.getInt32(o + 8, true)
    words[w + 3] = source.getInt32(o + 12, true)
  }
  for (let i = o - offset; i < size; i++) bytes[start + i] = source.getUint8(offset + i)
}
