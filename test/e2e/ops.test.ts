import { availableParallelism } from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Stats } from '../../src/client/types.js'
import {
  keyPath,
  killAll,
  type RunningServer,
  sleep,
  startServer,
  uniqueKey,
} from '../support/server.js'
import { expectJson } from './http.js'

// What an operator looks at (docs/api.md and docs/configuration.md): health, stats,
// metrics, the OpenAPI document, Swagger UI and the JSON log lines.

const entryCountMax = 50

let server: RunningServer

beforeAll(async () => {
  server = await startServer(['--max-entries', String(entryCountMax)])
})

afterAll(async () => {
  await server?.stop()
  await killAll()
})

const statsFields = [
  'entries',
  'bytes',
  'hits',
  'misses',
  'hitRatio',
  'sets',
  'deletes',
  'evictions',
  'expirations',
  'opsPerSecond',
  'uptimeSeconds',
  'threads',
]

async function stats(): Promise<Stats> {
  return expectJson<Stats>(await fetch(`${server.url}/v1/stats`), 200)
}

async function put(key: string, body: string, query = ''): Promise<void> {
  // As bytes, so that fetch sends no Content-Type: bytes counts keys plus values.
  const response = await fetch(`${server.url}/v1/kv/${keyPath(key)}${query}`, {
    method: 'PUT',
    body: Buffer.from(body),
  })
  expect([200, 201]).toContain(response.status)
  await response.arrayBuffer()
}

async function getStatus(key: string): Promise<number> {
  const response = await fetch(`${server.url}/v1/kv/${keyPath(key)}`)
  await response.arrayBuffer()
  return response.status
}

/** Prometheus text: sample name (with labels) → value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)(?: \d+)?$/.exec(line)
    expect(match, `not a Prometheus sample line: ${line}`).not.toBeNull()
    samples.set(match![1]!, Number(match![2]))
  }
  return samples
}

describe('health, stats and metrics', () => {
  it('answers /healthz and /readyz with 200', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const response = await fetch(`${server.url}${path}`)
      expect(response.status, path).toBe(200)
      await response.arrayBuffer()
    }
  })

  it('reports every documented counter in /v1/stats', async () => {
    const body = await stats()
    for (const field of statsFields) expect(body, field).toHaveProperty(field)
    for (const field of statsFields) {
      const value = (body as unknown as Record<string, unknown>)[field]
      expect(typeof value, field).toBe('number')
      expect(Number.isFinite(value), field).toBe(true)
      expect(value as number, field).toBeGreaterThanOrEqual(0)
    }
    expect(body.threads).toBe(server.listening.threads)
    expect(body.hitRatio).toBeLessThanOrEqual(1)
  })

  it('counts one hit, one miss, one set and one delete for one of each', async () => {
    const key = uniqueKey('ops-count')
    const value = 'v'.repeat(100)
    const before = await stats()
    await put(key, value)
    const afterSet = await stats()
    expect(afterSet.sets - before.sets).toBe(1)
    expect(afterSet.entries - before.entries).toBe(1)
    // Bytes of keys plus values, counted exactly.
    expect(afterSet.bytes - before.bytes).toBe(Buffer.byteLength(key) + 100)
    expect(await getStatus(key)).toBe(200)
    const afterHit = await stats()
    expect(afterHit.hits - afterSet.hits).toBe(1)
    expect(afterHit.misses - afterSet.misses).toBe(0)
    expect(await getStatus(uniqueKey('ops-miss'))).toBe(404)
    const afterMiss = await stats()
    expect(afterMiss.misses - afterHit.misses).toBe(1)
    expect(afterMiss.hits - afterHit.hits).toBe(0)
    expect(afterMiss.hitRatio).toBeCloseTo(afterMiss.hits / (afterMiss.hits + afterMiss.misses), 6)
    const deleted = await fetch(`${server.url}/v1/kv/${keyPath(key)}`, { method: 'DELETE' })
    expect(deleted.status).toBe(204)
    const afterDelete = await stats()
    expect(afterDelete.deletes - afterMiss.deletes).toBe(1)
    expect(afterDelete.entries).toBe(before.entries)
    expect(afterDelete.bytes).toBe(before.bytes)
  })

  it('counts an expired entry as an expiration', async () => {
    const key = uniqueKey('ops-expire')
    // Counted from before the write: the sweep may reclaim the key before a later read.
    const before = await stats()
    await put(key, 'brief', '?ttl=0.1')
    await sleep(300)
    expect(await getStatus(key)).toBe(404)
    const after = await stats()
    expect(after.expirations - before.expirations).toBe(1)
  })

  it('counts evictions once --max-entries is reached', async () => {
    const before = await stats()
    const count = entryCountMax + 10
    for (let i = 0; i < count; i++) await put(uniqueKey('ops-evict'), 'x')
    const after = await stats()
    expect(after.entries).toBe(entryCountMax)
    expect(after.evictions - before.evictions).toBe(before.entries + count - entryCountMax)
  })

  it('reports a growing uptime', async () => {
    const first = await stats()
    await sleep(1100)
    const second = await stats()
    expect(second.uptimeSeconds).toBeGreaterThan(first.uptimeSeconds)
  })

  it('serves Prometheus text on /metrics with slabkv_ hits and entries that match /v1/stats', async () => {
    expect(await getStatus(uniqueKey('ops-metrics-miss'))).toBe(404)
    const response = await fetch(`${server.url}/metrics`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; ?version=0\.0\.4/)
    const text = await response.text()
    const current = await stats()
    const samples = parseMetrics(text)
    const hits = [...samples.entries()].filter(([name]) => /^slabkv_\w*hits/.test(name))
    const entries = [...samples.entries()].filter(([name]) => /^slabkv_\w*entries/.test(name))
    expect(hits.length, text).toBeGreaterThan(0)
    expect(entries.length, text).toBeGreaterThan(0)
    expect(hits[0]![1]).toBe(current.hits)
    expect(entries[0]![1]).toBe(current.entries)
    expect(text).toMatch(/^# TYPE slabkv_\w+ (counter|gauge)$/m)
    expect(text).toMatch(/^# HELP slabkv_\w+ .+$/m)
  })
})

describe('OpenAPI document and Swagger UI', () => {
  it('serves an OpenAPI 3.1 document with the documented paths', async () => {
    const document = await expectJson<{ openapi: string; paths: Record<string, unknown> }>(
      await fetch(`${server.url}/openapi.json`),
      200,
    )
    expect(document.openapi).toMatch(/^3\.1(\.\d+)?$/)
    for (const path of ['/set', '/get/{key}', '/v1/kv/{key}', '/v1/batch']) {
      expect(Object.keys(document.paths), path).toContain(path)
    }
  })

  it('documents every route in the OpenAPI document', async () => {
    const document = await expectJson<{ paths: Record<string, Record<string, unknown>> }>(
      await fetch(`${server.url}/openapi.json`),
      200,
    )
    const expected: [string, string[]][] = [
      ['/set', ['post']],
      ['/get/{key}', ['get']],
      ['/delete/{key}', ['delete']],
      ['/v1/kv/{key}', ['put', 'get', 'head', 'delete']],
      ['/v1/kv', ['get']],
      ['/v1/batch', ['post']],
      ['/v1/stats', ['get']],
    ]
    const missing: string[] = []
    for (const [path, methods] of expected) {
      for (const method of methods) {
        if (document.paths[path]?.[method] === undefined) missing.push(`${method} ${path}`)
      }
    }
    expect(missing).toEqual([])
  })
})

describe('logs', () => {
  it("writes JSON lines: 'recovered' with what the log held, then 'listening' {url, threads, node}", () => {
    const lines = server
      .stdout()
      .split('\n')
      .filter((line) => line !== '')
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) {
      const parsed = JSON.parse(line) as Record<string, unknown>
      expect(parsed, line).toHaveProperty('time')
      expect(parsed, line).toHaveProperty('level')
      expect(parsed, line).toHaveProperty('msg')
    }
    expect(server.logs[0]?.msg).toBe('recovered')
    expect(server.logs[0]?.recordsReplayed).toBe(0)
    const first = server.logs[1]!
    expect(first.msg).toBe('listening')
    expect(first.url).toBe(server.url)
    expect(first.threads).toBe(Math.min(availableParallelism(), 8))
    expect(first.node).toBe(process.version)
  })
})
