import { afterAll, describe, expect, it } from 'vitest'
import { bucketBounds, type Operation, operations } from '../../src/http/request-times.js'
import {
  prometheusUnavailable,
  prometheusVersion,
  promtoolCheckMetrics,
} from '../support/prometheus.js'
import { killAll, type RunningServer, sleep, startServer } from '../support/server.js'

// /metrics as Prometheus' own linter reads it: `promtool check metrics` (Debian's prometheus
// package) on the answers of real servers, before any traffic, after requests to every
// operation on two handler threads with the miss-ratio curve on and a watch stream open, and on
// a server with a token and the curve off. Any complaint fails the test with promtool's words.
// The request-latency histogram must count exactly the requests the test sent, under the
// operation of each, whichever thread served it.

const skipReason = prometheusUnavailable()
if (skipReason !== undefined) console.warn(`metrics-promtool.test.ts skips: ${skipReason}`)
else console.log(`metrics-promtool: ${prometheusVersion()}`)

const servers: RunningServer[] = []

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()))
  await killAll()
})

/** Requests the test sent, by the operation that should count them. */
const sent = new Map<Operation, number>()

/** One request on a fresh connection (so that the kernel spreads them over the threads). */
async function send(
  server: RunningServer,
  operation: Operation,
  path: string,
  init: RequestInit = {},
  status?: number,
): Promise<string> {
  const headers = { connection: 'close', ...(init.headers as Record<string, string>) }
  const response = await fetch(`${server.url}${path}`, { ...init, headers })
  const text = await response.text()
  if (status !== undefined) expect(response.status, `${path}: ${text}`).toBe(status)
  sent.set(operation, (sent.get(operation) ?? 0) + 1)
  return text
}

/** Checks the exposition with promtool: no complaint, exit 0. */
function expectPromtoolPasses(text: string): void {
  const { status, output } = promtoolCheckMetrics(text)
  expect(output, `promtool check metrics said:\n${output}\n--- on ---\n${text}`).toBe('')
  expect(status, output).toBe(0)
}

/** The histogram's series by operation: the cumulative buckets (le → count), sum and count. */
function histogram(text: string) {
  const byOperation = new Map<
    string,
    { buckets: Map<string, number>; sum: number; count: number }
  >()
  const line =
    /^slabkv_http_request_duration_seconds_(bucket|sum|count)\{operation="(\w+)"(?:,le="([^"]+)")?\} (\S+)$/gm
  for (const [, part, operation = '', le, value] of text.matchAll(line)) {
    const entry = byOperation.get(operation) ?? { buckets: new Map(), sum: Number.NaN, count: -1 }
    byOperation.set(operation, entry)
    if (part === 'bucket') entry.buckets.set(le!, Number(value))
    else if (part === 'sum') entry.sum = Number(value)
    else entry.count = Number(value)
  }
  return byOperation
}

const lockFamilies = [
  'acquisitions_total',
  'contended_acquisitions_total',
  'sleeping_acquisitions_total',
  'wait_seconds_total',
  'hold_seconds_total',
]

/** The store lock's series: `family{operation="…"}` → value. */
function lockCounters(text: string): Map<string, number> {
  const series = new Map<string, number>()
  for (const [, name = '', value] of text.matchAll(/^slabkv_store_lock_(\S+) (\S+)$/gm)) {
    series.set(name, Number(value))
  }
  return series
}

describe.skipIf(skipReason !== undefined)('/metrics through promtool check metrics', () => {
  it('passes on two threads with the curve on, and counts every request under its operation', async () => {
    const server = await startServer(['--threads', '2', '--miss-ratio-curve', 'on'])
    servers.push(server)
    // Before any traffic: the histogram's family is declared, with no series yet.
    expectPromtoolPasses(await send(server, 'getMetrics', '/metrics', {}, 200))

    const text = 'text/plain'
    for (let i = 0; i < 5; i++) {
      const init = { method: 'PUT', body: `value ${i}`, headers: { 'content-type': text } }
      await send(server, 'putKey', `/v1/kv/promtool-${i}`, init, 201)
    }
    await send(
      server,
      'putKey',
      '/v1/kv/promtool-0',
      { method: 'PUT', headers: { 'if-match': '"999"' } },
      412,
    )
    for (let i = 0; i < 5; i++) await send(server, 'getKey', `/v1/kv/promtool-${i}`, {}, 200)
    await send(server, 'getKey', '/v1/kv/promtool-missing', {}, 404)
    // The route as the router reads it, not as the client spelled it.
    await send(server, 'getKey', '/v1/k%76/promtool-1', {}, 200)
    await send(server, 'headKey', '/v1/kv/promtool-2', { method: 'HEAD' }, 200)
    await send(server, 'headKey', '/v1/kv/promtool-missing', { method: 'HEAD' }, 404)
    await send(server, 'deleteKey', '/v1/kv/promtool-4', { method: 'DELETE' }, 204)
    await send(server, 'deleteKey', '/v1/kv/promtool-4', { method: 'DELETE' }, 404)
    await send(server, 'listKeys', '/v1/kv?prefix=promtool-', {}, 200)
    await send(server, 'listKeys', '/v1/kv?limit=0', {}, 400)
    const json = { 'content-type': 'application/json' }
    const batch = JSON.stringify({ ops: [{ op: 'get', key: 'promtool-0' }] })
    await send(server, 'runBatch', '/v1/batch', { method: 'POST', body: batch, headers: json }, 200)
    await send(server, 'runBatch', '/v1/batch', { method: 'POST', body: '{', headers: json }, 400)
    const set = JSON.stringify({ key: 'promtool-pykv', value: { a: 1 } })
    await send(server, 'pykvSet', '/set', { method: 'POST', body: set, headers: json }, 200)
    await send(server, 'pykvSet', '/set', { method: 'POST', body: '{"key":1}', headers: json }, 422)
    await send(server, 'pykvGet', '/get/promtool-pykv', {}, 200)
    await send(server, 'pykvDelete', '/delete/promtool-pykv', { method: 'DELETE' }, 200)
    await send(server, 'getCluster', '/v1/cluster', {}, 200)
    await send(server, 'healthz', '/healthz', {}, 200)
    await send(server, 'readyz', '/readyz', {}, 200)
    await send(server, 'other', '/nothing-here', {}, 404)
    await send(server, 'other', '/openapi.json', {}, 200)
    await send(server, 'other', '/', {}, 200)
    // The curve is published every second: wait for one that has seen the reads, then reset it.
    for (let attempt = 0; ; attempt++) {
      const stats = JSON.parse(await send(server, 'getStats', '/v1/stats', {}, 200))
      if (stats.missRatioCurve?.accessCount > 0) break
      expect(attempt, 'no miss-ratio curve within 10 s').toBeLessThan(100)
      await sleep(100)
    }
    const reset = '/v1/stats/miss-ratio-curve/reset'
    await send(server, 'resetMissRatioCurve', reset, { method: 'POST' }, 202)
    // A watch stream, open while /metrics is read: it counts once its stream has started.
    const watch = new AbortController()
    const stream = await fetch(`${server.url}/v1/watch?prefix=promtool-&since=0`, {
      signal: watch.signal,
    })
    expect(stream.status).toBe(200)
    sent.set('watchChanges', 1)
    const reader = stream.body!.getReader()
    await reader.read()

    const metrics = await send(server, 'getMetrics', '/metrics', {}, 200)
    watch.abort()
    await reader.read().catch(() => undefined)
    expectPromtoolPasses(metrics)
    expect(metrics).toMatch(/^slabkv_watch_streams 1$/m)
    expect(metrics).toMatch(/^slabkv_miss_ratio_curve_hit_ratio\{memory_bytes="\d+"\} /m)
    expect(metrics).toMatch(/^slabkv_threads 2$/m)
    // The store lock's counters: every operation the requests above took it for, as counters.
    const lock = lockCounters(metrics)
    for (const family of lockFamilies) {
      expect(metrics).toContain(`# TYPE slabkv_store_lock_${family} counter`)
    }
    // 7 reads through GET /v1/kv and 1 through /get; 5 plain PUTs and 1 POST /set (the PUT with
    // If-Match "999" is a set too, refused by its version); HEAD peeks.
    expect(lock.get('acquisitions_total{operation="get"}')).toBeGreaterThanOrEqual(8)
    expect(lock.get('acquisitions_total{operation="set"}')).toBeGreaterThanOrEqual(7)
    expect(lock.get('acquisitions_total{operation="peek"}')).toBeGreaterThanOrEqual(2)
    expect(lock.get('acquisitions_total{operation="transaction"}')).toBeGreaterThanOrEqual(3)
    expect(lock.get('acquisitions_total{operation="scan"}')).toBeGreaterThanOrEqual(1)
    for (const [series, count] of lock) {
      expect(count, series).toBeGreaterThanOrEqual(0)
      if (series.startsWith('contended_')) {
        const operation = series.slice(series.indexOf('{'))
        expect(count, series).toBeLessThanOrEqual(lock.get(`acquisitions_total${operation}`)!)
      }
    }

    const seen = histogram(metrics)
    // The scrape that read it is not in it yet: its head was not written.
    sent.set('getMetrics', sent.get('getMetrics')! - 1)
    expect([...seen.keys()].sort()).toEqual([...operations].sort())
    for (const [operation, { buckets, sum, count }] of seen) {
      const what = `${operation}: ${JSON.stringify([...buckets])} sum ${sum} count ${count}`
      expect(count, what).toBe(sent.get(operation as Operation))
      expect([...buckets.keys()], what).toEqual([...bucketBounds.map(String), '+Inf'])
      const counts = [...buckets.values()]
      expect(counts, what).toEqual([...counts].sort((a, b) => a - b))
      expect(buckets.get('+Inf'), what).toBe(count)
      expect(sum, what).toBeGreaterThan(0)
      expect(sum, what).toBeLessThan(count * 10)
    }
  })

  it('passes with a token and the curve off', async () => {
    const token = 'promtool-token-0123456789'
    const server = await startServer([
      '--threads',
      '1',
      '--miss-ratio-curve',
      'off',
      '--token',
      token,
    ])
    servers.push(server)
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401)
    const auth = { authorization: `Bearer ${token}` }
    const put = await fetch(`${server.url}/v1/kv/k`, { method: 'PUT', body: 'v', headers: auth })
    expect(put.status).toBe(201)
    const response = await fetch(`${server.url}/metrics`, { headers: auth })
    expect(response.status).toBe(200)
    const metrics = await response.text()
    expectPromtoolPasses(metrics)
    expect(metrics).not.toContain('slabkv_miss_ratio_curve')
    expect(metrics).toMatch(/^slabkv_http_request_duration_seconds_count\{operation="other"\} 1$/m)
    expect(metrics).toMatch(/^slabkv_http_request_duration_seconds_count\{operation="putKey"\} 1$/m)
  })
})
