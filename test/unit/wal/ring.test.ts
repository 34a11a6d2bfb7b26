import { Worker } from 'node:worker_threads'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createViews,
  I32,
  type StoreLimits,
  type Views,
  walRingSizeMin,
  walStateFailed,
} from '../../../src/store/layout.js'
import type { MutationRecord } from '../../../src/store/types.js'
import { decodeRecord, encodedSize, encodeRecord } from '../../../src/wal/record.js'
import { WalRing } from '../../../src/wal/ring.js'
import { assertBuilt, distUrl } from '../../support/dist.js'
import { prng, testSeed } from '../../support/random.js'
import type { RingProducerData } from '../../support/ring-producer.js'
import { ringRecords } from '../../support/ring-records.js'

// The ring between the threads that change the store and the WAL writer. Records must come out
// byte for byte as they went in, in order, each once; hasRoom() must never promise room that is
// not there, and a producer that finds none waits (outside any lock) for the writer's release,
// never dropping or overwriting. Sizes are chosen by hand so each wrap case is hit exactly.

const seed = testSeed('wal ring')
const limits = (walRingSize?: number): StoreLimits => ({
  entryCountMax: 1,
  memorySizeMax: 1024,
  keySizeMax: 2,
  valueSizeMax: 100,
  headroomPerMille: 0,
  ...(walRingSize !== undefined && { walRingSize }),
})
// The largest record is 28 + 2 + 100 = 130 bytes and the largest removal 19 + 2, so the smallest
// ring is 2 × 130 + 21 + 8 = 289.
const ringSize = 300

/** The checksum salt the WAL writer would draw; the ring encodes and checks records with it. */
const salt = 0x5a17c0de

function makeRing(size = ringSize): { ring: WalRing; views: Views } {
  const views = createViews(limits(size))
  views.headerI32[I32.walSalt] = salt | 0
  return { ring: new WalRing(views), views }
}

/** A set record of exactly `size` bytes (29 to 129): a one-byte key and size − 29 value bytes. */
function setOfSize(size: number, sequence: number): MutationRecord {
  const value = Uint8Array.from({ length: size - 29 }, (_, i) => (i + sequence) % 256)
  const record: MutationRecord = {
    op: 'set',
    sequence,
    key: 'k',
    value,
    contentType: 3,
    expiresAt: 0,
  }
  expect(encodedSize(record)).toBe(size)
  return record
}

function encode(record: MutationRecord): Uint8Array {
  const bytes = new Uint8Array(encodedSize(record))
  encodeRecord(record, bytes, 0, salt)
  return bytes
}

/**
 * Takes the records the ring reports, up to `countMax`, checks each against `expected` (decoded
 * and byte for byte), and releases their space. Returns how many it took.
 */
function drain(ring: WalRing, expected: MutationRecord[], countMax = Number.POSITIVE_INFINITY) {
  const readable = ring.readable()
  if (readable === undefined) return 0
  let at = readable.start
  let count = 0
  let sequenceLast = 0
  for (; at < readable.end && count < countMax; count++) {
    const want = expected.shift()
    const decoded = decodeRecord(ring.bytes(at, readable.end), 0, salt)
    if (want === undefined || !decoded.ok) {
      throw new Error(`at ${at}: ${want === undefined ? 'a record never appended' : 'damage'}`)
    }
    expect(decoded.record.sequence).toBe(want.sequence)
    expect(Buffer.from(ring.bytes(at, at + decoded.size)).equals(encode(want))).toBe(true)
    sequenceLast = want.sequence
    at += decoded.size
  }
  if (at === readable.end) {
    expect(count).toBe(readable.recordCount)
    expect(sequenceLast).toBe(readable.sequenceLast)
  }
  ring.release(at)
  return count
}

const head = (views: Views) => views.headerI32[I32.walRingHead]!
const tail = (views: Views) => views.headerI32[I32.walRingTail]!
const markerAt = (views: Views, at: number) =>
  new DataView(views.buffer, views.walRing.byteOffset + at, 4).getUint32(0, true)

/** Appends records of the given sizes, draining after each, so the ring ends empty at their sum. */
function advanceTo(ring: WalRing, sizes: number[], sequence: { next: number }): void {
  for (const size of sizes) {
    const record = setOfSize(size, sequence.next++)
    ring.append(record)
    expect(drain(ring, [record])).toBe(1)
  }
}

describe('WAL ring', () => {
  it('gives back appended records byte for byte and in order', () => {
    const { ring } = makeRing()
    const records = ringRecords(seed, 40, limits())
    const pending: MutationRecord[] = []
    for (const record of records) {
      // Drains only when the next record might not fit, so batches of several come out at once.
      if (encodedSize(record) + 130 > ringSize / 2) while (drain(ring, pending) > 0);
      ring.append(record)
      pending.push(record)
    }
    while (drain(ring, pending) > 0);
    expect(pending).toEqual([])
    expect(ring.isEmpty()).toBe(true)
    expect(ring.readable()).toBeUndefined()
  })

  it('wraps a record that does not fit the end behind a wrap marker when 4 or more bytes remain', () => {
    const { ring, views } = makeRing()
    const sequence = { next: 1 }
    advanceTo(ring, [129, 129, 32], sequence)
    expect(head(views)).toBe(290)
    const record = setOfSize(50, sequence.next++)
    ring.append(record)
    expect(markerAt(views, 290)).toBe(0xffffffff)
    expect(head(views)).toBe(50)
    expect(ring.readable()).toEqual({
      start: 0,
      end: 50,
      sequenceLast: record.sequence,
      sequenceBoundaryLast: record.sequence,
      recordCount: 1,
    })
    expect(drain(ring, [record])).toBe(1)
    expect(ring.isEmpty()).toBe(true)
  })

  it('wraps without a marker when fewer than 4 bytes remain at the end', () => {
    const { ring, views } = makeRing()
    const sequence = { next: 1 }
    advanceTo(ring, [129, 129, 40], sequence)
    expect(head(views)).toBe(298)
    views.walRing.fill(0xab, 298) // A marker would have to write here; nothing may.
    const record = setOfSize(50, sequence.next++)
    ring.append(record)
    expect([...views.walRing.subarray(298)]).toEqual([0xab, 0xab])
    expect(head(views)).toBe(50)
    expect(ring.readable()?.start).toBe(0)
    expect(drain(ring, [record])).toBe(1)
  })

  it('reports a batch that wraps as two runs, the one before the end first', () => {
    const { ring, views } = makeRing()
    const sequence = { next: 1 }
    advanceTo(ring, [129], sequence)
    const records = [129, 32, 50].map((size) => setOfSize(size, sequence.next++))
    for (const record of records) ring.append(record)
    expect(ring.readable()).toMatchObject({ start: 129, end: 290, recordCount: 2 })
    expect(drain(ring, records)).toBe(2)
    expect(ring.readable()).toMatchObject({ start: 0, end: 50, recordCount: 1, sequenceLast: 4 })
    expect(drain(ring, records)).toBe(1)
    expect(tail(views)).toBe(50)
  })

  it('wraps the head to 0 when a record ends exactly at the end of the ring', () => {
    const { ring, views } = makeRing()
    const sequence = { next: 1 }
    advanceTo(ring, [129, 129], sequence)
    const record = setOfSize(42, sequence.next++)
    ring.append(record)
    expect(head(views)).toBe(0)
    expect(ring.readable()).toMatchObject({ start: 258, end: 300, recordCount: 1 })
    expect(drain(ring, [record])).toBe(1)
    expect(tail(views)).toBe(0)
    expect(ring.isEmpty()).toBe(true)
  })

  it('holds at most its size less one byte, and reports exactly that', () => {
    const { ring, views } = makeRing()
    const records = [129, 129, 41].map((size, i) => setOfSize(size, i + 1))
    for (const record of records) ring.append(record)
    expect(head(views)).toBe(ringSize - 1)
    expect(ring.readable()).toEqual({
      start: 0,
      end: 299,
      sequenceLast: 3,
      sequenceBoundaryLast: 3,
      recordCount: 3,
    })
    expect(drain(ring, records)).toBe(3)
  })

  it('never reports stale records a previous lap left beyond the head', () => {
    const { ring, views } = makeRing()
    const sequence = { next: 1 }
    advanceTo(ring, [129, 129, 32], sequence)
    // The next lap writes a record the size of the first one: a whole, valid record of the
    // previous lap (sequence 2) now starts right at the head.
    const record = setOfSize(129, sequence.next++)
    ring.append(record)
    expect(head(views)).toBe(129)
    expect(decodeRecord(views.walRing, 129, salt)).toMatchObject({
      ok: true,
      record: { sequence: 2 },
    })
    expect(ring.readable()).toEqual({
      start: 0,
      end: 129,
      sequenceLast: 4,
      sequenceBoundaryLast: 4,
      recordCount: 1,
    })
    expect(drain(ring, [record])).toBe(1)
    expect(ring.readable()).toBeUndefined()
  })

  it('keeps the stream intact under random sizes and interleavings of appends and drains', () => {
    const random = prng(seed)
    const { ring, views } = makeRing(ringSize + Math.floor(random() * 200))
    const size = views.layout.walRingSize
    const records = ringRecords(seed, 3000, limits())
    const pending: MutationRecord[] = []
    let next = 0
    let promisedCount = 0
    while (next < records.length || pending.length > 0) {
      const record = records[next]
      const used = (head(views) - tail(views) + size) % size
      expect(used).toBeLessThan(size)
      const at = head(views)
      const needed = record === undefined ? Infinity : encodedSize(record)
      const fits = needed + (at + needed > size ? size - at : 0) <= size - 1 - used
      const promised = record !== undefined && ring.hasRoom(needed, needed)
      // hasRoom is conservative: it may refuse room that is there, never promise room that is not.
      if (promised) expect(fits).toBe(true)
      if (promised) promisedCount++
      if (promised && random() < 0.6) {
        ring.append(record)
        pending.push(record)
        next++
      } else {
        drain(ring, pending, 1 + Math.floor(random() * 4))
      }
    }
    expect(ring.isEmpty()).toBe(true)
    expect(promisedCount).toBeGreaterThan(records.length)
  })

  it('promises room for a run of records whose bytes, plus its largest, fit the free space', () => {
    const { ring, views } = makeRing()
    const size = views.layout.walRingSize
    // Empty: 299 bytes free. A run of 150 bytes whose largest is 149 fits; one byte more does not.
    expect(ring.hasRoom(150, 149)).toBe(true)
    expect(ring.hasRoom(151, 149)).toBe(false)
    expect(ring.capacity).toBe(size - 1)
    // A failed log never drains: it promises nothing, however empty.
    Atomics.store(views.headerI32, I32.walState, walStateFailed)
    expect(ring.hasRoom(1, 1)).toBe(false)
  })
})

// Worker threads run compiled JavaScript, as the server's do: the producer runs from dist/
// (`npm test` builds first).
const producerScript = distUrl('test/support/ring-producer.ts')
const producerSources = [
  'src/store/layout.ts',
  'src/wal/record.ts',
  'src/wal/ring.ts',
  'test/support/random.ts',
  'test/support/ring-records.ts',
  'test/support/ring-producer.ts',
]

const workers = new Set<Worker>()
afterEach(async () => {
  for (const worker of workers) await worker.terminate()
  workers.clear()
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('WAL ring back-pressure', () => {
  it('makes a producer thread that finds the ring full wait for the writer, and loses nothing', async () => {
    assertBuilt(producerSources)
    const small = { ...limits(), keySizeMax: 8, valueSizeMax: 64 }
    const views = createViews({ ...small, walRingSize: walRingSizeMin(small) })
    views.headerI32[I32.walSalt] = salt | 0
    const size = views.layout.walRingSize
    const ring = new WalRing(views)
    const count = 3000
    const expected = ringRecords(seed, count, small)
    const totalSize = expected.reduce((sum, record) => sum + encodedSize(record), 0)
    expect(totalSize).toBeGreaterThan(50 * size)
    const progress = new Int32Array(new SharedArrayBuffer(8))
    const workerData: RingProducerData = {
      buffer: views.buffer,
      progress: progress.buffer as SharedArrayBuffer,
      seed,
      count,
    }
    const worker = new Worker(producerScript, { workerData })
    workers.add(worker)
    const done = new Promise<void>((resolve, reject) => {
      worker.once('error', reject)
      worker.once('message', () => resolve())
    })

    // Nobody drains yet: the producer fills the ring and must then stay where it is. Polled, so
    // a slow worker start on a loaded machine is not mistaken for a stall.
    let blockedAt = 0
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
      const seen = Atomics.load(progress, 0)
      await sleep(300)
      if (seen > 0 && Atomics.load(progress, 0) === seen) {
        blockedAt = seen
        break
      }
    }
    expect(blockedAt).toBeGreaterThan(0)
    expect(blockedAt).toBeLessThan(count)
    // It waits because the next record does not fit, not for any other reason.
    const held = (head(views) - tail(views) + size) % size
    const next = encodedSize(expected[blockedAt]!)
    const skip = head(views) + next > size ? size - head(views) : 0
    expect(skip + next + next).toBeGreaterThan(size - 1 - held)
    expect(Atomics.load(progress, 1)).toBeGreaterThan(0)

    // Now drain, sometimes pausing so the producer blocks again, until every record came out.
    const pending = [...expected]
    const random = prng(seed)
    const deadline = Date.now() + 60_000
    while (pending.length > 0 && Date.now() < deadline) {
      if (drain(ring, pending) === 0 || random() < 0.05) await sleep(random() < 0.5 ? 0 : 2)
    }
    expect(pending.length).toBe(0)
    await done
    expect(Atomics.load(progress, 0)).toBe(count)
    expect(ring.readable()).toBeUndefined()
    console.log(`ring back-pressure: ${Atomics.load(progress, 1)} waits for room, ${count} records`)
  })
})
