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

describe('the head of a read', () => {
  it('carries a Latin-1 byte of a stored media type as that byte, whatever the value', async () => {
    // A small ASCII value goes out as one string with its head (kv.ts, respondBytes), which Node
    // then encodes as UTF-8: a Latin-1 byte in the media type must still leave as that byte.
    const contentType = 'text/x-test; v="\u00e9"'
    for (const value of ['ascii', 'caf\u00e9', 'x'.repeat(2000)]) {
      const key = uniqueKey('read-head-latin1')
      const path = `/v1/kv/${keyPath(key)}`
      const put = await rawOnce(rawRequest('PUT', path, { 'Content-Type': contentType }, value))
      expect(put.status, value).toBe(201)
      const got = await rawOnce(rawRequest('GET', path))
      expect(got.headers['content-type'], value).toBe(contentType)
      expect(got.body.equals(Buffer.from(value)), value).toBe(true)
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

describe('transfer codings', () => {
  it('answers 501 to a body in a transfer coding other than chunked, storing nothing', async () => {
    for (const coding of ['gzip, chunked', 'x-custom, chunked', 'identity, chunked']) {
      const key = uniqueKey('te')
      const head = `PUT /v1/kv/${keyPath(key)} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: ${coding}\r\n\r\n`
      const response = await rawOnce(Buffer.from(`${head}3\r\nabc\r\n0\r\n\r\n`, 'latin1'))
      expect(response.status, coding).toBe(501)
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
      const body = JSON.parse(response.body.toString()) as { code: string; detail: string }
      expect(body.code).toBe('transfer_coding_unsupported')
      expect(body.detail).toContain(coding)
      await expectAbsent(key)
    }
  })

  it('stores a chunked body, whatever the case of the coding name', async () => {
    for (const coding of ['chunked', 'Chunked']) {
      const key = uniqueKey('te-chunked')
      const head = `PUT /v1/kv/${keyPath(key)} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: ${coding}\r\n\r\n`
      const response = await rawOnce(Buffer.from(`${head}3\r\nabc\r\n0\r\n\r\n`, 'latin1'))
      expect(response.status, coding).toBe(201)
      expect(await (await fetch(url(`/v1/kv/${keyPath(key)}`))).text()).toBe('abc')
    }
  })
})

describe('batch base64', () => {
  it('refuses base64 that is not whole groups of four, with the 400 of any other bad base64', async () => {
    const key = uniqueKey('b64')
    const set = (value: string) => batch([{ op: 'set', key, value, encoding: 'base64' }])
    const bad = await expectProblem(await set('@@@@'), 400, 'invalid_request')
    for (const value of ['A', 'AA', 'AAAAA', 'QUJD=', 'QQ=A', 'Q===', '====']) {
      const refused = await expectProblem(await set(value), 400, 'invalid_request')
      expect(refused.detail, JSON.stringify(value)).toBe(bad.detail)
    }
    await expectAbsent(key)
    for (const [value, text] of [
      ['', ''],
      ['QQ==', 'A'],
      ['QUI=', 'AB'],
      ['QUJD', 'ABC'],
    ] as const) {
      await expectJson(await set(value), 200)
      expect(await (await fetch(url(`/v1/kv/${keyPath(key)}`))).text()).toBe(text)
    }
  })
})

describe('keys that are dot segments, or hold them', () => {
  // Each key with the spellings of it a raw client may send as a path segment. URL
  // normalization would remove the segments ".", "..", "%2E" and "%2E%2E" (fetch itself does,
  // so these go out as raw bytes).
  const spellings: [string, string[]][] = [
    ['.', ['%2E', '%2e', '.']],
    ['..', ['%2E%2E', '.%2e', '%2e.', '..']],
    ['%2E%2E', ['%252E%252E']],
    ['a/..', ['a%2F..']],
    ['../b', ['..%2Fb']],
    ['./', ['.%2F']],
    ['/', ['%2F']],
    ['a/b/c', ['a%2Fb%2Fc']],
  ]

  it('reads, writes and deletes each through every route that takes a key', async () => {
    for (const [key, segments] of spellings) {
      for (const segment of segments) {
        const what = `${JSON.stringify(key)} as ${segment}`
        await expectJson(await batch([{ op: 'set', key, value: `batch ${key}` }]), 200)
        const got = await rawOnce(rawRequest('GET', `/v1/kv/${segment}`))
        expect(got.status, what).toBe(200)
        expect(got.body.toString(), what).toBe(`batch ${key}`)
        const head = await rawOnce(rawRequest('HEAD', `/v1/kv/${segment}?x=1`), true)
        expect(head.status, what).toBe(200)
        const put = await rawOnce(rawRequest('PUT', `/v1/kv/${segment}`, {}, `put ${key}`))
        expect(put.status, what).toBe(200)
        const seed = await rawOnce(rawRequest('GET', `/get/${segment}`))
        expect(seed.status, what).toBe(200)
        expect(JSON.parse(seed.body.toString()), what).toEqual({ key, value: `put ${key}` })
        const read = await expectJson<{ results: { value: string }[] }>(
          await batch([{ op: 'get', key }]),
          200,
        )
        expect(read.results[0]?.value, what).toBe(`put ${key}`)
        const deleted = await rawOnce(rawRequest('DELETE', `/v1/kv/${segment}`))
        expect(deleted.status, what).toBe(204)
        await expectJson(await batch([{ op: 'set', key, value: 'again' }]), 200)
        const seedDeleted = await rawOnce(rawRequest('DELETE', `/delete/${segment}`))
        expect(seedDeleted.status, what).toBe(200)
        const gone = await rawOnce(rawRequest('GET', `/v1/kv/${segment}`))
        expect(gone.status, what).toBe(404)
      }
    }
  })

  it('routes a dot segment before the key as the URL says, and the empty key as key_empty', async () => {
    const key = uniqueKey('dots-prefix')
    await putOk(key, 'prefixed')
    const response = await rawOnce(rawRequest('GET', `/v1/x/../kv/${keyPath(key)}`))
    expect(response.status).toBe(200)
    expect(response.body.toString()).toBe('prefixed')
    const empty = await rawOnce(rawRequest('GET', '/v1/kv/'))
    expect(empty.status).toBe(400)
    expect(JSON.parse(empty.body.toString()).code).toBe('key_empty')
  })
})

describe('Host names in an absolute-form target', () => {
  it('judges the target by its host, not by text before an @', async () => {
    for (const target of [
      'http://localhost:1@attacker.example/v1/kv/anything',
      'http://localhost@attacker.example/v1/kv/anything',
      'http://127.0.0.1:8000@attacker.example:80/v1/kv/anything',
    ]) {
      const response = await rawOnce(rawRequest('GET', target, { Host: 'attacker.example' }))
      expect(response.status, target).toBe(421)
      expect(JSON.parse(response.body.toString()).detail, target).toContain("'attacker.example'")
    }
    const key = uniqueKey('absolute-form')
    await putOk(key, 'absolute')
    const served = await rawOnce(
      rawRequest('GET', `http://user@localhost:1/v1/kv/${keyPath(key)}`, { Host: 'localhost' }),
    )
    expect(served.status).toBe(200)
  })
})

describe('requests the adapter cannot turn into a URL', () => {
  it('are answered 400 with a problem body saying why, not an empty 400', async () => {
    for (const bytes of [
      rawRequest('GET', '/v1/kv/a\\b'),
      rawRequest('GET', '/v1/kv/a', { Host: 'localhost:abc' }),
      rawRequest('GET', '/v1/kv/a', { Host: '[0:0::1]' }),
      rawRequest('GET', '/v1/kv/a', { Host: 'localhost:1@attacker.example' }),
      rawRequest('OPTIONS', '*'),
    ]) {
      const response = await rawOnce(bytes)
      const what = `${bytes.toString('latin1').split('\r\n')[0]}: ${response.body}`
      expect(response.status, what).toBe(400)
      expect(response.headers['content-type'], what).toMatch(/^application\/problem\+json/)
      const body = JSON.parse(response.body.toString()) as { code: string; detail: string }
      expect(body.code, what).toBe('invalid_request')
      expect(body.detail, what).toMatch(/URL/)
    }
    await expectServing()
  })
})

describe("requests Node's parser refuses", () => {
  it('are answered with a problem body saying why, and the connection closed', async () => {
    const cases: [string, Buffer, number, string][] = [
      [
        'chunked twice',
        Buffer.from(
          'PUT /v1/kv/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n',
          'latin1',
        ),
        400,
        'invalid_request',
      ],
      ['no request line', Buffer.from('NOT HTTP\r\n\r\n', 'latin1'), 400, 'invalid_request'],
      [
        'headers of 20 KiB',
        rawRequest('GET', '/healthz', { 'X-Large': 'x'.repeat(20 * 1024) }),
        431,
        'headers_too_large',
      ],
    ]
    for (const [what, bytes, status, code] of cases) {
      const connection = await RawConnection.open(server.port)
      try {
        connection.write(bytes)
        const response = await connection.read()
        expect(response.status, what).toBe(status)
        expect(response.headers['content-type'], what).toMatch(/^application\/problem\+json/)
        expect(JSON.parse(response.body.toString()).code, what).toBe(code)
        expect(await connection.waitClosed(5_000), what).toBe(true)
      } finally {
        connection.destroy()
      }
    }
    await expectServing()
  })
})

describe('a refusal over --max-memory', () => {
  let small: RunningServer

  beforeAll(async () => {
    small = await startServer(['--max-memory', '4096', '--max-value-size', '8192'])
  })

  afterAll(async () => {
    await small?.stop()
  })

  it('names the bytes the client sent, and the media type kept with the value apart', async () => {
    // Key "k" (1 byte) + 4095 bytes of body = 4096 = --max-memory, but the Content-Type text/x
    // is kept with the value: a length byte and its 6 bytes.
    const response = await fetch(`${small.url}/v1/kv/k`, {
      method: 'PUT',
      headers: { 'content-type': 'text/x' },
      body: 'a'.repeat(4095),
    })
    const refused = await expectProblem(response, 413, 'value_too_large')
    expect(refused.detail).toBe(
      'The key and value are 4096 bytes, and the media type kept with the value 7 more (4103 in all), more than the whole store holds: 4096 bytes (--max-memory)',
    )
    const inBatch = await expectProblem(
      await batch(
        [{ op: 'set', key: 'k', value: 'a'.repeat(4095), contentType: 'text/x' }],
        small.url,
      ),
      413,
      'value_too_large',
    )
    expect(inBatch.detail).toBe(`op 0: ${refused.detail}`)
    // Without a media type kept inline, the same bytes fit exactly.
    const fits = await fetch(`${small.url}/v1/kv/k`, { method: 'PUT', body: 'a'.repeat(4095) })
    expect(fits.status).toBe(201)
    await fits.arrayBuffer()
  })
})

describe('a value of the largest --max-value-size', () => {
  let large: RunningServer
  const valueSize = 64 * 1024 * 1024

  beforeAll(async () => {
    large = await startServer([
      '--fsync',
      'no',
      '--max-value-size',
      '64MiB',
      '--max-body-size',
      '65MiB',
      '--max-batch-read-size',
      '64MiB',
      '--snapshot-after-size',
      '1GiB',
    ])
    // U+0001 throughout: valid UTF-8, not JSON, and six characters per byte as a JSON string,
    // the longest answer a value of this size can have.
    const put = await fetch(`${large.url}/v1/kv/big`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: Buffer.alloc(valueSize, 1),
    })
    expect(put.status).toBe(201)
    await put.arrayBuffer()
  })

  afterAll(async () => {
    await large?.stop('SIGKILL')
  })

  it('is read back whole through /get and a batch get, with nothing on stderr', async () => {
    const stderrBefore = large.stderr().length
    const seed = await fetch(`${large.url}/get/big`)
    expect(seed.status).toBe(200)
    const seedValue = (JSON.parse(await seed.text()) as { value: string }).value
    expect(seedValue.length).toBe(valueSize)
    expect(seedValue.replaceAll('\u0001', '')).toBe('')
    const read = await batch([{ op: 'get', key: 'big' }], large.url)
    expect(read.status).toBe(200)
    const results = (
      JSON.parse(await read.text()) as { results: { value: string; encoding: string }[] }
    ).results
    // A batch answers it as base64: as JSON text it would be six times its size.
    expect(results[0]?.encoding).toBe('base64')
    const bytes = Buffer.from(results[0]!.value, 'base64')
    expect(bytes.length).toBe(valueSize)
    expect(bytes.every((byte) => byte === 1)).toBe(true)
    expect(large.stderr().slice(stderrBefore), 'stderr').toBe('')
  })
})

describe('slabkv wal check on a path that is not a data directory', () => {
  it('says so in one line and exits 2, without a stack trace: a file, or nothing at all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'slabkv-walcheck-'))
    const file = join(dir, 'a-file')
    writeFileSync(file, 'not a data directory')
    try {
      for (const action of ['check', 'repair']) {
        for (const [path, message] of [
          [file, /is not a directory/],
          [join(dir, 'no-such-dir'), /does not exist/],
        ] as const) {
          const result = await runCli(['wal', action, path])
          expect(result.code, result.stderr).toBe(2)
          expect(result.stderr).toMatch(message)
          expect(result.stderr).not.toMatch(/\n\s+at /)
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
