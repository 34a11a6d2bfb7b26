import { afterEach, describe, expect, it } from 'vitest'
import { Change } from '../../../src/watch/change.js'
import { type FeedHarness, feedHarness } from '../../support/feed-harness.js'

// A watch stream and its thread's feed, over real log files a real WAL writer wrote, with no
// HTTP around them: what a stream that nobody reads costs (nothing is encoded ahead of the
// reader, and the feed's buffer stays within its size), and that it then catches up from disk.
// Also each change's event text.

const harnesses: FeedHarness[] = []
afterEach(() => {
  for (const harness of harnesses.splice(0)) {
    harness.cleanup()
    // Nothing here ends a stream with an error, or makes the feed report a problem.
    expect(harness.streamErrors).toEqual([])
    expect(harness.problems).toEqual([])
  }
})

function setup(bufferSize: number, snapshotLogSizeMin?: number) {
  const harness = feedHarness(bufferSize, { snapshotLogSizeMin })
  harnesses.push(harness)
  return harness
}

const decoder = new TextDecoder()

describe('a watch stream nobody reads', () => {
  it('encodes nothing ahead of its reader, keeps the feed within its buffer, and catches up from disk', async () => {
    const { wal, feed, stream: watch } = setup(64 * 1024)
    let closed = 0
    const stream = watch({ values: true }, { onClose: () => closed++ })
    const reader = stream.getReader()
    expect(decoder.decode((await reader.read()).value)).toBe('retry: 1000\nid: 0\n\n')
    const value = new Uint8Array(3000).fill(65)
    for (let i = 0; i < 1000; i++) {
      wal.store.set(`k${i % 100}`, value)
      wal.writer.step()
      if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 5))
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
    // 3 MB of changes went by: the feed kept its 64 KiB (and one change over at most). The
    // stream is pulled (highWaterMark 0), so it encoded nothing either: it starts from id 1.
    expect(feed.bufferedSize).toBeLessThanOrEqual(64 * 1024 + 10_000)
    const ids: number[] = []
    let text = ''
    while (ids.at(-1) !== 1000) {
      const { value: chunk } = await reader.read()
      text += decoder.decode(chunk)
      const blocks = text.split('\n\n')
      text = blocks.pop()!
      for (const block of blocks) ids.push(Number(/^id: (\d+)/m.exec(block)?.[1]))
    }
    expect(ids).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1))
    await reader.cancel()
    expect(closed).toBe(1)
  })
})

describe('a feed that a snapshot overtook', () => {
  it('carries on from the present, and tells a watcher left behind that its history is gone', async () => {
    const { wal, feed, stream } = setup(64 * 1024, 16 * 1024)
    const behind = stream({}).getReader()
    await behind.read()
    // A burst with no turn of the event loop: snapshots delete the log before anyone reads it.
    const value = new Uint8Array(3000).fill(66)
    for (let i = 0; i < 300; i++) {
      wal.store.set(`k${i % 50}`, value)
      wal.writer.step()
    }
    for (let i = 0; i < 50; i++) wal.writer.step()
    let text = ''
    for (let chunk = await behind.read(); !chunk.done; chunk = await behind.read()) {
      text += decoder.decode(chunk.value)
    }
    expect(text).toMatch(/event: end\ndata: \{"reason":"history_gone","resumeAfter":\d+\}\n\n$/)
    // The feed itself goes on: a new watcher from now gets the next change.
    const now = stream({ after: feed.durableSequence() }).getReader()
    await now.read()
    wal.store.set('after', value)
    wal.writer.step()
    expect(decoder.decode((await now.read()).value)).toContain('"key":"after"')
    await now.cancel()
    // Well under the heartbeat: every wait above was woken by the feed, not by a timer.
  }, 10_000)
})

describe('Change', () => {
  it('encodes each kind as one event block; a clear concerns every prefix', () => {
    const set = new Change({
      op: 'set',
      sequence: 7,
      key: 'a\nb',
      value: new Uint8Array([0xff]),
      contentType: 0,
      expiresAt: 1234,
    })
    expect(set.block(false).toString()).toBe(
      'id: 7\nevent: set\ndata: {"key":"a\\nb","version":7,"size":1,"contentType":"application/octet-stream","expiresAt":1234}\n\n',
    )
    expect(set.block(true).toString()).toContain('"value":"/w==","encoding":"base64"')
    const inline = new Change({
      op: 'set',
      sequence: 8,
      key: 'k',
      value: new Uint8Array([5, ...Buffer.from('a/b-c'), 104, 105]),
      contentType: 255,
      expiresAt: 0,
    })
    expect(JSON.parse(inline.block(true).toString().split('data: ')[1]!)).toEqual({
      key: 'k',
      version: 8,
      size: 2,
      contentType: 'a/b-c',
      expiresAt: null,
      value: 'hi',
      encoding: 'utf8',
    })
    const removal = new Change({ op: 'expire', sequence: 9, key: 'k' })
    expect(removal.block(true).toString()).toBe(
      'id: 9\nevent: expire\ndata: {"key":"k","version":9}\n\n',
    )
    const clear = new Change({ op: 'clear', sequence: 10, key: '' })
    expect(clear.block(false).toString()).toBe(
      'id: 10\nevent: clear\ndata: {"key":null,"version":10}\n\n',
    )
    expect(clear.concerns('any:')).toBe(true)
    expect(removal.concerns('k')).toBe(true)
    expect(removal.concerns('kk')).toBe(false)
  })
})
