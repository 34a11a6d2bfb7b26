// Values leave the shared buffer by copy: once the lock is released the arena may move or reuse
// their bytes. The copy is most of what a get costs beyond the lookup, so it is made cheap.
//
// Small values are carved out of a thread-private chunk, the way Node's Buffer.allocUnsafe uses
// its pool, but as plain Uint8Arrays: measured here (100-byte values, one thread), constructing a
// Buffer (a Uint8Array subclass) cost more than the memcpy, and a chunk 8 times larger than
// Node's pool pays for one ArrayBuffer allocation per ~600 values instead of per ~80. In
// `npm run bench:store` (fresh keys, 100,000 entries) get went from 0.73–0.74× lru-cache to
// 0.76–0.88× across invocations on this shared machine.
//
// The price is the pool's: a value kept alive keeps its whole chunk alive. A server holds a value
// until its response is written, so a chunk lives about as long as the requests it served.

const chunkSize = 64 * 1024
/** Larger values get an ArrayBuffer of their own, so one of them never pins a chunk. */
const pooledSizeMax = 4 * 1024

let chunk = new ArrayBuffer(chunkSize)
let chunkBytes = new Uint8Array(chunk)
let chunkUsed = 0

/** A private copy of `size` bytes of `buffer` from `offset`. */
export function copyValue(buffer: SharedArrayBuffer, offset: number, size: number): Uint8Array {
  const source = new Uint8Array(buffer, offset, size)
  if (size > pooledSizeMax) return source.slice()
  if (chunkUsed + size > chunkSize) {
    chunk = new ArrayBuffer(chunkSize)
    chunkBytes = new Uint8Array(chunk)
    chunkUsed = 0
  }
  const start = chunkUsed
  // 8-byte aligned, as Node aligns its pool, so a caller may lay a wider typed array over it.
  chunkUsed = (start + size + 7) & ~7
  chunkBytes.set(source, start)
  return new Uint8Array(chunk, start, size)
}
