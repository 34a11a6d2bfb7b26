import type { Browser } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { browserMissing, launchBrowser, TestPages } from '../support/browser.js'
import { killAll, type RunningServer, startServer } from '../support/server.js'

// Swagger UI at /docs, against the real server process: the page and everything it loads come
// from this origin (the machine has no internet, so a CDN asset would leave the page blank), it
// runs under its Content-Security-Policy, and "Try it out" reaches the real API.

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
    // No inline script: the policy would refuse it.
    expect(html).not.toMatch(/<script>/)
    for (const source of sources) {
      const asset = await fetch(`${server.url}${source}`)
      expect(asset.status, source).toBe(200)
      expect((await asset.arrayBuffer()).byteLength, source).toBeGreaterThan(0)
      const etag = asset.headers.get('etag')!
      const again = await fetch(`${server.url}${source}`, { headers: { 'if-none-match': etag } })
      expect(again.status, `${source} revalidated`).toBe(304)
    }
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

    const get = page.locator('#operations-default-get_v1_kv__key_')
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
})
