import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { api, kvPath, setKeys } from '../support/api-client.js'
import {
  browserMissing,
  desktop,
  launchBrowser,
  phone,
  screenshot,
  TestPages,
} from '../support/browser.js'
import { killAll, type RunningServer, sleep, startServer } from '../support/server.js'

// The dashboard's "Hit ratio by memory" card (docs/ui.md) in Chromium against real servers: one
// with --miss-ratio-curve on, after reads that would hit more often with more memory, whose card
// must show what GET /v1/stats says, at desktop and phone widths; one with the curve off, whose
// card says how to turn it on. Same rules as ui.test.ts: no console error, no CSP violation, no
// request to another origin.

if (browserMissing !== undefined) {
  console.warn(`ui-curve.test.ts: browser tests skipped: ${browserMissing}`)
}

interface Point {
  memorySize: number
  hitRatio: number
}

interface Stats {
  bytesMax: number
  hits: number
  misses: number
  missRatioCurve: {
    points: Point[]
    sampledKeyCount: number
    accessCount: number
    since: number
  } | null
}

let browser: Browser
let pages: TestPages
/** 256 KiB with the curve on: 400 keys of about 1 KiB do not fit, 800 KiB would hold them. */
let server: RunningServer
let off: RunningServer

const stats = async (on: RunningServer) => (await (await api(on, '/v1/stats')).json()) as Stats
const card = (page: Page) => page.locator('[data-metric="miss-ratio-curve"]')
const sentence = (page: Page) => card(page).locator('.curve-sentence').textContent()
const ratio = (point: Point | undefined) => point?.hitRatio.toFixed(2)

describe.skipIf(browserMissing !== undefined)('the hit ratio by memory on the dashboard', () => {
  beforeAll(async () => {
    ;[browser, server, off] = await Promise.all([
      launchBrowser(),
      startServer(['--max-memory', '256KiB']),
      startServer(['--miss-ratio-curve', 'off']),
    ])
    pages = new TestPages(browser)
  })

  afterEach(() => pages?.closeAll())

  afterAll(async () => {
    await browser?.close()
    await killAll()
  })

  it('draws the curve of /v1/stats, marks the current size, and says what 2× would do', async () => {
    // Opened first, so that the other cards of the screenshot chart the traffic too.
    const { page } = await pages.open(server.url, '/', { viewport: desktop })
    const keys = Array.from({ length: 400 }, (_, i) => `curve/${String(i).padStart(3, '0')}`)
    for (let start = 0; start < keys.length; start += 50) {
      const batch = keys.slice(start, start + 50)
      await setKeys(
        server,
        batch.map((key) => ({ key, value: 'v'.repeat(1000) })),
      )
    }
    // Rounds over every key, a hot hundred read three times as often: an LRU of 256 KiB misses
    // most of the cold keys, one of 512 KiB few of them.
    for (let round = 0; round < 4; round++) {
      const reads = [...keys, ...keys.slice(0, 100), ...keys.slice(0, 100)]
      for (let start = 0; start < reads.length; start += 50) {
        await Promise.all(
          reads.slice(start, start + 50).map(async (key) => {
            await (await api(server, kvPath(key))).arrayBuffer()
          }),
        )
      }
    }
    // The curve is published every second: wait until it covers every read above.
    let latest = await stats(server)
    while (latest.missRatioCurve?.accessCount !== latest.hits + latest.misses) {
      await sleep(200)
      latest = await stats(server)
    }
    const curve = latest.missRatioCurve
    expect(curve.points).toHaveLength(25)
    const at = (size: number) => curve.points.find((point) => point.memorySize === size)
    const now = at(latest.bytesMax)
    const twice = at(2 * latest.bytesMax)
    // The reads were chosen so that more memory helps: the sentence has something to say.
    expect(Number(ratio(twice))).toBeGreaterThan(Number(ratio(now)))
    // Every key is sampled, so at the current size the curve is the server's own hit ratio.
    expect(now?.hitRatio).toBeCloseTo(latest.hits / (latest.hits + latest.misses), 12)

    await expect
      .poll(() => sentence(page))
      .toBe(`With 2× memory (512 KiB), hit ratio ${ratio(twice)} (now ${ratio(now)})`)
    const shown = card(page)
    expect(await shown.locator('.metric-detail').textContent()).toMatch(
      new RegExp(
        `^estimated from ${curve.sampledKeyCount} sampled keys and ` +
          `${curve.accessCount.toLocaleString('en')} reads since \\d\\d:\\d\\d:\\d\\d$`,
      ),
    )
    // The drawing: 25 points on the line, the current size (the 13th) marked in the middle.
    const chart = shown.locator('svg.curve-chart')
    const line = (await chart.locator('.spark-line').getAttribute('d')) ?? ''
    expect(line.split(' L')).toHaveLength(25)
    expect(await chart.locator('.curve-marker').getAttribute('d')).toBe('M150.0,0 L150.0,100')
    expect(await shown.locator('.curve-axis span').allTextContents()).toEqual([
      '32 KiB (1/8×)',
      '256 KiB, now',
      '2 MiB (8×)',
    ])
    // Its text alternative names the main points; the table under it holds every one.
    expect(await chart.getAttribute('role')).toBe('img')
    expect(await chart.getAttribute('aria-label')).toBe(
      `Hit ratio by memory: ${ratio(at(latest.bytesMax / 8))} at 32 KiB (1/8×), ` +
        `${ratio(at(latest.bytesMax / 2))} at 128 KiB (1/2×), ${ratio(now)} at 256 KiB (now), ` +
        `${ratio(twice)} at 512 KiB (2×), ${ratio(at(8 * latest.bytesMax))} at 2 MiB (8×)`,
    )
    await shown.getByText('Every point').click()
    const rows = shown.getByRole('table', { name: 'Hit ratio by memory' }).locator('tbody tr')
    expect(await rows.count()).toBe(25)
    expect(await rows.locator('td:last-child').allTextContents()).toEqual(
      curve.points.map((point) => ratio(point)),
    )
    expect(await shown.locator('tr[data-now="true"] td').allTextContents()).toEqual([
      '256 KiB',
      '1×',
      ratio(now),
    ])
    await shown.getByText('Every point').click()
    await shown.scrollIntoViewIfNeeded()
    await screenshot(page, 'dashboard-curve-desktop')

    // On a phone the card takes the whole width, and nothing overflows it.
    const small = (await pages.open(server.url, '/', { viewport: phone })).page
    await expect.poll(() => sentence(small)).toMatch(/^With 2× memory/)
    const [cardBox, gridBox] = await Promise.all([
      card(small).boundingBox(),
      small.locator('#metrics').boundingBox(),
    ])
    expect(cardBox?.width).toBe(gridBox?.width)
    expect(await small.evaluate('document.documentElement.scrollWidth')).toBe(phone.width)
    await card(small).scrollIntoViewIfNeeded()
    await screenshot(small, 'dashboard-curve-phone')
    await pages.expectNoProblems()
  })

  it('says how to turn the curve on, or that it is warming up', async () => {
    expect((await stats(off)).missRatioCurve).toBeNull()
    const { page } = await pages.open(off.url, '/')
    await expect
      .poll(() => sentence(page))
      .toBe(
        'Off. Start the server with --miss-ratio-curve on to see what more or less memory would do to the hit ratio.',
      )
    expect(await card(page).locator('svg').isHidden()).toBe(true)

    // The first second after a start has no curve either: the answer of a server just started.
    const warming = (await pages.open(off.url, '/')).page
    await warming.route('**/v1/stats', async (route) => {
      const response = await route.fetch()
      const body = { ...((await response.json()) as object), uptimeSeconds: 0 }
      await route.fulfill({ response, json: body })
    })
    await expect
      .poll(() => sentence(warming))
      .toBe('Warming up: the first curve comes a second after the start.')
    await pages.expectNoProblems()
  })
})

afterAll(killAll)
