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
import { bytesOf, expectProblem } from './http.js'
import { kvClient } from './kv-client.js'

// The native key routes through a real server (docs/api.md): bodies on the wire in pieces, limits
// set by flags, an entry larger than the store. Their answers to well-formed requests are tested
// in process (test/unit/http/kv-routes.test.ts); listing is in listing.test.ts.

let server: RunningServer

beforeAll(async () => {
  server = await startServer()
})

afterAll(async () => {
  await server?.stop()
  await killAll()
})

const { kvUrl, put, putOk, read, readText, listAll } = kvClient(() => server.url)

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
