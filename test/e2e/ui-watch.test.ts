import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { api as apiOf, kvPath as kv, setKeys as setKeysOf } from '../support/api-client.js'
import { browserMissing, launchBrowser, screenshot, TestPages } from '../support/browser.js'
import { killAll, type RunningServer, startServer } from '../support/server.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'

// The keys view kept live by the change feed (GET /v1/watch), in Chromium against the real
// server: the test changes keys through the API, behind the page's back, and the page must
// show each change without listing again; the key open in the key view says it changed and
// keeps an edit in progress; a cut connection and a restarted server lose no change. The page
// talks to the server through a TCP relay (test/support/tcp-proxy.ts), which can cut its
// connections and keeps its origin when the server comes back on another port with the same
// data directory. Same rules as ui.test.ts: no console error, no CSP violation.

if (browserMissing !== undefined) console.warn(`ui-watch.test.ts: skipped: ${browserMissing}`)

let browser: Browser
let server: RunningServer
let proxy: TcpProxy
let pages: TestPages
const dataDir = mkdtempSync(join(tmpdir(), 'slabkv-ui-watch-'))
const serve = () => startServer(['--data-dir', dataDir])

const api = (path: string, init: RequestInit = {}) => apiOf(server, path, init)

/** Sets a key through the API, behind the page's back; resolves with its new version. */
async function put(key: string, body: string, query = '', contentType = 'text/plain') {
  const response = await api(`${kv(key)}${query}`, {
    method: 'PUT',
    headers: { 'content-type': contentType },
    body,
  })
  expect(response.status).toBeLessThan(300)
  return String(((await response.json()) as { version: number }).version)
}

async function remove(key: string) {
  expect((await api(kv(key), { method: 'DELETE' })).status).toBe(204)
}

const row = (page: Page, key: string) =>
  page
    .locator('#browse-rows tr')
    .filter({ has: page.getByRole('button', { name: key, exact: true }) })
/** A row's mark (set, new, gone, or null), the words for it, and its cells after the key. */
const rowState = async (page: Page, key: string) => ({
  mark: await row(page, key).getAttribute('data-change'),
  words: await row(page, key).getByRole('button').getAttribute('aria-description'),
  cells: await row(page, key).locator('td').allTextContents(),
})
const feedState = (page: Page) => page.locator('#browse-live').getAttribute('data-state')

/** Opens the keys view listing `prefix`, and waits for the list to follow the feed. */
async function openListing(prefix: string, keys: string[]) {
  const watched = await pages.open(proxy.url, '/#keys')
  const { page } = watched
  await page.getByLabel('Prefix').fill(prefix)
  await page.getByRole('button', { name: 'Search' }).click()
  const shown = async () => (await page.locator('#browse-rows th').allTextContents()).sort()
  await expect.poll(shown).toEqual([...keys].sort())
  await expect.poll(() => feedState(page)).toBe('live')
  /** How many listing requests the page has made: none may follow a change. */
  const listings = () => watched.requestedUrls.filter((url) => url.includes('/v1/kv?')).length
  return { page, listings, problems: watched.problems }
}

describe.skipIf(browserMissing !== undefined)('the keys view, live', () => {
  beforeAll(async () => {
    ;[browser, server] = await Promise.all([launchBrowser(), serve()])
    proxy = await startTcpProxy(server.port)
    pages = new TestPages(browser)
  })

  afterEach(() => pages?.closeAll())

  afterAll(async () => {
    await browser?.close()
    await proxy?.close()
    await killAll()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('marks each change under the prefix in the list as it happens, without listing again', async () => {
    await setKeysOf(
      server,
      ['live/a', 'live/b', 'live/c'].map((key) => ({ key, value: key })),
    )
    const { page, listings } = await openListing('live/', ['live/a', 'live/b', 'live/c'])
    const listed = listings()

    // A new version: updated in place, and marked.
    const versionA = await put('live/a', 'a, longer now', '', 'text/csv')
    await expect
      .poll(() => rowState(page, 'live/a'))
      .toEqual({
        mark: 'set',
        words: `set on the server at version ${versionA}`,
        cells: ['13 B', 'text/csv', '—', versionA],
      })
    // A key the page did not show: added first, and marked.
    const versionNew = await put('live/new', 'new')
    await expect
      .poll(() => rowState(page, 'live/new'))
      .toEqual({
        mark: 'new',
        words: `new on the server at version ${versionNew}`,
        cells: ['3 B', 'text/plain', '—', versionNew],
      })
    // Deleted: struck through where it was, not taken away.
    await remove('live/b')
    await expect
      .poll(() => rowState(page, 'live/b'))
      .toMatchObject({
        mark: 'gone',
        words: 'deleted on the server',
      })
    // Expired: the server's sweep removes it within a second or two of its TTL.
    await put('live/ttl', 'brief', '?ttl=1')
    await expect
      .poll(() => rowState(page, 'live/ttl'))
      .toMatchObject({ mark: 'gone', words: 'expired' })
    // A change outside the prefix is not the page's.
    await put('other/key', 'elsewhere')

    expect(await page.locator('#browse-rows th').allTextContents()).toEqual([
      'live/ttl',
      'live/new',
      'live/a',
      'live/b',
      'live/c',
    ])
    expect(await row(page, 'live/c').getAttribute('data-change')).toBeNull()
    expect(listings()).toBe(listed)
    // The listing at the top of the screen, as far as the page scrolls.
    await page.evaluate(
      'window.scrollTo(0, document.getElementById("browse-title").getBoundingClientRect().top + window.scrollY - 24)',
    )
    await screenshot(page, 'keys-live-desktop')
    await pages.expectNoProblems()
  })

  it('tells the key view of a change made elsewhere, keeping the edit in progress', async () => {
    const opened = await put('doc/one', 'first')
    const { page } = await openListing('doc/', ['doc/one'])
    await page.getByRole('button', { name: 'doc/one', exact: true }).click()
    await page.getByRole('button', { name: 'Edit' }).click()
    const editor = page.locator('#editor-value')
    await editor.fill('mine')

    const theirs = await put('doc/one', 'theirs')
    const notice = page.locator('#inspector-changed')
    await expect
      .poll(() => notice.textContent())
      .toBe(
        `Changed on the server: version ${theirs}. Your edit is kept; saving it will show the conflict first.`,
      )
    expect(await editor.inputValue()).toBe('mine')
    expect(await page.locator('#editor-version').textContent()).toBe(opened)
    // The list follows its own stream: its event may come after the key view's.
    await expect.poll(() => row(page, 'doc/one').getAttribute('data-change')).toBe('set')
    // Saving is still compare-and-set: the conflict is shown, nothing is overwritten.
    await page.getByRole('button', { name: 'Save' }).click()
    await expect
      .poll(() => page.locator('#editor-conflict-message').textContent())
      .toContain(`it is now at version ${theirs}`)
    expect(await (await api(kv('doc/one'))).text()).toBe('theirs')
    // Loading theirs shows what is there, and the notice goes.
    await page.getByRole('button', { name: 'Discard mine, load theirs' }).click()
    await expect.poll(() => page.locator('#inspector-value').textContent()).toBe('theirs')
    expect(await notice.isHidden()).toBe(true)

    // A key outside the list's prefix, opened from the form, is followed too.
    await put('solo/key', 'alone')
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('solo/key')
    await page.locator('#key-form').getByRole('button', { name: 'Get' }).click()
    await expect.poll(() => page.locator('#inspector-value').textContent()).toBe('alone')
    await remove('solo/key')
    await expect
      .poll(() => notice.textContent())
      .toMatch(/^Deleted on the server \(version \d+\)\.$/)
    await pages.expectNoProblems()
  })

  it("follows a --token server's feed with the token in the header, never in the URL", async () => {
    const token = 'ui-watch-token-5d1e'
    const secured = await startServer(['--token', token])
    const watched = await pages.open(secured.url, '/#keys')
    const { page } = watched
    const dialog = page.getByRole('dialog', { name: 'Sign in' })
    await page.getByLabel('Bearer token').fill(token)
    await dialog.getByRole('button', { name: 'Sign in' }).click()
    const feedRequest = page.waitForRequest((request) =>
      request.url().includes('/v1/watch?prefix=auth%2F'),
    )
    await page.getByLabel('Prefix').fill('auth/')
    await page.getByRole('button', { name: 'Search' }).click()
    expect((await feedRequest).headers().authorization).toBe(`Bearer ${token}`)
    await expect.poll(() => feedState(page)).toBe('live')
    const response = await apiOf(secured, kv('auth/key'), { method: 'PUT', body: 'v' }, token)
    const version = String(((await response.json()) as { version: number }).version)
    await expect.poll(() => rowState(page, 'auth/key')).toMatchObject({ mark: 'new' })
    expect((await rowState(page, 'auth/key')).cells.at(-1)).toBe(version)
    expect(watched.requestedUrls.filter((url) => url.includes(token))).toEqual([])
    await pages.expectNoProblems()
    await secured.stop()
  })

  it('misses no change across a cut connection, a restarted server, and one with other data', async () => {
    await setKeysOf(
      server,
      ['gap/keep', 'gap/drop', 'gap/change'].map((key) => ({ key, value: key })),
    )
    const { page, listings, problems } = await openListing('gap/', [
      'gap/keep',
      'gap/drop',
      'gap/change',
    ])
    const listed = listings()
    /** The Last-Event-ID of each request for the feed, undefined on the first. */
    const resumedFrom: (string | undefined)[] = []
    page.on('request', (request) => {
      if (request.url().includes('/v1/watch?')) resumedFrom.push(request.headers()['last-event-id'])
    })

    // The connection is reset, and no other can be made while the keys change.
    proxy.refusing = true
    proxy.cut()
    await expect.poll(() => feedState(page)).toBe('reconnecting')
    const changed = await put('gap/change', 'changed while cut')
    await remove('gap/drop')
    const added = await put('gap/new', 'set while cut')
    proxy.refusing = false
    // The feed retries after 1 s, then 2, 4 (with up to a quarter more): within 15 s.
    await expect.poll(() => feedState(page), { timeout: 15_000 }).toBe('live')
    await expect.poll(() => rowState(page, 'gap/change')).toMatchObject({ mark: 'set' })
    expect((await rowState(page, 'gap/change')).cells.at(-1)).toBe(changed)
    expect(await row(page, 'gap/drop').getAttribute('data-change')).toBe('gone')
    expect((await rowState(page, 'gap/new')).cells.at(-1)).toBe(added)
    // It resumed where it was, rather than listing again.
    expect(resumedFrom.at(-1)).toMatch(/^\d+$/)
    expect(listings()).toBe(listed)

    // The server restarts on the same data, on another port; the keys change before the page
    // is let back in. Whether the page resumes (marks) or lists again (when the restarted
    // server no longer holds the history), it must end up showing the changed versions.
    proxy.refusing = true
    expect(await server.stop('SIGTERM')).toBe(0)
    server = await serve()
    proxy.target = server.port
    const kept = await put('gap/keep', 'changed while the server was away')
    const late = await put('gap/late', 'set after the restart')
    proxy.refusing = false
    const version = async (key: string) => (await rowState(page, key)).cells.at(-1)
    await expect.poll(() => version('gap/keep'), { timeout: 20_000 }).toBe(kept)
    await expect.poll(() => version('gap/late')).toBe(late)
    expect(await feedState(page)).toBe('live')

    // A server on another data directory has none of the history the page follows (410
    // watch_history_gone): the page lists again, and follows from the new listing.
    const listedBefore = listings()
    proxy.refusing = true
    expect(await server.stop('SIGTERM')).toBe(0)
    server = await startServer()
    proxy.target = server.port
    const fresh = await put('gap/fresh', 'on another data directory')
    proxy.refusing = false
    const shown = () => page.locator('#browse-rows th').allTextContents()
    await expect.poll(shown, { timeout: 20_000 }).toEqual(['gap/fresh'])
    expect(listings()).toBeGreaterThan(listedBefore)
    await expect.poll(() => feedState(page)).toBe('live')
    expect(await row(page, 'gap/fresh').getAttribute('data-change')).toBeNull()
    const after = await put('gap/after', 'followed from the new listing')
    await expect.poll(() => rowState(page, 'gap/after')).toMatchObject({ mark: 'new' })
    expect((await rowState(page, 'gap/after')).cells.at(-1)).toBe(after)
    expect((await rowState(page, 'gap/fresh')).cells.at(-1)).toBe(fresh)
    // The dashboard's polls, refused meanwhile, are logged as network errors; nothing else is.
    expect(problems.filter((problem) => !/net::ERR_/.test(problem))).toEqual([])
  })
})

afterAll(killAll)
