import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RawConnection, rawRequest } from '../support/raw-http.js'
import {
  keyPath,
  killAll,
  type RunningServer,
  runCli,
  startServer,
  uniqueKey,
} from '../support/server.js'
import { describeResponse, expectJson, expectProblem } from './http.js'

// Requests an attacker or a careless client sends: media types that are not media types, keys
// behind percent-encoded route prefixes, JSON nested thousands deep, entity tags that are not
// ours, and the errors each must get. Every one of them once crashed the server, answered 500,
// changed the wrong key, or explained nothing.

let server: RunningServer

beforeAll(async () => {
  server = await startServer()
})

afterAll(async () => {
  await server?.stop()
  await killAll()
})

const url = (path: string) => `${server.url}${path}`

function batch(ops: Record<string, unknown>[], base = server.url): Promise<Response> {
  return fetch(`${base}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ops }),
  })
}

async function putOk(key: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(url(`/v1/kv/${keyPath(key)}`), { method: 'PUT', headers, body })
  const { text, what } = await describeResponse(response)
  expect([200, 201], what).toContain(response.status)
  return (JSON.parse(text) as { version: number }).version
}

async function expectAbsent(key: string, base = server.url) {
  await expectProblem(await fetch(`${base}/v1/kv/${keyPath(key)}`), 404, 'not_found')
}

/** One request on a fresh connection, written byte for byte. */
async function rawOnce(bytes: Buffer, head = false) {
  const connection = await RawConnection.open(server.port)
  try {
    connection.write(bytes)
    return await connection.read({ head })
  } finally {
    connection.destroy()
  }
}

async function expectServing() {
  const health = await fetch(url('/healthz'))
  expect(health.status).toBe(200)
  await health.arrayBuffer()
}

describe('media types', () => {
  const notMediaTypes = [
    '\u0001',
    '\u0000',
    '\u007f',
    'text/plain\u001f',
    '\n',
    'text/plain\r\nX-Injected: 1',
    'text/€',
    'text',
    'text/',
    '/plain',
    'text/plain; charset',
    'text/plain; charset="utf-8',
    'a b/c',
    ' text/plain',
  ]

  it('refuses a batch set whose contentType is not a media type, and keeps serving', async () => {
    for (const contentType of notMediaTypes) {
      const key = uniqueKey('batch-type')
      const response = await batch([{ op: 'set', key, value: 'v', contentType }])
      const problem = await expectProblem(response, 400, 'content_type_invalid')
      expect(problem.index, JSON.stringify(contentType)).toBe(0)
      expect(String(problem.detail)).toMatch(/media type/)
      await expectAbsent(key)
      await expectServing()
    }
  })

  it('refuses a PUT whose Content-Type is not a media type, changing nothing', async () => {
    // What a header can carry at all (Node refuses control characters in headers itself).
    const headerValues = ['text/\u00e2\u0082\u00ac', 'text', 'text/', 'a b/c', 'text/plain; x']
    for (const contentType of headerValues) {
      const key = uniqueKey('put-type')
      const response = await rawOnce(
        rawRequest('PUT', `/v1/kv/${keyPath(key)}`, { 'Content-Type': contentType }, 'v'),
      )
      expect(response.status, `${contentType}: ${response.body}`).toBe(400)
      expect(JSON.parse(response.body.toString()).code).toBe('content_type_invalid')
      await expectAbsent(key)
    }
  })

  it('keeps media types with parameters and quoted strings exactly as sent', async () => {
    const types = [
      'text/plain; charset="utf-8"',
      'application/vnd.slabkv+json;v=1;;',
      'multipart/form-data; boundary="a b\\"c"',
      "application/x-!#$%&'*+.^_`|~",
    ]
    for (const contentType of types) {
      const key = uniqueKey('put-type-ok')
      await putOk(key, 'v', { 'content-type': contentType })
      const response = await fetch(url(`/v1/kv/${keyPath(key)}`))
      expect(response.headers.get('content-type')).toBe(contentType)
      await response.arrayBuffer()
      const { results } = await expectJson<{ results: Record<string, unknown>[] }>(
        await batch([
          { op: 'set', key, value: 'w', contentType },
          { op: 'get', key },
        ]),
        200,
      )
      expect(results[1]?.contentType).toBe(contentType)
    }
  })
})

describe('keys behind a percent-encoded route prefix', () => {
  it('stores, reads and deletes exactly the key the route parameter names', async () => {
    const key = `${uniqueKey('prefix')}a%b`
    const encoded = encodeURIComponent(key)
    const put = await fetch(url(`/v1/k%76/${encoded}`), { method: 'PUT', body: 'v' })
    expect(put.status, (await describeResponse(put)).what).toBe(201)
    const listed = await fetch(url(`/v1/kv?prefix=${encodeURIComponent(key.slice(0, 8))}`))
    const page = await expectJson<{ items: { key: string }[] }>(listed, 200)
    expect(page.items.map((item) => item.key)).toEqual([key])
    const seedGet = await fetch(url(`/g%65t/${encoded}`))
    expect(await expectJson(seedGet, 200)).toEqual({ key, value: 'v' })
    const deleted = await fetch(url(`/d%65lete/${encoded}`), { method: 'DELETE' })
    expect(await expectJson(deleted, 200)).toEqual({ status: 'deleted' })
    await expectAbsent(key)
  })

  it('answers 400 key_empty, not 404, to a key route with no key', async () => {
    for (const method of ['PUT', 'GET', 'DELETE']) {
      const response = await fetch(url('/v1/kv/'), {
        method,
        ...(method === 'PUT' && { body: 'v' }),
      })
      await expectProblem(response, 400, 'key_empty')
    }
  })
})

describe('deeply nested JSON', () => {
  const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`

  it('refuses a /set value nested past --max-json-depth with the seed 422, storing nothing', async () => {
    const key = uniqueKey('deep-set')
    const response = await fetch(url('/set'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"key":${JSON.stringify(key)},"value":${nested(5000)}}`,
    })
    const { text, what } = await describeResponse(response)
    expect(response.status, what).toBe(422)
    const [item] = (JSON.parse(text) as { detail: { loc: unknown; msg: string }[] }).detail
    expect(item?.loc).toEqual(['body', 'value'])
    expect(item?.msg).toMatch(/128/)
    expect(item?.msg).toMatch(/--max-json-depth/)
    expect((await fetch(url(`/get/${keyPath(key)}`))).status).toBe(404)
  })

  it('stores a /set value nested exactly --max-json-depth deep and reads it back', async () => {
    const key = uniqueKey('deep-set-edge')
    const value = JSON.parse(nested(128)) as unknown
    const response = await fetch(url('/set'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key, value }),
    })
    expect(await expectJson(response, 200)).toEqual({ status: 'success' })
    expect(await expectJson(await fetch(url(`/get/${keyPath(key)}`)), 200)).toEqual({ key, value })
  })

  it('reads back through /get a JSON value PUT 20,000 levels deep', async () => {
    const key = uniqueKey('deep-put')
    const text = nested(20_000)
    await putOk(key, text, { 'content-type': 'application/json' })
    const response = await fetch(url(`/get/${keyPath(key)}`))
    const { text: body, what } = await describeResponse(response)
    expect(response.status, what.slice(0, 300)).toBe(200)
    expect(body).toBe(`{"key":${JSON.stringify(key)},"value":${text}}`)
  })
})

describe('conditional requests', () => {
  /** A PUT and a DELETE with this If-Match must both fail with 412. */
  async function expectNoMatch(key: string, tag: string) {
    const put = await fetch(url(`/v1/kv/${keyPath(key)}`), {
      method: 'PUT',
      headers: { 'if-match': tag },
      body: 'v2',
    })
    await expectProblem(put, 412, 'precondition_failed')
    const del = await fetch(url(`/v1/kv/${keyPath(key)}`), {
      method: 'DELETE',
      headers: { 'if-match': tag },
    })
    await expectProblem(del, 412, 'precondition_failed')
  }

  it('answers 412, not 400, to a well-formed entity tag that is not one of ours', async () => {
    const key = uniqueKey('etag-foreign')
    const version = await putOk(key, 'v1')
    for (const tag of ['"nope"', '"v1"', '""', '"1.0"']) await expectNoMatch(key, tag)
    const response = await fetch(url(`/v1/kv/${keyPath(key)}`))
    expect(response.headers.get('etag')).toBe(`"${version}"`)
    expect(await response.text()).toBe('v1')
  })

  it('compares If-Match strongly: neither W/"n" nor "0n" matches version n', async () => {
    const key = uniqueKey('etag-strong')
    const version = await putOk(key, 'v1')
    for (const tag of [`W/"${version}"`, `"0${version}"`, `W/"${version}", "0${version}"`]) {
      await expectNoMatch(key, tag)
    }
    const put = await fetch(url(`/v1/kv/${keyPath(key)}`), {
      method: 'PUT',
      headers: { 'if-match': `"nope", "${version}"` },
      body: 'v2',
    })
    expect(put.status).toBe(200)
    await put.arrayBuffer()
  })

  it('compares If-None-Match weakly on GET: W/"n" matches, "0n" does not', async () => {
    const key = uniqueKey('etag-weak')
    const version = await putOk(key, 'v1')
    const weak = await fetch(url(`/v1/kv/${keyPath(key)}`), {
      headers: { 'if-none-match': `W/"${version}"` },
    })
    expect(weak.status).toBe(304)
    const padded = await fetch(url(`/v1/kv/${keyPath(key)}`), {
      headers: { 'if-none-match': `"0${version}"` },
    })
    expect(padded.status).toBe(200)
    expect(await padded.text()).toBe('v1')
  })
})

describe('errors that say what went wrong', () => {
  it('says the value limit and its flag in value_too_large', async () => {
    const key = uniqueKey('value-limit')
    const response = await fetch(url(`/v1/kv/${keyPath(key)}`), {
      method: 'PUT',
      body: new Uint8Array(1024 * 1024 + 1),
    })
    const problem = await expectProblem(response, 413, 'value_too_large')
    expect(String(problem.detail)).toMatch(/1048576 bytes/)
    expect(String(problem.detail)).toMatch(/--max-value-size/)
    await expectAbsent(key)
  })

  it('names the key, body and batch limits and their flags in their refusals', async () => {
    const longKey = 'k'.repeat(1025)
    const key = await expectProblem(
      await fetch(url(`/v1/kv/${longKey}`), { method: 'PUT', body: 'v' }),
      400,
      'key_too_large',
    )
    expect(String(key.detail)).toMatch(/1025 bytes.*1024 bytes \(--max-key-size\)/)
    const body = await expectProblem(
      await fetch(url(`/v1/kv/${uniqueKey('body-limit')}`), {
        method: 'PUT',
        body: new Uint8Array(4 * 1024 * 1024 + 1),
      }),
      413,
      'body_too_large',
    )
    expect(String(body.detail)).toMatch(/4194304 bytes.*--max-body-size/)
    const ops = Array.from({ length: 1001 }, () => ({ op: 'get', key: 'k' }))
    const batchOps = await expectProblem(await batch(ops), 413, 'batch_too_large')
    expect(String(batchOps.detail)).toMatch(/1001 ops.*1000 \(--max-batch-ops\)/)
  })

  it('refuses a TTL too long to count in milliseconds, naming the most it takes', async () => {
    const key = uniqueKey('ttl-huge')
    const put = await fetch(url(`/v1/kv/${keyPath(key)}?ttl=${'1'.padEnd(24, '0')}`), {
      method: 'PUT',
      body: 'v',
    })
    const problem = await expectProblem(put, 400, 'ttl_invalid')
    expect(String(problem.detail)).toMatch(/1000000000000/)
    await expectAbsent(key)
    const set = await fetch(url('/set'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key, value: 1, ttl: 1e308 }),
    })
    const { text, what } = await describeResponse(set)
    expect(set.status, what).toBe(422)
    expect(text).not.toMatch(/greater than 0/)
    expect(text).toMatch(/1000000000000/)
  })

  it('sends Slabkv-Ttl in plain decimal for the longest TTL', async () => {
    const key = uniqueKey('ttl-long')
    await fetch(url(`/v1/kv/${keyPath(key)}?ttl=999999999999`), { method: 'PUT', body: 'v' })
    const response = await fetch(url(`/v1/kv/${keyPath(key)}`))
    expect(response.headers.get('slabkv-ttl')).toMatch(/^99999999\d{4}\.\d{3}$/)
    await response.arrayBuffer()
  })

  it('says which part of a batch set is wrong: its base64, or its contentType', async () => {
    const key = uniqueKey('batch-detail')
    const base64 = await expectProblem(
      await batch([{ op: 'set', key, value: 'no*base64', encoding: 'base64' }]),
      400,
      'invalid_request',
    )
    expect(String(base64.detail)).toMatch(/base64/)
    const type = await expectProblem(
      await batch([
        { op: 'get', key },
        { op: 'set', key, value: 'v', contentType: 'nope' },
      ]),
      400,
      'content_type_invalid',
    )
    expect(type.index).toBe(1)
    expect(String(type.detail)).toMatch(/nope/)
    await expectAbsent(key)
  })

  it('answers a request without Host, or with an empty one, with 400 and a body saying why', async () => {
    const requests = [
      rawRequest('GET', '/v1/stats', {}, undefined, 'HTTP/1.0'),
      rawRequest('GET', '/v1/stats', { Host: '' }),
    ]
    for (const request of requests) {
      const response = await rawOnce(request)
      expect(response.status).toBe(400)
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(String(JSON.parse(response.body.toString()).detail)).toMatch(/Host/)
    }
  })

  it('logs a client that leaves mid-body at info level, not as an error', async () => {
    const key = uniqueKey('abort')
    const connection = await RawConnection.open(server.port)
    connection.write(
      rawRequest('PUT', `/v1/kv/${keyPath(key)}`, {
        'Content-Length': '1000',
        Expect: '100-continue',
      }),
    )
    // The 100 Continue says the handler is reading the body: leaving now is leaving mid-body.
    expect((await connection.read({ interim: true })).status).toBe(100)
    connection.write('only ten b')
    connection.destroy()
    await expect
      .poll(() => server.logs.filter((line) => line.msg === 'client went away').length)
      .toBeGreaterThan(0)
    expect(server.logs.filter((line) => line.level === 'error')).toEqual([])
    await expectAbsent(key)
  })
})

describe('slabkv wal check on a path that is not a directory', () => {
  it('says so in one line and exits 2, without a stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'slabkv-walcheck-'))
    const file = join(dir, 'a-file')
    writeFileSync(file, 'not a data directory')
    try {
      for (const action of ['check', 'repair']) {
        const result = await runCli(['wal', action, file])
        expect(result.code, result.stderr).toBe(2)
        expect(result.stderr).toMatch(/not a directory/)
        expect(result.stderr).not.toMatch(/\n\s+at /)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
