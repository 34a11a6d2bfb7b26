import { describe, expect, it } from 'vitest'
import { expectJson, expectProblem } from '../../e2e/http.js'
import { inProcessApp, routeTestLimits } from '../../support/app.js'
import { prng, testSeed } from '../../support/random.js'
import { keyPath, uniqueKey } from '../../support/server.js'

// POST /v1/batch (docs/api.md, "POST /v1/batch"): one lock acquisition, every condition checked
// against the state before the batch, all or nothing. HTTP behaviour over one store, so the app
// runs in process; test/e2e/batch.test.ts runs batches through a real server's log.

const { send } = inProcessApp({ limits: routeTestLimits })

type Op = Record<string, unknown>

function batch(ops: Op[] | unknown): Promise<Response> {
  return batchRaw(JSON.stringify({ ops }))
}

function batchRaw(text: string): Promise<Response> {
  return send('/v1/batch', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: text,
  })
}

async function results(ops: Op[]): Promise<Record<string, unknown>[]> {
  const body = await expectJson<{ results: Record<string, unknown>[] }>(await batch(ops), 200)
  expect(Object.keys(body)).toEqual(['results'])
  expect(body.results.length).toBe(ops.length)
  return body.results
}

async function putText(key: string, text: string): Promise<number> {
  const response = await send(`/v1/kv/${keyPath(key)}`, {
    method: 'PUT',
    headers: { 'content-type': 'text/plain' },
    body: text,
  })
  expect(response.status).toBe(201)
  return ((await response.json()) as { version: number }).version
}

/** The value and version as GET /v1/kv sees them, or null for 404. */
async function read(key: string): Promise<{ text: string; version: string | null } | null> {
  const response = await send(`/v1/kv/${keyPath(key)}`)
  if (response.status === 404) {
    await response.arrayBuffer()
    return null
  }
  expect(response.status).toBe(200)
  return { text: await response.text(), version: response.headers.get('etag') }
}

describe('POST /v1/batch', () => {
  it('answers each get, set and delete in order', async () => {
    const a = uniqueKey('batch-a')
    const b = uniqueKey('batch-b')
    const missing = uniqueKey('batch-missing')
    const out = await results([
      { op: 'set', key: a, value: 'one' },
      { op: 'set', key: b, value: 'two', contentType: 'text/plain', ttl: 60 },
      { op: 'get', key: a },
      { op: 'get', key: missing },
      { op: 'delete', key: b },
      { op: 'delete', key: missing },
      { op: 'get', key: b },
    ])
    const setA = out[0] as { version: number }
    const setB = out[1] as { version: number }
    expect(Object.keys(setA)).toEqual(['version'])
    expect(Object.keys(setB)).toEqual(['version'])
    expect(setB.version).toBeGreaterThan(setA.version)
    expect(out[2]).toMatchObject({ value: 'one', encoding: 'utf8', version: setA.version })
    expect(Object.keys(out[2]!).sort()).toEqual(['contentType', 'encoding', 'value', 'version'])
    expect(typeof out[2]!.contentType).toBe('string')
    expect(out[3]).toEqual({ found: false })
    expect(out[4]).toEqual({ deleted: true })
    expect(out[5]).toEqual({ deleted: false })
    expect(out[6]).toEqual({ found: false })
    expect(await read(a)).toEqual({ text: 'one', version: `"${setA.version}"` })
    expect(await read(b)).toBeNull()
  })

  it('stores contentType and ttl as PUT would', async () => {
    const key = uniqueKey('batch-meta')
    const [set] = await results([
      { op: 'set', key, value: '{"x":1}', contentType: 'application/json', ttl: 60 },
    ])
    const response = await send(`/v1/kv/${keyPath(key)}`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('application/json')
    expect(response.headers.get('etag')).toBe(`"${(set as { version: number }).version}"`)
    expect(Number(response.headers.get('slabkv-ttl'))).toBeGreaterThan(50)
    expect(await response.text()).toBe('{"x":1}')
  })

  it('round-trips arbitrary bytes with encoding base64', async () => {
    const random = prng(testSeed('batch base64'))
    const bytes = Buffer.alloc(1000)
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256)
    // Bytes that are not UTF-8, so a reader cannot get away with decoding them as text.
    bytes[0] = 0xff
    const key = uniqueKey('batch-b64')
    const [set, got] = await results([
      { op: 'set', key, value: bytes.toString('base64'), encoding: 'base64' },
      { op: 'get', key },
    ])
    const value = got as { value: string; encoding: string; version: number }
    expect(value.version).toBe((set as { version: number }).version)
    expect(['base64', 'utf8']).toContain(value.encoding)
    const decoded = Buffer.from(value.value, value.encoding as BufferEncoding)
    expect(decoded.equals(bytes)).toBe(true)
    const raw = await send(`/v1/kv/${keyPath(key)}`)
    expect(Buffer.from(await raw.arrayBuffer()).equals(bytes)).toBe(true)
    // A utf8 value is stored as its UTF-8 bytes.
    const text = uniqueKey('batch-utf8')
    await results([{ op: 'set', key: text, value: 'héllo 🎉', encoding: 'utf8' }])
    const stored = await send(`/v1/kv/${keyPath(text)}`)
    expect(Buffer.from(await stored.arrayBuffer()).equals(Buffer.from('héllo 🎉'))).toBe(true)
  })

  it('checks every condition against the state before the batch', async () => {
    const key = uniqueKey('batch-before')
    const version = await putText(key, 'start')
    const fresh = uniqueKey('batch-before-fresh')
    const out = await results([
      { op: 'set', key, value: 'first', ifVersion: version },
      { op: 'set', key, value: 'second', ifVersion: version },
      { op: 'set', key: fresh, value: 'one', ifAbsent: true },
      { op: 'set', key: fresh, value: 'two', ifAbsent: true },
    ])
    expect(out.length).toBe(4)
    expect((await read(key))?.text).toBe('second')
    expect((await read(fresh))?.text).toBe('two')
  })

  it('applies nothing and answers 412 with the index of a failing ifVersion', async () => {
    const guarded = uniqueKey('batch-guarded')
    const version = await putText(guarded, 'original')
    const early1 = uniqueKey('batch-early')
    const early2 = uniqueKey('batch-early')
    const doomed = uniqueKey('batch-doomed')
    const doomedVersion = await putText(doomed, 'keep me')
    const response = await batch([
      { op: 'set', key: early1, value: 'x' },
      { op: 'delete', key: doomed },
      { op: 'set', key: early2, value: 'y' },
      { op: 'set', key: guarded, value: 'changed', ifVersion: version + 1000 },
    ])
    const problem = await expectProblem(response, 412, 'precondition_failed')
    expect(JSON.stringify(problem), 'the problem names the failing op, index 3').toMatch(/\b3\b/)
    expect(await read(early1)).toBeNull()
    expect(await read(early2)).toBeNull()
    expect(await read(doomed)).toEqual({ text: 'keep me', version: `"${doomedVersion}"` })
    expect(await read(guarded)).toEqual({ text: 'original', version: `"${version}"` })
  })

  it('applies nothing and answers 412 when ifAbsent meets an existing key', async () => {
    const existing = uniqueKey('batch-existing')
    const version = await putText(existing, 'here first')
    const early = uniqueKey('batch-early')
    const response = await batch([
      { op: 'set', key: early, value: 'x' },
      { op: 'set', key: existing, value: 'overwrite', ifAbsent: true },
    ])
    await expectProblem(response, 412, 'precondition_failed')
    expect(await read(early)).toBeNull()
    expect(await read(existing)).toEqual({ text: 'here first', version: `"${version}"` })
  })

  it('applies nothing and answers 412 when a delete ifVersion does not match', async () => {
    const key = uniqueKey('batch-del-guard')
    const version = await putText(key, 'stays')
    const early = uniqueKey('batch-early')
    const response = await batch([
      { op: 'set', key: early, value: 'x' },
      { op: 'delete', key, ifVersion: version + 1 },
    ])
    await expectProblem(response, 412, 'precondition_failed')
    expect(await read(early)).toBeNull()
    expect(await read(key)).toEqual({ text: 'stays', version: `"${version}"` })
  })

  it('accepts --max-batch-ops ops and refuses one more with 413 batch_too_large, applying none', async () => {
    const prefix = uniqueKey('batch-many')
    const fits = Array.from({ length: 1000 }, (_, i) => ({ op: 'get', key: `${prefix}-${i}` }))
    expect((await results(fits)).length).toBe(1000)
    const tooMany = Array.from({ length: 1001 }, (_, i) => ({
      op: 'set',
      key: `${prefix}-${i}`,
      value: 'v',
    }))
    await expectProblem(await batch(tooMany), 413, 'batch_too_large')
    expect(await read(`${prefix}-0`)).toBeNull()
    expect(await read(`${prefix}-1000`)).toBeNull()
  })

  it('refuses an invalid op with 400, applying none of the batch', async () => {
    const early = uniqueKey('batch-invalid-early')
    const invalid: [Op, string][] = [
      [{ op: 'frobnicate', key: 'k' }, 'invalid_request'],
      [{ op: 'get' }, 'invalid_request'],
      [{ key: 'k' }, 'invalid_request'],
      [{ op: 'get', key: 42 }, 'invalid_request'],
      [{ op: 'set', key: 'k' }, 'invalid_request'],
      [{ op: 'set', key: 'k', value: 42 }, 'invalid_request'],
      [{ op: 'set', key: 'k', value: 'v', encoding: 'hex' }, 'invalid_request'],
      [{ op: 'set', key: 'k', value: 'v', ifVersion: 'one' }, 'invalid_request'],
      [{ op: 'set', key: 'k', value: 'v', ttl: 0 }, 'ttl_invalid'],
      [{ op: 'set', key: 'k', value: 'v', ttl: -1 }, 'ttl_invalid'],
      [{ op: 'get', key: '' }, 'key_empty'],
      [{ op: 'set', key: 'k'.repeat(1025), value: 'v' }, 'key_too_large'],
    ]
    for (const [op, code] of invalid) {
      const response = await batch([{ op: 'set', key: early, value: 'x' }, op])
      await expectProblem(response, 400, code)
      expect(await read(early), JSON.stringify(op)).toBeNull()
    }
  })

  it('refuses a body that is not JSON with 400 invalid_json and one without ops with 400 invalid_request', async () => {
    await expectProblem(await batchRaw('{"ops":[{"op":"get"'), 400, 'invalid_json')
    await expectProblem(await batchRaw('{}'), 400, 'invalid_request')
    await expectProblem(await batch('not a list'), 400, 'invalid_request')
    await expectProblem(await batchRaw('[]'), 400, 'invalid_request')
  })

  it('refuses a value over --max-value-size with 413 value_too_large, applying none', async () => {
    const early = uniqueKey('batch-big-early')
    const big = uniqueKey('batch-big')
    const response = await batch([
      { op: 'set', key: early, value: 'x' },
      { op: 'set', key: big, value: 'v'.repeat(1024 * 1024 + 1) },
    ])
    await expectProblem(response, 413, 'value_too_large')
    expect(await read(early)).toBeNull()
    expect(await read(big)).toBeNull()
  })
})

describe('a TTL that overflows', () => {
  it('refuses a batch whose TTL overflows in milliseconds, applying none of it', async () => {
    const first = uniqueKey('ttl-first')
    const ops = [
      { op: 'set', key: first, value: 'v' },
      { op: 'set', key: uniqueKey('ttl-second'), value: 'v', ttl: 1e306 },
    ]
    const response = await send(`/v1/batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ops }),
    })
    await expectProblem(response, 400, 'ttl_invalid')
    await expectProblem(await send(`/v1/kv/${keyPath(first)}`), 404, 'not_found')
  })
})
