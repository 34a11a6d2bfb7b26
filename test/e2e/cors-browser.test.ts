import { pathToFileURL } from 'node:url'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { browserMissing, launchBrowser } from '../support/browser.js'
import { RawConnection, rawRequest } from '../support/raw-http.js'
import { killAll, type RunningServer, startServer, uniqueKey } from '../support/server.js'

// docs/api.md, "Browsers on other origins": a page opened from disk (origin null) makes the
// three calls PyKV's ui/index.html makes (POST /set with a JSON body, GET /get/{key},
// DELETE /delete/{key}) against a real server in Debian's Chromium. With --cors-origins null
// they work; without it the browser refuses each, and a refused write changes nothing. The page
// is test/e2e/fixtures/pykv-page.html, loaded from file://, never served by slabkv. Without a
// browser, the same calls pipelined on one connection behind their preflights: the preflight
// goes through the server's ordering like any request, and each answer keeps its headers.

if (browserMissing !== undefined)
  console.warn(`cors-browser.test.ts: browser tests skipped: ${browserMissing}`)

const pageUrl = new URL('./fixtures/pykv-page.html', import.meta.url)
const pagePath = pathToFileURL(pageUrl.pathname).href

let browser: Browser
let open: RunningServer
let closed: RunningServer

/** The page from disk, calling `server`, with every console message it logs. */
async function openPage(server: RunningServer): Promise<{ page: Page; console: string[] }> {
  const context = await browser.newContext()
  // Every wait below is bounded by this, well inside the test's own timeout.
  context.setDefaultTimeout(10_000)
  const page = await context.newPage()
  const console: string[] = []
  page.on('console', (message) => console.push(message.text()))
  await page.goto(`${pagePath}?api=${encodeURIComponent(server.url)}`)
  return { page, console }
}

/** Fills the form, clicks the button, and waits for the result line to change. */
async function click(page: Page, button: 'set' | 'get' | 'delete', key: string, value = '') {
  await page.fill('#key', key)
  await page.fill('#value', value)
  // Strings, not functions: they run in the page, and this project's types have no DOM.
  await page.evaluate("document.getElementById('result').textContent = ''")
  await page.click(`#${button}`)
  await page.waitForFunction("document.getElementById('result').textContent !== ''")
  return page.locator('#result').textContent()
}

/** What the server holds for the key, read with Node's fetch (no browser, no CORS). */
async function stored(server: RunningServer, key: string): Promise<unknown> {
  const response = await fetch(`${server.url}/get/${encodeURIComponent(key)}`, {
    signal: AbortSignal.timeout(5_000),
  })
  return response.status === 404 ? undefined : ((await response.json()) as { value: unknown }).value
}

describe.skipIf(browserMissing !== undefined)('a page opened from disk, in Chromium', () => {
  beforeAll(async () => {
    ;[browser, open, closed] = await Promise.all([
      launchBrowser(),
      startServer(['--cors-origins', 'null']),
      startServer(),
    ])
  })

  afterAll(async () => {
    await browser?.close()
    await killAll()
  })

  it("makes PyKV's three calls with --cors-origins null", async () => {
    const { page } = await openPage(open)
    const key = uniqueKey('cors page')
    expect(await click(page, 'set', key, '{"items":[1,2]}')).toBe('200 {"status":"success"}')
    expect(await stored(open, key)).toEqual({ items: [1, 2] })
    expect(await click(page, 'get', key)).toBe(`200 {"key":"${key}","value":{"items":[1,2]}}`)
    expect(await click(page, 'delete', key)).toBe('200 {"status":"deleted"}')
    expect(await stored(open, key)).toBeUndefined()
    // An error answer reaches the page too, as PyKV's page expects it.
    expect(await click(page, 'get', key)).toBe('404 {"detail":"Key not found"}')
    await page.context().close()
  })

  it('is refused each call without it, and a refused write changes nothing', async () => {
    const { page, console } = await openPage(closed)
    const key = uniqueKey('cors page')
    const kept = await fetch(`${closed.url}/set`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key, value: 'kept' }),
      signal: AbortSignal.timeout(5_000),
    })
    expect(kept.status).toBe(200)

    expect(await click(page, 'set', key, '"overwritten"')).toBe('failed: Failed to fetch')
    expect(await click(page, 'get', key)).toBe('failed: Failed to fetch')
    expect(await click(page, 'delete', key)).toBe('failed: Failed to fetch')
    // The preflights of the write and the delete were refused, so neither was sent.
    expect(await stored(closed, key)).toBe('kept')
    // And the browser says why, in the console where a user would look.
    const refusals = console.filter((text) =>
      /from origin 'null' has been blocked by CORS/.test(text),
    )
    expect(refusals.length).toBe(3)
    await page.context().close()
  })
})

describe('preflights pipelined with the calls they allow, on one connection', () => {
  let server: RunningServer

  beforeAll(async () => {
    server = await startServer(['--cors-origins', 'null'])
  })

  afterAll(() => killAll())

  it('answers each in order, every answer readable by the page', async () => {
    const connection = await RawConnection.open(server.port)
    const key = uniqueKey('cors pipelined')
    const path = encodeURIComponent(key)
    const origin = { Origin: 'null' }
    const preflight = (method: string) =>
      rawRequest('OPTIONS', '/set', { ...origin, 'Access-Control-Request-Method': method })
    const body = JSON.stringify({ key, value: 7 })
    connection.write(
      Buffer.concat([
        preflight('POST'),
        rawRequest('POST', '/set', { ...origin, 'Content-Type': 'application/json' }, body),
        rawRequest('GET', `/get/${path}`, origin),
        preflight('DELETE'),
        rawRequest('DELETE', `/delete/${path}`, origin),
        rawRequest('GET', `/get/${path}`, origin),
      ]),
    )
    const answers = []
    for (let i = 0; i < 6; i++) answers.push(await connection.read({ timeoutMs: 5_000 }))
    connection.socket.destroy()
    expect(answers.map((answer) => answer.status)).toEqual([204, 200, 200, 204, 200, 404])
    expect(JSON.parse(answers[2]!.body.toString())).toEqual({ key, value: 7 })
    for (const answer of answers) {
      expect(answer.headers['access-control-allow-origin']).toBe('null')
      expect(answer.headers.vary).toBe('Origin')
    }
  })
})
