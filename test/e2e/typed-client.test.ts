import { type AddressInfo, createServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  Slabkv,
  SlabkvConnectionError,
  SlabkvError,
  type SlabkvErrorCode,
} from '../../src/client/index.js'
import { awkwardKeys } from '../support/awkward-keys.js'
import {
  freePort,
  keyPath,
  killAll,
  type RunningServer,
  sleep,
  startServer,
  uniqueKey,
} from '../support/server.js'

// docs/client.md: the Node client (`slabkv/client`) against a real server process: every method,
// conditions, TTLs, content types, listings across pages, batches, stats, awkward keys, and the
// errors it throws, typed with the problem's code. Its watch: typed-client-watch.test.ts.

afterAll(killAll)

/** The error a call rejects with, for expect(). */
async function rejection(call: Promise<unknown>): Promise<unknown> {
  try {
    await call
  } catch (error) {
    return error
  }
  throw new Error('the call did not reject')
}

/** Everything an async iterable yields. */
async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = []
  for await (const item of iterable) items.push(item)
  return items
}

/** Asserts a SlabkvError with this status and code; answers it. */
async function refusal(call: Promise<unknown>, status: number, code: SlabkvErrorCode) {
  const error = await rejection(call)
  expect(error).toBeInstanceOf(SlabkvError)
  expect(error).toMatchObject({ name: 'SlabkvError', status, code })
  return error as SlabkvError
}

describe('the Node client against a real server', () => {
  let server: RunningServer
  let kv: Slabkv

  beforeAll(async () => {
    server = await startServer(['--max-value-size', '64KiB'])
    kv = new Slabkv({ url: server.url })
  })

  afterAll(async () => {
    await server?.stop()
  })

  it('sets and gets strings, bytes and JSON with their content types and versions', async () => {
    const key = uniqueKey('client')
    const first = await kv.set(key, 'héllo')
    expect(first).toEqual({ version: expect.any(Number), created: true, evicted: 0 })
    expect(await kv.get(key)).toEqual({
      value: Buffer.from('héllo'),
      contentType: 'text/plain; charset=utf-8',
      version: first.version,
      ttlSeconds: null,
    })
    expect(await kv.getText(key)).toBe('héllo')

    const bytes = new Uint8Array([0, 255, 10, 13, 0xc3])
    const second = await kv.set(key, bytes)
    expect(second.created).toBe(false)
    expect(second.version).toBeGreaterThan(first.version)
    const entry = await kv.get(key)
    expect(entry?.value).toEqual(Buffer.from(bytes))
    expect(entry?.contentType).toBe('application/octet-stream')
    // The version is the ETag the HTTP API gives.
    const response = await fetch(`${server.url}/v1/kv/${keyPath(key)}`)
    await response.arrayBuffer()
    expect(response.headers.get('etag')).toBe(`"${second.version}"`)

    await kv.set(key, '<p>hi</p>', { contentType: 'text/html; charset=utf-8' })
    expect((await kv.get(key))?.contentType).toBe('text/html; charset=utf-8')

    const doc = { user: 'ada', tags: ['a', 'ü'], n: 1.5 }
    await kv.setJson(key, doc)
    expect(await kv.getJson(key)).toEqual(doc)
    expect((await kv.get(key))?.contentType).toBe('application/json')
  })

  it('answers undefined and false for a missing key, true for a delete', async () => {
    const key = uniqueKey('client-missing')
    expect(await kv.get(key)).toBeUndefined()
    expect(await kv.getText(key)).toBeUndefined()
    expect(await kv.getJson(key)).toBeUndefined()
    expect(await kv.delete(key)).toBe(false)
    await kv.set(key, 'v')
    expect(await kv.delete(key)).toBe(true)
    expect(await kv.get(key)).toBeUndefined()
    expect(await kv.delete(key)).toBe(false)
  })

  it('writes and deletes only under their conditions, else throws 412 precondition_failed', async () => {
    const key = uniqueKey('client-cas')
    const { version } = await kv.set(key, 'one', { ifAbsent: true })
    const taken = await refusal(kv.set(key, 'two', { ifAbsent: true }), 412, 'precondition_failed')
    expect(taken.problem).toMatchObject({ status: 412, code: 'precondition_failed' })
    expect(taken.detail).toEqual(expect.any(String))
    const next = await kv.set(key, 'two', { ifVersion: version })
    await refusal(kv.set(key, 'three', { ifVersion: version }), 412, 'precondition_failed')
    await refusal(kv.delete(key, { ifVersion: version }), 412, 'precondition_failed')
    expect(await kv.getText(key)).toBe('two')
    expect(await kv.delete(key, { ifVersion: next.version })).toBe(true)
    // No such key: false, whatever the condition.
    expect(await kv.delete(key, { ifVersion: next.version })).toBe(false)
  })

  it('sets TTLs, reports the seconds left, and refuses one that is not positive', async () => {
    const lasting = uniqueKey('client-ttl')
    await kv.set(lasting, 'v', { ttlSeconds: 60 })
    const ttl = (await kv.get(lasting))?.ttlSeconds
    expect(ttl).toBeGreaterThan(50)
    expect(ttl).toBeLessThanOrEqual(60)
    const [listed] = await collect(kv.list({ prefix: lasting }))
    expect(listed?.ttlSeconds).toBeGreaterThan(50)

    const brief = uniqueKey('client-ttl-brief')
    await kv.set(brief, 'v', { ttlSeconds: 0.3 })
    expect(await kv.getText(brief)).toBe('v')
    await sleep(500)
    expect(await kv.get(brief)).toBeUndefined()

    await refusal(kv.set(brief, 'v', { ttlSeconds: 0 }), 400, 'ttl_invalid')
    await refusal(kv.set(brief, 'v', { ttlSeconds: 1e13 }), 400, 'ttl_invalid')
    await refusal(kv.set(brief, 'v', { contentType: 'not a type' }), 400, 'content_type_invalid')
  })

  it('lists every key under a prefix across several pages, each exactly once', async () => {
    const prefix = `${uniqueKey('client-list')}/`
    const keys = Array.from({ length: 23 }, (_, i) => `${prefix}${i}`)
    for (const key of keys) await kv.set(key, `value of ${key}`)
    await kv.set(`${prefix.slice(0, -1)}-outside`, 'v')

    const pages = await collect(kv.listPages({ prefix, pageSize: 5 }))
    expect(pages.map((page) => page.entries.length)).toEqual([5, 5, 5, 5, 3])
    expect(pages.at(-1)?.cursor).toBeNull()
    for (const page of pages.slice(0, -1)) expect(page.cursor).toEqual(expect.any(String))
    const stats = await kv.stats()
    for (const page of pages) {
      expect(page.sequence).toBeGreaterThan(0)
      expect(page.sequence).toBeLessThanOrEqual(stats.sequence)
    }

    const entries = await collect(kv.list({ prefix, pageSize: 4 }))
    expect(entries.map((entry) => entry.key).sort()).toEqual([...keys].sort())
    expect(entries[0]).toEqual({
      key: expect.stringMatching(/\/\d+$/),
      size: Buffer.byteLength(`value of ${entries[0]!.key}`),
      contentType: 'text/plain; charset=utf-8',
      version: expect.any(Number),
      ttlSeconds: null,
    })
    // A listing continued from a page's cursor.
    const rest = await collect(kv.list({ prefix, pageSize: 5, cursor: pages[3]!.cursor! }))
    expect(rest.map((entry) => entry.key)).toEqual(pages[4]!.entries.map((entry) => entry.key))
    // Breaking out of the loop asks for no more pages.
    let seen = 0
    for await (const _entry of kv.list({ prefix, pageSize: 2 })) if (++seen === 3) break
    expect(seen).toBe(3)
    await refusal(collect(kv.list({ prefix, pageSize: 1001 })), 400, 'invalid_request')
  })

  it('runs a batch whole, typed per op, or throws 412 with the index and applies nothing', async () => {
    const [a, b, gone] = [uniqueKey('batch-a'), uniqueKey('batch-b'), uniqueKey('batch-gone')]
    await kv.set(gone, 'doomed')
    const results = await kv.batch([
      { op: 'set', key: a, value: 'text' },
      {
        op: 'set',
        key: b,
        value: new Uint8Array([0, 1, 2, 255]),
        contentType: 'image/x-raw',
        ttlSeconds: 60,
      },
      { op: 'get', key: a },
      { op: 'get', key: b },
      { op: 'get', key: uniqueKey('batch-missing') },
      { op: 'delete', key: gone },
      { op: 'delete', key: gone },
    ])
    const [setA, setB, getA, getB, missing, deleted, again] = results
    expect(setB.version).toBe(setA.version + 1)
    expect(getA).toEqual({
      value: Buffer.from('text'),
      contentType: 'text/plain; charset=utf-8',
      version: setA.version,
    })
    expect(getB).toEqual({
      value: Buffer.from([0, 1, 2, 255]),
      contentType: 'image/x-raw',
      version: setB.version,
    })
    expect(missing).toBeUndefined()
    expect([deleted, again]).toEqual([true, false])
    expect((await kv.get(b))?.ttlSeconds).toBeGreaterThan(50)

    const failed = await refusal(
      kv.batch([
        { op: 'set', key: a, value: 'changed' },
        { op: 'set', key: b, value: 'changed', ifVersion: setA.version },
      ]),
      412,
      'precondition_failed',
    )
    expect(failed.problem?.index).toBe(1)
    expect(await kv.getText(a)).toBe('text')
  })

  it('reads the stats', async () => {
    const before = await kv.stats()
    await kv.set(uniqueKey('client-stats'), 'v')
    const after = await kv.stats()
    expect(after.sets).toBe(before.sets + 1)
    expect(after.sequence).toBeGreaterThan(before.sequence)
    expect(after).toMatchObject({
      entries: expect.any(Number),
      bytesMax: expect.any(Number),
      wal: { fsync: 'always', state: 'ok' },
      watch: { streams: expect.any(Number) },
    })
  })

  it('reaches every awkward key: set, get, list and delete', async () => {
    const keySizeMax = 1024 // The server's default --max-key-size.
    const keys = awkwardKeys(keySizeMax)
    const failures: string[] = []
    for (const [i, key] of keys.entries()) {
      const { version } = await kv.set(key, `value ${i}`)
      const entry = await kv.get(key)
      if (
        Buffer.from(entry?.value ?? []).toString() !== `value ${i}` ||
        entry?.version !== version
      ) {
        failures.push(`get ${JSON.stringify(key)}: ${JSON.stringify(entry)}`)
      }
    }
    const listed = new Set<string>()
    for await (const entry of kv.list()) listed.add(entry.key)
    for (const key of keys)
      if (!listed.has(key)) failures.push(`list left out ${JSON.stringify(key)}`)
    for (const key of keys) {
      if (!(await kv.delete(key))) failures.push(`delete ${JSON.stringify(key)}`)
      if ((await kv.get(key)) !== undefined) failures.push(`still there: ${JSON.stringify(key)}`)
    }
    expect(failures).toEqual([])
    // Listing by an awkward prefix.
    await kv.set('%/pre fix/😀', 'v')
    expect((await collect(kv.list({ prefix: '%/pre fix/' }))).map((e) => e.key)).toEqual([
      '%/pre fix/😀',
    ])
  })

  it('throws what the server refuses, typed with its code', async () => {
    await refusal(kv.set('', 'v'), 400, 'key_empty')
    await refusal(kv.get(''), 400, 'key_empty')
    const tooLarge = await refusal(kv.get('k'.repeat(1025)), 400, 'key_too_large')
    expect(tooLarge.message).toMatch(/1025 bytes.*1024 bytes.*\(key_too_large\)$/)
    await refusal(kv.set(uniqueKey('big'), new Uint8Array(64 * 1024 + 1)), 413, 'value_too_large')
    // A key no UTF-8 can carry is refused before anything is sent.
    await expect(kv.get('a\ud800b')).rejects.toThrow(TypeError)
    // A 404 for a route, not a key, is an error, not a miss.
    const elsewhere = new Slabkv({ url: `${server.url}/not-here/` })
    await refusal(elsewhere.get('k'), 404, 'route_not_found')
  })

  it('tells an unreachable server, a timeout and an abort apart', async () => {
    const closed = new Slabkv({ url: `http://127.0.0.1:${await freePort()}` })
    const unreachable = await rejection(closed.get('k'))
    expect(unreachable).toBeInstanceOf(SlabkvConnectionError)
    expect(unreachable).not.toBeInstanceOf(SlabkvError)
    expect(String(unreachable)).toMatch(/SlabkvConnectionError: .*ECONNREFUSED/)

    const aborted = new AbortController()
    aborted.abort()
    expect(await rejection(kv.get('k', { signal: aborted.signal }))).toMatchObject({
      name: 'AbortError',
    })
    // A server that takes the connection and never answers.
    const silent = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const { port } = silent.address() as AddressInfo
    const hurried = new Slabkv({ url: `http://127.0.0.1:${port}`, timeoutMs: 200 })
    expect(await rejection(hurried.set('k', 'v'))).toMatchObject({ name: 'TimeoutError' })
    silent.close()
    expect(() => new Slabkv({ url: 'ftp://127.0.0.1/' })).toThrow(TypeError)
  })
})

describe('the Node client with a token', () => {
  let server: RunningServer

  beforeAll(async () => {
    server = await startServer(['--token', 'secret'])
  })

  afterAll(async () => {
    await server?.stop()
  })

  it('sends it, and throws 401 unauthorized without it or with another', async () => {
    const kv = new Slabkv({ url: server.url, token: 'secret' })
    await kv.set('k', 'v')
    expect(await kv.getText('k')).toBe('v')
    for (const token of [undefined, 'wrong']) {
      const other = new Slabkv({ url: server.url, ...(token === undefined ? {} : { token }) })
      await refusal(other.get('k'), 401, 'unauthorized')
      await refusal(other.stats(), 401, 'unauthorized')
      await refusal(collect(other.list()), 401, 'unauthorized')
      const watch = other.watch()
      await refusal(watch.next(), 401, 'unauthorized')
    }
  })
})
