import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prng, testSeed } from '../support/random.js'
import { RawConnection, type RawResponse, rawRequest } from '../support/raw-http.js'
import { keyPath, killAll, type RunningServer, startServer, uniqueKey } from '../support/server.js'
import { expectJson, expectProblem } from './http.js'

// What happens on a connection: pipelined requests apply in order, a batch's answer is bounded
// and streamed, a client that never reads is cut off, Expect: 100-continue is answered only once
// the body is wanted, and without a token only loopback Host names are served (DNS rebinding).

afterAll(async () => {
  await killAll()
})

function postBatch(server: RunningServer, ops: Record<string, unknown>[]): Promise<Response> {
  return fetch(`${server.url}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ops }),
  })
}

function json(response: RawResponse): Record<string, unknown> {
  return JSON.parse(response.body.toString()) as Record<string, unknown>
}

describe('pipelined requests on one connection', () => {
  let server: RunningServer

  beforeAll(async () => {
    server = await startServer()
  })

  afterAll(async () => {
    await server?.stop()
  })

  /** Writes every request in one piece and reads one response per request, in order. */
  async function pipeline(requests: Buffer[], heads: boolean[] = []): Promise<RawResponse[]> {
    const connection = await RawConnection.open(server.port)
    try {
      connection.write(Buffer.concat(requests))
      const responses: RawResponse[] = []
      for (const [i] of requests.entries()) {
        responses.push(await connection.read({ head: heads[i] === true }))
      }
      return responses
    } finally {
      connection.destroy()
    }
  }

  it('reads a key PUT just before on the same connection', async () => {
    for (let round = 0; round < 30; round++) {
      const key = keyPath(uniqueKey('pipe-put-get'))
      const [put, got] = await pipeline([
        rawRequest('PUT', `/v1/kv/${key}`, {}, `value ${round}`),
        rawRequest('GET', `/v1/kv/${key}`),
      ])
      expect(put?.status).toBe(201)
      expect(got?.status, `round ${round}: ${got?.body}`).toBe(200)
      expect(got?.body.toString()).toBe(`value ${round}`)
    }
  })

  it('answers hundreds of pipelined requests in order, reading on after a pause', async () => {
    // Far more requests than wait on a connection before the server stops reading it.
    const keys = Array.from({ length: 150 }, () => keyPath(uniqueKey('pipe-many')))
    const requests = keys.flatMap((key, i) => [
      rawRequest('PUT', `/v1/kv/${key}`, {}, `many ${i}`),
      rawRequest('GET', `/v1/kv/${key}`),
    ])
    const responses = await pipeline(requests)
    for (const [i] of keys.entries()) {
      expect(responses[2 * i]?.status).toBe(201)
      expect(responses[2 * i + 1]?.body.toString()).toBe(`many ${i}`)
    }
  })

  it('applies a DELETE after the batch that set the key, and the later of two PUTs', async () => {
    for (let round = 0; round < 10; round++) {
      const deleted = uniqueKey('pipe-batch-delete')
      const replaced = keyPath(uniqueKey('pipe-put-put'))
      const ops = JSON.stringify({ ops: [{ op: 'set', key: deleted, value: 'v' }] })
      const responses = await pipeline(
        [
          rawRequest('POST', '/v1/batch', { 'Content-Type': 'application/json' }, ops),
          rawRequest('DELETE', `/v1/kv/${keyPath(deleted)}`),
          rawRequest('GET', `/v1/kv/${keyPath(deleted)}`),
          rawRequest('PUT', `/v1/kv/${replaced}`, {}, 'v1'),
          rawRequest('PUT', `/v1/kv/${replaced}`, {}, 'v2'),
          rawRequest('HEAD', `/v1/kv/${replaced}`),
          rawRequest('GET', `/v1/kv/${replaced}`),
        ],
        [false, false, false, false, false, true, false],
      )
      expect(responses.map((response) => response.status)).toEqual([
        200, 204, 404, 201, 200, 200, 200,
      ])
      expect(responses[6]?.body.toString()).toBe('v2')
    }
  })
})

describe('the size of a batch answer', () => {
  let server: RunningServer
  const valueSize = 1024 * 1024

  beforeAll(async () => {
    server = await startServer(['--max-value-size', '1MiB'])
  })

  afterAll(async () => {
    await server?.stop()
  })

  async function putValues(prefix: string, count: number, seed: number) {
    const random = prng(seed)
    const values: Buffer[] = []
    for (let i = 0; i < count; i++) {
      const value = Buffer.alloc(valueSize)
      for (let at = 0; at < valueSize; at += 4) value.writeUInt32LE((random() * 2 ** 32) >>> 0, at)
      const response = await fetch(`${server.url}/v1/kv/${prefix}-${i}`, {
        method: 'PUT',
        body: value,
      })
      expect(response.status).toBe(201)
      await response.arrayBuffer()
      values.push(value)
    }
    return values
  }

  it('refuses a batch reading more than --max-batch-read-size with 413, applying nothing', async () => {
    await putValues('big', 4, testSeed('batch-read-refused'))
    const written = uniqueKey('batch-read-refused')
    const ops = [
      { op: 'set', key: written, value: 'applied?' },
      ...Array.from({ length: 100 }, (_, i) => ({ op: 'get', key: `big-${i % 4}` })),
    ]
    const response = await postBatch(server, ops)
    const problem = await expectProblem(response, 413, 'batch_read_too_large')
    expect(String(problem.detail)).toMatch(/16777216 bytes/)
    expect(String(problem.detail)).toMatch(/--max-batch-read-size/)
    const read = await fetch(`${server.url}/v1/kv/${keyPath(written)}`)
    expect(read.status).toBe(404)
    await read.arrayBuffer()
  })

  it('streams an answer of many megabytes byte for byte', async () => {
    const values = await putValues('streamed', 8, testSeed('batch-read-streamed'))
    const ops = values.map((_, i) => ({ op: 'get', key: `streamed-${i}` }))
    const response = await postBatch(server, ops)
    const { results } = await expectJson<{ results: { value: string; encoding: string }[] }>(
      response,
      200,
    )
    expect(results.length).toBe(values.length)
    for (const [i, result] of results.entries()) {
      expect(result.encoding).toBe('base64')
      expect(Buffer.from(result.value, 'base64').equals(values[i]!), `value ${i}`).toBe(true)
    }
  })
})

describe('--max-batch-read-size at its edge', () => {
  let server: RunningServer

  beforeAll(async () => {
    server = await startServer(['--max-batch-read-size', '1000'])
  })

  afterAll(async () => {
    await server?.stop()
  })

  it('answers a batch reading exactly the limit, and refuses one byte more', async () => {
    const post = (ops: Record<string, unknown>[]) => postBatch(server, ops)
    const seeded = await post([
      { op: 'set', key: 'a', value: 'a'.repeat(600) },
      { op: 'set', key: 'b', value: 'b'.repeat(400) },
    ])
    expect(seeded.status).toBe(200)
    await seeded.arrayBuffer()
    const exact = await post([
      { op: 'get', key: 'a' },
      { op: 'get', key: 'b' },
    ])
    const body = await expectJson<{ results: { value: string }[] }>(exact, 200)
    expect(body.results.map((result) => result.value.length)).toEqual([600, 400])
    // A read after a write in the same batch counts the value the batch wrote.
    const over = await post([
      { op: 'set', key: 'b', value: 'b'.repeat(401) },
      { op: 'get', key: 'a' },
      { op: 'get', key: 'b' },
    ])
    const problem = await expectProblem(over, 413, 'batch_read_too_large')
    expect(String(problem.detail)).toMatch(/1000 bytes/)
    const b = await fetch(`${server.url}/v1/kv/b`)
    expect((await b.text()).length).toBe(400)
  })
})

describe('a client that never reads its answer', () => {
  let server: RunningServer

  beforeAll(async () => {
    server = await startServer([
      '--max-batch-read-size',
      '64MiB',
      '--send-timeout-ms',
      '500',
      '--connection-check-interval-ms',
      '100',
    ])
  })

  afterAll(async () => {
    await server?.stop()
  })

  it('is cut off after --send-timeout-ms, and the server serves others meanwhile', async () => {
    const value = Buffer.alloc(1024 * 1024, 0x61)
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${server.url}/v1/kv/slow-${i}`, { method: 'PUT', body: value })
      expect(response.status).toBe(201)
      await response.arrayBuffer()
    }
    // 48 MiB of answer: more than the kernel's socket buffers can take for a reader that stops.
    const ops = JSON.stringify({
      ops: Array.from({ length: 48 }, (_, i) => ({ op: 'get', key: `slow-${i % 4}` })),
    })
    const connection = await RawConnection.open(server.port)
    connection.socket.pause()
    connection.write(rawRequest('POST', '/v1/batch', { 'Content-Type': 'application/json' }, ops))
    const health = await fetch(`${server.url}/healthz`)
    expect(health.status).toBe(200)
    await health.arrayBuffer()
    const cutLines = () =>
      server.logs.filter((line) => line.msg === 'closed a connection that stopped reading')
    await expect.poll(() => cutLines().length).toBe(1)
    // Reading now drains what the kernel held, and then meets the end of the connection.
    connection.socket.resume()
    expect(await connection.waitClosed(10_000)).toBe(true)
  })
})

/** The server process's resident memory, in MiB. */
function rssMiB(server: RunningServer): number {
  const status = readFileSync(`/proc/${server.process.pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('pipelined reads from a client that does not read its answers', () => {
  it('do not make the server hold their answers: 22 KB of requests, not 500 MiB', async () => {
    const server = await startServer(['--fsync', 'no'])
    try {
      const value = Buffer.alloc(1024 * 1024, 0x61) // --max-value-size, the default 1 MiB
      const put = await fetch(`${server.url}/v1/kv/big`, { method: 'PUT', body: value })
      expect(put.status).toBe(201)
      await put.arrayBuffer()
      await sleep(200)
      const before = rssMiB(server)
      const connection = await RawConnection.open(server.port)
      connection.socket.pause()
      // 500 requests of 44 bytes, within --max-pipelined-requests: one read of the server.
      const get = rawRequest('GET', '/v1/kv/big')
      connection.write(Buffer.concat(Array.from({ length: 500 }, () => get)))
      let peak = before
      for (let i = 0; i < 30; i++) {
        await sleep(100)
        peak = Math.max(peak, rssMiB(server))
      }
      connection.destroy()
      // An answer is built only once the one before it has left, so what the server holds is
      // what the kernel's buffers do not take: a few MiB, where each of 500 answers held its
      // own 1 MiB copy of the value until the client read it or --send-timeout-ms cut it off.
      expect(
        peak - before,
        `RSS grew from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`,
      ).toBeLessThan(200)
    } finally {
      await server.stop('SIGKILL')
    }
  })
})

describe('pipelined writes on one connection with --fsync always', () => {
  it('share group commits: each waits for its change to apply, not for the fsync before it', async () => {
    const server = await startServer(['--fsync', 'always'])
    try {
      const stats = async () => {
        const response = await fetch(`${server.url}/v1/stats`)
        return (
          (await response.json()) as { wal: { groupCommits: number; recordsWritten: number } }
        ).wal
      }
      const count = 400
      const requests = Array.from({ length: count }, (_, i) =>
        rawRequest('PUT', `/v1/kv/pipelined-${i}`, {}, `value ${i}`),
      )
      const before = await stats()
      const connection = await RawConnection.open(server.port)
      connection.write(Buffer.concat(requests))
      for (let i = 0; i < count; i++) {
        expect((await connection.read({ timeoutMs: 60_000 })).status).toBe(201)
      }
      connection.destroy()
      const after = await stats()
      const records = after.recordsWritten - before.recordsWritten
      const commits = after.groupCommits - before.groupCommits
      // When each write waited for its own fsync before the next one ran, every group commit
      // held exactly one record.
      expect(commits, `${records} records in ${commits} group commits`).toBeLessThan(records)
    } finally {
      await server.stop('SIGKILL')
    }
  })
})

describe('--max-pipelined-requests', () => {
  it('serves a connection exactly the limit ahead, and answers one more 429 naming the flag', async () => {
    const limit = 20
    const server = await startServer(['--max-pipelined-requests', String(limit)])
    try {
      const key = keyPath(uniqueKey('pipelined-limit'))
      const put = await fetch(`${server.url}/v1/kv/${key}`, { method: 'PUT', body: 'v' })
      expect(put.status).toBe(201)
      await put.arrayBuffer()
      // Under a kilobyte in one write arrives in one read, and the server parses every request
      // of a read before any answer can leave: all of them are waiting at once.
      const get = rawRequest('GET', `/v1/kv/${key}`)
      for (const extra of [0, 1]) {
        const connection = await RawConnection.open(server.port)
        try {
          connection.write(Buffer.concat(Array.from({ length: limit + extra }, () => get)))
          const responses: RawResponse[] = []
          for (let i = 0; i < limit + extra; i++) responses.push(await connection.read())
          const statuses = responses.map((response) => response.status)
          expect(statuses.slice(0, limit), `${limit + extra} requests`).toEqual(
            Array(limit).fill(200),
          )
          if (extra === 1) {
            const refused = responses[limit]!
            expect(refused.status).toBe(429)
            const body = JSON.parse(refused.body.toString()) as { detail: string }
            expect(body.detail).toContain(`${limit} requests`)
            expect(body.detail).toContain('--max-pipelined-requests')
            expect(await connection.waitClosed(5_000)).toBe(true)
          }
        } finally {
          connection.destroy()
        }
      }
    } finally {
      await server.stop()
    }
  })
})

describe('Expect: 100-continue', () => {
  let server: RunningServer

  beforeAll(async () => {
    server = await startServer(['--token', 'a-token-for-tests', '--max-body-size', '1KiB'])
  })

  afterAll(async () => {
    await server?.stop()
  })

  const auth = { Authorization: 'Bearer a-token-for-tests' }

  async function firstAnswer(headers: Record<string, string>): Promise<RawResponse> {
    const connection = await RawConnection.open(server.port)
    try {
      connection.write(
        rawRequest('PUT', `/v1/kv/${keyPath(uniqueKey('expect'))}`, {
          Expect: '100-continue',
          ...headers,
        }),
      )
      return await connection.read({ interim: true })
    } finally {
      connection.destroy()
    }
  }

  it('answers 401 without 100 Continue when the token is missing', async () => {
    const answer = await firstAnswer({ 'Content-Length': '10' })
    expect(answer.status).toBe(401)
  })

  it('answers 413 without 100 Continue when the body is over --max-body-size', async () => {
    const answer = await firstAnswer({ ...auth, 'Content-Length': '2048' })
    expect(answer.status).toBe(413)
  })

  it('answers 100 Continue, then stores the body, when the request is acceptable', async () => {
    const key = keyPath(uniqueKey('expect-ok'))
    const connection = await RawConnection.open(server.port)
    try {
      connection.write(
        rawRequest('PUT', `/v1/kv/${key}`, {
          ...auth,
          Expect: '100-continue',
          'Content-Length': '5',
        }),
      )
      expect((await connection.read({ interim: true })).status).toBe(100)
      connection.write('hello')
      expect((await connection.read()).status).toBe(201)
    } finally {
      connection.destroy()
    }
    const stored = await fetch(`${server.url}/v1/kv/${key}`, { headers: auth })
    expect(await stored.text()).toBe('hello')
  })

  it('answers an expectation it cannot meet with 417 and a body saying so', async () => {
    const answer = await firstAnswer({ ...auth, Expect: 'something-else', 'Content-Length': '1' })
    expect(answer.status).toBe(417)
    expect(json(answer).code).toBe('expectation_failed')
  })
})

async function exchange(server: RunningServer, request: Buffer): Promise<RawResponse> {
  const connection = await RawConnection.open(server.port)
  try {
    connection.write(request)
    return await connection.read()
  } finally {
    connection.destroy()
  }
}

describe('Host names without a token (DNS rebinding)', () => {
  let open: RunningServer

  beforeAll(async () => {
    open = await startServer()
  })

  afterAll(async () => {
    await open?.stop()
  })

  it('answers 421 to a Host that is not loopback, changing nothing', async () => {
    const key = keyPath(uniqueKey('rebind'))
    for (const host of [
      'attacker.example',
      'attacker.example:8000',
      '10.0.0.1',
      'localhost.evil',
    ]) {
      const put = await exchange(
        open,
        rawRequest('PUT', `/v1/kv/${key}`, { Host: host, 'Content-Type': 'text/html' }, '<p>'),
      )
      expect(put.status, host).toBe(421)
      expect(json(put).code).toBe('host_not_allowed')
      expect(String(json(put).detail)).toMatch(/--allowed-hosts/)
      const ui = await exchange(open, rawRequest('GET', '/', { Host: host }))
      expect(ui.status, host).toBe(421)
    }
    const read = await fetch(`${open.url}/v1/kv/${key}`)
    expect(read.status).toBe(404)
    await read.arrayBuffer()
  })

  it('serves loopback names with any port', async () => {
    const hosts = [
      'localhost',
      `localhost:${open.port}`,
      '127.0.0.1',
      '127.1.2.3:80',
      '[::1]:8000',
      '[::1]',
      'app.localhost',
      'LocalHost:8000',
    ]
    for (const host of hosts) {
      const response = await exchange(open, rawRequest('GET', '/healthz', { Host: host }))
      expect(response.status, host).toBe(200)
    }
  })

  it('serves stored values with nosniff and a sandbox Content-Security-Policy', async () => {
    const key = keyPath(uniqueKey('sandboxed'))
    const put = await fetch(`${open.url}/v1/kv/${key}`, {
      method: 'PUT',
      headers: { 'content-type': 'text/html' },
      body: '<script>alert(1)</script>',
    })
    expect(put.status).toBe(201)
    for (const method of ['GET', 'HEAD']) {
      const response = await fetch(`${open.url}/v1/kv/${key}`, { method })
      expect(response.headers.get('x-content-type-options'), method).toBe('nosniff')
      expect(response.headers.get('content-security-policy'), method).toBe('sandbox')
      await response.arrayBuffer()
    }
    const seed = await fetch(`${open.url}/get/${key}`)
    expect(seed.headers.get('x-content-type-options')).toBe('nosniff')
    expect(seed.headers.get('content-security-policy')).toBe('sandbox')
    await seed.arrayBuffer()
  })
})

describe('--allowed-hosts', () => {
  let listed: RunningServer

  beforeAll(async () => {
    listed = await startServer(['--allowed-hosts', 'kv.internal,Other.Example'])
  })

  afterAll(async () => {
    await listed?.stop()
  })

  it('serves the names it adds, in any case, besides loopback ones', async () => {
    for (const host of ['kv.internal', 'KV.internal:8000', 'other.example', '127.0.0.1']) {
      const response = await exchange(listed, rawRequest('GET', '/healthz', { Host: host }))
      expect(response.status, host).toBe(200)
    }
    const refused = await exchange(
      listed,
      rawRequest('GET', '/healthz', { Host: 'kv.internal.evil' }),
    )
    expect(refused.status).toBe(421)
  })
})

describe('Host names with a token', () => {
  let tokened: RunningServer

  beforeAll(async () => {
    tokened = await startServer(['--token', 'a-token-for-tests'])
  })

  afterAll(async () => {
    await tokened?.stop()
  })

  it('serves any Host: a page cannot send the token', async () => {
    const response = await exchange(
      tokened,
      rawRequest('GET', '/v1/stats', {
        Host: 'kv.example.com',
        Authorization: 'Bearer a-token-for-tests',
      }),
    )
    expect(response.status).toBe(200)
  })
})
