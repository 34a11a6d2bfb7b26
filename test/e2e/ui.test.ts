import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  api as apiOf,
  type KeyToSet,
  kvPath as kv,
  setKeys as setKeysOf,
} from '../support/api-client.js'
import {
  browserMissing,
  launchBrowser,
  openWatchedPage,
  screenshot,
  TestPages,
} from '../support/browser.js'
import { killAll, type RunningServer, startServer } from '../support/server.js'

// The web UI's key features in a real browser (Debian's Chromium, headless) against the real
// server process: set, get and delete, browsing, how values are shown, editing with
// compare-and-set, the keyboard. Each outcome is checked through the API too, and no page may
// log a console error, violate the Content-Security-Policy or request another origin. One
// browser serves the file; each test opens its own context, so sessionStorage starts empty.
// The dashboard, the token prompt and most screenshots are in ui-live.test.ts.

if (browserMissing !== undefined)
  console.warn(`ui.test.ts: browser tests skipped: ${browserMissing}`)

let browser: Browser
let server: RunningServer
let pages: TestPages

const api = (path: string, init: RequestInit = {}) => apiOf(server, path, init)
const setKeys = (keys: KeyToSet[]) => setKeysOf(server, keys)
const open = (path: string) => pages.open(server.url, path)
const expectNoProblems = () => pages.expectNoProblems()

/** The key form's result line, once it is shown. */
async function keyFormResult(page: Page) {
  const result = page.locator('#key-result')
  await result.waitFor({ state: 'visible' })
  return result
}

describe.skipIf(browserMissing !== undefined)('the web UI in Chromium', () => {
  beforeAll(async () => {
    // startServer runs the server in a fresh temporary directory: its ./data is temporary.
    ;[browser, server] = await Promise.all([launchBrowser(), startServer()])
    pages = new TestPages(browser)
  })

  afterEach(() => pages?.closeAll())

  afterAll(async () => {
    await browser?.close()
    await killAll()
  })

  it('serves the page under its Content-Security-Policy, loading nothing from elsewhere', async () => {
    const watched = await open('/')
    const response = await watched.page.request.get(`${server.url}/`)
    expect(response.headers()['content-security-policy']).toContain("script-src 'self'")
    await expect.poll(() => watched.page.locator('#connection').textContent()).toBe('Connected')
    expect(watched.requestedUrls.length).toBeGreaterThan(3)
    await expectNoProblems()
  })

  it('notices an inline script refused by the policy (a canary for the checks above)', async () => {
    const { page, problems, close } = await openWatchedPage(browser, server.url)
    await page.goto(`${server.url}/`)
    await page.addScriptTag({ content: 'window.injected = true' }).catch(() => {})
    await expect.poll(() => problems.join('\n')).toMatch(/CSP violation: script-src/)
    expect(await page.evaluate('"injected" in window')).toBe(false)
    await close()
  })

  it('sets, gets and deletes keys from the form, showing each outcome and API error', async () => {
    const { page } = await open('/#keys')
    const form = page.locator('#key-form')
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('ui/text')
    await page.getByLabel('Value', { exact: true }).first().fill('hello, UI')
    await page.getByLabel('TTL in seconds (optional)').fill('60')
    await form.getByRole('button', { name: 'Set' }).click()
    await expect
      .poll(async () => (await keyFormResult(page)).textContent())
      .toMatch(/^Created ui\/text: version \d+, expiring in 60 s\.$/)
    const stored = await api(kv('ui/text'))
    expect(await stored.text()).toBe('hello, UI')
    expect(stored.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(Number(stored.headers.get('slabkv-ttl'))).toBeGreaterThan(50)

    // JSON is checked before it is sent, then stored with its content type.
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('ui/json')
    await page.getByLabel('JSON').check()
    await page.getByLabel('TTL in seconds (optional)').fill('')
    await page.getByLabel('Value', { exact: true }).first().fill('{"list": [1, 2')
    await form.getByRole('button', { name: 'Set' }).click()
    await expect
      .poll(() => page.locator('#key-result').textContent())
      .toMatch(/^Not sent: the value is not valid JSON/)
    expect((await api(kv('ui/json'))).status).toBe(404)
    await page.getByLabel('Value', { exact: true }).first().fill('{"list": [1, 2], "ok": true}')
    await form.getByRole('button', { name: 'Set' }).click()
    await expect.poll(() => page.locator('#key-result').textContent()).toMatch(/^Created ui\/json/)
    expect((await api(kv('ui/json'))).headers.get('content-type')).toBe('application/json')

    // The API's own errors are shown with their status, code and message.
    await page.getByLabel('Only if the key does not exist yet').check()
    await form.getByRole('button', { name: 'Set' }).click()
    await expect
      .poll(() => page.locator('#key-result').textContent())
      .toMatch(/^Not set: the key already exists.*412 precondition_failed: /)
    await page.getByLabel('Only if the key does not exist yet').uncheck()
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('k'.repeat(1100))
    await form.getByRole('button', { name: 'Set' }).click()
    await expect
      .poll(() => page.locator('#key-result').textContent())
      .toMatch(/^Not set: 400 key_too_large: /)

    // Get shows the value in the key view, JSON pretty-printed.
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('ui/json')
    await form.getByRole('button', { name: 'Get' }).click()
    await expect
      .poll(() => page.locator('#key-result').textContent())
      .toMatch(/^Found ui\/json at version \d+\.$/)
    await expect
      .poll(() => page.locator('#inspector-value').textContent())
      .toBe('{\n  "list": [\n    1,\n    2\n  ],\n  "ok": true\n}')
    await expect
      .poll(() => page.locator('#inspector-note').textContent())
      .toBe('JSON, pretty-printed')

    // Delete asks first; then the key is gone, and a Get says so with the API's 404.
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('ui/text')
    await form.getByRole('button', { name: 'Delete' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await expect.poll(() => page.locator('#key-result').textContent()).toBe('Deleted ui/text.')
    expect((await api(kv('ui/text'))).status).toBe(404)
    await form.getByRole('button', { name: 'Get' }).click()
    await expect
      .poll(() => page.locator('#key-result').textContent())
      .toBe('Get ui/text: 404 not_found: No such key')
    await expectNoProblems()
  })

  it('browses keys by prefix, a page at a time, with size, TTL left and version', async () => {
    const paged = Array.from({ length: 23 }, (_, i) => `page/${String(i).padStart(2, '0')}`)
    await setKeys([
      ...paged.map((key) => ({ key, value: `value of ${key}` })),
      { key: 'paging-decoy', value: 'not under the prefix' },
      { key: 'page/ttl', value: 'expires', ttl: 300 },
    ])
    const { page } = await open('/#keys')
    const shownKeys = () => page.locator('#browse-rows th').allTextContents()
    const pageLabel = () => page.locator('#browse-page').textContent()
    // The view lists every key when it opens, 25 a page: that "Page 1" must not pass for the
    // search's, whose first page holds 10.
    await expect.poll(pageLabel).toMatch(/^Page 1: /)
    await page.getByLabel('Prefix').fill('page/')
    await page.getByLabel('Per page').selectOption('10')
    await page.getByRole('button', { name: 'Search' }).click()
    await expect.poll(pageLabel).toBe('Page 1: 10 keys')

    const seen: string[] = []
    const pageKeys: string[][] = []
    for (let pageNumber = 1; ; pageNumber++) {
      await expect.poll(pageLabel).toMatch(new RegExp(`^Page ${pageNumber}: `))
      const keys = await shownKeys()
      pageKeys.push(keys)
      seen.push(...keys)
      const next = page.getByRole('button', { name: 'Next' })
      if (await next.isDisabled()) break
      await next.click()
    }
    expect([...seen].sort()).toEqual([...paged, 'page/ttl'].sort())
    // Pages on screen are full until the last, however sparse the server's answers are.
    expect(pageKeys.map((keys) => keys.length)).toEqual([10, 10, 4])
    await expect.poll(() => page.locator('#browse-page').textContent()).toMatch(/, the last page$/)

    // Back one page shows the same keys as on the way forward.
    await page.getByRole('button', { name: 'Previous' }).click()
    await expect
      .poll(() => page.locator('#browse-rows th').allTextContents())
      .toEqual(pageKeys.at(-2))
    await page.getByRole('button', { name: 'First' }).click()
    await expect.poll(() => page.locator('#browse-rows th').allTextContents()).toEqual(pageKeys[0])

    // Each row shows the key's size, TTL left and version, as the API reports them.
    await page.getByLabel('Prefix').fill('page/ttl')
    await page.getByRole('button', { name: 'Search' }).click()
    await expect.poll(() => page.locator('#browse-rows tr').count()).toBe(1)
    const cells = await page.locator('#browse-rows tr td').allTextContents()
    const version = (await api(kv('page/ttl'))).headers.get('etag')?.replaceAll('"', '')
    expect(cells[0]).toBe('7 B')
    expect(cells[1]).toBe('application/octet-stream')
    expect(cells[2]).toMatch(/^4 min \d+ s$/)
    expect(cells[3]).toBe(version)

    await page.getByLabel('Prefix').fill('nothing-here/')
    await page.getByRole('button', { name: 'Search' }).click()
    await expect
      .poll(() => page.locator('#browse-result').textContent())
      .toBe('No keys starting with “nothing-here/”.')
    await expectNoProblems()
  })

  it('uses the width of a desktop screen for the keys, and gives each key one line', async () => {
    const longType = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'
    const longKey = `wide/${'segment-'.repeat(40)}end`
    await setKeys([
      // A long content type in the next column once squeezed the key to a few letters a line.
      { key: 'session:42', value: 'user=42', contentType: longType },
      { key: 's', value: 'a key of one letter' },
      { key: longKey, value: 'longer than any screen is wide' },
    ])
    const { page } = await pages.open(server.url, '/#keys', {
      viewport: { width: 1440, height: 900 },
    })
    await page.getByLabel('Prefix').fill('s')
    await page.getByRole('button', { name: 'Search' }).click()
    await expect.poll(() => page.locator('#browse-rows th').allTextContents()).toContain('s')
    const row = (key: string) =>
      page
        .locator('#browse-rows tr')
        .filter({ has: page.getByRole('button', { name: key, exact: true }) })
    /** Heights of the key's row and of the key, in CSS pixels. */
    const heights = async (key: string) => {
      const button = row(key).locator('th button')
      return {
        row: (await row(key).boundingBox())!.height,
        key: (await button.boundingBox())!.height,
      }
    }
    // A key of one letter takes one line, whatever the width: what every key's row should be.
    // Within a pixel: the first row is half a collapsed border shorter than the rest.
    const expectOneLine = async (key: string) => {
      const [shown, oneLine] = [await heights(key), await heights('s')]
      expect(Math.abs(shown.key - oneLine.key)).toBeLessThan(1)
      expect(Math.abs(shown.row - oneLine.row)).toBeLessThan(1)
    }

    // With no key open, the list takes the whole width of the view, not the left half of it.
    const viewBox = await page.locator('#view-keys').boundingBox()
    const tableBox = await page.locator('#view-keys table').boundingBox()
    expect(tableBox!.width).toBeGreaterThanOrEqual(0.8 * viewBox!.width)
    await expectOneLine('session:42')

    // With a key open beside the list, keys still take one line each.
    await row('s').getByRole('button').click()
    await page.locator('#inspector-value').waitFor()
    await expectOneLine('session:42')

    // A key too long for its column is cut short, whole in its tooltip and its accessible name.
    await page.getByLabel('Prefix').fill('')
    await page.getByLabel('Per page').selectOption('1000')
    await page.getByRole('button', { name: 'Search' }).click()
    const longButton = page.getByRole('button', { name: longKey, exact: true })
    await longButton.waitFor()
    expect(await longButton.getAttribute('title')).toBe(longKey)
    await expectOneLine(longKey)
    const cut = await longButton.evaluate((button) => ({
      overflows: button.scrollWidth > button.clientWidth,
      // The list does not scroll sideways for it.
      tableFits:
        button.closest('.table-wrap')!.scrollWidth <= button.closest('.table-wrap')!.clientWidth,
    }))
    expect(cut).toEqual({ overflows: true, tableFits: true })
    await expectNoProblems()
  })

  it('shows a key set from the form in the list at once, wherever the scan finds it', async () => {
    // More keys than a page holds, so that a new key's slot is past the first page.
    await setKeys(
      Array.from({ length: 30 }, (_, i) => ({ key: `before/${i}`, value: 'already here' })),
    )
    const { page } = await open('/#keys')
    await expect.poll(() => page.locator('#browse-page').textContent()).toBe('Page 1: 25 keys')
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('set/from-the-form')
    await page.getByLabel('Value', { exact: true }).first().fill('new')
    await page.locator('#key-form').getByRole('button', { name: 'Set' }).click()
    await expect
      .poll(() => page.locator('#browse-rows th').allTextContents())
      .toContain('set/from-the-form')
    // Shown first, beside the page's own keys, and marked as the key just set. (The feed may
    // add the row before the form's refresh does: the label says when the refresh is in.)
    await expect
      .poll(() => page.locator('#browse-page').textContent())
      .toBe('Page 1: 25 keys, and the key just set, first')
    expect(await page.locator('#browse-rows tr[data-written] th').allTextContents()).toEqual([
      'set/from-the-form',
    ])
    const version = (await api(kv('set/from-the-form'))).headers.get('etag')?.replaceAll('"', '')
    const cells = await page
      .locator('#browse-rows tr')
      .filter({ hasText: 'set/from-the-form' })
      .locator('td')
      .allTextContents()
    expect(cells).toEqual(['3 B', 'text/plain; charset=utf-8', '—', version])

    // Replaced, it shows its new version; deleted, it is gone from the list.
    await page.locator('#key-form').getByRole('button', { name: 'Set' }).click()
    await expect
      .poll(async () =>
        page
          .locator('#browse-rows tr')
          .filter({ hasText: 'set/from-the-form' })
          .locator('td')
          .last()
          .textContent(),
      )
      .toBe((await api(kv('set/from-the-form'))).headers.get('etag')?.replaceAll('"', ''))
    await page.locator('#key-form').getByRole('button', { name: 'Delete' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await expect
      .poll(() => page.locator('#browse-rows th').allTextContents())
      .not.toContain('set/from-the-form')
    await expectNoProblems()
  })

  it('shows binary values as a bounded hex dump it does not edit, text as text, images as such', async () => {
    const bytes = Uint8Array.from({ length: 5000 }, (_, i) => i % 256)
    await api(kv('view/binary'), { method: 'PUT', body: bytes })
    // A body given as bytes is sent without a Content-Type: stored as application/octet-stream.
    const words = new TextEncoder().encode('plain words, no type given')
    await api(kv('view/utf8'), { method: 'PUT', body: words })
    const { page } = await open('/#keys')
    const form = page.locator('#key-form')
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('view/binary')
    await form.getByRole('button', { name: 'Get' }).click()
    await expect
      .poll(() => page.locator('#inspector-note').textContent())
      .toBe('Binary, 4.9 KiB; showing the first 1 KiB')
    const dump = (await page.locator('#inspector-value').textContent()) ?? ''
    expect(dump.split('\n')).toHaveLength(64)
    expect(dump.split('\n')[0]).toBe(
      '00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  |................|',
    )
    expect(await page.getByRole('button', { name: 'Edit' }).isDisabled()).toBe(true)

    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('view/utf8')
    await form.getByRole('button', { name: 'Get' }).click()
    await expect
      .poll(() => page.locator('#inspector-value').textContent())
      .toBe('plain words, no type given')
    expect(await page.locator('#inspector-note').textContent()).toBe(
      'Shown as text: the bytes are valid UTF-8',
    )

    // A picture is shown as one, from a data: URL (the policy's img-src allows nothing else).
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
      'base64',
    )
    await api(kv('view/png'), {
      method: 'PUT',
      headers: { 'content-type': 'image/png' },
      body: png,
    })
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('view/png')
    await form.getByRole('button', { name: 'Get' }).click()
    const picture = page.getByRole('img', { name: 'The stored image/png image' })
    await picture.waitFor()
    const width = 'document.querySelector("#inspector-value img").naturalWidth'
    await expect.poll(() => page.evaluate(width)).toBe(1)
    await expectNoProblems()
  })

  it("counts a shown key's TTL down, and says when it has run out", async () => {
    expect(
      (await api(`${kv('ttl/countdown')}?ttl=90`, { method: 'PUT', body: 'soon' })).status,
    ).toBe(201)
    // The page's clock is Playwright's, installed before the page loads, so minutes pass at once.
    const watched = await openWatchedPage(browser, server.url)
    const { page } = watched
    await page.clock.install()
    await page.goto(`${server.url}/#keys`)
    await page.getByLabel('Prefix').fill('ttl/')
    await page.getByRole('button', { name: 'Search' }).click()
    // The page's time stands still from here: what it shows follows from the server's figure.
    await page.clock.pauseAt(Date.now() + 1000)
    const answer = page.waitForResponse(
      (response) =>
        response.url().endsWith(kv('ttl/countdown')) && response.request().method() === 'GET',
    )
    await page.getByRole('button', { name: 'ttl/countdown', exact: true }).click()
    const ttl = Number((await answer).headers()['slabkv-ttl'])
    expect(ttl).toBeGreaterThan(60)
    expect(ttl).toBeLessThanOrEqual(90)
    const ttlLeft = page.locator('#inspector-meta dt:text-is("TTL left") + dd')
    await expect.poll(() => ttlLeft.textContent()).toBe(`1 min ${Math.round(ttl) - 60} s`)
    await page.clock.runFor(31_000)
    expect(await ttlLeft.textContent()).toBe(`${Math.round(ttl - 31)} s`)
    await page.clock.runFor(60_000)
    expect(await ttlLeft.textContent()).toBe('expired (reload to check)')
    expect(watched.problems).toEqual([])
    await watched.close()
  })

  it('edits with compare-and-set, showing a conflicting change instead of overwriting it', async () => {
    const json = { 'content-type': 'application/json' }
    const put = (body: string) => api(kv('cas/doc'), { method: 'PUT', headers: json, body })
    const versionOpened = ((await (await put('{"by":"first"}')).json()) as { version: number })
      .version
    const { page } = await open('/#keys')
    await page.getByLabel('Prefix').fill('cas/')
    await page.getByRole('button', { name: 'Search' }).click()
    await page.getByRole('button', { name: 'cas/doc', exact: true }).click()
    await page.getByRole('button', { name: 'Edit' }).click()
    const editor = page.locator('#editor-value')
    expect(await editor.inputValue()).toBe('{\n  "by": "first"\n}')
    await editor.fill('{"by": "me"}')

    // Someone else writes between opening the editor and saving.
    const versionTheirs = ((await (await put('{"by":"them"}')).json()) as { version: number })
      .version
    // The change feed tells of it before any save, and the edit stays (ui-watch.test.ts).
    await expect
      .poll(() => page.locator('#inspector-changed').textContent())
      .toMatch(new RegExp(`^Changed on the server: version ${versionTheirs}\\. Your edit is kept`))
    await page.getByRole('button', { name: 'Save' }).click()
    const conflict = page.locator('#editor-conflict')
    await conflict.waitFor({ state: 'visible' })
    expect(await conflict.getAttribute('role')).toBe('alert')
    expect(await page.locator('#editor-conflict-message').textContent()).toBe(
      `Not saved: someone else changed cas/doc after you opened it: you edited version ` +
        `${versionOpened}, it is now at version ${versionTheirs}. Your edit is still here.`,
    )
    expect(await (await api(kv('cas/doc'))).text()).toBe('{"by":"them"}')
    expect(await editor.inputValue()).toBe('{"by": "me"}')
    await page.locator('#inspector').scrollIntoViewIfNeeded()
    await screenshot(page, 'conflict-desktop')

    // Overwriting is a choice, and is itself conditional on the version just seen.
    await page.getByRole('button', { name: 'Overwrite with mine' }).click()
    await expect
      .poll(() => page.locator('#inspector-result').textContent())
      .toMatch(/^Saved cas\/doc: now at version \d+\.$/)
    expect(await (await api(kv('cas/doc'))).text()).toBe('{"by": "me"}')

    // A key deleted meanwhile is a conflict too; discarding loads what is there: nothing.
    await page.getByRole('button', { name: 'Edit' }).click()
    await editor.fill('{"by": "me, again"}')
    expect((await api(kv('cas/doc'), { method: 'DELETE' })).status).toBe(204)
    await page.getByRole('button', { name: 'Save' }).click()
    await expect
      .poll(() => page.locator('#editor-conflict-message').textContent())
      .toMatch(/^Not saved: someone else deleted cas\/doc after you opened version \d+\./)
    await page.getByRole('button', { name: 'Discard mine, load theirs' }).click()
    await expect
      .poll(() => page.locator('#inspector-result').textContent())
      .toBe('404 not_found: No such key')

    // Delete is conditional on the version shown, too.
    const versionShown = ((await (await put('{"by":"third"}')).json()) as { version: number })
      .version
    await page.getByRole('button', { name: 'Reload' }).click()
    await expect
      .poll(() => page.locator('#inspector-meta').textContent())
      .toContain(`Version${versionShown}`)
    await put('{"by":"fourth"}')
    await page.locator('#inspector').getByRole('button', { name: 'Delete' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await expect
      .poll(() => page.locator('#inspector-result').textContent())
      .toBe(`Not deleted: it changed since you loaded version ${versionShown}. Reload to see it.`)
    expect(await (await api(kv('cas/doc'))).text()).toBe('{"by":"fourth"}')
    await expectNoProblems()
  })

  it('can be used from the keyboard alone, in a sensible focus order', async () => {
    const { page } = await open('/')
    // What has focus: its id, or name=value for a radio button.
    const focused = () =>
      page.evaluate(`(() => {
        const element = document.activeElement
        return element.id || element.name + '=' + element.value
      })()`)
    const tab = async () => {
      await page.keyboard.press('Tab')
      return focused()
    }
    expect([await tab(), await tab()]).toEqual(['nav-dashboard', 'nav-keys'])
    await page.keyboard.press('Enter')
    await expect.poll(() => page.title()).toBe('slabkv · Keys')

    expect(await tab()).toBe('key-input')
    await page.keyboard.type('kb/key')
    expect([await tab(), await tab()]).toEqual(['ttl-input', 'value-input'])
    await page.keyboard.type('{"typed": true}')
    expect(await tab()).toBe('format=text')
    await page.keyboard.press('ArrowRight')
    expect(await focused()).toBe('format=json')
    const rest = [await tab(), await tab(), await tab()]
    expect(rest).toEqual(['type-input', 'absent-input', 'key-set'])
    await page.keyboard.press('Enter')
    await expect.poll(() => page.locator('#key-result').textContent()).toMatch(/^Created kb\/key/)
    const stored = await api(kv('kb/key'))
    expect(stored.headers.get('content-type')).toBe('application/json')
    expect(await stored.text()).toBe('{"typed": true}')

    // Get moves focus to the key it shows; Close gives focus back to where it was.
    expect(await tab()).toBe('key-get')
    await page.keyboard.press('Enter')
    await expect.poll(focused).toBe('inspector-title')
    expect([await tab(), await tab()]).toEqual(['inspector-reload', 'inspector-close'])
    await page.keyboard.press('Enter')
    expect(await page.locator('#inspector').isHidden()).toBe(true)
    expect(await focused()).toBe('key-get')

    // The confirmation starts on Cancel, and Escape cancels: nothing is deleted by accident.
    expect(await tab()).toBe('key-delete')
    await page.keyboard.press('Enter')
    await expect.poll(focused).toBe('confirm-cancel')
    await page.keyboard.press('Escape')
    expect(await page.locator('#confirm-dialog').isHidden()).toBe(true)
    expect((await api(kv('kb/key'))).status).toBe(200)
    await expectNoProblems()
  })
})

afterAll(killAll)
