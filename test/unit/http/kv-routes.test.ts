import { describe, expect, it } from 'vitest'
import { bytesOf, describeResponse, expectJson, expectProblem } from '../../e2e/http.js'
import { kvClient } from '../../e2e/kv-client.js'
import { inProcessApp, routeTestLimits } from '../../support/app.js'
import { prng, randomBytes, testSeed } from '../../support/random.js'
import { sleep, uniqueKey } from '../../support/server.js'

// The native key routes' answers (docs/api.md): raw bytes in and out, versions as ETags,
// conditional requests, problem+json errors. HTTP behaviour over one store, so the app runs in
// process; test/e2e/kv-api.test.ts sends what needs a real server: bodies on the wire in pieces,
// limits set by flags, an entry larger than the store.

const { send } = inProcessApp({ limits: routeTestLimits })
const { kvUrl, put, get, del, putOk, read, readText } = kvClient(() => '', send)

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

  it('returns every value byte for byte, ASCII or not, at the sizes around the string answer', async () => {
    // Small ASCII values are answered as a string (kv.ts, respondBytes): a byte ≥ 0x80 anywhere,
    // or one byte past the size, must still come back as the bytes that were put.
    const random = prng(testSeed('kv bytes around the string answer'))
    for (const size of [1, 2, 100, 1023, 1024, 1025, 4096]) {
      const ascii = Uint8Array.from(randomBytes(random, size), (byte) => byte & 0x7f)
      const highAt = Math.floor(random() * size)
      const oneHigh = Uint8Array.from(ascii, (byte, i) => (i === highAt ? 0x80 | byte : byte))
      for (const [what, bytes] of [
        ['ASCII', ascii],
        [`0x${oneHigh[highAt]!.toString(16)} at ${highAt}`, oneHigh],
        ['random', randomBytes(random, size)],
      ] as const) {
        const key = uniqueKey('kv-sizes')
        await putOk(key, bytes)
        const response = await get(key)
        const got = new Uint8Array(await response.arrayBuffer())
        expect(response.headers.get('content-length'), `${size} B, ${what}`).toBe(String(size))
        expect(Buffer.from(got).equals(Buffer.from(bytes)), `${size} B, ${what}`).toBe(true)
      }
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
    const response = await send(kvUrl('', key), { method: 'HEAD' })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/plain')
    expect(response.headers.get('etag')).toBe(`"${version}"`)
    expect(response.headers.get('slabkv-ttl')).not.toBeNull()
    const length = response.headers.get('content-length')
    if (length !== null) expect(length).toBe(String(bytesOf('head body').byteLength))
    expect(await response.text()).toBe('')
    const missing = await send(kvUrl('', uniqueKey('kv-head-missing')), {
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
      const listed = await send(`/v1/kv?${new URLSearchParams({ prefix: key, limit: '10' })}`)
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
      const response = await send(`/v1/kv/${path}`, { method: 'PUT', body: 'x' })
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
    await expectProblem(await send(`/v1/nothing-here`), 404, 'route_not_found')
    await expectProblem(
      await send(`/v1/kv-typo/key`, { method: 'PUT', body: 'x' }),
      404,
      'route_not_found',
    )
  })
})
