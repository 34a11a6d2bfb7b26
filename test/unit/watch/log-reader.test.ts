import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { MutationRecord } from '../../../src/store/types.js'
import { classify, segmentName } from '../../../src/wal/files.js'
import { encodeSegmentHeader, segmentHeaderSize } from '../../../src/wal/record.js'
import { realStorage } from '../../../src/wal/storage.js'
import type { WalWriterOptions } from '../../../src/wal/writer.js'
import { LogReader } from '../../../src/watch/log-reader.js'
import { prng, testSeed } from '../../support/random.js'
import { openWal, walLimits } from '../../support/wal-harness.js'

// The change feed's reader against real segment files a real WAL writer wrote: every record
// after any position, in order, across rotations; nothing past the limit it is given, however
// much is on disk; a record larger than its buffer; a frame still being written; history a
// snapshot deleted; and a damaged record.

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function wal(options: Partial<WalWriterOptions> = {}, limits = walLimits) {
  const dir = mkdtempSync(join(tmpdir(), 'slabkv-log-reader-'))
  dirs.push(dir)
  return { dir, ...openWal({ storage: realStorage, dir, ...options }, limits) }
}

/** Sets, deletes and batches, each made durable by a writer step. */
function writeSome(w: ReturnType<typeof wal>, count: number, random: () => number) {
  for (let i = 0; i < count; i++) {
    const key = `k${Math.floor(random() * 40)}`
    const dice = random()
    if (dice < 0.6) w.store.set(key, new TextEncoder().encode(`value ${i}`))
    else if (dice < 0.8) w.store.delete(key)
    else {
      w.store.atomically((tx) => {
        const sets = [`${key}a`, `${key}b`].map((name) => ({
          op: 'set' as const,
          key: name,
          valueSize: 2,
        }))
        expect(tx.prepare(sets)).toEqual({ ok: true })
        tx.set(`${key}a`, new Uint8Array([i & 0xff, 0]))
        tx.set(`${key}b`, new Uint8Array([0xff, i & 0xff]))
      })
    }
    w.writer.step()
  }
}

/** Reads everything after `after` up to `limit`, a budget at a time. */
async function readAll(dir: string, after: number, limit: number, budget = 1 << 20) {
  const reader = new LogReader(dir, after)
  const records: MutationRecord[] = []
  for (let guard = 0; reader.position < limit; guard++) {
    expect(guard).toBeLessThan(100_000)
    const read = await reader.read(limit, budget)
    if (read.kind !== 'records') throw new Error(JSON.stringify(read))
    records.push(...read.records)
  }
  await reader.close()
  return records
}

const summary = (records: MutationRecord[]) =>
  records.map((r) =>
    r.op === 'set'
      ? `${r.sequence} set ${r.key} ${Buffer.from(r.value).toString('hex')}`
      : `${r.sequence} ${r.op} ${r.key}`,
  )

describe('LogReader', () => {
  it('reads every record after any position, across segments, commits read past', async () => {
    const random = prng(testSeed('log reader'))
    const w = wal({ segmentSizeMax: 1024 })
    writeSome(w, 300, random)
    expect(classify(readdirSync(w.dir)).segments.length).toBeGreaterThan(5)
    const durable = w.durable()
    const changes = w.records.filter((r) => r.op !== 'commit')
    for (const after of [0, 1, Math.floor(random() * durable), durable - 1, durable]) {
      for (const budget of [1, 300, 1 << 20]) {
        const read = await readAll(w.dir, after, durable, budget)
        expect(summary(read), `after ${after}, budget ${budget}`).toEqual(
          summary(changes.filter((r) => r.sequence > after)),
        )
      }
    }
  })

  it('returns nothing past its limit, though the bytes are on disk', async () => {
    const w = wal()
    for (let i = 0; i < 10; i++) w.store.set(`k${i}`, new Uint8Array([i]))
    w.writer.step()
    const reader = new LogReader(w.dir, 0)
    const read = await reader.read(4, 1 << 20)
    expect(read.kind === 'records' && read.records.map((r) => r.sequence)).toEqual([1, 2, 3, 4])
    expect(reader.position).toBe(4)
    const rest = await reader.read(10, 1 << 20)
    expect(rest.kind === 'records' && rest.records.map((r) => r.sequence)).toEqual([
      5, 6, 7, 8, 9, 10,
    ])
    await reader.close()
  })

  it('reads a record larger than its buffer', async () => {
    const w = wal(
      {},
      { ...walLimits, valueSizeMax: 300_000, memorySizeMax: 1 << 20, walRingSize: 1 << 20 },
    )
    const large = new Uint8Array(200_000).map((_, i) => i % 251)
    w.store.set('small', new Uint8Array([1]))
    w.store.set('large', large)
    w.store.set('after', new Uint8Array([2]))
    w.writer.step()
    const read = await readAll(w.dir, 0, w.durable())
    expect(read.map((r) => r.key)).toEqual(['small', 'large', 'after'])
    expect(read[1]?.op === 'set' && Buffer.compare(read[1].value, large)).toBe(0)
  })

  it('waits at a frame still being written, and reads it once whole', async () => {
    const w = wal()
    w.store.set('a', new Uint8Array([1]))
    w.writer.step()
    const [segment] = classify(readdirSync(w.dir)).segments
    const path = join(w.dir, segment!.name)
    const whole = readFileSync(path)
    w.store.set('b', new Uint8Array([2]))
    w.writer.step()
    const grown = readFileSync(path)
    const frame = grown.subarray(whole.length)
    // The file as a reader may see it mid-write: half of b's frame, though b is durable.
    writeFileSync(path, Buffer.concat([whole, frame.subarray(0, 10)]))
    const reader = new LogReader(w.dir, 0)
    const first = await reader.read(2, 1 << 20)
    expect(first.kind === 'records' && first.records.map((r) => r.key)).toEqual(['a'])
    appendFileSync(path, frame.subarray(10))
    const second = await reader.read(2, 1 << 20)
    expect(second.kind === 'records' && second.records.map((r) => r.key)).toEqual(['b'])
    await reader.close()
  })

  it('says the history is gone once a snapshot deleted it, with the oldest sequence left', async () => {
    const random = prng(testSeed('log reader gone'))
    const w = wal({ segmentSizeMax: 1024, snapshotLogSizeMin: 4096 })
    writeSome(w, 400, random)
    for (let i = 0; i < 50; i++) w.writer.step()
    const oldest = classify(readdirSync(w.dir)).segments[0]!.firstSequence
    expect(oldest).toBeGreaterThan(1)
    const reader = new LogReader(w.dir, oldest - 2)
    expect(await reader.read(w.durable(), 1 << 20)).toEqual({
      kind: 'gone',
      oldestSequence: oldest,
    })
    const fromOldest = await readAll(w.dir, oldest - 1, w.durable())
    expect(fromOldest[0]?.sequence).toBe(oldest)
  })

  it('reopens a segment the writer removed and made again under the same name', async () => {
    const salt = 0x5eed
    const w = wal({ salt })
    for (let i = 1; i <= 5; i++) w.store.set(`k${i}`, new Uint8Array([i]))
    w.writer.step()
    const [segment] = classify(readdirSync(w.dir)).segments
    const bytes = readFileSync(join(w.dir, segment!.name))
    const frames: Buffer[] = []
    for (let at = segmentHeaderSize; at < bytes.length; at += frames.at(-1)!.length) {
      frames.push(bytes.subarray(at, at + bytes.readUInt32LE(at) + 8))
    }
    expect(frames.length).toBe(5)
    const dir = join(w.dir, 'rebuilt')
    mkdirSync(dir)
    const header = (first: number) => Buffer.from(encodeSegmentHeader(first, salt))
    writeFileSync(join(dir, segmentName(1)), Buffer.concat([header(1), ...frames.slice(0, 3)]))
    // The writer started the next segment, and its header is on disk, when syncing it failed.
    writeFileSync(join(dir, segmentName(4)), header(4))
    const reader = new LogReader(dir, 0)
    const first = await reader.read(5, 1 << 20)
    expect(first.kind === 'records' && first.records.map((r) => r.key)).toEqual(['k1', 'k2', 'k3'])
    // It removed that file; its retry made the segment again, and wrote records into it.
    unlinkSync(join(dir, segmentName(4)))
    writeFileSync(join(dir, segmentName(4)), Buffer.concat([header(4), ...frames.slice(3)]))
    const second = await reader.read(5, 1 << 20)
    expect(second.kind === 'records' && second.records.map((r) => r.key)).toEqual(['k4', 'k5'])
    await reader.close()
  })

  it('reports a damaged record the limit covers', async () => {
    const w = wal()
    for (let i = 0; i < 5; i++) w.store.set(`k${i}`, new Uint8Array([i]))
    w.writer.step()
    const [segment] = classify(readdirSync(w.dir)).segments
    const path = join(w.dir, segment!.name)
    const bytes = readFileSync(path)
    bytes[segmentHeaderSize + 40]! ^= 0xff
    writeFileSync(path, bytes)
    const read = await new LogReader(w.dir, 0).read(w.durable(), 1 << 20)
    expect(read.kind).toBe('damaged')
  })
})
