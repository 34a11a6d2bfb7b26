import { readdirSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { killAll, type RunningServer, startServer } from '../support/server.js'
import { WatchStream } from '../support/watch-client.js'

// GET /v1/watch against a real server: what a stream sends, its parameters and their refusals,
// the history it can resume from (and the 410 past it), the stream limit at its edge, the end
// of every stream on SIGTERM, and a consumer that stops reading while writes go on.

afterAll(killAll)

const waitMs = 10_000

async function put(server: RunningServer, key: string, body: string | Uint8Array, type?: string) {
  const response = await fetch(`${server.url}/v1/kv/${encodeURIComponent(key)}`, {
    method: 'PUT',
    body,
    headers: type === undefined ? {} : { 'Content-Type': type },
  })
  expect(response.status).toBeLessThan(300)
  return ((await response.json()) as { version: number }).version
}

async function openStreams(server: RunningServer): Promise<number> {
  const stats = (await (await fetch(`${server.url}/v1/stats`)).json()) as {
    watch: { streams: number }
  }
  return stats.watch.streams
}

/** Polls `done` every 20 ms, for 5 s at most. */
async function until(done: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 250; attempt++) {
    if (await done()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`${what}: not within 5 s`)
}

async function opened(stream: WatchStream, status = 200) {
  const answer = await stream.opened
  expect(answer.status, answer.body).toBe(status)
  return answer.body === '' ? undefined : (JSON.parse(answer.body) as Record<string, unknown>)
}

describe('GET /v1/watch', () => {
  it('sends each change under the prefix once it is durable, with its fields, in order', async () => {
    const server = await startServer(['--threads', '2'])
    const stream = new WatchStream(server.url, '?prefix=user:&values=true')
    await opened(stream)
    await stream.until(() => stream.startId !== undefined, waitMs, 'the first block')
    expect(stream.startId).toBe(0)
    const v1 = await put(server, 'user:1', 'ada', 'text/plain')
    await put(server, 'other', 'x')
    const v2 = await put(server, 'user:2', new Uint8Array([0xff, 0, 1]), 'application/x-custom')
    const ttl = await fetch(`${server.url}/v1/kv/user:3?ttl=100`, { method: 'PUT', body: 'z' })
    const v3 = ((await ttl.json()) as { version: number }).version
    expect((await fetch(`${server.url}/v1/kv/user:1`, { method: 'DELETE' })).status).toBe(204)
    await stream.until(() => stream.events.length === 4, waitMs, 'four events')
    const [set1, set2, set3, deleted] = stream.events
    expect(set1).toEqual({
      id: v1,
      event: 'set',
      data: {
        key: 'user:1',
        version: v1,
        size: 3,
        contentType: 'text/plain',
        expiresAt: null,
        value: 'ada',
        encoding: 'utf8',
      },
    })
    // An uncommon media type is kept inside the value: the event gives it, and the bare value.
    expect(set2?.data).toMatchObject({
      version: v2,
      size: 3,
      contentType: 'application/x-custom',
      value: Buffer.from([0xff, 0, 1]).toString('base64'),
      encoding: 'base64',
    })
    expect(set3?.data.version).toBe(v3)
    expect(set3?.data.expiresAt).toBeGreaterThan(Date.now() + 90_000)
    expect(deleted).toEqual({
      id: v3 + 1,
      event: 'delete',
      data: { key: 'user:1', version: v3 + 1 },
    })
    stream.close()
    await server.stop()
  })

  it('narrows by types, resumes from since or Last-Event-ID, and Last-Event-ID wins', async () => {
    const server = await startServer()
    const versions: number[] = []
    for (let i = 0; i < 5; i++) versions.push(await put(server, `k${i}`, `v${i}`))
    await fetch(`${server.url}/v1/kv/k0`, { method: 'DELETE' })
    const deletes = new WatchStream(server.url, '?since=0&types=delete')
    const fromSince = new WatchStream(server.url, `?since=${versions[2]}&types=set`)
    const fromHeader = new WatchStream(server.url, '?since=0&types=set', {
      lastEventId: versions[3],
    })
    for (const stream of [deletes, fromSince, fromHeader]) await opened(stream)
    await deletes.until(() => deletes.events.length === 1, waitMs)
    expect(deletes.events[0]).toMatchObject({ event: 'delete', data: { key: 'k0' } })
    await fromSince.until(() => fromSince.events.length === 2, waitMs)
    expect(fromSince.events.map((e) => e.id)).toEqual(versions.slice(3))
    await fromHeader.until(() => fromHeader.events.length === 1, waitMs)
    expect(fromHeader.events.map((e) => e.id)).toEqual(versions.slice(4))
    for (const stream of [deletes, fromSince, fromHeader]) stream.close()
    await server.stop()
  })

  it('refuses what it cannot read with 400, and answers HEAD without opening a stream', async () => {
    const server = await startServer(['--max-watchers', '1'])
    for (const query of ['?since=-1', '?since=1.5', '?since=x', '?types=set,nope', '?values=yes']) {
      const response = await fetch(`${server.url}/v1/watch${query}`)
      expect(response.status, query).toBe(400)
    }
    const bad = new WatchStream(server.url, '', { lastEventId: Number.NaN })
    expect((await opened(bad, 400))?.code).toBe('invalid_request')
    const head = await fetch(`${server.url}/v1/watch`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    // HEAD took no stream: the one stream allowed is still free.
    const stream = new WatchStream(server.url, '')
    await opened(stream)
    stream.close()
    await server.stop()
  })

  it('holds --max-watchers across threads: one more is 429 naming the limit, a closed one frees a slot', async () => {
    const limit = 6
    const server = await startServer(['--threads', '2', '--max-watchers', String(limit)])
    const streams = Array.from({ length: limit }, () => new WatchStream(server.url, ''))
    for (const stream of streams) await opened(stream)
    const refused = new WatchStream(server.url, '')
    const problem = await opened(refused, 429)
    expect(problem).toMatchObject({ code: 'too_many_watchers' })
    expect(String(problem?.detail)).toContain('--max-watchers')
    expect(await openStreams(server)).toBe(limit)
    streams[0]!.close()
    await streams[0]!.closed
    // The count goes down as the server sees the connection close (a moment after the client).
    await until(async () => (await openStreams(server)) === limit - 1, 'one stream closed')
    const again = new WatchStream(server.url, '')
    await opened(again)
    for (const stream of streams) stream.close()
    again.close()
    // Every stream's slot is given back: none leaks, whichever thread served it.
    await until(async () => (await openStreams(server)) === 0, 'every stream closed')
    expect(await (await fetch(`${server.url}/metrics`)).text()).toContain('slabkv_watch_streams 0')
    await server.stop()
  })

  it('answers 401 without the token', async () => {
    const token = 'watch-token-0123456789'
    const server = await startServer(['--token', token])
    expect((await new WatchStream(server.url, '').opened).status).toBe(401)
    const stream = new WatchStream(server.url, '', { token })
    await opened(stream)
    stream.close()
    await server.stop()
  })

  it('ends every stream on SIGTERM with where to resume, and cuts those whose clients stopped reading', async () => {
    const server = await startServer(['--threads', '2', '--shutdown-timeout-ms', '60000'])
    const version = await put(server, 'a', '1')
    const streams = Array.from({ length: 4 }, () => new WatchStream(server.url, '?since=0'))
    for (const stream of streams) await opened(stream)
    for (const stream of streams) await stream.until(() => stream.events.length === 1, waitMs)
    // A client that stopped reading, with megabytes behind it: it can take no end event.
    const stalled = new WatchStream(server.url, '?since=0&values=true', { pause: true })
    await opened(stalled)
    const large = 'x'.repeat(64 * 1024)
    let newest = version
    for (let i = 0; i < 100; i++) newest = await put(server, `large${i % 4}`, large)
    for (const stream of streams) await stream.until(() => stream.lastId === newest, waitMs)
    const started = Date.now()
    expect(await server.stop()).toBe(0)
    // Far below the shutdown timeout: no stream held the graceful close open.
    expect(Date.now() - started).toBeLessThan(30_000)
    for (const stream of streams) {
      await stream.closed
      expect(stream.ended).toEqual({ reason: 'shutdown', resumeAfter: newest })
    }
    stalled.close()
  })
})

describe('GET /v1/watch: history', () => {
  /** Writes until a snapshot has deleted the first segment; returns the newest version. */
  async function writeUntilCompacted(server: RunningServer, dataDir: string) {
    let version = 0
    const value = 'v'.repeat(500)
    for (let i = 0; i < 2000; i++) {
      version = await put(server, `h${i % 50}`, value)
      if (i % 50 === 49 && !listSegments(dataDir).includes(firstSegment)) return version
    }
    throw new Error('no snapshot deleted the first segment')
  }
  const firstSegment = 'wal-0000000000000001.log'
  const listSegments = (dir: string) => readdirSync(dir)

  it('answers 410 with the oldest sequence once a snapshot deleted the history asked for', async () => {
    const server = await startServer(['--snapshot-after-size', '8KiB', '--segment-size', '4KiB'])
    const dataDir = `${server.cwd}/data`
    const newest = await writeUntilCompacted(server, dataDir)
    const gone = new WatchStream(server.url, '?since=0')
    const problem = await opened(gone, 410)
    expect(problem).toMatchObject({ code: 'watch_history_gone', newestSequence: newest })
    const oldest = problem?.oldestSequence as number
    expect(oldest).toBeGreaterThan(1)
    // The oldest sequence it names is where a resume still works, from the change before it.
    const fromOldest = new WatchStream(server.url, `?since=${oldest - 1}`)
    await opened(fromOldest)
    await fromOldest.until(() => fromOldest.events.at(-1)?.id === newest, waitMs)
    expect(fromOldest.events[0]?.id).toBe(oldest)
    fromOldest.close()
    // Newer than any change: not the history this client followed.
    const ahead = new WatchStream(server.url, `?since=${newest + 1000}`)
    expect(await opened(ahead, 410)).toMatchObject({ code: 'watch_history_gone' })
    await server.stop()
  })

  it('keeps --watch-history-size of redundant log, so a resume reaches back past the snapshot', async () => {
    const server = await startServer([
      '--snapshot-after-size',
      '8KiB',
      '--segment-size',
      '4KiB',
      '--watch-history-size',
      '64MiB',
    ])
    const dataDir = `${server.cwd}/data`
    let newest = 0
    for (let i = 0; i < 400; i++) newest = await put(server, `h${i % 50}`, 'v'.repeat(500))
    const stats = (await (await fetch(`${server.url}/v1/stats`)).json()) as Record<string, unknown>
    expect(JSON.stringify(stats)).toMatch(/"snapshots":[1-9]/)
    expect(listSegments(dataDir)).toContain(firstSegment)
    const all = new WatchStream(server.url, '?since=0')
    await opened(all)
    await all.until(() => all.events.at(-1)?.id === newest, waitMs)
    expect(all.events.map((e) => e.id)).toEqual(Array.from({ length: newest }, (_, i) => i + 1))
    all.close()
    await server.stop()
  })
})

describe('GET /v1/watch: a consumer that stops reading', () => {
  // What the server holds for a stalled stream is bounded by construction (the stream is pulled:
  // nothing is encoded until the connection has taken the last slice); test/unit/watch/
  // watcher.test.ts counts it. Here: writes are not held up by it, and it then catches up from
  // the log on disk, since the feed's buffer kept only the last 64 KiB of changes.
  it('does not hold up the writers, and catches up from disk once it reads again', async () => {
    const server = await startServer([
      '--threads',
      '2',
      '--max-memory',
      '8MiB',
      '--watch-buffer-size',
      '64KiB',
      '--send-timeout-ms',
      '120000',
    ])
    const value = 'x'.repeat(64 * 1024)
    const writeCount = 1024
    const stalled = new WatchStream(server.url, '?values=true', { pause: true })
    await opened(stalled)
    let newest = 0
    const writer = async (lane: number) => {
      for (let i = lane; i < writeCount; i += 4) {
        newest = Math.max(newest, await put(server, `s${i % 16}`, value))
      }
    }
    await Promise.all([0, 1, 2, 3].map(writer))
    expect(stalled.events).toEqual([])
    stalled.resume()
    await stalled.until(() => (stalled.lastId ?? 0) >= newest, 60_000, 'catching up')
    const ids = stalled.events.map((e) => e.id)
    const want = Array.from({ length: writeCount }, (_, i) => i + 1)
    const missing = want.filter((id) => !ids.includes(id))
    expect(ids, `missing ${missing.join(', ')}`).toEqual(want)
    expect(stalled.events.every((e) => e.data.value === value)).toBe(true)
    stalled.close()
    await server.stop()
  })
})
