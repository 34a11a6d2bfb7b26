import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  killAllPrometheus,
  prometheusUnavailable,
  prometheusVersion,
  type RunningPrometheus,
  startPrometheus,
} from '../support/prometheus.js'
import { killAll, type RunningServer, sleep, startServer } from '../support/server.js'

// A real Prometheus (Debian's prometheus package) scraping a real node every second, from a
// temporary configuration and storage directory, on a loopback port of its own. The test writes
// and reads, waits until Prometheus has scraped the node after the last request (polling
// Prometheus' targets, with a deadline), then reads the series back through Prometheus' own HTTP
// API: what it stored must be exactly what the test did, and its types what /metrics declared.

const skipReason = prometheusUnavailable()
if (skipReason !== undefined) console.warn(`prometheus.test.ts skips: ${skipReason}`)

const scrapeIntervalS = 1
/** How long to wait for a scrape that started after the traffic: a few intervals, on a busy CI. */
const scrapeDeadlineMs = 30_000
const keyCount = 20
const hitCount = 30
const missCount = 7

let server: RunningServer
let prometheus: RunningPrometheus

/** The one sample of an instant query, as a number. */
async function scalar(expression: string): Promise<number> {
  const result = await prometheus.query(expression)
  expect(result.length, `${expression}: ${JSON.stringify(result)}`).toBe(1)
  return Number(result[0]!.value[1])
}

describe.skipIf(skipReason !== undefined)('a node scraped by Prometheus', () => {
  beforeAll(async () => {
    console.log(`prometheus: ${prometheusVersion()}`)
    server = await startServer(['--threads', '2'])
    prometheus = await startPrometheus({ targets: [`127.0.0.1:${server.port}`], scrapeIntervalS })
  })

  afterAll(async () => {
    await prometheus?.stop()
    await killAllPrometheus()
    await server?.stop()
    await killAll()
  })

  it('stores entries, hits, misses and the latency histogram as the node served them', async () => {
    for (let i = 0; i < keyCount; i++) {
      const response = await fetch(`${server.url}/v1/kv/prom-${i}`, {
        method: 'PUT',
        body: `value ${i}`,
        headers: { connection: 'close' },
      })
      expect(response.status).toBe(201)
      await response.arrayBuffer()
    }
    for (let i = 0; i < hitCount + missCount; i++) {
      const key = i < hitCount ? `prom-${i % keyCount}` : `prom-missing-${i}`
      const response = await fetch(`${server.url}/v1/kv/${key}`, {
        headers: { connection: 'close' },
      })
      expect(response.status).toBe(i < hitCount ? 200 : 404)
      await response.arrayBuffer()
    }
    const trafficEndMs = Date.now()

    // The only wait: for a scrape that started after the last answer. Its figures are final.
    const deadline = trafficEndMs + scrapeDeadlineMs
    for (;;) {
      const [target] = await prometheus.targets()
      const scraped = target !== undefined && Date.parse(target.lastScrape) > trafficEndMs
      if (scraped && target.health === 'up') break
      if (Date.now() > deadline) {
        throw new Error(
          `no successful scrape after the traffic within ${scrapeDeadlineMs} ms: ${JSON.stringify(target)}\n--- prometheus log ---\n${prometheus.log()}`,
        )
      }
      await sleep(200)
    }

    expect(await scalar('up{job="slabkv"}')).toBe(1)
    expect(await scalar('slabkv_entries')).toBe(keyCount)
    expect(await scalar('slabkv_sets_total')).toBe(keyCount)
    expect(await scalar('slabkv_hits_total')).toBe(hitCount)
    expect(await scalar('slabkv_misses_total')).toBe(missCount)
    expect(await scalar('slabkv_threads')).toBe(2)

    // The store lock's counters: one acquisition per PUT and per GET, as Prometheus stored them.
    const lock = 'slabkv_store_lock_acquisitions_total'
    expect(await scalar(`${lock}{operation="set"}`)).toBe(keyCount)
    expect(await scalar(`${lock}{operation="get"}`)).toBe(hitCount + missCount)
    // Timed 1 in 16 on average, so 37 gets over two threads may have none timed: it exists.
    expect(
      await scalar('slabkv_store_lock_hold_seconds_total{operation="get"}'),
    ).toBeGreaterThanOrEqual(0)

    const latency = 'slabkv_http_request_duration_seconds'
    expect(await scalar(`${latency}_count{operation="putKey"}`)).toBe(keyCount)
    expect(await scalar(`${latency}_count{operation="getKey"}`)).toBe(hitCount + missCount)
    expect(await scalar(`${latency}_bucket{operation="getKey",le="+Inf"}`)).toBe(
      hitCount + missCount,
    )
    const puts = await scalar(`${latency}_sum{operation="putKey"}`)
    expect(puts).toBeGreaterThan(0)
    expect(puts).toBeLessThan(keyCount * 10)
    // Prometheus reads the buckets as a histogram: a quantile within the buckets' range.
    const median = await scalar(`histogram_quantile(0.5, ${latency}_bucket{operation="getKey"})`)
    expect(median).toBeGreaterThan(0)
    expect(median).toBeLessThanOrEqual(10)

    // The types Prometheus took from the scrape's TYPE lines.
    for (const [metric, type] of [
      ['slabkv_entries', 'gauge'],
      ['slabkv_hits_total', 'counter'],
      [lock, 'counter'],
      [latency, 'histogram'],
    ] as const) {
      const metadata = await prometheus.metadata(metric)
      expect(
        metadata.map((entry) => entry.type),
        metric,
      ).toEqual([type])
    }
  })
})
