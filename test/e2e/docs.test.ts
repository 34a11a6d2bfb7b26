import type { Browser } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { browserMissing, launchBrowser, TestPages } from '../support/browser.js'
import { killAll, type RunningServer, startServer } from '../support/server.js'

// Swagger UI at /docs, against the real server process: the page and everything it loads come
// from this origin (the machine has no internet, so a CDN asset would leave the page blank), it
// runs under its Content-Security-Policy, and "Try it out" reaches the real API, with the token
// entered through Authorize when the server has one.

if (browserMissing !== undefined)
  console.warn(`docs.test.ts: browser tests skipped: ${browserMissing}`)

let server: RunningServer

beforeAll(async () => {
  server = await startServer()
})

afterAll(() => killAll())

describe('/docs over HTTP', () => {
  it('serves a page whose scripts and styles are all on this origin', async () => {
    const response = await fetch(`${server.url}/docs`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'")
    const html = await response.text()
    const sources = [...html.matchAll(/(?:src|href)="([^"]*)"/g)].map((match) => match[1]!)
    expect(sources.length).toBeGreaterThanOrEqual(4)
    for (const source of sources) expect(source, source).toMatch(/^\/docs\/assets\//)
    // No inline script (the policy would refuse it): every script element loads a file.
    const scripts = [...html.matchAll(/<script\b([^>]*)>/gi)].map((match) => match[1]!)
    expect(scripts.length).toBeGreaterThanOrEqual(2)
    for (const attributes of scripts) expect(attributes).toMatch(/\bsrc="/)
    for (const source of sources) {
      const asset = await fetch(`${server.url}${source}`)
      expect(asset.status, source).toBe(200)
      expect((await asset.arrayBuffer()).byteLength, source).toBeGreaterThan(0)
      const etag = asset.headers.get('etag')!
      const again = await fetch(`${server.url}${source}`, { headers: { 'if-none-match': etag } })
      expect(again.status, `${source} revalidated`).toBe(304)
    }
  })

  it('serves the OpenAPI document with an ETag, answering 304 to a request that holds it', async () => {
    const first = await fetch(`${server.url}/openapi.json`)
    expect(first.status).toBe(200)
    const document = (await first.json()) as { paths: Record<string, unknown> }
    expect(Object.keys(document.paths)).toContain('/v1/kv/{key}')
    const etag = first.headers.get('etag')
    expect(etag).toMatch(/^"[\w-]+"$/)
    const again = await fetch(`${server.url}/openapi.json`, { headers: { 'if-none-match': etag! } })
    expect(again.status).toBe(304)
    expect(again.headers.get('etag')).toBe(etag)
  })

  it('declares no security scheme when the server has no token', async () => {
    const document = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      security?: unknown
      components?: { securitySchemes?: unknown }
    }
    // Said outright: no operation needs credentials (linters flag security left unsaid).
    expect(document.security).toEqual([])
    expect(document.components?.securitySchemes).toBeUndefined()
  })
})

describe.skipIf(browserMissing !== undefined)('/docs in Chromium', () => {
  let browser: Browser
  let pages: TestPages

  beforeAll(async () => {
    browser = await launchBrowser()
    pages = new TestPages(browser)
  })

  afterEach(() => pages?.closeAll())

  afterAll(() => browser?.close())

  it('lists the API and runs a request against it, loading nothing from elsewhere', async () => {
    const put = await fetch(`${server.url}/v1/kv/docs-key`, { method: 'PUT', body: 'from the API' })
    expect(put.status).toBe(201)

    const { page, requestedUrls } = await pages.open(server.url, '/docs')
    await expect.poll(() => page.locator('.info .title').textContent()).toMatch(/^slabkv/)
    const paths = await page.locator('.opblock-summary-path').allTextContents()
    for (const path of ['/set', '/get/{key}', '/delete/{key}', '/v1/kv/{key}', '/v1/stats']) {
      expect(paths, path).toContain(path)
    }

    // Swagger UI names an operation's element after its operationId.
    const get = page.locator('#operations-default-getKey')
    await get.locator('.opblock-summary').click()
    await get.locator('.try-out__btn').click()
    await get.locator('tr[data-param-name="key"] input').fill('docs-key')
    await get.locator('.execute').click()
    const answer = get.locator('.live-responses-table tbody tr').first()
    await expect.poll(() => answer.locator('.response-col_status').textContent()).toBe('200')
    expect(await answer.locator('.response-col_description').textContent()).toContain(
      'from the API',
    )

    expect(requestedUrls.some((url) => url.endsWith('/openapi.json'))).toBe(true)
    await pages.expectNoProblems()
  })

  it('opens without the token and sends it once entered through Authorize', async () => {
    const token = 'docs-secret'
    const guarded = await startServer(['--token', token])
    const put = await fetch(`${guarded.url}/v1/kv/guarded-key`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: 'behind the token',
    })
    expect(put.status).toBe(201)

    const { page } = await pages.open(guarded.url, '/docs')
    const get = page.locator('#operations-default-getKey')
    const status = get
      .locator('.live-responses-table tbody tr')
      .first()
      .locator('.response-col_status')
    const tryGet = async () => {
      await get.locator('tr[data-param-name="key"] input').fill('guarded-key')
      await get.locator('.execute').click()
    }
    await get.locator('.opblock-summary').click()
    await get.locator('.try-out__btn').click()
    await tryGet()
    // Documented (a status the document did not list would read "401 Undocumented").
    await expect.poll(() => status.textContent()).toBe('401')

    await page.locator('.btn.authorize').first().click()
    await page.locator('#auth-bearer-value').fill(token)
    await page.locator('.auth-btn-wrapper .authorize').click()
    await page.locator('.auth-btn-wrapper .btn-done').click()
    await get.locator('.btn-clear').click()
    await tryGet()
    await expect.poll(() => status.textContent()).toBe('200')
    const answer = get.locator('.live-responses-table tbody tr').first()
    expect(await answer.locator('.response-col_description').textContent()).toContain(
      'behind the token',
    )
    await pages.expectNoProblems()
  })
})
