import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  freePort,
  killAll,
  type LogLine,
  type RunningServer,
  runCli,
  startServer,
  uniqueKey,
} from '../support/server.js'
import { expectJson, expectProblem } from './http.js'

// docs/api.md, "Authentication and Host names": with --token every route but /healthz, /readyz, the UI's static
// files and the API docs (/docs, its files, /openapi.json) needs the bearer token; without a token the server binds only a loopback address.

const token = 'secret'

let server: RunningServer

beforeAll(async () => {
  server = await startServer(['--token', token])
})

afterAll(async () => {
  await server?.stop()
  await killAll()
})

const authorized = { authorization: `Bearer ${token}` }

interface OpenApiDocument {
  paths: Record<
    string,
    Record<string, { security?: unknown[]; responses: Record<string, unknown> }>
  >
}

const wrongHeaders: [string, Record<string, string>][] = [
  ['no Authorization header', {}],
  ['a wrong token', { authorization: 'Bearer wrong' }],
  ['the token with a suffix', { authorization: `Bearer ${token}x` }],
  ['a token prefix', { authorization: `Bearer ${token.slice(0, 3)}` }],
  ['an empty token', { authorization: 'Bearer ' }],
  ['another scheme', { authorization: `Basic ${Buffer.from(`u:${token}`).toString('base64')}` }],
]

function expectChallenge(response: Response, what: string): void {
  expect(response.status, what).toBe(401)
  expect(response.headers.get('www-authenticate'), what).toMatch(/^Bearer\b/)
}

describe('bearer token', () => {
  it('answers 401 with WWW-Authenticate: Bearer on /v1 routes without the right token', async () => {
    const key = uniqueKey('auth')
    for (const [what, headers] of wrongHeaders) {
      const response = await fetch(`${server.url}/v1/kv/${key}`, {
        method: 'PUT',
        headers,
        body: 'x',
      })
      expectChallenge(response, `PUT /v1/kv with ${what}`)
      await expectProblem(response, 401, 'unauthorized')
    }
    const read = await fetch(`${server.url}/v1/kv/${key}`, { headers: authorized })
    expect(read.status, 'the refused PUTs stored nothing').toBe(404)
  })

  it('answers 401 on the PyKV routes without the right token, and stores nothing', async () => {
    const key = uniqueKey('auth-seed')
    for (const [what, headers] of wrongHeaders) {
      const set = await fetch(`${server.url}/set`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ key, value: 1 }),
      })
      expectChallenge(set, `POST /set with ${what}`)
      await set.arrayBuffer()
      const get = await fetch(`${server.url}/get/${key}`, { headers })
      expectChallenge(get, `GET /get with ${what}`)
      await get.arrayBuffer()
      const del = await fetch(`${server.url}/delete/${key}`, { method: 'DELETE', headers })
      expectChallenge(del, `DELETE /delete with ${what}`)
      await del.arrayBuffer()
    }
    const read = await fetch(`${server.url}/get/${key}`, { headers: authorized })
    expect(await expectJson(read, 404)).toEqual({ detail: 'Key not found' })
  })

  it('accepts the bearer scheme in any case', async () => {
    const response = await fetch(`${server.url}/v1/stats`, {
      headers: { Authorization: `bearer ${token}` },
    })
    expect(response.status).toBe(200)
    await response.arrayBuffer()
  })

  it('answers 401 on every other route without the token', async () => {
    const routes: [string, string, string?][] = [
      ['GET', '/v1/kv?prefix='],
      ['GET', '/v1/kv/some-key'],
      ['HEAD', '/v1/kv/some-key'],
      ['DELETE', '/v1/kv/some-key'],
      ['POST', '/v1/batch', '{"ops":[]}'],
      ['GET', '/v1/stats'],
      ['GET', '/metrics'],
      ['GET', '/docs/assets/anything-else'],
    ]
    const open: string[] = []
    for (const [method, path, body] of routes) {
      const response = await fetch(`${server.url}${path}`, {
        method,
        ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
      })
      await response.arrayBuffer()
      if (
        response.status !== 401 ||
        !response.headers.get('www-authenticate')?.startsWith('Bearer')
      ) {
        open.push(`${method} ${path} → ${response.status}`)
      }
    }
    expect(open).toEqual([])
  })

  it('serves every route with the token', async () => {
    const key = uniqueKey('auth-ok')
    const put = await fetch(`${server.url}/v1/kv/${key}`, {
      method: 'PUT',
      headers: authorized,
      body: 'x',
    })
    expect(put.status).toBe(201)
    const get = await fetch(`${server.url}/v1/kv/${key}`, { headers: authorized })
    expect(get.status).toBe(200)
    expect(await get.text()).toBe('x')
    const set = await fetch(`${server.url}/set`, {
      method: 'POST',
      headers: { ...authorized, 'content-type': 'application/json' },
      body: JSON.stringify({ key, value: 'y' }),
    })
    expect(await expectJson(set, 200)).toEqual({ status: 'success' })
    const seedGet = await fetch(`${server.url}/get/${key}`, { headers: authorized })
    expect(await expectJson(seedGet, 200)).toEqual({ key, value: 'y' })
    for (const path of ['/v1/stats', '/metrics', '/v1/kv?prefix=auth']) {
      const response = await fetch(`${server.url}${path}`, { headers: authorized })
      expect(response.status, path).toBe(200)
      await response.arrayBuffer()
    }
  })

  it('leaves /healthz, /readyz and the API docs open without the token', async () => {
    for (const path of ['/healthz', '/readyz', '/docs', '/docs/assets/init.js', '/openapi.json']) {
      const response = await fetch(`${server.url}${path}`)
      expect(response.status, path).toBe(200)
      await response.arrayBuffer()
    }
  })

  it('declares the bearer scheme in the OpenAPI document: required but on the probes, 401 documented', async () => {
    const document = await expectJson<OpenApiDocument>(
      await fetch(`${server.url}/openapi.json`),
      200,
    )
    expect(document).toMatchObject({
      security: [{ bearer: [] }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    })
    const operations = Object.entries(document.paths).flatMap(([path, byMethod]) =>
      Object.entries(byMethod).map(([method, operation]) => ({ path, method, operation })),
    )
    expect(operations.length).toBeGreaterThan(10)
    for (const { path, method, operation } of operations) {
      const what = `${method} ${path}`
      if (path === '/healthz' || path === '/readyz') {
        expect(operation.security, what).toEqual([])
        expect(operation.responses['401'], what).toBeUndefined()
      } else {
        expect(operation.security, what).toBeUndefined()
        expect(operation.responses['401'], what).toBeDefined()
      }
    }
  })
})

function isErrorLine(line: LogLine): boolean {
  const level = line.level
  return level === 'error' || level === 'fatal' || (typeof level === 'number' && level >= 50)
}

function parseLines(text: string): LogLine[] {
  const lines: LogLine[] = []
  for (const line of text.split('\n')) {
    try {
      const parsed: unknown = JSON.parse(line)
      if (parsed !== null && typeof parsed === 'object') lines.push(parsed as LogLine)
    } catch {
      // Plain text.
    }
  }
  return lines
}

describe('binding a non-loopback address', () => {
  it('refuses to start on 0.0.0.0 without a token: exit 2 and an error log line naming the token', async () => {
    const port = await freePort()
    const result = await runCli(['serve', '--host', '0.0.0.0', '--port', String(port)])
    const output = `stdout: ${result.stdout}\nstderr: ${result.stderr}`
    expect(result.code, output).toBe(2)
    const errors = parseLines(`${result.stdout}\n${result.stderr}`).filter(isErrorLine)
    expect(
      errors.some((line) => /token/i.test(JSON.stringify(line))),
      output,
    ).toBe(true)
    expect(
      result.logs.some((line) => line.msg === 'listening'),
      output,
    ).toBe(false)
  })

  it('refuses SLABKV_HOST=0.0.0.0 without a token the same way', async () => {
    const port = await freePort()
    const result = await runCli(['serve', '--port', String(port)], {
      env: { SLABKV_HOST: '0.0.0.0' },
    })
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(2)
  })

  it('starts on 0.0.0.0 with a token and serves over loopback', async () => {
    // Off loopback a token needs 16 characters or more (docs/api.md, "Authentication and Host names").
    const longToken = 'a-token-of-twenty-chars'
    const authorized = { Authorization: `Bearer ${longToken}` }
    const open = await startServer(['--host', '0.0.0.0', '--token', longToken])
    try {
      expect(String(open.listening.url)).toContain(String(open.port))
      const response = await fetch(`${open.url}/v1/stats`, { headers: authorized })
      expect(response.status).toBe(200)
      await response.arrayBuffer()
      const refused = await fetch(`${open.url}/v1/stats`)
      expect(refused.status).toBe(401)
      await refused.arrayBuffer()
    } finally {
      expect(await open.stop()).toBe(0)
    }
  })

  it('takes the token from SLABKV_TOKEN', async () => {
    const fromEnv = await startServer([], { SLABKV_TOKEN: 'from-env' })
    try {
      const without = await fetch(`${fromEnv.url}/v1/stats`)
      expect(without.status).toBe(401)
      await without.arrayBuffer()
      const withIt = await fetch(`${fromEnv.url}/v1/stats`, {
        headers: { authorization: 'Bearer from-env' },
      })
      expect(withIt.status).toBe(200)
      await withIt.arrayBuffer()
    } finally {
      await fromEnv.stop()
    }
  })
})

describe('terminal client with a token', () => {
  it('exits 3 without the token and works with --token or SLABKV_TOKEN', async () => {
    const key = uniqueKey('auth-cli')
    const url = ['--url', server.url]
    const refused = await runCli(['set', key, 'v', ...url])
    expect(refused.code, refused.stderr).toBe(3)
    const set = await runCli(['set', key, 'v', ...url, '--token', token])
    expect(set.code, set.stderr).toBe(0)
    const get = await runCli(['get', key, ...url], { env: { SLABKV_TOKEN: token } })
    expect(get.code, get.stderr).toBe(0)
    expect(get.stdout).toBe('v')
  })
})
