import type { Store } from '../../src/store/store.js'
import { prng } from './random.js'

// Seeded cache workloads for the miss-ratio curve's tests (test/unit/mrc/): a key's get, and on a
// miss the set a cache-aside client makes, with some plain sets; values of varied sizes. In
// 'zipf, no refill' a get that misses is left at that, and keys come back only by the plain
// sets: what a store of each size holds then depends on what it missed.

export type TraceKind = 'uniform' | 'zipf' | 'zipf+scans' | 'zipf, no refill'

export interface Trace {
  readonly kind: TraceKind
  /** The key of each operation. */
  readonly keys: Int32Array
  /** 1 where the operation is a set, 0 where it is a get. */
  readonly isSet: Uint8Array
  /** Whether a get that misses is followed by the set of its key. */
  readonly refill: boolean
  /** Each key's value size in bytes. */
  readonly valueSizes: Uint32Array
}

export interface TraceOptions {
  readonly length: number
  /** Keys the uniform and Zipf parts draw from. */
  readonly keyCount: number
  readonly alpha?: number
  /** The share of operations that are one-off scans of keys never used again. */
  readonly scanShare?: number
}

/** Draws key ids 0..n-1 with P(i) ∝ 1 / (i + 1)^alpha, by binary search in the CDF. */
function zipf(n: number, alpha: number, random: () => number): () => number {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let i = 0; i < n; i++) {
    sum += 1 / (i + 1) ** alpha
    cdf[i] = sum
  }
  return () => {
    const target = random() * sum
    let low = 0
    let high = n - 1
    while (low < high) {
      const middle = (low + high) >>> 1
      if (cdf[middle]! < target) low = middle + 1
      else high = middle
    }
    return low
  }
}

/** Ranks are shuffled onto ids so that the hottest keys are not the first ones created. */
function shuffledIds(n: number, random: () => number): Int32Array {
  const ids = new Int32Array(n)
  for (let i = 0; i < n; i++) ids[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = ids[i]!
    ids[i] = ids[j]!
    ids[j] = t
  }
  return ids
}

export function makeTrace(kind: TraceKind, seed: number, options: TraceOptions): Trace {
  const random = prng(seed)
  const { length, keyCount } = options
  const scanShare = kind === 'zipf+scans' ? (options.scanShare ?? 0.2) : 0
  const scanLength = 2000
  const scanCount = Math.ceil((length * scanShare) / scanLength)
  const totalKeys = keyCount + scanCount * scanLength
  // Log-uniform from 16 bytes to 4 KiB: mostly small values, with a long tail of larger ones.
  const valueSizes = new Uint32Array(totalKeys)
  for (let i = 0; i < totalKeys; i++) valueSizes[i] = Math.round(16 * 256 ** random())
  const ids = shuffledIds(keyCount, random)
  const refill = kind !== 'zipf, no refill'
  const setShare = refill ? 0.05 : 0.15
  const draw =
    kind === 'uniform'
      ? () => Math.floor(random() * keyCount)
      : zipf(keyCount, options.alpha ?? 0.95, random)
  const keys = new Int32Array(length)
  const isSet = new Uint8Array(length)
  let nextScanKey = keyCount
  for (let i = 0; i < length; ) {
    if (
      scanShare > 0 &&
      random() < scanShare / scanLength &&
      nextScanKey + scanLength <= totalKeys
    ) {
      for (let j = 0; j < scanLength && i < length; j++) keys[i++] = nextScanKey++
      continue
    }
    keys[i] = ids[draw()]!
    isSet[i] = random() < setShare ? 1 : 0
    i += 1
  }
  return { kind, keys, isSet, refill, valueSizes }
}

export function keyOf(id: number): string {
  return `key:${id}`
}

/**
 * Runs the trace through `store` as a cache-aside client does (a get; on a miss, the set, when
 * the trace refills) and returns the store's hit ratio over the gets. `every` is called after each `interval` ops.
 */
export function replay(store: Store, trace: Trace, interval = 0, every?: () => void): number {
  const values = new Uint8Array(4096)
  let hits = 0
  let gets = 0
  const { keys, isSet, refill, valueSizes } = trace
  for (let i = 0; i < keys.length; i++) {
    const id = keys[i]!
    const key = keyOf(id)
    const value = values.subarray(0, valueSizes[id]!)
    if (isSet[i] === 1) {
      store.set(key, value)
    } else {
      gets += 1
      if (store.get(key) !== undefined) hits += 1
      else if (refill) store.set(key, value)
    }
    if (every !== undefined && (i + 1) % interval === 0) every()
  }
  every?.()
  return hits / gets
}
