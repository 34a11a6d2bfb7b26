import { accessRingCapacity, F64, I32, type Views } from './layout.js'

// The sampled accesses the miss-ratio curve is computed from (src/mrc/), on their way from every
// handler thread to the main thread. SHARDS (Waldspurger et al., FAST '15) samples by key: an
// access is kept when its key's sampling hash is below a threshold, so a sampled key has all of
// its accesses kept and its reuse distances stay exact within the sample.
//
// Writers append under the store lock, which the operation already holds, so there is one writer
// at a time and no compare-and-swap: two plain word writes and one Atomics.store publish a record.
// The one reader is the main thread, which never takes the lock. A full ring drops the access
// and counts it (F64.accessDropped) instead of making anyone wait.
//
// A record is two i32 words: the key's sampling hash, and what happened:
//   > 0          a get found the entry; its size (key + value bytes)
//   0            a get found nothing (the size is the one the key had when last seen)
//   < 0, ≠ min   a set; minus the new entry's size
//   int32 min    a delete or an expiry took the key away
//   int32 min+1  a clear took every key away (the hash word is 0)
// Head and tail count records since the store was created, wrapping at 2^32: their difference
// is the fill, and the low bits (the capacity is a power of two) the position.

/** The record of a get that found nothing. */
export const accessMiss = 0
/** The record of a key taken away by a delete or an expiry. */
export const accessRemoval = -(2 ** 31)
/** The record of a clear: every key is gone. */
export const accessClear = -(2 ** 31) + 1
/** A sampling threshold that keeps every access. */
export const thresholdAll = 2 ** 32

/** Sizes above are written as this, so that a set's code never meets accessClear's. */
const sizeMax = 2 ** 31 - 2
const mask = accessRingCapacity - 1

/**
 * The hash sampling compares with the threshold: the store's key hash mixed once more
 * (murmur3's finalizer, a bijection), so that whether a key is sampled has nothing to do with
 * the low bits that choose its bucket in the hash index.
 */
export function samplingHash(hash: number): number {
  let h = (hash ^ 0x9e3779b9) | 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The writing side, one per Store handle; every call is made under the store lock. */
export class AccessSampler {
  readonly #f64: Float64Array
  readonly #i32: Int32Array
  readonly #ring: Int32Array

  constructor(views: Views) {
    this.#f64 = views.headerF64
    this.#i32 = views.headerI32
    this.#ring = views.accessRing
  }

  /** A get, by the key's store hash; `size` is the entry's bytes, or 0 when it found nothing. */
  get(hash: number, size: number): void {
    this.#append(hash, Math.min(size, sizeMax))
  }

  /** A set that wrote an entry of `size` bytes. */
  set(hash: number, size: number): void {
    this.#append(hash, -Math.min(Math.max(size, 1), sizeMax))
  }

  /** A delete or an expiry. */
  removal(hash: number): void {
    this.#append(hash, accessRemoval)
  }

  /** A clear: whatever the threshold, since it concerns every sampled key. */
  clear(): void {
    if (this.#f64[F64.accessThreshold] !== 0) this.#write(0, accessClear)
  }

  #append(hash: number, code: number): void {
    // With the curve off the threshold is 0: one load and one comparison per operation.
    const threshold = this.#f64[F64.accessThreshold]!
    if (threshold === 0) return
    const sampled = samplingHash(hash)
    if (sampled < threshold) this.#write(sampled, code)
  }

  #write(sampled: number, code: number): void {
    const i32 = this.#i32
    const head = i32[I32.accessRingHead]!
    if (((head - Atomics.load(i32, I32.accessRingTail)) | 0) >= accessRingCapacity) {
      this.#f64[F64.accessDropped]! += 1
      return
    }
    const at = 2 * (head & mask)
    this.#ring[at] = sampled | 0
    this.#ring[at + 1] = code
    // The store publishes the words before the new head, for the reader's Atomics.load of it.
    Atomics.store(i32, I32.accessRingHead, (head + 1) | 0)
  }
}

/** What the reader hands each record to: the sampling hash (unsigned) and the record's code. */
export type VisitAccess = (sampled: number, code: number) => void

/**
 * The reading side: the main thread alone. Hands every record written so far to `visit`, in the
 * order they were written (the lock's order), frees their room, and returns how many.
 */
export function drainAccessRing(views: Views, visit: VisitAccess): number {
  const i32 = views.headerI32
  const ring = views.accessRing
  const head = Atomics.load(i32, I32.accessRingHead)
  let tail = i32[I32.accessRingTail]!
  const count = (head - tail) | 0
  while (tail !== head) {
    const at = 2 * (tail & mask)
    visit(ring[at]! >>> 0, ring[at + 1]!)
    tail = (tail + 1) | 0
  }
  Atomics.store(i32, I32.accessRingTail, head)
  return count
}

/** Sets the sampling threshold (0 turns sampling off; thresholdAll keeps every access). */
export function setAccessThreshold(views: Views, threshold: number): void {
  views.headerF64[F64.accessThreshold] = threshold
}

/** Sampled accesses dropped because the ring was full, since the store was created. */
export function accessesDropped(views: Views): number {
  return views.headerF64[F64.accessDropped]!
}
