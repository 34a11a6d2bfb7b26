import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keyPath, killAll, type RunningServer, startServer } from '../support/server.js'
import { expectJson, expectProblem } from './http.js'

// POST /v1/batch through a real server's log: batches on the smallest log ring, whose records
// must fit it whole. What a batch answers is tested in process (test/unit/http/batch-route.test.ts).

let server: RunningServer

beforeAll(async () => {
  server = await startServer()
})

afterAll(async () => {
  await server?.stop()
  await killAll()
})

type Op = Record<string, unknown>

function batch(ops: Op[] | unknown): Promise<Response> {
  return batchRaw(JSON.stringify({ ops }))
}

function batchRaw(text: string): Promise<Response> {
  return fetch(`${server.url}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: text,
  })
}

async function _results(ops: Op[]): Promise<Record<string, unknown>[]> {
  const body = await expectJson<{ results: Record<string, unknown>[] }>(await batch(ops), 200)
  expect(Object.keys(body)).toEqual(['results'])
  expect(body.results.length).toBe(ops.length)
  return body.results
}

async function _putText(key: string, text: string): Promise<number> {
  const response = await fetch(`${server.url}/v1/kv/${keyPath(key)}`, {
    method: 'PUT',
    headers: { 'content-type': 'text/plain' },
    body: text,
  })
  expect(response.status).toBe(201)
  return ((await response.json()) as { version: number }).version
}

/** The value and version as GET /v1/kv sees them, or null for 404. */
async function _read(key: string): Promise<{ text: string; version: string | null } | null> {
  const response = await fetch(`${server.url}/v1/kv/${keyPath(key)}`)
  if (response.status === 404) {
    await response.arrayBuffer()
    return null
  }
  expect(response.status).toBe(200)
  return { text: await response.text(), version: response.headers.get('etag') }
}

describe('batches on the smallest log ring', () => {
  async function post(target: RunningServer, ops: Op[]): Promise<Response> {
    return fetch(`${target.url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ops }),
      signal: AbortSignal.timeout(10_000),
    })
  }

  it('applies a set whose TTL adds nothing to the clock, then another set of its key, and lives on', async () => {
    // The store's value limit is 150 + 256 (an inline media type): the smallest ring, 919 bytes.
    const small = await startServer([
      '--max-key-size',
      '8',
      '--max-value-size',
      '150',
      '--wal-ring-size',
      '919',
    ])
    try {
      const contentType = `application/x-${'a'.repeat(135)}`
      const ops = [
        { op: 'set', key: 'k', value: 'v'.repeat(150), contentType, ttl: 1e-300 },
        { op: 'set', key: 'k', value: 'after' },
      ]
      const response = await post(small, ops)
      expect(response.status, await response.clone().text()).toBe(200)
      const read = await fetch(`${small.url}/v1/kv/k`)
      expect(await read.text()).toBe('after')
      expect((await fetch(`${small.url}/healthz`)).status).toBe(200)
    } finally {
      expect(await small.stop('SIGTERM')).toBe(0)
    }
  })

  it('refuses with 413 a batch whose evictions could never get log room, instead of waiting for ever', async () => {
    // A 64-byte key's eviction takes 83 bytes of log; 23 small sets reserve 667 of the 802.
    const small = await startServer([
      ...['--max-key-size', '64', '--max-value-size', '8'],
      ...['--wal-ring-size', '803', '--max-entries', '2'],
    ])
    try {
      for (const key of ['a'.repeat(64), 'b'.repeat(64)]) {
        expect((await fetch(`${small.url}/v1/kv/${key}`, { method: 'PUT', body: '' })).status).toBe(
          201,
        )
      }
      const ops = Array.from({ length: 23 }, () => ({ op: 'set', key: 'n', value: '' }))
      await expectProblem(await post(small, ops), 413, 'batch_too_large')
      expect((await fetch(`${small.url}/v1/kv/n`)).status).toBe(404)
    } finally {
      expect(await small.stop('SIGTERM')).toBe(0)
    }
  })
})
