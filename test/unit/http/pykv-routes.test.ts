import { describe, expect, it } from 'vitest'
import { expectJson, expectValidationError } from '../../e2e/http.js'
import { inProcessApp, routeTestLimits } from '../../support/app.js'
import { keyPath, sleep, uniqueKey } from '../../support/server.js'

// The PyKV-compatible routes (docs/api.md, "PyKV-compatible routes"): PyKV's exact status codes
// and bodies, and FastAPI's 422 for invalid input. HTTP behaviour only, so the app runs in
// process (app.request); real server processes serve these routes in the whole-server fuzz test,
// the README's examples and the nginx cluster test.

const valueSizeMax = 1024
const bodySizeMax = 4096

const { send } = inProcessApp({
  flags: { 'max-body-size': String(bodySizeMax) },
  limits: { ...routeTestLimits, valueSizeMax },
})

function postSet(body: unknown): Promise<Response> {
  return postSetRaw(JSON.stringify(body))
}

function postSetRaw(text: string): Promise<Response> {
  return send(`/set`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: text,
  })
}

function get(key: string): Promise<Response> {
  return send(`/get/${keyPath(key)}`)
}

function del(key: string): Promise<Response> {
  return send(`/delete/${keyPath(key)}`, { method: 'DELETE' })
}

async function expectValue(key: string, value: unknown): Promise<void> {
  expect(await expectJson(await get(key), 200)).toEqual({ key, value })
}

async function expectAbsent(key: string): Promise<void> {
  expect(await expectJson(await get(key), 404)).toEqual({ detail: 'Key not found' })
}

describe('PyKV-compatible routes', () => {
  it('stores and returns values of every JSON type', async () => {
    const values: unknown[] = [
      'a string',
      '',
      42,
      -3.25,
      0,
      { nested: { list: [1, 'two', null], flag: false } },
      [1, 'two', { three: 3 }],
      [],
      {},
      null,
      true,
      false,
      'line one\nline two\ttabbed',
      'ünïcødé 🎉 中文',
    ]
    for (const value of values) {
      const key = uniqueKey('seed-type')
      expect(await expectJson(await postSet({ key, value }), 200)).toEqual({ status: 'success' })
      await expectValue(key, value)
    }
  })

  it("accepts keys with '/', spaces, '%', '|', '?', '#' and non-ASCII characters", async () => {
    const keys = [
      'a/b/c',
      '/leading-slash',
      'with space',
      '100%',
      '%2F-literal',
      'pipe|key',
      'query?and#hash',
      'ключ',
      '🔑-emoji',
      'naïve café',
      'plus+sign&amp=',
    ]
    for (const label of keys) {
      const key = `${uniqueKey('seed-key')}:${label}`
      expect(await expectJson(await postSet({ key, value: label }), 200)).toEqual({
        status: 'success',
      })
      await expectValue(key, label)
    }
  })

  it('replaces the value of an existing key', async () => {
    const key = uniqueKey('seed-replace')
    await expectJson(await postSet({ key, value: 'first' }), 200)
    await expectJson(await postSet({ key, value: { second: true } }), 200)
    await expectValue(key, { second: true })
  })

  it('deletes a key, after which get and delete answer 404 Key not found', async () => {
    const key = uniqueKey('seed-delete')
    await expectJson(await postSet({ key, value: 1 }), 200)
    expect(await expectJson(await del(key), 200)).toEqual({ status: 'deleted' })
    await expectAbsent(key)
    expect(await expectJson(await del(key), 404)).toEqual({ detail: 'Key not found' })
  })

  it('answers 404 Key not found for a key that was never set', async () => {
    const key = uniqueKey('seed-missing')
    await expectAbsent(key)
    expect(await expectJson(await del(key), 404)).toEqual({ detail: 'Key not found' })
  })

  it('keeps a value set through /set as JSON text with content type application/json', async () => {
    const key = uniqueKey('seed-json-text')
    await expectJson(await postSet({ key, value: { a: [1, 2] } }), 200)
    const response = await send(`/v1/kv/${keyPath(key)}`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^application\/json/)
    expect(JSON.parse(await response.text())).toEqual({ a: [1, 2] })
  })

  it('returns a value stored through /v1/kv as a string of its UTF-8 bytes', async () => {
    const key = uniqueKey('seed-raw')
    const put = await send(`/v1/kv/${keyPath(key)}`, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain' },
      body: 'héllo {not json',
    })
    expect(put.status).toBe(201)
    await expectValue(key, 'héllo {not json')
  })

  it('refuses a body that is not JSON with 422 and stores nothing', async () => {
    const key = uniqueKey('seed-bad-json')
    await expectValidationError(await postSetRaw(`{"key":"${key}","value":`))
    await expectAbsent(key)
    await expectValidationError(await postSetRaw(''))
  })

  it('refuses a body that is not an object with 422', async () => {
    await expectValidationError(await postSet(['key', 'value']))
    await expectValidationError(await postSet('key'))
    await expectValidationError(await postSet(null))
  })

  it('refuses a missing key with 422 at loc body.key', async () => {
    await expectValidationError(await postSet({ value: 'orphan' }), ['body', 'key'])
  })

  it('refuses a missing value with 422 at loc body.value and stores nothing', async () => {
    const key = uniqueKey('seed-no-value')
    await expectValidationError(await postSet({ key }), ['body', 'value'])
    await expectAbsent(key)
  })

  it('refuses a key that is not a string with 422 at loc body.key and stores nothing', async () => {
    const number = Math.floor(Math.random() * 1e9) + 1e9
    await expectValidationError(await postSet({ key: number, value: 'v' }), ['body', 'key'])
    await expectAbsent(String(number))
    await expectValidationError(await postSet({ key: ['k'], value: 'v' }), ['body', 'key'])
    await expectValidationError(await postSet({ key: null, value: 'v' }), ['body', 'key'])
  })

  it('refuses an empty key with 422 at loc body.key', async () => {
    await expectValidationError(await postSet({ key: '', value: 'v' }), ['body', 'key'])
  })

  it('refuses a key over --max-key-size (1024 bytes) with 422 at loc body.key', async () => {
    const key = `${uniqueKey('seed-long-key')}-`.padEnd(1025, 'k')
    await expectValidationError(await postSet({ key, value: 'v' }), ['body', 'key'])
    // The 1024-byte key just under the limit is fine.
    const fits = key.slice(0, 1024)
    await expectJson(await postSet({ key: fits, value: 'v' }), 200)
    await expectValue(fits, 'v')
  })

  it('refuses a ttl that is not a positive number with 422 at loc body.ttl and changes nothing', async () => {
    const key = uniqueKey('seed-bad-ttl')
    await expectJson(await postSet({ key, value: 'old' }), 200)
    for (const ttl of [0, -1, -0.5, 'abc', [], {}]) {
      await expectValidationError(await postSet({ key, value: 'new', ttl }), ['body', 'ttl'])
      await expectValue(key, 'old')
    }
    const fresh = uniqueKey('seed-bad-ttl-fresh')
    await expectValidationError(await postSet({ key: fresh, value: 'new', ttl: 0 }), [
      'body',
      'ttl',
    ])
    await expectAbsent(fresh)
  })

  it('refuses a value over --max-value-size with 413 and keeps the old value', async () => {
    const key = uniqueKey('seed-big')
    // A string of n characters is n + 2 bytes of JSON text.
    const fits = 'x'.repeat(valueSizeMax - 2)
    await expectJson(await postSet({ key, value: fits }), 200)
    await expectValue(key, fits)
    const response = await postSet({ key, value: 'y'.repeat(valueSizeMax - 1) })
    expect(response.status, await response.text()).toBe(413)
    await expectValue(key, fits)
  })

  it('refuses a body over --max-body-size with 413 and stores nothing', async () => {
    const key = uniqueKey('seed-big-body')
    const response = await postSet({ key, value: 'small', padding: 'p'.repeat(bodySizeMax) })
    expect(response.status, await response.text()).toBe(413)
    await expectAbsent(key)
  })

  it('forgets a key once its ttl has passed', async () => {
    const key = uniqueKey('seed-ttl')
    expect(await expectJson(await postSet({ key, value: 'brief', ttl: 0.3 }), 200)).toEqual({
      status: 'success',
    })
    await sleep(350)
    await expectAbsent(key)
    expect(await expectJson(await del(key), 404)).toEqual({ detail: 'Key not found' })
  })

  it('accepts a fractional ttl and keeps the key until it passes', async () => {
    const key = uniqueKey('seed-ttl-long')
    await expectJson(await postSet({ key, value: 'stays', ttl: 30.5 }), 200)
    await expectValue(key, 'stays')
  })
})

describe('values and bodies that are not JSON', () => {
  it('returns a value PUT as application/json that is not JSON as text on GET /get', async () => {
    const key = uniqueKey('not-json')
    const put = await send(`/v1/kv/${keyPath(key)}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: 'not json',
    })
    expect(put.status).toBe(201)
    await put.arrayBuffer()
    expect(await expectJson(await send(`/get/${keyPath(key)}`), 200)).toEqual({
      key,
      value: 'not json',
    })
  })

  it('answers 422 to POST /set with a body not declared as JSON', async () => {
    const response = await send(`/set`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'key=a&value=b',
    })
    await expectValidationError(response)
  })
})
