import { readdirSync, readlinkSync, rmSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { LogReader } from '../../../src/watch/log-reader.js'
import { type FeedHarness, feedHarness } from '../../support/feed-harness.js'
import { prng, testSeed } from '../../support/random.js'

// The change feed when things go wrong, each case one that a review of the feed reproduced
// against a real server: a file error while the feed follows the log (it took the whole server
// down), one while a stream reads history (it kept the stream's slot for good), a reader closed
// in the middle of a read (its file stayed open), and an event larger than a chunk (a stalled
// client held it whole, several times over).

const harnesses: FeedHarness[] = []
afterEach(() => {
  for (const harness of harnesses.splice(0)) harness.cleanup()
})

function setup(bufferSize = 64 * 1024, valueSizeMax?: number) {
  const harness = feedHarness(bufferSize, { valueSizeMax })
  harnesses.push(harness)
  return harness
}

const decoder = new TextDecoder()

async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>) {
  let text = ''
  const chunks: number[] = []
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    chunks.push(chunk.value.byteLength)
    text += decoder.decode(chunk.value, { stream: true })
  }
  return { text, chunks }
}

/** File descriptors of this process open on a file of `dir`. */
function openFilesIn(dir: string): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      return target.startsWith(dir) ? [target] : []
    } catch {
      return []
    }
  })
}

describe('the change feed, when files fail', () => {
  it('reports a file error of its follower and tries again, ending no stream and not the process', async () => {
    const { dir, wal, feed, stream, problems } = setup()
    const reader = stream({}).getReader()
    await reader.read()
    // The directory goes (an operator's mistake, a failing disk): listing it fails from now on.
    rmSync(dir, { recursive: true, force: true })
    wal.store.set('k', new Uint8Array([1]))
    wal.writer.step()
    for (let i = 0; i < 100 && problems.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    expect(problems[0]?.message).toBe('the change feed could not read the log: retrying')
    expect(String(problems[0]?.fields.error)).toContain('ENOENT')
    expect(feed.ended).toBeUndefined()
    await reader.cancel()
  })

  it('ends a stream whose history read fails with event: end, and gives everything back', async () => {
    const { dir, wal, stream, streamErrors } = setup()
    for (let i = 0; i < 5; i++) wal.store.set(`k${i}`, new Uint8Array([i]))
    wal.writer.step()
    rmSync(dir, { recursive: true, force: true })
    let closed = 0
    // From the start: behind the feed, which begins at the present, so it reads the disk.
    const reader = stream({ after: 0 }, { onClose: () => closed++ }).getReader()
    const { text } = await readAll(reader)
    expect(text).toBe(
      'retry: 1000\nid: 0\n\nevent: end\ndata: {"reason":"log_unreadable","resumeAfter":0}\n\n',
    )
    expect(closed).toBe(1)
    expect(String(streamErrors[0])).toContain('ENOENT')
  })
})

describe('a log reader closed during a read', () => {
  it('leaves no file of the log open, whichever await the close lands on', async () => {
    const { dir, wal } = setup()
    for (let i = 0; i < 200; i++) {
      wal.store.set(`k${i % 10}`, new Uint8Array(1000).fill(i))
      wal.writer.step()
    }
    const before = openFilesIn(dir).length
    for (let delay = 0; delay < 20; delay++) {
      const reader = new LogReader(dir, 0)
      const reading = reader.read(wal.durable(), 1 << 20)
      for (let i = 0; i < delay; i++) await Promise.resolve()
      await reader.close()
      await reading
    }
    expect(openFilesIn(dir).length).toBe(before)
  })
})

describe('an event larger than a chunk', () => {
  it('goes out in pieces of 64 KiB at most, which make the whole event', async () => {
    const { wal, stream } = setup(64 * 1024, 300_000)
    const value = new Uint8Array(200_000).fill(0x61)
    const reader = stream({ values: true }).getReader()
    await reader.read()
    wal.store.set('large', value)
    wal.store.set('small', new Uint8Array([0x62]))
    wal.writer.step()
    let text = ''
    const chunks: number[] = []
    while (!text.includes('"key":"small"')) {
      const chunk = await reader.read()
      chunks.push(chunk.value!.byteLength)
      text += decoder.decode(chunk.value, { stream: true })
    }
    expect(Math.max(...chunks)).toBeLessThanOrEqual(64 * 1024)
    expect(chunks.length).toBeGreaterThanOrEqual(4)
    const large = JSON.parse(/^data: (.*)$/m.exec(text)![1]!) as { value: string }
    expect(large.value).toBe('a'.repeat(200_000))
    await reader.cancel()
  })
})

describe('events of every size, read at every pace', () => {
  it('arrive whole, each once, in order, across the buffer and the disk', async () => {
    const random = prng(testSeed('watch chunks'))
    const { wal, stream } = setup(64 * 1024, 200_000)
    const reader = stream({ values: true }).getReader()
    await reader.read()
    const expected: number[] = []
    const sizes = new Map<number, number>()
    let text = ''
    const received: number[] = []
    const take = (chunk: Uint8Array) => {
      text += decoder.decode(chunk, { stream: true })
      for (let end = text.indexOf('\n\n'); end !== -1; end = text.indexOf('\n\n')) {
        const block = text.slice(0, end)
        text = text.slice(end + 2)
        const data = /^data: (.*)$/m.exec(block)?.[1]
        // Sets only: a set may evict others (the store holds about five of the largest).
        if (data === undefined || !block.includes('\nevent: set\n')) continue
        const event = JSON.parse(data) as { version: number; value: string }
        expect(event.value.length).toBe(sizes.get(event.version))
        received.push(event.version)
      }
    }
    for (let round = 0; round < 30; round++) {
      // A burst of writes of sizes from none to three chunks, then some reading, or none.
      for (let i = Math.floor(random() * 20); i > 0; i--) {
        const size = random() < 0.2 ? Math.floor(random() * 200_000) : Math.floor(random() * 500)
        const result = wal.store.set(`k${i % 7}`, new Uint8Array(size).fill(0x61))
        if (!result.ok) throw new Error(JSON.stringify(result))
        expected.push(result.version)
        sizes.set(result.version, size)
        wal.writer.step()
      }
      // Only while something is owed: a stream that is caught up sends nothing until a heartbeat.
      for (let reads = Math.floor(random() * 8); reads > 0; reads--) {
        if (received.length === expected.length) break
        take((await reader.read()).value!)
      }
    }
    while (received.length < expected.length) take((await reader.read()).value!)
    expect(received).toEqual(expected)
    await reader.cancel()
  })
})
