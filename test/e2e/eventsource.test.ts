import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { api, kvPath } from '../support/api-client.js'
import { browserMissing, launchBrowser, TestPages } from '../support/browser.js'
import { killAll, type RunningServer, startServer } from '../support/server.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'
import { temporaryDirs } from '../support/temp-dirs.js'

// GET /v1/watch read by the browser's own EventSource (docs/api.md, "GET /v1/watch"), in
// Chromium against the real server, with nothing of ours parsing the stream in the page. The
// page is the server's own /docs, so the stream is same-origin and under the policy the server
// gives its pages (connect-src 'self'): what is tested is EventSource and the feed, not CORS.
// One more test does it from a page on another origin (opened from disk, --cors-origins null).
// The page reaches the server through a TCP relay
// (test/support/tcp-proxy.ts) that records what each connection carried: the Last-Event-ID a
// reconnect sends is read there, as the server receives it, and the relay resets connections
// to drop them. The test writes keys through the API directly, behind the page's back.

if (browserMissing !== undefined) console.warn(`eventsource.test.ts: skipped: ${browserMissing}`)

/** What the page's EventSource dispatched: its type, lastEventId, data, and readyState then. */
interface Dispatched {
  type: string
  id: string
  data: string
  state: number
}

let browser: Browser
let pages: TestPages
const started: TcpProxy[] = []
const tempDirs = temporaryDirs('slabkv-eventsource-')
const tempDir = () => tempDirs.make()

async function relayTo(server: RunningServer): Promise<TcpProxy> {
  const proxy = await startTcpProxy(server.port, { record: true })
  started.push(proxy)
  return proxy
}

/** Opens the server's /docs through the relay and starts an EventSource on `path` there. */
async function openFeed(proxy: TcpProxy, path: string) {
  const watched = await pages.open(proxy.url, '/docs')
  await startFeed(watched.page, path)
  return watched
}

/** Starts an EventSource on `url` in the page, recording what it dispatches; waits for `open`. */
async function startFeed(page: Page, url: string) {
  await page.evaluate((url) => {
    const seen: Dispatched[] = []
    const source = new EventSource(url)
    const types = ['open', 'error', 'message', 'set', 'delete', 'expire', 'evict', 'clear', 'end']
    for (const type of types) {
      source.addEventListener(type, (event) => {
        const message = event as MessageEvent
        const data = typeof message.data === 'string' ? message.data : ''
        seen.push({ type, id: message.lastEventId ?? '', data, state: source.readyState })
      })
    }
    Object.assign(globalThis, { feed: { source, seen } })
  }, url)
  await expect.poll(() => dispatched(page, ['open'])).toHaveLength(1)
}

/** What the page's EventSource dispatched so far, of the given types. */
async function dispatched(page: Page, types: string[]): Promise<Dispatched[]> {
  const seen = await page.evaluate(
    () => (globalThis as unknown as { feed: { seen: Dispatched[] } }).feed.seen,
  )
  return seen.filter((event) => types.includes(event.type))
}

const changeTypes = ['message', 'set', 'delete', 'expire', 'evict', 'clear']

/** The change events the page received: kind, lastEventId, and the data's key and version. */
async function changes(page: Page) {
  return (await dispatched(page, changeTypes)).map((event) => {
    const data = JSON.parse(event.data) as { key: string; version: number }
    return { type: event.type, id: event.id, key: data.key, version: data.version }
  })
}

/** Every request for /v1/watch the server received through the relay, with its Last-Event-ID. */
function watchRequests(proxy: TcpProxy): { path: string; lastEventId: string | undefined }[] {
  const requests = []
  for (const connection of proxy.connections) {
    const heads = connection.toServer.matchAll(/GET (\/v1\/watch\S*) HTTP\/1\.1\r\n(.*?)\r\n\r\n/gs)
    for (const [, path = '', headers = ''] of heads) {
      const lastEventId = /^last-event-id: *(.*)$/im.exec(headers)?.[1]
      requests.push({ path, lastEventId })
    }
  }
  return requests
}

/** The sequence number of the test's latest change: it is the only writer, and sets no TTL. */
let latest = 0

async function put(server: RunningServer, key: string, body: string) {
  const response = await api(server, kvPath(key), { method: 'PUT', body })
  expect(response.status).toBeLessThan(300)
  latest = ((await response.json()) as { version: number }).version
  return latest
}

/**
 * Deletes a key. DELETE answers 204 without the change's sequence number; with one writer, it is
 * the one after the latest change's (the set after it checks that none was skipped).
 */
async function remove(server: RunningServer, key: string) {
  const response = await api(server, kvPath(key), { method: 'DELETE' })
  expect(response.status).toBe(204)
  latest += 1
  return latest
}

const set = (key: string, version: number) => ({ type: 'set', id: String(version), key, version })
const deleted = (key: string, version: number) => ({
  type: 'delete',
  id: String(version),
  key,
  version,
})

describe.skipIf(browserMissing !== undefined)("the browser's own EventSource on /v1/watch", () => {
  beforeAll(async () => {
    browser = await launchBrowser()
    pages = new TestPages(browser)
  })

  afterEach(() => pages?.closeAll())

  afterAll(async () => {
    await browser?.close()
    await Promise.all(started.map((proxy) => proxy.close()))
    await killAll()
    tempDirs.removeAll()
  })

  it('gets every change in order with its id, and resumes with Last-Event-ID across a cut and a restart', async () => {
    const dataDir = tempDir()
    let server = await startServer(['--data-dir', dataDir])
    const proxy = await relayTo(server)
    const { page, problems } = await openFeed(proxy, '/v1/watch?prefix=es%2F')
    const expected = []

    // Changes in the prefix arrive in order, each with its sequence number as lastEventId; the
    // one outside the prefix does not.
    expected.push(set('es/a', await put(server, 'es/a', 'one')))
    await put(server, 'other/x', 'not watched')
    expected.push(set('es/b', await put(server, 'es/b', 'two')))
    expected.push(deleted('es/a', await remove(server, 'es/a')))
    await expect.poll(() => changes(page)).toEqual(expected)

    // The connection is reset, and no other gets through while keys change.
    proxy.refusing = true
    proxy.cut()
    await expect.poll(() => dispatched(page, ['error'])).not.toHaveLength(0)
    const lastBeforeCut = expected.at(-1)?.id
    expected.push(set('es/c', await put(server, 'es/c', 'while cut')))
    expected.push(deleted('es/b', await remove(server, 'es/b')))
    // At least one reconnect (retry: 1000) is refused meanwhile; EventSource keeps trying.
    await expect.poll(() => dispatched(page, ['error']), { timeout: 5_000 }).toHaveLength(2)
    proxy.refusing = false
    await expect.poll(() => changes(page), { timeout: 10_000 }).toEqual(expected)
    expect(watchRequests(proxy)).toEqual([
      { path: '/v1/watch?prefix=es%2F', lastEventId: undefined },
      { path: '/v1/watch?prefix=es%2F', lastEventId: lastBeforeCut },
    ])

    // The server stops (it ends the stream with an `end` event) and comes back on the same port
    // and data directory; a change is made before the page can reconnect.
    proxy.refusing = true
    expect(await server.stop('SIGTERM')).toBe(0)
    server = await startServer(['--data-dir', dataDir], {}, { port: server.port })
    const lastBeforeRestart = expected.at(-1)?.id
    expected.push(set('es/d', await put(server, 'es/d', 'while away')))
    proxy.refusing = false
    await expect.poll(() => changes(page), { timeout: 10_000 }).toEqual(expected)
    expected.push(set('es/e', await put(server, 'es/e', 'after')))
    await expect.poll(() => changes(page)).toEqual(expected)
    const resumed = watchRequests(proxy).slice(2)
    expect(resumed).toEqual([{ path: '/v1/watch?prefix=es%2F', lastEventId: lastBeforeRestart }])
    const ends = await dispatched(page, ['end'])
    expect(ends.map((end) => JSON.parse(end.data))).toEqual([
      { reason: 'shutdown', resumeAfter: Number(lastBeforeRestart) },
    ])
    // Refused connections show as network errors in the console; nothing else may.
    expect(problems.filter((problem) => !/net::ERR_/.test(problem))).toEqual([])
  })

  it("takes a heartbeat's id as its last event id, and resumes from there after a drop", async () => {
    const server = await startServer(['--data-dir', tempDir(), '--watch-heartbeat-ms', '200'])
    const proxy = await relayTo(server)
    await put(server, 'other/before', 'before the feed')
    const { page, problems } = await openFeed(proxy, '/v1/watch?prefix=none%2F')
    const watchConnection = () =>
      proxy.connections.find((connection) => connection.toServer.includes('GET /v1/watch'))
    /** What the server sent on the feed's connection: the first block's id and every heartbeat's. */
    const sent = () => {
      const text = watchConnection()?.toClient ?? ''
      const start = /\nretry: 1000\nid: (\d+)\n\n/.exec(text)?.[1]
      const beats = [...text.matchAll(/\n: heartbeat\nid: (\d+)\n\n/g)].map((match) => match[1])
      return { start, beats }
    }
    await expect.poll(() => sent().start).toBe(String(latest))
    const start = latest

    // Changes the prefix does not match: no event, but the heartbeats' ids move past them.
    for (const key of ['other/a', 'other/b', 'other/c']) await put(server, key, key)
    expect(latest).toBeGreaterThan(start)
    // Two heartbeats (at least 200 ms apart) at the newest id: the browser has the first.
    const beatsAtLatest = () => sent().beats.filter((id) => id === String(latest)).length
    await expect.poll(beatsAtLatest, { timeout: 5_000 }).toBeGreaterThanOrEqual(2)
    expect(await changes(page)).toEqual([])

    proxy.cut()
    await expect.poll(() => watchRequests(proxy), { timeout: 5_000 }).toHaveLength(2)
    expect(watchRequests(proxy)).toEqual([
      { path: '/v1/watch?prefix=none%2F', lastEventId: undefined },
      { path: '/v1/watch?prefix=none%2F', lastEventId: String(latest) },
    ])
    // Resumed there, it gets the next change in the prefix, and nothing before it.
    const version = await put(server, 'none/x', 'matched at last')
    await expect.poll(() => changes(page)).toEqual([set('none/x', version)])
    expect(problems.filter((problem) => !/net::ERR_/.test(problem))).toEqual([])
  })

  it('resumes with Last-Event-ID from a page on another origin too, with no preflight', async () => {
    // A page opened from disk (origin null) and --cors-origins null, as docs/api.md's "Browsers
    // on other origins" describes. The browser adds Last-Event-ID itself and asks no preflight
    // for it: the stream's own answer must allow the origin, on the first request and the next.
    const server = await startServer(['--data-dir', tempDir(), '--cors-origins', 'null'])
    const proxy = await relayTo(server)
    const dir = tempDir()
    writeFileSync(join(dir, 'page.html'), '<!doctype html><title>elsewhere</title>\n')
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      await page.goto(pathToFileURL(join(dir, 'page.html')).href)
      await startFeed(page, `${proxy.url}/v1/watch?prefix=far%2F`)
      const expected = [set('far/a', await put(server, 'far/a', 'one'))]
      await expect.poll(() => changes(page)).toEqual(expected)
      proxy.cut()
      expected.push(set('far/b', await put(server, 'far/b', 'while cut')))
      await expect.poll(() => changes(page), { timeout: 10_000 }).toEqual(expected)
      expect(watchRequests(proxy)).toEqual([
        { path: '/v1/watch?prefix=far%2F', lastEventId: undefined },
        { path: '/v1/watch?prefix=far%2F', lastEventId: expected[0]?.id },
      ])
      const requests = proxy.connections.flatMap((connection) =>
        [...connection.toServer.matchAll(/^([A-Z]+) \S+ HTTP\/1\.1\r\n/gm)].map(
          (match) => match[1],
        ),
      )
      expect(requests).toEqual(['GET', 'GET'])
    } finally {
      await context.close()
    }
  })
})

afterAll(killAll)
