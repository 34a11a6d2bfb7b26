import { decodeKey, hashKey } from './key-codec.js'
import { attachViews, F64, I32, recordHeaderSize, slotNone, type Views } from './layout.js'
import { Mutex } from './lock.js'

// verifyStore() walks every structure in the buffer and checks every invariant the store relies
// on. It returns the problems it finds (an empty list when all hold) rather than throwing at the
// first, so a failing test shows the whole picture. It takes the store's lock, so it may run
// while other threads use the store; it is O(capacity) and meant for tests and debugging.

/** Each walk stops after this many problems: one broken link can cascade into thousands. */
const problemCountMax = 20

export function verifyStore(buffer: SharedArrayBuffer): string[] {
  const views = attachViews(buffer)
  const lock = new Mutex(views.headerI32, I32.lock)
  lock.lock()
  try {
    return checkAll(views)
  } finally {
    lock.unlock()
  }
}

function checkAll(v: Views): string[] {
  const problems: string[] = []
  const report = (problem: string) => {
    if (problems.length < problemCountMax) problems.push(problem)
  }
  const n = v.layout.limits.entryCountMax
  const resident = new Uint8Array(n) // 1 = seen in the LRU list, 2 = seen in the free list

  // LRU list: mutual links, no cycle (a walk longer than n slots has one), the tail at its end.
  let lruCount = 0
  let previous = slotNone as number
  for (let slot = v.headerI32[I32.lruHead]!; slot !== slotNone; slot = v.next[slot]!) {
    if (slot < 0 || slot >= n) return [...problems, `LRU link to slot ${slot} is out of range`]
    if (resident[slot] !== 0) return [...problems, `LRU list revisits slot ${slot}: a cycle`]
    resident[slot] = 1
    if (v.prev[slot] !== previous) {
      report(`LRU slot ${slot}: prev is ${v.prev[slot]}, but it follows ${previous}`)
    }
    if (v.keySizes[slot] === 0) report(`LRU slot ${slot} has key size 0 (marked free)`)
    previous = slot
    lruCount++
  }
  if (v.headerI32[I32.lruTail] !== previous) {
    report(
      `LRU tail is ${v.headerI32[I32.lruTail]}, but the walk from the head ends at ${previous}`,
    )
  }

  // Free list: disjoint from the LRU list; together they cover every slot. It ends with the
  // slots from the high-water mark on, in order (scans stop at the mark).
  const highWater = v.headerI32[I32.slotHighWater]!
  if (highWater < 0 || highWater > n) report(`slot high-water mark ${highWater} is out of range`)
  let freeCount = 0
  let untouched = 0
  let previousFree = slotNone as number
  for (let slot = v.headerI32[I32.freeSlotHead]!; slot !== slotNone; slot = v.next[slot]!) {
    if (slot < 0 || slot >= n) return [...problems, `free link to slot ${slot} is out of range`]
    if (resident[slot] !== 0)
      return [...problems, `slot ${slot} is both free and linked, or free twice`]
    resident[slot] = 2
    if (v.keySizes[slot] !== 0) report(`free slot ${slot} has key size ${v.keySizes[slot]}`)
    if (slot >= highWater) {
      const expected = untouched === 0 ? highWater : previousFree + 1
      if (slot !== expected)
        report(`free slot ${slot} past the high-water mark follows ${previousFree}`)
      untouched++
    } else if (untouched > 0) {
      report(`free slot ${slot} below the high-water mark follows ${previousFree}, above it`)
    }
    previousFree = slot
    freeCount++
  }
  if (untouched !== n - highWater) {
    report(
      `${untouched} free slots past the high-water mark ${highWater}; expected ${n - highWater}`,
    )
  }
  if (lruCount + freeCount !== n) {
    report(`${lruCount} resident + ${freeCount} free slots ≠ ${n}: some slot is lost`)
  }
  if (v.headerI32[I32.entryCount] !== lruCount) {
    report(`entry count is ${v.headerI32[I32.entryCount]}, but the LRU list holds ${lruCount}`)
  }

  // Hash index: each resident slot exactly once, reachable from its home without crossing an
  // empty position, with the cached hash equal to the hash of its stored key.
  const seed = v.headerI32[I32.hashSeed]!
  const mask = v.index.length - 1
  const indexed = new Uint8Array(n)
  let indexedCount = 0
  for (let position = 0; position < v.index.length; position++) {
    const slot = v.index[position]!
    if (slot === slotNone) continue
    if (slot < 0 || slot >= n || resident[slot] !== 1) {
      report(`index position ${position} names slot ${slot}, which is not resident`)
      continue
    }
    if (indexed[slot] !== 0) report(`slot ${slot} is indexed twice`)
    indexed[slot] = 1
    indexedCount++
    const keyOffset = v.loc[slot]! + recordHeaderSize
    const key = safeDecode(v, keyOffset, v.keySizes[slot]!)
    const hash = key === undefined ? undefined : hashKey(key, seed)
    if (hash !== v.hashes[slot]) report(`slot ${slot}: cached hash differs from its key's hash`)
    for (let p = v.hashes[slot]! & mask; p !== position; p = (p + 1) & mask) {
      if (v.index[p] === slotNone) {
        report(`slot ${slot} at index ${position} is cut off from its home by an empty position`)
        break
      }
    }
  }
  if (indexedCount !== lruCount) report(`${indexedCount} slots indexed, ${lruCount} resident`)

  // Arena: walk the log from tail to head; each live record's owner points back at it, every
  // resident slot owns exactly one, and the bytes add up.
  const arenaSize = v.layout.arenaSize
  const owned = new Uint8Array(n)
  let offset = v.headerF64[F64.arenaTail]!
  let walked = 0
  let liveBytes = 0
  const used = v.headerF64[F64.arenaUsed]!
  while (walked < used) {
    if (arenaSize - offset < recordHeaderSize) {
      walked += arenaSize - offset
      offset = 0
      continue
    }
    const owner =
      v.arena[offset]! |
      (v.arena[offset + 1]! << 8) |
      (v.arena[offset + 2]! << 16) |
      (v.arena[offset + 3]! << 24)
    let size: number
    if (owner < 0) {
      size = -owner
    } else if (owner >= n || resident[owner] !== 1) {
      report(`arena record at ${offset} names slot ${owner}, which is not resident`)
      break
    } else {
      if (owned[owner] !== 0) report(`slot ${owner} owns two arena records`)
      owned[owner] = 1
      if (v.loc[owner] !== offset)
        report(`slot ${owner} is at ${v.loc[owner]}, its record at ${offset}`)
      size = recordHeaderSize + v.keySizes[owner]! + v.valueSizes[owner]!
      liveBytes += v.keySizes[owner]! + v.valueSizes[owner]!
    }
    if (size < recordHeaderSize || offset + size > arenaSize) {
      report(`arena record at ${offset} has impossible size ${size}`)
      break
    }
    walked += size
    offset = offset + size === arenaSize ? 0 : offset + size
  }
  if (walked !== used)
    report(`arena walk covered ${walked} bytes, the header says ${used} are used`)
  if (used > 0 && offset !== v.headerF64[F64.arenaHead]) {
    report(`arena walk ended at ${offset}, the head is at ${v.headerF64[F64.arenaHead]}`)
  }
  for (let slot = 0; slot < n; slot++) {
    if (resident[slot] === 1 && owned[slot] === 0)
      report(`resident slot ${slot} owns no arena record`)
  }
  const bytesUsed = v.headerF64[F64.bytesUsed]!
  if (liveBytes !== bytesUsed)
    report(`live records hold ${liveBytes} bytes, bytesUsed is ${bytesUsed}`)
  if (bytesUsed > v.layout.limits.memorySizeMax) report(`bytesUsed ${bytesUsed} exceeds the limit`)

  // Expiry heap: exactly the resident slots with an expiry, mutual positions, heap order.
  const heapSize = v.headerI32[I32.heapSize]!
  let expiring = 0
  for (let slot = 0; slot < n; slot++) {
    if (resident[slot] !== 1) {
      if (v.heapPos[slot] !== -1) report(`free slot ${slot} is in the expiry heap`)
      continue
    }
    if (v.expiresAt[slot] !== 0) {
      expiring++
      const position = v.heapPos[slot]!
      if (position < 0 || position >= heapSize || v.heap[position] !== slot) {
        report(`slot ${slot} expires but its heap position ${position} does not hold it`)
      }
    } else if (v.heapPos[slot] !== -1) {
      report(`slot ${slot} never expires but is in the heap`)
    }
    if (v.versions[slot]! > v.headerF64[F64.sequence]!) report(`slot ${slot} has a future version`)
  }
  if (expiring !== heapSize) report(`${expiring} slots expire, the heap holds ${heapSize}`)
  for (let position = 1; position < heapSize; position++) {
    const parent = (position - 1) >> 1
    if (v.expiresAt[v.heap[position]!]! < v.expiresAt[v.heap[parent]!]!) {
      report(`heap order broken between positions ${parent} and ${position}`)
    }
  }
  return problems
}

function safeDecode(v: Views, offset: number, size: number): string | undefined {
  try {
    return decodeKey(v.arena, offset, size)
  } catch {
    return undefined
  }
}
