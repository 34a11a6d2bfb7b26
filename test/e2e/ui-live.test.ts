import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { api, duringTraffic, kvPath, setKeys, trafficFor } from '../support/api-client.js'
import {
  browserMissing,
  desktop,
  launchBrowser,
  phone,
  screenshot,
  TestPages,
} from '../support/browser.js'
import { killAll, type RunningServer, sleep, startServer } from '../support/server.js'

// The web UI while the server works: the dashboard following real traffic, the token prompt of
// a server started with --token, and the screenshots of the main views (desktop and phone
// widths, light and dark) that docs/ui.md shows, written to docs/screenshots/. Same rules as
// ui.test.ts: Debian's Chromium, one browser for the file, no page may log a console error,
// violate the Content-Security-Policy or request another origin.

if (browserMissing !== undefined) {
  console.warn(`ui-live.test.ts: browser tests skipped: ${browserMissing}`)
}

const token = 'ui-test-token-b8f3'
let browser: Browser
let pages: TestPages
/** Small limits, so the traffic below fills the store and the eviction chart moves. */
let server: RunningServer
let secured: RunningServer
/** 64 KiB: a few batches fill it. */
let small: RunningServer

/** A dashboard card's headline number. */
const headline = (page: Page, metric: string) =>
  page.locator(`[data-metric="${metric}"] .metric-value`).textContent()

describe.skipIf(browserMissing !== undefined)('the web UI while the server works', () => {
  beforeAll(async () => {
    // startServer runs each server in a fresh temporary directory: its ./data is temporary.
    ;[browser, server, secured, small] = await Promise.all([
      launchBrowser(),
      startServer(['--max-entries', '1000', '--max-memory', '1MiB']),
      startServer(['--token', token]),
      startServer(['--max-entries', '1000', '--max-memory', '64KiB']),
    ])
    pages = new TestPages(browser)
  })

  afterEach(() => pages?.closeAll())

  afterAll(async () => {
    await browser?.close()
    await killAll()
  })

  it('updates the dashboard every second from the traffic the server sees', async () => {
    const { page } = await pages.open(server.url, '/')
    await expect.poll(() => headline(page, 'entries')).toBe('0')
    expect(await headline(page, 'hit-ratio')).toBe('no reads')

    // The rates cover the last interval: they are checked while the traffic goes on.
    await duringTraffic(server, async () => {
      await expect.poll(() => headline(page, 'ops')).toMatch(/^[1-9][\d,]*\/s$/)
      await expect.poll(() => headline(page, 'hit-ratio')).toMatch(/^\d+(\.\d)?%$/)
      await expect.poll(() => headline(page, 'group-commit')).toMatch(/^[\d.]+ records$/)
    })
    // Keys with a TTL expire meanwhile: compare with the server's count until both settle.
    const entriesShownAndCounted = async () => {
      const stats = (await (await api(server, '/v1/stats')).json()) as { entries: number }
      return [await headline(page, 'entries'), stats.entries.toLocaleString('en')]
    }
    await expect.poll(async () => new Set(await entriesShownAndCounted()).size).toBe(1)
    expect(await headline(page, 'memory')).toMatch(/^[\d.]+ (B|KiB|MiB)$/)
    expect(await headline(page, 'durable-lag')).toMatch(/^\d+ records$/)
    // The charts draw a line once two intervals are known (the first sample has none).
    const line = page.locator('[data-metric="ops"] .spark-line')
    await expect.poll(() => line.getAttribute('d')).toMatch(/^M[\d.]+,[\d.]+ L/)
    expect(await page.locator('[data-metric="ops"] .metric-caption').textContent()).toMatch(
      /^last \d+(\.\d)? s, peak [\d,]+\/s$/,
    )
    await pages.expectNoProblems()
  })

  it('shows how full the store is by level, in colour and words, and when it evicts', async () => {
    const { page } = await pages.open(small.url, '/')
    const memory = page.locator('[data-metric="memory"]')
    const level = () => memory.getAttribute('data-level')
    const detail = () => memory.locator('.metric-detail').textContent()
    const valueText = () => memory.locator('meter').getAttribute('aria-valuetext')
    const notice = page.locator('#evictions-notice')
    const evictions = page.locator('[data-metric="evictions"]')
    await expect.poll(level).toBe('normal')
    expect(await valueText()).toBe('0%')
    expect(await notice.isHidden()).toBe(true)
    /** `count` keys of 1,000 bytes each (key and value), none evicted by the batch itself. */
    const fill = (from: number, count: number) =>
      setKeys(
        small,
        Array.from({ length: count }, (_, i) => ({
          key: `fill/${String(from + i).padStart(3, '0')}`,
          value: 'x'.repeat(992),
        })),
      )

    // 55,000 bytes of 65,536: a warning, in colour and in words.
    await fill(0, 55)
    await expect.poll(level).toBe('warning')
    expect(await detail()).toBe('of 64 KiB (83.9%) · nearly full')
    expect(await valueText()).toBe('83.9%, nearly full')
    const meter = memory.locator('meter')
    expect([await meter.getAttribute('low'), await meter.getAttribute('high')]).toEqual([
      '0.8',
      '0.95',
    ])

    // 65 more: the 55 before are evicted to make room, and the store is full.
    await fill(55, 65)
    await expect.poll(level).toBe('critical')
    expect(await detail()).toBe('of 64 KiB (99.2%) · full')
    expect(await valueText()).toBe('99.2%, full')
    // The evictions show above the cards, with the flag to raise, and on their card.
    await expect
      .poll(() => notice.textContent())
      .toMatch(
        /^Evicting keys to make room: 55 in the last [\d.]+ (s|min \d+ s), \d+\/s now\. The store is full at its --max-memory limit \(64 KiB\): raise it, or --max-entries, to keep more keys\.$/,
      )
    expect(await evictions.locator('.metric-value').textContent()).toBe('55')
    expect(await evictions.locator('.metric-detail').textContent()).toMatch(
      /^\d+\/s now · 55 in the last /,
    )
    expect(await evictions.getAttribute('data-state')).toBe('warn')
    // Third among the cards, beside the two limits.
    const cards = await page
      .locator('.metric')
      .evaluateAll((all) => all.map((card) => card.getAttribute('data-metric')))
    expect(cards.slice(0, 3)).toEqual(['entries', 'memory', 'evictions'])
    await screenshot(page, 'dashboard-full-desktop')
    await pages.expectNoProblems()
  })

  it('tells who sets a key from the form how many keys it evicted', async () => {
    // Full: 65 entries of 1,000 bytes in 64 KiB.
    await setKeys(
      small,
      Array.from({ length: 65 }, (_, i) => ({
        key: `form/${String(i).padStart(3, '0')}`,
        value: 'x'.repeat(992),
      })),
    )
    const evictions = async () =>
      ((await (await api(small, '/v1/stats')).json()) as { evictions: number }).evictions
    const before = await evictions()
    const { page } = await pages.open(small.url, '/#keys')
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('form/big')
    await page.getByLabel('Value', { exact: true }).first().fill('b'.repeat(5000))
    await page.locator('#key-form').getByRole('button', { name: 'Set' }).click()
    const result = page.locator('#key-result')
    await expect.poll(() => result.textContent()).toMatch(/^Created form\/big/)
    const evicted = (await evictions()) - before
    expect(evicted).toBeGreaterThan(1)
    expect(await result.textContent()).toMatch(
      new RegExp(
        `: version \\d+\\. It evicted ${evicted} least recently used keys to make room: the store is full\\.$`,
      ),
    )
    await pages.expectNoProblems()
  })

  it('asks for the token once, keeps it for the tab, and never puts it in a URL', async () => {
    const watched = await pages.open(secured.url, '/')
    const { page } = watched
    const dialog = page.getByRole('dialog', { name: 'Sign in' })
    const connection = () => page.locator('#connection').textContent()
    await dialog.waitFor()
    expect(await page.locator('#token-message').textContent()).toMatch(/requires a bearer token/)

    // Cancelled, it does not ask again by itself (the poller would reopen it every second).
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    await expect.poll(connection).toBe('Token required')
    await sleep(1500)
    expect(await dialog.isVisible()).toBe(false)
    await page.getByRole('button', { name: 'Enter token' }).click()

    await page.getByLabel('Bearer token').fill('not-the-token')
    await dialog.getByRole('button', { name: 'Sign in' }).click()
    await expect.poll(() => page.locator('#token-message').textContent()).toMatch(/refused/)
    await page.getByLabel('Bearer token').fill(token)
    const statsRequest = page.waitForRequest((request) => request.url().endsWith('/v1/stats'))
    await dialog.getByRole('button', { name: 'Sign in' }).click()
    await expect.poll(connection).toBe('Connected')
    expect((await statsRequest).headers().authorization).toBe(`Bearer ${token}`)

    // Writing and listing need no further question.
    await page.getByRole('link', { name: 'Keys' }).click()
    await page.getByRole('textbox', { name: 'Key', exact: true }).fill('auth/key')
    await page.locator('#value-input').fill('signed in')
    await page.getByRole('button', { name: 'Set', exact: true }).click()
    await expect.poll(() => page.locator('#key-result').textContent()).toMatch(/^Created auth\/key/)
    expect(await (await api(secured, kvPath('auth/key'), {}, token)).text()).toBe('signed in')
    await expect.poll(() => page.locator('#browse-rows th').allTextContents()).toContain('auth/key')

    // A reload keeps the tab's token: nothing is asked.
    await page.reload()
    await expect.poll(connection).toBe('Connected')
    expect(await dialog.isVisible()).toBe(false)
    expect(await page.evaluate('sessionStorage.getItem("slabkv.token")')).toBe(token)
    expect(watched.requestedUrls.filter((url) => url.includes(token))).toEqual([])
    await pages.expectNoProblems()
  })

  it('writes screenshots of the main views at desktop and phone widths', async () => {
    const views = await Promise.all([
      pages.open(server.url, '/', { viewport: desktop }),
      pages.open(server.url, '/', { viewport: desktop, colorScheme: 'dark' }),
      pages.open(server.url, '/', { viewport: phone }),
    ])
    const [light, dark, small] = views.map((view) => view.page) as [Page, Page, Page]
    // Enough traffic for the charts to show a shape, evictions included.
    await trafficFor(server, 7000)
    await expect.poll(() => headline(light, 'evictions')).not.toBe('0')
    await screenshot(light, 'dashboard-desktop')
    await screenshot(dark, 'dashboard-desktop-dark')
    await screenshot(small, 'dashboard-phone')

    await setKeys(server, [
      {
        key: 'demo/user/1001',
        value: JSON.stringify({ name: 'Ada', plan: 'pro', seats: 12, tags: ['admin', 'beta'] }),
        contentType: 'application/json',
      },
      {
        key: 'demo/user/1002',
        value: '{"name":"Grace","plan":"free"}',
        contentType: 'application/json',
      },
      { key: 'demo/session/9f2c', value: 'user=1001', ttl: 1800 },
      {
        key: 'demo/greeting',
        value: 'Hello from slabkv',
        contentType: 'text/plain; charset=utf-8',
      },
      { key: 'demo/feature-flags', value: '{"newUi":true}', contentType: 'application/json' },
    ])
    for (const page of [light, small]) {
      await page.getByRole('link', { name: 'Keys' }).click()
      await page.getByLabel('Prefix').fill('demo/')
      await page.getByRole('button', { name: 'Search' }).click()
      await page.getByRole('button', { name: 'demo/user/1001', exact: true }).click()
      await page.locator('#inspector-value').getByText('"Ada"').waitFor()
      // The list's feed is open (the Live mark beside Browse), as it is on a real screen.
      await expect.poll(() => page.locator('#browse-live').getAttribute('data-state')).toBe('live')
    }
    await light.evaluate('window.scrollTo(0, 0)')
    await screenshot(light, 'keys-desktop')
    await small.locator('#browse-title').scrollIntoViewIfNeeded()
    await small.evaluate('window.scrollBy(0, -8)')
    await screenshot(small, 'keys-phone')
    await small.locator('#inspector').scrollIntoViewIfNeeded()
    await screenshot(small, 'key-phone')
    await pages.expectNoProblems()
  })
})

afterAll(killAll)
