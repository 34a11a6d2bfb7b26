import { readdirSync, readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { describe, expect, it } from 'vitest'
import { inProcessApp } from '../../support/app.js'

// Serving the web UI (src/http/ui.ts): the files of public/ with their content types, under the
// Content-Security-Policy, open without a token, and nothing else of the file system, however
// the path is spelled. The app runs in process; the traversal spellings also go over a real
// socket, since fetch and app.request() normalise a path before the server could see it.

const publicDir = new URL('../../../public/', import.meta.url)

// Spelled out here rather than imported, so that a weakened policy fails this test.
const expectedPolicy =
  "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

function makeApp(token?: string) {
  return inProcessApp({ flags: token === undefined ? {} : { token } }).app
}

const app = makeApp()
const get = (path: string, headers: Record<string, string> = {}) =>
  Promise.resolve(app.request(path, { headers }))

describe('the web UI files', () => {
  it('serves index.html at / with the Content-Security-Policy', async () => {
    const response = await get('/')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(response.headers.get('content-security-policy')).toBe(expectedPolicy)
    expect(response.headers.get('x-content-type-options')).toBe('nosniff')
    expect(await response.text()).toBe(readFileSync(new URL('index.html', publicDir), 'utf8'))
  })

  it('serves every script, stylesheet and icon with its content type and the policy', async () => {
    const expected: Record<string, string> = {
      html: 'text/html; charset=utf-8',
      js: 'text/javascript; charset=utf-8',
      css: 'text/css; charset=utf-8',
      svg: 'image/svg+xml',
    }
    const names = readdirSync(publicDir).filter((name) => /\.(html|js|css|svg)$/.test(name))
    expect(names).toEqual(expect.arrayContaining(['index.html', 'app.js', 'style.css']))
    for (const name of names) {
      const response = await get(`/${name}`)
      expect(response.status, name).toBe(200)
      const extension = name.slice(name.lastIndexOf('.') + 1)
      expect(response.headers.get('content-type'), name).toBe(expected[extension])
      expect(response.headers.get('content-security-policy'), name).toBe(expectedPolicy)
      expect(Buffer.from(await response.arrayBuffer())).toEqual(
        readFileSync(new URL(name, publicDir)),
      )
    }
  })

  it('answers 304 to a revalidation with the current ETag', async () => {
    const first = await get('/app.js')
    const etag = first.headers.get('etag')
    expect(etag).toMatch(/^"[\w-]+"$/)
    expect(first.headers.get('cache-control')).toBe('no-cache')
    const again = await get('/app.js', { 'if-none-match': etag! })
    expect(again.status).toBe(304)
  })

  it('serves nothing else of public/ (its README, its tsconfig)', async () => {
    for (const path of ['/README.md', '/tsconfig.json', '/public/index.html']) {
      expect((await get(path)).status, path).toBe(404)
    }
  })

  it('has no inline script, style or event handler, which the policy would refuse', () => {
    for (const name of readdirSync(publicDir).filter((file) => file.endsWith('.html'))) {
      const html = readFileSync(new URL(name, publicDir), 'utf8')
      for (const tag of html.match(/<script\b[^>]*>/g) ?? []) expect(tag, name).toMatch(/\ssrc=/)
      expect(html, name).not.toMatch(/<style\b/)
      expect(html, name).not.toMatch(/\sstyle=/)
      expect(html, name).not.toMatch(/\son[a-z]+=/)
      expect(html, name).not.toMatch(/javascript:/)
      expect(html, name).not.toMatch(/(src|href)="(https?:)?\/\//)
    }
  })

  it('loads without a token when the server has one; the API still asks for it', async () => {
    const secured = makeApp('secret')
    for (const path of ['/', '/index.html', '/app.js', '/style.css', '/favicon.svg']) {
      expect((await secured.request(path)).status, path).toBe(200)
    }
    for (const path of ['/v1/stats', '/README.md', '/../package.json', '/v1/kv/app.js']) {
      expect((await secured.request(path)).status, path).toBe(401)
    }
  })
})

/** Sends a request line with the path exactly as given, byte for byte, to a real socket. */
function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, method: 'GET' }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
    })
    request.on('error', reject)
    request.end()
  })
}

describe('path traversal', () => {
  it('is refused in every spelling: nothing outside the UI files is served', async () => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
    await new Promise<void>((resolve) => server.once('listening', () => resolve()))
    const { port } = server.address() as AddressInfo
    const secret = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')
    const attempts = [
      '/../package.json',
      '/../../package.json',
      '/%2e%2e/package.json',
      '/%2E%2E/package.json',
      '/..%2fpackage.json',
      '/..%2Fpackage.json',
      '/%2e%2e%2fpackage.json',
      '/..%5cpackage.json',
      '/..\\package.json',
      '/%252e%252e%252fpackage.json',
      '/public/../package.json',
      '/app.js/../../package.json',
      '/./../package.json',
      '//package.json',
      '/index.html%00.js',
      '/..%2f..%2fetc%2fpasswd',
      '/%2e%2e/%2e%2e/etc/passwd',
    ]
    try {
      for (const path of attempts) {
        const { status, body } = await rawGet(port, path)
        // 404 from the app; 400 where Node's parser refuses the request line (a backslash).
        expect([400, 404], `${path} answered ${status}`).toContain(status)
        expect(body, path).not.toContain(secret.slice(0, 40))
        expect(body, path).not.toContain('root:')
      }
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
