import { afterAll, describe, expect, it } from 'vitest'
import {
  type ChangeEvent,
  Slabkv,
  SlabkvConnectionError,
  SlabkvError,
  WatchHistoryGoneError,
} from '../../src/client/index.js'
import {
  freePort,
  killAll,
  type RunningServer,
  sleep,
  startServer,
  uniqueKey,
} from '../support/server.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'
import { temporaryDirs } from '../support/temp-dirs.js'

// docs/client.md, "Watching": the Node client's watch against real server processes. Changes
// come typed and in order; a connection cut under it, a server stopped (SIGTERM) or killed
// (SIGKILL) and started again on the same port and data directory are resumed from by
// themselves, each change handed out once; a position the server cannot resume from throws a
// WatchHistoryGoneError; aborting and breaking end it.

/** No watch of these tests outlives this: a stuck one fails with a TimeoutError instead. */
const watchLimitMs = 60_000
const proxies: TcpProxy[] = []

const dataDirs = temporaryDirs('slabkv-client-watch-')
const dataDir = () => dataDirs.make()

afterAll(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close()))
  await killAll()
  dataDirs.removeAll()
})

/** The next `count` changes of a watch. */
async function take(changes: AsyncIterator<ChangeEvent>, count: number): Promise<ChangeEvent[]> {
  const taken: ChangeEvent[] = []
  while (taken.length < count) {
    const next = await changes.next()
    if (next.done) break
    taken.push(next.value)
  }
  return taken
}

describe("the Node client's watch against a real server", () => {
  it('yields each change under the prefix, typed, in order, values included', async () => {
    const server = await startServer(['--data-dir', dataDir()])
    const kv = new Slabkv({ url: server.url })
    const prefix = `${uniqueKey('client-watch')}/`
    const { sequence } = await kv.stats()
    const changes = kv.watch({
      prefix,
      since: sequence,
      values: true,
      signal: AbortSignal.timeout(watchLimitMs),
    })
    const text = await kv.set(`${prefix}text`, 'héllo')
    await kv.set(uniqueKey('elsewhere'), 'not watched')
    const bytes = await kv.set(`${prefix}bytes`, new Uint8Array([0, 159, 255]), {
      ttlSeconds: 60,
    })
    await kv.delete(`${prefix}text`)
    const [first, second, third] = await take(changes, 3)
    expect(first).toEqual({
      type: 'set',
      sequence: text.version,
      version: text.version,
      key: `${prefix}text`,
      size: 6,
      contentType: 'text/plain; charset=utf-8',
      expiresAt: null,
      value: Buffer.from('héllo'),
    })
    expect(second).toMatchObject({
      type: 'set',
      sequence: bytes.version,
      key: `${prefix}bytes`,
      size: 3,
      contentType: 'application/octet-stream',
      value: Buffer.from([0, 159, 255]),
    })
    const expiresAt = second?.type === 'set' ? second.expiresAt : null
    expect(expiresAt).toBeGreaterThan(Date.now() + 50_000)
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 60_000)
    expect(third).toMatchObject({ type: 'delete', key: `${prefix}text` })
    expect(third!.sequence).toBeGreaterThan(bytes.version)
    await changes.return(undefined as never)
    await server.stop()
  })

  it('watches from a listing without a gap, only the kinds asked for', async () => {
    const server = await startServer(['--data-dir', dataDir()])
    const kv = new Slabkv({ url: server.url })
    const prefix = `${uniqueKey('client-list-watch')}/`
    for (const i of [1, 2, 3]) await kv.set(`${prefix}${i}`, 'v')
    const pages = kv.listPages({ prefix })
    const first = await pages.next()
    const listed = first.done ? [] : first.value.entries.map((entry) => entry.key)
    expect(listed.sort()).toEqual([`${prefix}1`, `${prefix}2`, `${prefix}3`])
    const since = first.done ? 0 : first.value.sequence
    // Changes between the listing and the watch's start are not lost.
    await kv.delete(`${prefix}1`)
    await kv.set(`${prefix}4`, 'v')
    const changes = kv.watch({
      prefix,
      since,
      types: ['delete'],
      signal: AbortSignal.timeout(watchLimitMs),
    })
    const [deleted] = await take(changes, 1)
    await kv.delete(`${prefix}2`)
    const [later] = await take(changes, 1)
    expect([deleted, later].map((change) => `${change?.type} ${change?.key}`)).toEqual([
      `delete ${prefix}1`,
      `delete ${prefix}2`,
    ])
    await changes.return(undefined as never)
    await server.stop()
  })

  it('resumes by itself after a cut connection, a SIGTERM and a SIGKILL, each change once', async () => {
    const dir = dataDir()
    let server: RunningServer = await startServer(['--data-dir', dir])
    const port = server.port
    const proxy = await startTcpProxy(port)
    proxies.push(proxy)
    const kv = new Slabkv({ url: server.url })
    const prefix = `${uniqueKey('client-resume')}/`
    const reconnects: { reason: string; lastEventId: string }[] = []
    const { sequence } = await kv.stats()
    // Through the relay, whose connections can be cut; writes go to the server directly.
    const changes = new Slabkv({ url: proxy.url }).watch({
      prefix,
      since: sequence,
      signal: AbortSignal.timeout(watchLimitMs),
      onReconnect: ({ reason, lastEventId }) => reconnects.push({ reason, lastEventId }),
    })
    const written: [string, number][] = []
    const write = async (name: string) => {
      const { version } = await kv.set(`${prefix}${name}`, name)
      written.push([`${prefix}${name}`, version])
    }
    /** The watch yields exactly what was written since the last look, in order. */
    const see = async () => {
      const taken = await take(changes, written.length)
      expect(taken.map((change) => [change.key, change.sequence])).toEqual(written)
      written.length = 0
    }
    await write('before')
    await see()
    // Each time, a change is made while the watch cannot reach the server (the relay refuses
    // it): only resuming from the last id it had catches up on it.
    const interruptions = {
      cut: async () => proxy.cut(),
      SIGTERM: async () => {
        await server.stop('SIGTERM')
        server = await startServer(['--data-dir', dir], {}, { port })
      },
      SIGKILL: async () => {
        await server.stop('SIGKILL')
        server = await startServer(['--data-dir', dir], {}, { port })
      },
    }
    for (const [name, interrupt] of Object.entries(interruptions)) {
      proxy.refusing = true
      await interrupt()
      proxy.cut()
      await write(`while away (${name})`)
      await sleep(200)
      proxy.refusing = false
      await write(`back (${name})`)
      await see()
    }
    // Three resumes, each from the id the watch had: none started from scratch.
    expect(reconnects.length).toBeGreaterThanOrEqual(3)
    for (const reconnect of reconnects) expect(reconnect.lastEventId).toMatch(/^\d+$/)
    expect(reconnects.map((reconnect) => reconnect.reason).join('\n')).toMatch(
      /the connection failed|the server (closed|ended) the stream|cannot reach/,
    )
    await changes.return(undefined as never)
    await server.stop()
  })

  it('throws a WatchHistoryGoneError for a position the server does not hold', async () => {
    const server = await startServer(['--data-dir', dataDir()])
    const kv = new Slabkv({ url: server.url })
    await kv.set('k', 'v')
    const gone = await kv
      .watch({ since: 1_000_000_000 })
      .next()
      .then(
        () => undefined,
        (error: unknown) => error,
      )
    expect(gone).toBeInstanceOf(WatchHistoryGoneError)
    expect(gone).toBeInstanceOf(SlabkvError)
    expect(gone).toMatchObject({
      name: 'WatchHistoryGoneError',
      status: 410,
      code: 'watch_history_gone',
      oldestSequence: expect.any(Number),
      newestSequence: 1,
    })
    await server.stop()
  })

  it('throws when the first connection fails; ends on abort and on break', async () => {
    const nobody = new Slabkv({ url: `http://127.0.0.1:${await freePort()}` })
    await expect(nobody.watch().next()).rejects.toBeInstanceOf(SlabkvConnectionError)

    const server = await startServer(['--data-dir', dataDir()])
    const kv = new Slabkv({ url: server.url })
    const streams = async () => (await kv.stats()).watch.streams
    const stop = new AbortController()
    const aborted = kv.watch({ signal: stop.signal }).next()
    await expect.poll(streams).toBe(1)
    stop.abort()
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' })
    await expect.poll(streams).toBe(0)

    const prefix = `${uniqueKey('client-break')}/`
    const { sequence } = await kv.stats()
    for (const i of [1, 2, 3]) await kv.set(`${prefix}${i}`, 'v')
    const keys: (string | null)[] = []
    for await (const change of kv.watch({ prefix, since: sequence })) {
      keys.push(change.key)
      if (keys.length === 2) break
    }
    expect(keys).toEqual([`${prefix}1`, `${prefix}2`])
    await expect.poll(streams).toBe(0)
    // A client's own signal ends its watches too.
    const closing = new AbortController()
    const owned = new Slabkv({ url: server.url, signal: closing.signal }).watch().next()
    await expect.poll(streams).toBe(1)
    closing.abort()
    await expect(owned).rejects.toMatchObject({ name: 'AbortError' })
    await sleep(0)
    await server.stop()
  })
})
