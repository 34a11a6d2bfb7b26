// What the threads write, how a reader tells that what came back is whole, and how a thread
// reports what it found wrong.
//
// A value is self-describing, so any thread can check a value it reads without knowing who
// wrote it:
//
//   size < 8:  every byte is derived from (key hash, size)
//   size ≥ 8:  ┌──────────────────────┬─────────────────────────────────┬──────────────────┐
//              │ u32 LE keyHash ^ size │ u32 LE checksum(keyHash, payload) │ payload (random) │
//              └──────────────────────┴─────────────────────────────────┴──────────────────┘
//
// A value stored under the wrong key, cut short, extended, or mixed from two writes fails the
// check. The key hash here is the test's own FNV-1a, independent of the store's seeded hash.

/** Keys come from a space about three times what the store holds, so it evicts all the time. */
export const keyCount = 3000

/** Every tenth key is ASCII-free in one of three ways: 2-byte, 3-byte and 4-byte UTF-8. */
export function keyAt(index: number): string {
  switch (index % 10) {
    case 7:
      return `ключ:${index}`
    case 8:
      return `キー:${index}`
    case 9:
      return `🔑:${index}`
    default:
      return `k:${index}`
  }
}

export const keys: readonly string[] = Array.from({ length: keyCount }, (_, i) => keyAt(i))

/** Prefixes the scans use; '' lists everything. */
export const scanPrefixes: readonly string[] = ['', 'k:1', 'k:2', 'ключ:', 'キー:2', '🔑:']

export function keyHash(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return h >>> 0
}

const headerSize = 8

function checksum(hash: number, bytes: Uint8Array, from: number): number {
  let h = hash ^ 0x9e3779b9
  for (let i = from; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193)
  return h >>> 0
}

function shortByte(hash: number, size: number, i: number): number {
  return ((hash >>> ((i & 3) * 8)) ^ (i * 37 + size * 11)) & 0xff
}

/** A value of `size` bytes for the key with hash `hash`; `random` fills the payload. */
export function encodeValue(hash: number, size: number, random: () => number): Uint8Array {
  const value = new Uint8Array(size)
  if (size < headerSize) {
    for (let i = 0; i < size; i++) value[i] = shortByte(hash, size, i)
    return value
  }
  for (let i = headerSize; i < size; i++) value[i] = Math.floor(random() * 256)
  const view = new DataView(value.buffer)
  view.setUint32(0, (hash ^ size) >>> 0, true)
  view.setUint32(4, checksum(hash, value, headerSize), true)
  return value
}

/** Why `value` cannot be a whole value written for the key with hash `hash`, or undefined. */
export function checkValue(hash: number, value: Uint8Array): string | undefined {
  const size = value.length
  if (size < headerSize) {
    for (let i = 0; i < size; i++) {
      if (value[i] !== shortByte(hash, size, i)) return `short value byte ${i} is wrong`
    }
    return undefined
  }
  const view = new DataView(value.buffer, value.byteOffset, size)
  if (view.getUint32(0, true) !== (hash ^ size) >>> 0) {
    return 'value header names another key or another size'
  }
  if (view.getUint32(4, true) !== checksum(hash, value, headerSize)) {
    return 'value payload does not match its checksum (torn or mixed)'
  }
  return undefined
}

/** A fingerprint of a value, to recognize a thread's own write when it reads it back. */
export function fingerprint(value: Uint8Array): number {
  return checksum(value.length, value, 0)
}

export function encodeCount(count: number): Uint8Array {
  return new TextEncoder().encode(String(count))
}

export function decodeCount(value: Uint8Array): number {
  const text = new TextDecoder().decode(value)
  if (!/^(0|[1-9][0-9]*)$/.test(text)) throw new Error(`counter value ${JSON.stringify(text)}`)
  return Number(text)
}

const errorsKept = 20

/** Collects a thread's failed checks: all are counted, the first few kept in full. */
export function errorLog(thread: number) {
  const errors: string[] = []
  let count = 0
  return {
    errors,
    get count() {
      return count
    },
    fail(message: string) {
      count++
      if (errors.length < errorsKept) errors.push(`thread ${thread}: ${message}`)
    },
  }
}

/**
 * A clock shared by every thread, in which each read by the store moves time on by one tick and
 * a millisecond is `ticksPerMs` ticks. When one store call reads the clock twice, a microsecond
 * apart, the millisecond changes between the reads about once in `ticksPerMs` such calls;
 * with Date.now() it does about once in thousands, so a store that assumes time stands still
 * within a call would almost never be caught.
 */
export interface SharedClock {
  ticks: SharedArrayBuffer
  /** Epoch milliseconds at tick 0. */
  base: number
  ticksPerMs: number
}

export function createClock(ticksPerMs: number): SharedClock {
  return { ticks: new SharedArrayBuffer(4), base: Date.now(), ticksPerMs }
}

export function attachClock({ ticks, base, ticksPerMs }: SharedClock) {
  const words = new Int32Array(ticks)
  return {
    /** For the store. Atomics.add: no two reads get the same tick, and time never goes back. */
    read: () => base + Math.floor(Atomics.add(words, 0, 1) / ticksPerMs),
    /** For checks: the time now, without moving it. */
    now: () => base + Math.floor(Atomics.load(words, 0) / ticksPerMs),
  }
}
