import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prng, testSeed } from '../support/random.js'
import {
  keyPath,
  killAll,
  type RunningServer,
  sleep,
  startServer,
  uniqueKey,
} from '../support/server.js'
import { bytesOf, describeResponse, expectJson, expectProblem } from './http.js'
import { kvClient } from './kv-client.js'

// The native key routes (docs/api.md): raw bytes in and out, versions as ETags,
// conditional requests, problem+json errors. Listing is in listing.test.ts.

let server: RunningServer

beforeAll(async () => {
  server = await startServer()
})

afterAll(async () => {
  await server?.stop()
  await killAll()
})

const { kvUrl, put, get, del, putOk, read, readText, listAll } = kvClient(() => server.url)

/** PUTs a chunked body (no Content-Length): `count` pieces made by `piece`, `gapMs` apart. */
function putChunked(
  base: string,
  key: string,
  count: number,
  piece: (n: number) => Uint8Array,
  gapMs: number,
): Promise<Response> {
  let pulls = 0
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (pulls === count) return controller.close()
      controller.enqueue(piece(pulls++))
      await sleep(gapMs)
    },
  })
  return fetch(kvUrl(base, key), { method: 'PUT', body, duplex: 'half' } as RequestInit)
}

function randomBytes(random: () => number, size: number): Uint8Array {
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i++) bytes[i] = Math.floor(random() * 256)
  return bytes
}

describe('PUT, GET, HEAD and DELETE /v1/kv/{key}', () => {
  it('returns the exact bytes and Content-Type that were put, with ETag "version"', async () => {
    const random = prng(testSeed('kv round trip'))
    const cases: [string | undefined, Uint8Array][] = [
      ['application/octet-stream', randomBytes(random, 4096)],
      ['image/png', randomBytes(random, 1)],
      ['text/plain; charset=utf-8', bytesOf('héllo, wörld\n')],
      ['application/json', bytesOf('{"a":[1,2,3]}')],
      ['application/vnd.slabkv.test+json', bytesOf('{}')],
      ['application/octet-stream', new Uint8Array(0)],
      ['application/octet-stream', randomBytes(random, 256 * 1024)],
    ]
    for (const [contentType, bytes] of cases) {
      const key = uniqueKey('kv-bytes')
      const response = await put(key, bytes, contentType === undefined ? {} : { contentType })
      const body = await expectJson<{ version: number }>(response, 201)
      expect(Object.keys(body)).toEqual(['version'])
      expect(Number.isSafeInteger(body.version) && body.version > 0).toBe(true)
      expect(response.headers.get('etag')).toBe(`"${body.version}"`)
      const entry = await read(key)
      expect(entry?.contentType).toBe(contentType)
      expect(entry?.etag).toBe(`"${body.version}"`)
      expect(entry?.bytes.byteLength).toBe(bytes.byteLength)
      expect(Buffer.from(entry!.bytes).equals(Buffer.from(bytes))).toBe(true)
    }
  })

  it('stores a body sent without a Content-Type as application/octet-stream', async () => {
    const key = uniqueKey('kv-no-type')
    // fetch sends no Content-Type for a Uint8Array body.
    await putOk(key, new Uint8Array([0, 1, 2, 255]))
    const entry = await read(key)
    expect(entry?.contentType).toBe('application/octet-stream')
    expect([...entry!.bytes]).toEqual([0, 1, 2, 255])
  })

  it('answers 201 when it creates a key and 200 when it replaces one, with increasing versions', async () => {
    const key = uniqueKey('kv-versions')
    const created = await put(key, 'one', { contentType: 'text/plain' })
    const first = await expectJson<{ version: number }>(created, 201)
    const replaced = await put(key, 'two', { contentType: 'text/plain' })
    const second = await expectJson<{ version: number }>(replaced, 200)
    expect(replaced.headers.get('etag')).toBe(`"${second.version}"`)
    expect(second.version).toBeGreaterThan(first.version)
    // Versions increase across keys too: they are the store's write sequence.
    const other = await putOk(uniqueKey('kv-versions-other'), 'x')
    expect(other).toBeGreaterThan(second.version)
    const entry = await read(key)
    expect(new TextDecoder().decode(entry!.bytes)).toBe('two')
    expect(entry?.etag).toBe(`"${second.version}"`)
  })

  it('answers HEAD with the headers of GET and no body', async () => {
    const key = uniqueKey('kv-head')
    const version = await putOk(key, 'head body', { contentType: 'text/plain', query: '?ttl=60' })
    const response = await fetch(kvUrl(server.url, key), { method: 'HEAD' })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/plain')
    expect(response.headers.get('etag')).toBe(`"${version}"`)
    expect(response.headers.get('slabkv-ttl')).not.toBeNull()
    const length = response.headers.get('content-length')
    if (length !== null) expect(length).toBe(String(bytesOf('head body').byteLength))
    expect(await response.text()).toBe('')
    const missing = await fetch(kvUrl(server.url, uniqueKey('kv-head-missing')), {
      method: 'HEAD',
    })
    expect(missing.status).toBe(404)
    expect(await missing.text()).toBe('')
  })

  it('sends Slabkv-Ttl only for an entry put with ?ttl=', async () => {
    const plain = uniqueKey('kv-no-ttl')
    await putOk(plain, 'forever')
    expect((await read(plain))?.ttl).toBeNull()
    const brief = uniqueKey('kv-ttl')
    await putOk(brief, 'for a while', { query: '?ttl=60' })
    const ttl = Number((await read(brief))?.ttl)
    expect(ttl).toBeGreaterThan(50)
    expect(ttl).toBeLessThanOrEqual(60)
    const fractional = uniqueKey('kv-ttl-fraction')
    await putOk(fractional, 'x', { query: '?ttl=30.5' })
    const left = Number((await read(fractional))?.ttl)
    expect(left).toBeGreaterThan(25)
    expect(left).toBeLessThanOrEqual(30.5)
    // A replace without ?ttl= makes the entry permanent again.
    await putOk(brief, 'forever now')
    expect((await read(brief))?.ttl).toBeNull()
  })

  it('forgets an entry once its ttl has passed', async () => {
    const key = uniqueKey('kv-expire')
    await putOk(key, 'gone soon', { query: '?ttl=0.3' })
    // The server set the expiry before it answered: 0.3 s from now is past it.
    await sleep(350)
    expect(await read(key)).toBeNull()
  })

  it('creates with If-None-Match: * and answers 412 when the key exists, changing nothing', async () => {
    const key = uniqueKey('kv-create-only')
    const created = await put(key, 'first', { headers: { 'if-none-match': '*' } })
    const { version } = await expectJson<{ version: number }>(created, 201)
    const refused = await put(key, 'second', { headers: { 'if-none-match': '*' } })
    await expectProblem(refused, 412, 'precondition_failed')
    const entry = await read(key)
    expect(new TextDecoder().decode(entry!.bytes)).toBe('first')
    expect(entry?.etag).toBe(`"${version}"`)
  })

  it('compares and sets with If-Match and answers 412 on a version mismatch, changing nothing', async () => {
    const key = uniqueKey('kv-cas')
    const first = await putOk(key, 'v1')
    const swapped = await put(key, 'v2', { headers: { 'if-match': `"${first}"` } })
    const { version: second } = await expectJson<{ version: number }>(swapped, 200)
    expect(second).toBeGreaterThan(first)
    const stale = await put(key, 'v3', { headers: { 'if-match': `"${first}"` } })
    await expectProblem(stale, 412, 'precondition_failed')
    expect(await readText(key)).toBe('v2')
    expect((await read(key))?.etag).toBe(`"${second}"`)
    // If-Match on a key that does not exist fails too, and does not create it.
    const absent = uniqueKey('kv-cas-absent')
    await expectProblem(
      await put(absent, 'x', { headers: { 'if-match': `"${first}"` } }),
      412,
      'precondition_failed',
    )
    expect(await read(absent)).toBeNull()
  })

  it('answers GET with If-None-Match: "version" with 304 while the version is current', async () => {
    const key = uniqueKey('kv-304')
    const first = await putOk(key, 'cached', { contentType: 'text/plain' })
    const notModified = await get(key, { 'if-none-match': `"${first}"` })
    expect(notModified.status).toBe(304)
    expect(notModified.headers.get('etag')).toBe(`"${first}"`)
    expect(await notModified.text()).toBe('')
    const second = await putOk(key, 'changed', { contentType: 'text/plain' })
    const modified = await get(key, { 'if-none-match': `"${first}"` })
    expect(modified.status).toBe(200)
    expect(modified.headers.get('etag')).toBe(`"${second}"`)
    expect(await modified.text()).toBe('changed')
  })

  it('deletes with 204 and then answers 404 not_found to GET and DELETE', async () => {
    const key = uniqueKey('kv-delete')
    await putOk(key, 'doomed')
    const deleted = await del(key)
    expect(deleted.status).toBe(204)
    expect(await deleted.text()).toBe('')
    await expectProblem(await get(key), 404, 'not_found')
    await expectProblem(await del(key), 404, 'not_found')
  })

  it('deletes only at the version If-Match names, answering 412 otherwise', async () => {
    const key = uniqueKey('kv-delete-cas')
    const version = await putOk(key, 'guarded')
    await expectProblem(
      await del(key, { 'if-match': `"${version + 1000}"` }),
      412,
      'precondition_failed',
    )
    expect(await readText(key)).toBe('guarded')
    const deleted = await del(key, { 'if-match': `"${version}"` })
    expect(deleted.status).toBe(204)
    expect(await read(key)).toBeNull()
  })

  it("accepts keys with '/', spaces, '%', '|' and non-ASCII characters in the path", async () => {
    for (const label of ['a/b/c', 'with space', '100%', '%2F', 'pipe|key', 'ключ 🔑', 'q?x#y']) {
      const key = `${uniqueKey('kv-key')}:${label}`
      await putOk(key, label)
      expect(await readText(key)).toBe(label)
      const listed = await fetch(
        `${server.url}/v1/kv?${new URLSearchParams({ prefix: key, limit: '10' })}`,
      )
      const page = await expectJson<{ items: { key: string }[] }>(listed, 200)
      expect(page.items.map((item) => item.key)).toContain(key)
      expect((await del(key)).status, `DELETE ${key}`).toBe(204)
      expect(await read(key)).toBeNull()
    }
  })

  it('refuses a ttl that is not a positive number with 400 ttl_invalid, changing nothing', async () => {
    const key = uniqueKey('kv-bad-ttl')
    const version = await putOk(key, 'old')
    const fresh = uniqueKey('kv-bad-ttl-fresh')
    for (const ttl of ['0', 'abc', '-1', '', 'NaN']) {
      const query = `?ttl=${encodeURIComponent(ttl)}`
      await expectProblem(await put(key, 'new', { query }), 400, 'ttl_invalid')
      await expectProblem(await put(fresh, 'new', { query }), 400, 'ttl_invalid')
    }
    const entry = await read(key)
    expect(new TextDecoder().decode(entry!.bytes)).toBe('old')
    expect(entry?.etag).toBe(`"${version}"`)
    expect(entry?.ttl).toBeNull()
    expect(await read(fresh)).toBeNull()
  })

  it('refuses a key that is not well-formed UTF-8 with 400 key_invalid', async () => {
    const accepted: string[] = []
    for (const path of ['%FF', '%ED%A0%80', 'ok%C3']) {
      const response = await fetch(`${server.url}/v1/kv/${path}`, { method: 'PUT', body: 'x' })
      if (response.status !== 400) accepted.push(`PUT /v1/kv/${path} → ${response.status}`)
      else await expectProblem(response, 400, 'key_invalid')
    }
    expect(accepted).toEqual([])
  })

  it('describes an error as problem+json with type, title, status, code and detail', async () => {
    const response = await get(uniqueKey('kv-problem'))
    const { text, what } = await describeResponse(response)
    expect(response.status, what).toBe(404)
    expect(response.headers.get('content-type'), what).toMatch(/^application\/problem\+json/)
    const body = JSON.parse(text) as Record<string, unknown>
    for (const field of ['type', 'title', 'detail', 'code']) {
      expect(typeof body[field], `${field} in ${what}`).toBe('string')
    }
    expect(body.status, what).toBe(404)
    expect(body.code, what).toBe('not_found')
  })

  it('answers an unknown route with 404 route_not_found as problem+json', async () => {
    await expectProblem(await fetch(`${server.url}/v1/nothing-here`), 404, 'route_not_found')
    await expectProblem(
      await fetch(`${server.url}/v1/kv-typo/key`, { method: 'PUT', body: 'x' }),
      404,
      'route_not_found',
    )
  })
})

describe('PUT bodies as they arrive', () => {
  // Small bodies arrive in one chunk and are stored as that chunk (src/http/body.ts); these are
  // the other shapes a body takes on the wire.

  /** Writes a raw request in pieces, pausing between them; resolves with the response's text. */
  /** With complete = false the client leaves after the pieces instead of awaiting the answer. */
  function rawRequest(head: string, pieces: Uint8Array[], complete = true): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(server.port, '127.0.0.1')
      let answer = ''
      socket.setEncoding('utf8')
      socket.on('data', (chunk: string) => {
        answer += chunk
      })
      socket.on('error', reject)
      socket.on('close', () => resolve(answer))
      socket.once('connect', async () => {
        socket.write(head)
        for (const piece of pieces) {
          await sleep(2)
          socket.write(piece)
        }
        // A complete request ends when the server closes (Connection: close) after its answer.
        if (!complete) socket.destroy()
      })
    })
  }

  it('stores a Content-Length body written in many pieces byte for byte', async () => {
    const seed = testSeed('put-pieces')
    const random = prng(seed)
    const value = Uint8Array.from({ length: 300_000 }, () => Math.floor(random() * 256))
    const pieces = Array.from({ length: 30 }, (_, n) =>
      value.subarray(n * 10_000, (n + 1) * 10_000),
    )
    const key = uniqueKey('pieces')
    const head =
      `PUT /v1/kv/${keyPath(key)} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
      `Content-Length: ${value.byteLength}\r\nConnection: close\r\n\r\n`
    const answer = await rawRequest(head, pieces)
    expect(answer, `seed ${seed}`).toMatch(/^HTTP\/1\.1 201 /)
    expect((await read(key))?.bytes).toEqual(value)
  })

  it('stores a chunked body under the limit byte for byte', async () => {
    const key = uniqueKey('chunked')
    const response = await putChunked(
      server.url,
      key,
      20,
      (n) => new Uint8Array(1000).fill(n + 1),
      1,
    )
    expect(response.status, await response.text()).toBe(201)
    const expected = Uint8Array.from({ length: 20_000 }, (_, i) => Math.floor(i / 1000) + 1)
    expect((await read(key))?.bytes).toEqual(expected)
  })

  it('stores nothing when the client leaves before the body is complete, and keeps serving', async () => {
    const key = uniqueKey('partial')
    const head = `PUT /v1/kv/${keyPath(key)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n`
    await rawRequest(head, [new Uint8Array(10).fill(0x70)], false)
    await sleep(50)
    expect(await read(key)).toBeNull()
    await putOk(key, 'whole')
    expect(await readText(key)).toBe('whole')
  })
})

describe('limits on /v1/kv', () => {
  let limited: RunningServer

  beforeAll(async () => {
    limited = await startServer([
      '--max-key-size',
      '16',
      '--max-value-size',
      '64',
      '--max-body-size',
      '128',
    ])
  })

  afterAll(async () => {
    await limited?.stop()
  })

  it('refuses a key over --max-key-size bytes with 400 key_too_large, changing nothing', async () => {
    const fits = 'k'.repeat(16)
    expect((await put(fits, 'v', {}, limited.url)).status).toBe(201)
    await expectProblem(await put('k'.repeat(17), 'v', {}, limited.url), 400, 'key_too_large')
    // Bytes, not characters: 9 × 'é' is 18 UTF-8 bytes.
    await expectProblem(await put('é'.repeat(9), 'v', {}, limited.url), 400, 'key_too_large')
    expect(await listAll('k', 1000, undefined, limited.url)).toEqual([fits])
  })

  it('refuses a value over --max-value-size bytes with 413 value_too_large, changing nothing', async () => {
    // Uint8Array bodies: fetch sends them without a Content-Type.
    const key = 'value-limit'
    expect((await put(key, bytesOf('v'.repeat(64)), {}, limited.url)).status).toBe(201)
    await expectProblem(
      await put(key, bytesOf('w'.repeat(65)), {}, limited.url),
      413,
      'value_too_large',
    )
    expect(await readText(key, limited.url)).toBe('v'.repeat(64))
    await expectProblem(
      await put('value-new', bytesOf('w'.repeat(65)), {}, limited.url),
      413,
      'value_too_large',
    )
    expect(await read('value-new', limited.url)).toBeNull()
  })

  it('counts only the value bytes against --max-value-size, whatever the Content-Type', async () => {
    const refused: string[] = []
    const types = [
      'application/octet-stream',
      'text/plain',
      'text/plain;charset=UTF-8',
      'application/vnd.slabkv.test+json',
    ]
    for (const [i, contentType] of types.entries()) {
      const response = await put(`type-${i}`, 'v'.repeat(64), { contentType }, limited.url)
      if (response.status !== 201) refused.push(`${contentType} → ${response.status}`)
      await response.arrayBuffer()
    }
    expect(refused, refused.join('; ')).toEqual([])
  })

  it('refuses a request body over --max-body-size bytes with 413 body_too_large, changing nothing', async () => {
    // A PUT body over the body limit is also over the value limit: either code is honest.
    const key = 'body-limit'
    await expectProblem(await put(key, 'b'.repeat(129), {}, limited.url), 413, [
      'body_too_large',
      'value_too_large',
    ])
    expect(await read(key, limited.url)).toBeNull()
    // A batch body is not a value: only body_too_large fits.
    const ops = [{ op: 'set', key, value: 'small' }]
    const batch = JSON.stringify({ ops, padding: 'p'.repeat(200) })
    const response = await fetch(`${limited.url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: batch,
    })
    await expectProblem(response, 413, 'body_too_large')
    expect(await read(key, limited.url)).toBeNull()
  })

  it('refuses a chunked body over --max-body-size with 413', async () => {
    const key = 'chunked-limit'
    const piece = () => new Uint8Array(100).fill(0x63)
    const response = await putChunked(limited.url, key, 64, piece, 5)
    expect(response.status).toBe(413)
    await response.body?.cancel()
    expect(await read(key, limited.url)).toBeNull()
  })
})

describe('an entry larger than the whole store', () => {
  let tiny: RunningServer

  beforeAll(async () => {
    tiny = await startServer(['--max-memory', '1KiB', '--max-value-size', '4KiB'])
  })

  afterAll(async () => {
    await tiny?.stop()
  })

  it('is refused with 413 value_too_large, changing nothing', async () => {
    // Uint8Array bodies: fetch sends them without a Content-Type.
    const refused = await expectProblem(
      await put('big', new Uint8Array(2048), {}, tiny.url),
      413,
      'value_too_large',
    )
    // The limit that refused it is the store's size, not the value size limit (4 KiB here).
    expect(String(refused.detail)).toMatch(/1024 bytes \(--max-memory\)/)
    expect(String(refused.title)).not.toMatch(/value size limit/)
    expect(await read('big', tiny.url)).toBeNull()
    // Key plus value one byte over the store: 3 + 1022 = 1025 bytes.
    await expectProblem(
      await put('key', new Uint8Array(1022), {}, tiny.url),
      413,
      'value_too_large',
    )
    expect(await read('key', tiny.url)).toBeNull()
    expect((await put('key', new Uint8Array(1021), {}, tiny.url)).status).toBe(201)
  })
})

describe('requests at the edges of the key routes', () => {
  it('answers 400 for a listing cursor too large to be a slot', async () => {
    await expectProblem(
      await fetch(`${server.url}/v1/kv?cursor=99999999999999999999`),
      400,
      'invalid_request',
    )
  })

  it('refuses a PUT carrying both If-Match and If-None-Match: *, writing nothing', async () => {
    const path = `${server.url}/v1/kv/${keyPath(uniqueKey('both-conditions'))}`
    const response = await fetch(path, {
      method: 'PUT',
      headers: { 'If-Match': '"999"', 'If-None-Match': '*' },
      body: 'v',
    })
    await expectProblem(response, 412, 'precondition_failed')
    await expectProblem(await fetch(path), 404, 'not_found')
  })

  it('answers 400 key_too_large, not 404, to GET and DELETE of a key over the limit', async () => {
    // The default --max-key-size is 1024 bytes.
    const path = `${server.url}/v1/kv/${'k'.repeat(1025)}`
    await expectProblem(await fetch(path), 400, 'key_too_large')
    await expectProblem(await fetch(path, { method: 'DELETE' }), 400, 'key_too_large')
  })
})
