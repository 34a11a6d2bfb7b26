import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prng, testSeed } from '../support/random.js'
import { killAll, type RunningServer, sleep, startServer, uniqueKey } from '../support/server.js'
import { expectJson, expectProblem } from './http.js'
import { kvClient, type ListPage } from './kv-client.js'

// GET /v1/kv (docs/api.md, "GET /v1/kv"): pages of keys by prefix, every key present for the
// whole listing exactly once while others come and go, and where the pages end.

let server: RunningServer

beforeAll(async () => {
  server = await startServer()
})

afterAll(async () => {
  await server?.stop()
  await killAll()
})

const { put, del, putOk, listAll, listItems } = kvClient(() => server.url)

function countOf(keys: string[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const key of keys) counts.set(key, (counts.get(key) ?? 0) + 1)
  return counts
}

describe('GET /v1/kv listing', () => {
  it('pages through every key with the prefix exactly once', async () => {
    const prefix = `${uniqueKey('list')}/`
    const expected: string[] = []
    for (let i = 0; i < 37; i++) expected.push(`${prefix}${i}`)
    await Promise.all(expected.map((key) => putOk(key, key)))
    const keys = await listAll(prefix, 7)
    expect(keys.length).toBe(expected.length)
    expect([...keys].sort()).toEqual([...expected].sort())
  })

  it('describes each key with its size, content type, version and ttl', async () => {
    const prefix = `${uniqueKey('list-items')}/`
    const plain = `${prefix}plain`
    const plainVersion = await putOk(plain, 'héllo', { contentType: 'text/plain' })
    const brief = `${prefix}brief`
    const briefVersion = await putOk(brief, new Uint8Array(10), { query: '?ttl=60' })
    const items = await listItems(prefix, 1000)
    const byKey = new Map(items.map((item) => [item.key, item]))
    expect(byKey.get(plain)).toEqual({
      key: plain,
      size: 6,
      contentType: 'text/plain',
      version: plainVersion,
      ttl: null,
    })
    const item = byKey.get(brief)
    expect(item).toMatchObject({
      key: brief,
      size: 10,
      contentType: 'application/octet-stream',
      version: briefVersion,
    })
    expect(Object.keys(item!).sort()).toEqual(['contentType', 'key', 'size', 'ttl', 'version'])
    expect(item!.ttl).toBeGreaterThan(50)
    expect(item!.ttl).toBeLessThanOrEqual(60)
  })

  it('returns only keys that start with the prefix', async () => {
    const base = uniqueKey('list-prefix')
    const inside = [`${base}/a`, `${base}/b`, `${base}/ü/c`]
    const outside = [`${base}`, `${base}-a`, `x${base}/a`]
    await Promise.all([...inside, ...outside].map((key) => putOk(key, 'v')))
    const keys = await listAll(`${base}/`, 1000)
    expect([...keys].sort()).toEqual([...inside].sort())
    expect(await listAll(`${base}/ü/`, 1000)).toEqual([`${base}/ü/c`])
    expect(await listAll(`${base}/nothing`, 1000)).toEqual([])
  })

  it('returns at most 100 keys by default and accepts limit=1000', async () => {
    const prefix = `${uniqueKey('list-default')}/`
    await Promise.all(Array.from({ length: 130 }, (_, i) => putOk(`${prefix}${i}`, 'v')))
    const first = await expectJson<ListPage>(
      await fetch(`${server.url}/v1/kv?${new URLSearchParams({ prefix })}`),
      200,
    )
    expect(first.items.length).toBeLessThanOrEqual(100)
    const all = await listAll(prefix, 1000)
    expect(all.length).toBe(130)
  })

  it('refuses limit 0, 1001, -1, 1.5 or abc and an invalid cursor with 400 invalid_request', async () => {
    for (const limit of ['0', '1001', '-1', '1.5', 'abc', '']) {
      const query = new URLSearchParams({ prefix: 'x', limit })
      await expectProblem(await fetch(`${server.url}/v1/kv?${query}`), 400, 'invalid_request')
    }
    for (const cursor of ['abc', '-1', '1.5']) {
      const query = new URLSearchParams({ prefix: 'x', cursor })
      await expectProblem(await fetch(`${server.url}/v1/kv?${query}`), 400, 'invalid_request')
    }
  })

  it('lists every key present for the whole listing exactly once while other keys come and go', async () => {
    const seed = testSeed('listing under churn')
    const random = prng(seed)
    const prefix = `${uniqueKey('list-churn')}/`
    const stable: string[] = []
    for (let i = 0; i < 400; i++) stable.push(`${prefix}stable-${i}`)
    for (let i = 0; i < stable.length; i += 50) {
      await Promise.all(stable.slice(i, i + 50).map((key) => putOk(key, 'stable')))
    }
    // The churn loop adds and removes other keys under the same prefix (so the scan meets
    // them) until the listing ends, bounded in operations and time.
    let listing = true
    let churnOps = 0
    const churnDeadline = Date.now() + 20_000
    const churnFailures: string[] = []
    const live: string[] = []
    const churn = async () => {
      while (listing && churnOps < 20_000 && Date.now() < churnDeadline) {
        churnOps++
        const add = live.length < 50 || random() < 0.5
        if (add) {
          const key = `${prefix}churn-${churnOps}`
          const response = await put(key, 'churn')
          if (response.status !== 201) churnFailures.push(`PUT ${key}: ${response.status}`)
          await response.arrayBuffer()
          // Only an acknowledged key may be picked for deletion: the three churn loops share
          // this list, and a DELETE sent before the PUT finished would rightly answer 404.
          live.push(key)
        } else {
          const index = Math.floor(random() * live.length)
          const key = live.splice(index, 1)[0]!
          const response = await del(key)
          if (response.status !== 204) churnFailures.push(`DELETE ${key}: ${response.status}`)
          await response.arrayBuffer()
        }
      }
    }
    const churners = [churn(), churn(), churn()]
    let pages = 0
    const keys = await listAll(prefix, 10, async () => {
      pages++
      // At least one churn operation between two pages, however the machine schedules the
      // loops (a busy one once listed 43 pages in 42 operations), within the churn's bound.
      const before = churnOps
      while (churnOps === before && Date.now() < churnDeadline) await sleep(1)
    })
    listing = false
    await Promise.all(churners)
    console.log(`listing under churn: ${pages} pages, ${churnOps} churn ops (SEED=${seed})`)
    expect(churnFailures).toEqual([])
    expect(churnOps).toBeGreaterThanOrEqual(pages)
    const counts = countOf(keys)
    const missing = stable.filter((key) => !counts.has(key))
    const repeated = stable.filter((key) => (counts.get(key) ?? 0) > 1)
    expect(missing, `SEED=${seed}`).toEqual([])
    expect(repeated, `SEED=${seed}`).toEqual([])
    for (const key of keys) expect(key.startsWith(prefix)).toBe(true)
  })
})

describe('GET /v1/kv pages (docs/api.md, "GET /v1/kv"), on a server of their own', () => {
  // A server with nothing else in it, and the default limits (a million slots), so that the
  // listing of all keys is the listing of this test's keys.
  let own: RunningServer

  beforeAll(async () => {
    own = await startServer()
  })

  afterAll(async () => {
    await own?.stop()
  })

  /** Every page of a listing, first to last (limit absent: the server's default). */
  async function pagesOf(prefix: string, limit?: number): Promise<ListPage[]> {
    const pages: ListPage[] = []
    let cursor: string | null = null
    do {
      expect(pages.length, 'the listing did not end within 1,000 pages').toBeLessThan(1000)
      const query = new URLSearchParams({ prefix })
      if (limit !== undefined) query.set('limit', String(limit))
      if (cursor !== null) query.set('cursor', cursor)
      const page = await expectJson<ListPage>(await fetch(`${own.url}/v1/kv?${query}`), 200)
      pages.push(page)
      cursor = page.cursor
    } while (cursor !== null)
    return pages
  }

  /** What a listing of `count` keys, `limit` a page, must look like: page sizes, full first. */
  function pageSizes(count: number, limit: number): number[] {
    const pageCount = Math.ceil(count / limit)
    return Array.from({ length: pageCount }, (_, i) =>
      i < pageCount - 1 ? limit : count - limit * (pageCount - 1),
    )
  }

  async function putAll(keys: string[]) {
    for (const key of keys) {
      const response = await put(key, 'v', {}, own.url)
      expect(response.status, await response.text()).toBe(201)
    }
  }

  async function deleteAll(keys: string[]) {
    for (const key of keys) {
      const response = await del(key, {}, own.url)
      expect(response.status, await response.text()).toBe(204)
    }
  }

  it('lists 8 keys with the default limit in one page, whose cursor is null', async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `eight-${i}`)
    await putAll(keys)
    const pages = await pagesOf('')
    expect(pages.length).toBe(1)
    expect(pages[0]!.cursor).toBeNull()
    expect(pages[0]!.items.map((item) => item.key).sort()).toEqual([...keys].sort())
    // With any limit: ceil(8 / limit) pages, none empty, only the last with cursor null.
    for (const limit of [1, 3, 4, 7, 8, 9]) {
      const paged = await pagesOf('', limit)
      expect(
        paged.map((page) => page.items.length),
        `limit ${limit}`,
      ).toEqual(pageSizes(8, limit))
      expect(paged.flatMap((page) => page.items.map((item) => item.key)).sort()).toEqual(
        [...keys].sort(),
      )
    }
    await deleteAll(keys)
    expect(await pagesOf('')).toEqual([{ items: [], cursor: null }])
  })

  it('never gives an empty page while keys remain, whatever the prefix leaves out', async () => {
    // Matching keys first, some among others, then only others: the page that takes the last
    // match must know that none follows, though slots do.
    const matching = Array.from({ length: 23 }, (_, i) => `match/${i}`)
    const others = Array.from({ length: 12 }, (_, i) => `other/${i}`)
    await putAll(matching.slice(0, 15))
    await putAll(others.slice(0, 4))
    await putAll(matching.slice(15))
    await putAll(others.slice(4))
    for (const limit of [1, 2, 5, 7, 11, 22, 23, 24, 100]) {
      const pages = await pagesOf('match/', limit)
      expect(
        pages.map((page) => page.items.length),
        `limit ${limit}`,
      ).toEqual(pageSizes(matching.length, limit))
      expect(pages.flatMap((page) => page.items.map((item) => item.key)).sort()).toEqual(
        [...matching].sort(),
      )
    }
    expect((await pagesOf('other/', 4)).map((page) => page.items.length)).toEqual([4, 4, 4])
    expect(await pagesOf('none/', 4)).toEqual([{ items: [], cursor: null }])
    await deleteAll([...matching, ...others])
  })
})
