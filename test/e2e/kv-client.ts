import { expect } from 'vitest'
import { keyPath } from '../support/server.js'
import { expectJson, expectProblem } from './http.js'

// Requests to the native key routes of one server, for the tests of those routes: each helper
// takes the server's address last, the one kvClient was made with by default. `send` is fetch
// for a real server, or the app's request() for the app in process (with the address '').

export interface PutOptions {
  contentType?: string
  headers?: Record<string, string>
  query?: string
}

export interface ListItem {
  key: string
  size: number
  contentType: string
  version: number
  ttl: number | null
}

export interface ListPage {
  items: ListItem[]
  cursor: string | null
}

export type Send = (url: string, init?: RequestInit) => Promise<Response>

export function kvClient(defaultBase: () => string, send: Send = fetch) {
  function kvUrl(base: string, key: string, query = ''): string {
    return `${base}/v1/kv/${keyPath(key)}${query}`
  }

  function put(
    key: string,
    body: string | Uint8Array,
    options: PutOptions = {},
    base = defaultBase(),
  ): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers }
    if (options.contentType !== undefined) headers['content-type'] = options.contentType
    return send(kvUrl(base, key, options.query), { method: 'PUT', headers, body })
  }

  function get(key: string, headers: Record<string, string> = {}, base = defaultBase()) {
    return send(kvUrl(base, key), { headers })
  }

  function del(key: string, headers: Record<string, string> = {}, base = defaultBase()) {
    return send(kvUrl(base, key), { method: 'DELETE', headers })
  }

  async function putOk(key: string, body: string | Uint8Array, options: PutOptions = {}) {
    const response = await put(key, body, options)
    const text = await response.text()
    expect([200, 201], `${response.status} ${text}`).toContain(response.status)
    return (JSON.parse(text) as { version: number }).version
  }

  /** The entry as GET sees it, or null when GET answers 404. */
  async function read(key: string, base = defaultBase()) {
    const response = await get(key, {}, base)
    if (response.status === 404) {
      await expectProblem(response, 404, 'not_found')
      return null
    }
    expect(response.status).toBe(200)
    return {
      bytes: new Uint8Array(await response.arrayBuffer()),
      contentType: response.headers.get('content-type'),
      etag: response.headers.get('etag'),
      ttl: response.headers.get('slabkv-ttl'),
    }
  }

  async function readText(key: string, base = defaultBase()): Promise<string | null> {
    const entry = await read(key, base)
    return entry === null ? null : new TextDecoder().decode(entry.bytes)
  }

  /** Follows cursors from the first page to the last; returns every key in listing order. */
  async function listAll(
    prefix: string,
    limit: number,
    between?: () => Promise<void>,
    base = defaultBase(),
  ): Promise<string[]> {
    return (await listItems(prefix, limit, between, base)).map((item) => item.key)
  }

  async function listItems(
    prefix: string,
    limit: number,
    between?: () => Promise<void>,
    base = defaultBase(),
  ): Promise<ListItem[]> {
    const items: ListItem[] = []
    let cursor: string | null = null
    const startedAt = Date.now()
    for (let pages = 0; ; pages++) {
      expect(pages, 'the listing did not end within 20,000 pages').toBeLessThan(20_000)
      expect(Date.now() - startedAt, 'the listing did not end within 20 s').toBeLessThan(20_000)
      const query = new URLSearchParams({ prefix, limit: String(limit) })
      if (cursor !== null) query.set('cursor', cursor)
      const page = await expectJson<ListPage>(await send(`${base}/v1/kv?${query}`), 200)
      expect(page.items.length).toBeLessThanOrEqual(limit)
      items.push(...page.items)
      if (page.cursor === null) return items
      expect(typeof page.cursor).toBe('string')
      cursor = page.cursor
      await between?.()
    }
  }

  return { kvUrl, put, get, del, putOk, read, readText, listAll, listItems }
}
