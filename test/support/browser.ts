import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, expect } from 'vitest'

// Driving the web UI in Debian's Chromium with playwright-core (browser downloads do not work
// here; scripts/ensure-system-packages.sh installs the package). Every page opened through
// openWatchedPage() records what must never happen: a console error or warning, an uncaught
// exception, a Content-Security-Policy violation, a request to any other origin, a UI file that
// fails to load. A test ends by expecting that list to be empty.

export const chromiumPath = '/usr/bin/chromium'

/** Why the browser tests cannot run here, or undefined when they can. */
export const browserMissing: string | undefined = existsSync(chromiumPath)
  ? undefined
  : `${chromiumPath} is missing (npm test installs Debian's chromium with apt when it runs as root)`

/**
 * Where the screenshots go: docs/screenshots/, which docs/ui.md shows, when UPDATE_SCREENSHOTS=1;
 * otherwise a temporary directory, so an ordinary test run still takes them (and fails if a view
 * cannot be drawn) without rewriting the committed images with every run's new numbers. The
 * temporary one goes when the test file that imported this is done: nothing reads it after.
 */
export const screenshotDir =
  process.env.UPDATE_SCREENSHOTS === '1'
    ? fileURLToPath(new URL('../../docs/screenshots/', import.meta.url))
    : temporaryScreenshotDir()

function temporaryScreenshotDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'slabkv-screenshots-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  return `${dir}/`
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    timeout: 30_000,
    // The machine has no internet: nothing may try it (no component updates, no field trials).
    args: ['--no-first-run', '--disable-background-networking', '--disable-component-update'],
  })
}

export const desktop = { width: 1280, height: 800 }
export const phone = { width: 390, height: 844 }

export interface WatchedPage {
  page: Page
  context: BrowserContext
  /** Every console error or warning, page error, CSP violation and foreign request so far. */
  problems: string[]
  /** Every URL the page requested, in order. */
  requestedUrls: string[]
  close: () => Promise<void>
}

// Chromium logs each HTTP error a fetch receives as a console error. The API's 4xx answers are
// expected (a 404 for a missing key, the 412 of a conflict, the 401 that asks for the token)
// and each test checks how the UI shows them; for the UI's own files, any error is a problem.
const apiErrorLog = /^Failed to load resource: the server responded with a status of 4\d\d\b/

/**
 * A new browser context (own sessionStorage) and page at `baseUrl`, watched for problems.
 * The page is not yet navigated.
 */
export async function openWatchedPage(
  browser: Browser,
  baseUrl: string,
  options: { viewport?: { width: number; height: number }; colorScheme?: 'light' | 'dark' } = {},
): Promise<WatchedPage> {
  const context = await browser.newContext({
    viewport: options.viewport ?? desktop,
    deviceScaleFactor: 1,
    colorScheme: options.colorScheme ?? 'light',
    locale: 'en-GB',
    timezoneId: 'UTC',
  })
  // Init scripts are injected by the browser itself, so the policy under test does not apply to
  // this one. A violation report becomes a console error, which the listener below records.
  await context.addInitScript({
    content: `document.addEventListener('securitypolicyviolation', (event) => {
      console.error('CSP violation: ' + event.violatedDirective + ' refused ' + event.blockedURI)
    })`,
  })
  // Thirty seconds (the default) would hide a failure behind the suite's time budget.
  context.setDefaultTimeout(10_000)
  const page = await context.newPage()
  const problems: string[] = []
  const requestedUrls: string[] = []
  page.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'warning') return
    const from = message.location().url
    if (apiErrorLog.test(message.text()) && from.startsWith(`${baseUrl}/v1/`)) return
    problems.push(`console ${message.type()}: ${message.text()} (${from})`)
  })
  page.on('pageerror', (error) => problems.push(`page error: ${error.stack ?? error.message}`))
  page.on('request', (request) => {
    const url = request.url()
    requestedUrls.push(url)
    if (!url.startsWith(`${baseUrl}/`) && !url.startsWith('data:')) {
      problems.push(`request to another origin: ${url}`)
    }
  })
  page.on('response', (response) => {
    const path = new URL(response.url()).pathname
    if (response.status() >= 400 && !path.startsWith('/v1/')) {
      problems.push(`UI file ${path} answered ${response.status()}`)
    }
  })
  return { page, context, problems, requestedUrls, close: () => context.close() }
}

/** Writes a screenshot of the page's viewport to screenshotDir/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(screenshotDir, { recursive: true })
  await page.screenshot({ path: `${screenshotDir}${name}.png`, animations: 'disabled' })
}

/**
 * The pages one test opens. expectNoProblems() ends a test: every page it opened showed no
 * problem. closeAll() runs after each test, so a failed test leaves no context open.
 */
export class TestPages {
  readonly #browser: Browser
  #open: WatchedPage[] = []

  constructor(browser: Browser) {
    this.#browser = browser
  }

  async open(
    baseUrl: string,
    path: string,
    options: Parameters<typeof openWatchedPage>[2] = {},
  ): Promise<WatchedPage> {
    const watched = await openWatchedPage(this.#browser, baseUrl, options)
    this.#open.push(watched)
    await watched.page.goto(`${baseUrl}${path}`)
    return watched
  }

  async expectNoProblems(): Promise<void> {
    for (const watched of this.#open) expect(watched.problems).toEqual([])
    await this.closeAll()
  }

  async closeAll(): Promise<void> {
    const open = this.#open.splice(0)
    await Promise.all(open.map((watched) => watched.close()))
  }
}
