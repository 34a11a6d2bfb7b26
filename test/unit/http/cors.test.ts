import { type IncomingMessage, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { resolveConfig } from '../../../src/config.js'
import {
  corsAllowedHeaders,
  corsAllowedMethods,
  corsExposedHeaders,
  corsMaxAgeSeconds,
} from '../../../src/http/cors.js'
import { createHttpServer } from '../../../src/http/server.js'
import { createLog } from '../../../src/log.js'
import { inProcessApp, routeTestLimits } from '../../support/app.js'

// --cors-origins (docs/api.md, "Browsers on other origins"): preflights and actual requests from
// listed and unlisted origins, on the PyKV-compatible routes the PyKV page calls and the native
// ones, with and without --token, behind the Host check. What a browser then does with these
// answers is test/e2e/cors-browser.test.ts.

const listed = 'http://app.example:3000'
const token = 'cors-test-token-0123456789'

function appWith(flags: Record<string, string> = {}) {
  return inProcessApp({ flags, limits: routeTestLimits }).send
}

/** A browser's preflight for a method (and the non-safelisted headers it will send). */
function preflight(
  send: ReturnType<typeof appWith>,
  path: string,
  origin: string,
  method: string,
  headers = 'content-type',
  host = '127.0.0.1:8000',
): Promise<Response> {
  return send(`http://${host}${path}`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': headers,
    },
  })
}

const corsHeaderNames = (response: Response) =>
  [...response.headers.keys()].filter((name) => name.startsWith('access-control-'))

function expectAllowedPreflight(response: Response, origin: string): void {
  expect(response.status).toBe(204)
  expect(response.headers.get('access-control-allow-origin')).toBe(origin)
  expect(response.headers.get('access-control-allow-methods')).toBe(corsAllowedMethods.join(', '))
  const allowedHeaders = response.headers.get('access-control-allow-headers')!.split(', ')
  for (const name of ['Content-Type', 'If-Match', 'If-None-Match', 'Authorization']) {
    expect(allowedHeaders).toContain(name)
  }
  expect(response.headers.get('access-control-max-age')).toBe(String(corsMaxAgeSeconds))
  expect(response.headers.get('vary')).toBe('Origin')
  expect(response.headers.get('access-control-allow-credentials')).toBeNull()
}

function expectReadableBy(response: Response, origin: string): void {
  expect(response.headers.get('access-control-allow-origin')).toBe(origin)
  expect(response.headers.get('vary')).toBe('Origin')
  const exposed = response.headers.get('access-control-expose-headers')!.split(', ')
  for (const name of ['ETag', 'Slabkv-Ttl', 'Slabkv-Evicted', 'Slabkv-Sequence']) {
    expect(exposed).toContain(name)
  }
}

describe('without --cors-origins', () => {
  const send = appWith()

  it('answers a preflight as any OPTIONS: 404, no CORS header, so the browser refuses', async () => {
    const response = await preflight(send, '/set', 'null', 'POST')
    expect(response.status).toBe(404)
    expect(corsHeaderNames(response)).toEqual([])
    expect(response.headers.get('vary')).toBeNull()
  })

  it('adds nothing to an answer for a page of another origin', async () => {
    const response = await send('/get/a', { headers: { origin: 'null' } })
    expect(response.status).toBe(404)
    expect(corsHeaderNames(response)).toEqual([])
    expect(response.headers.get('vary')).toBeNull()
  })
})

describe('with --cors-origins', () => {
  const send = appWith({ 'cors-origins': `null, ${listed}` })

  it('answers the preflights of the PyKV page (origin null) and of a listed origin', async () => {
    for (const origin of ['null', listed]) {
      expectAllowedPreflight(await preflight(send, '/set', origin, 'POST'), origin)
      expectAllowedPreflight(await preflight(send, '/delete/k', origin, 'DELETE', ''), origin)
      const put = await preflight(send, '/v1/kv/k', origin, 'PUT', 'content-type,if-match')
      expectAllowedPreflight(put, origin)
    }
  })

  it("lets the PyKV page's three calls be read: set, get, delete", async () => {
    const origin = 'null'
    const set = await send('/set', {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'cors/pykv', value: { n: 1 } }),
    })
    expect(set.status).toBe(200)
    expectReadableBy(set, origin)
    const get = await send('/get/cors%2Fpykv', { headers: { origin } })
    expect(await get.json()).toEqual({ key: 'cors/pykv', value: { n: 1 } })
    expectReadableBy(get, origin)
    const del = await send('/delete/cors%2Fpykv', { method: 'DELETE', headers: { origin } })
    expect(await del.json()).toEqual({ status: 'deleted' })
    expectReadableBy(del, origin)
    // An error answer is readable too, so the page can show it.
    const missing = await send('/get/cors%2Fpykv', { headers: { origin } })
    expect(missing.status).toBe(404)
    expectReadableBy(missing, origin)
  })

  it('exposes the headers the native routes send: ETag, Slabkv-Ttl, Slabkv-Sequence', async () => {
    const put = await send('/v1/kv/cors%2Fnative?ttl=60', {
      method: 'PUT',
      headers: { origin: listed, 'content-type': 'text/plain' },
      body: 'v',
    })
    expect(put.status).toBe(201)
    expectReadableBy(put, listed)
    const get = await send('/v1/kv/cors%2Fnative', { headers: { origin: listed } })
    expectReadableBy(get, listed)
    expect(get.headers.get('etag')).toMatch(/^"/)
    expect(get.headers.get('slabkv-ttl')).not.toBeNull()
    const list = await send('/v1/kv', { headers: { origin: listed } })
    expectReadableBy(list, listed)
    expect(list.headers.get('slabkv-sequence')).not.toBeNull()
    // The preflight lists the watch's resume header too, and exposes what a 401 asks with.
    expect(corsAllowedHeaders).toContain('Last-Event-ID')
    expect(corsExposedHeaders).toContain('WWW-Authenticate')
  })

  it('answers an unlisted origin as before, and says nothing of the list', async () => {
    const origin = 'http://app.example:3001'
    const refused = await preflight(send, '/set', origin, 'POST')
    expect(refused.status).toBe(404)
    expect(corsHeaderNames(refused)).toEqual([])
    const get = await send('/get/a', { headers: { origin: 'https://app.example:3000' } })
    expect(get.status).toBe(404)
    expect(corsHeaderNames(get)).toEqual([])
    // A cache must not hand this answer to a listed origin, nor a listed one's to others.
    expect(get.headers.get('vary')).toBe('Origin')
  })

  it('adds no CORS header to a request without Origin (curl, same-origin GET)', async () => {
    const response = await send('/healthz')
    expect(response.status).toBe(200)
    expect(corsHeaderNames(response)).toEqual([])
    expect(response.headers.get('vary')).toBe('Origin')
  })

  it('passes an OPTIONS that is no preflight on to the routes (no Access-Control-Request-Method)', async () => {
    const response = await send('/set', { method: 'OPTIONS', headers: { origin: listed } })
    expect(response.status).toBe(404)
    expectReadableBy(response, listed)
  })

  it('keeps the Host check first: a preflight for a name not served gets 421 and no CORS', async () => {
    // The Host check is the Node server's (src/http/host.ts), so this one goes through it.
    const { app, config } = inProcessApp({ flags: { 'cors-origins': listed } })
    const server = createHttpServer(
      app.fetch,
      config,
      createLog(() => {}),
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const preflightFor = (host: string) =>
        new Promise<IncomingMessage>((resolve, reject) => {
          const headers = {
            host,
            origin: listed,
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'content-type',
          }
          request({ host: '127.0.0.1', port, path: '/set', method: 'OPTIONS', headers }, resolve)
            .on('error', reject)
            .end()
        })
      const served = await preflightFor(`127.0.0.1:${port}`)
      served.resume()
      expect(served.statusCode).toBe(204)
      expect(served.headers['access-control-allow-origin']).toBe(listed)
      const refused = await preflightFor('evil.example')
      refused.resume()
      expect(refused.statusCode).toBe(421)
      expect(Object.keys(refused.headers).filter((name) => name.startsWith('access-'))).toEqual([])
    } finally {
      server.close()
    }
  })
})

describe('with --cors-origins and --token', () => {
  const send = appWith({ 'cors-origins': listed, token })
  const bearer = `Bearer ${token}`

  it('answers the preflight, which carries no token, before the token check', async () => {
    const response = await preflight(send, '/set', listed, 'POST', 'authorization,content-type')
    expectAllowedPreflight(response, listed)
  })

  it('lets the page read a 401 (so it can ask for the token) and, with the token, the answer', async () => {
    const refused = await send('/get/a', { headers: { origin: listed } })
    expect(refused.status).toBe(401)
    expectReadableBy(refused, listed)
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/)
    const set = await send('/set', {
      method: 'POST',
      headers: { origin: listed, 'content-type': 'application/json', authorization: bearer },
      body: JSON.stringify({ key: 'a', value: 1 }),
    })
    expect(set.status).toBe(200)
    expectReadableBy(set, listed)
  })

  it('answers an unlisted origin as before: its preflight gets the 401 and no CORS header', async () => {
    const response = await preflight(send, '/set', 'null', 'POST')
    expect(response.status).toBe(401)
    expect(corsHeaderNames(response)).toEqual([])
  })
})

describe('--cors-origins values', () => {
  const resolve = (value: string) => resolveConfig({ 'cors-origins': value }, {})

  it('takes origins as browsers send them, and null; the variable too', () => {
    const flag = resolve(' null , http://localhost:5173,https://kv.example ')
    expect(flag.ok && flag.config.corsOrigins).toEqual([
      'null',
      'http://localhost:5173',
      'https://kv.example',
    ])
    const env = resolveConfig({}, { SLABKV_CORS_ORIGINS: 'http://[::1]:8080' })
    expect(env.ok && env.config.corsOrigins).toEqual(['http://[::1]:8080'])
    const none = resolveConfig({}, {})
    expect(none.ok && none.config.corsOrigins).toEqual([])
  })

  it("refuses '*', saying why", () => {
    const result = resolve('null,*')
    expect(result.ok).toBe(false)
    expect(!result.ok && result.message).toMatch(/does not take '\*'/)
  })

  it('refuses what no browser sends as an origin, suggesting the form that matches', () => {
    const cases: [string, RegExp][] = [
      ['http://localhost:3000/', /write it as http:\/\/localhost:3000$/],
      ['HTTP://App.Example', /write it as http:\/\/app\.example$/],
      ['https://kv.example:443', /write it as https:\/\/kv\.example$/],
      ['http://app.example/path', /write it as http:\/\/app\.example$/],
      ['app.example', /not 'app\.example'$/],
      ['file:///index.html', /or null\), not 'file:/],
    ]
    for (const [value, message] of cases) {
      const result = resolve(value)
      expect(result.ok, value).toBe(false)
      expect(!result.ok && result.message, value).toMatch(message)
    }
  })
})
