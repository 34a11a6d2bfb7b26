import { afterAll, describe, expect, it } from 'vitest'
import { killAll, type RunningServer, sleep, startServer } from '../support/server.js'
import { expectJson } from './http.js'

// The miss-ratio curve of a real server (docs/api.md#the-miss-ratio-curve): every handler
// thread's reads reach the main thread's estimator, which publishes the curve back to every
// thread for GET /v1/stats and /metrics, and starts it again when asked.

interface Curve {
  points: { memorySize: number; hitRatio: number }[]
  sampledKeyCount: number
  accessCount: number
  droppedCount: number
  since: number
}

interface Stats {
  hits: number
  misses: number
  missRatioCurve: Curve | null
}

const servers: RunningServer[] = []

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()))
  await killAll()
})

async function stats(server: RunningServer): Promise<Stats> {
  return expectJson<Stats>(await fetch(`${server.url}/v1/stats`), 200)
}

/** Polls /v1/stats until the published curve passes `ready` (it is published every second). */
async function curveWhen(server: RunningServer, ready: (curve: Curve, s: Stats) => boolean) {
  for (let attempt = 0; ; attempt++) {
    const s = await stats(server)
    if (s.missRatioCurve !== null && ready(s.missRatioCurve, s)) return s.missRatioCurve
    if (attempt === 100) throw new Error(`no such curve: ${JSON.stringify(s.missRatioCurve)}`)
    await sleep(100)
  }
}

/**
 * A server with the curve on and two handler threads, `keyCount` keys of 1,000 bytes set in
 * order, then read in order three times over fresh connections, so that the kernel spreads the
 * reads over both threads. Returns the server and how many reads found their key.
 */
async function setThenRead(maxMemory: string, keyCount: number) {
  const server = await startServer([
    '--threads',
    '2',
    '--max-memory',
    maxMemory,
    '--miss-ratio-curve',
    'on',
  ])
  servers.push(server)
  const value = Buffer.alloc(1000, 120)
  const keys = Array.from({ length: keyCount }, (_, i) => `mrc-${String(i).padStart(3, '0')}`)
  for (const key of keys) {
    const response = await fetch(`${server.url}/v1/kv/${key}`, { method: 'PUT', body: value })
    expect(response.status).toBe(201)
    await response.arrayBuffer()
  }
  let found = 0
  for (let round = 0; round < 3; round++) {
    for (const key of keys) {
      const response = await fetch(`${server.url}/v1/kv/${key}`, {
        headers: { connection: 'close' },
      })
      if (response.status === 200) found += 1
      await response.arrayBuffer()
    }
  }
  return { server, found }
}

describe('the miss-ratio curve', () => {
  it('counts every read of every thread, and predicts an LRU of each size', async () => {
    const { server, found } = await setThenRead('1MiB', 200)
    expect(found).toBe(600)
    const curve = await curveWhen(server, (c, s) => c.accessCount === s.hits + s.misses)
    expect(curve.accessCount).toBe(600)
    // Fewer keys than the sample holds: every key is sampled, and the curve is exact.
    expect(curve.sampledKeyCount).toBe(200)
    expect(curve.droppedCount).toBe(0)
    const sizes = curve.points.map((point) => point.memorySize)
    expect(sizes.length).toBeGreaterThanOrEqual(16)
    expect(sizes[0]).toBe(2 ** 20 / 8)
    expect(sizes.at(-1)).toBe(2 ** 20 * 8)
    expect(sizes).toContain(2 ** 20)
    // Each read is 200 entries of 1,007 bytes after the last read of its key: a hit in any LRU
    // of 201,400 bytes or more, and in none smaller.
    for (const point of curve.points) {
      expect(point.hitRatio, String(point.memorySize)).toBe(point.memorySize >= 201_400 ? 1 : 0)
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    expect(metrics).toContain('slabkv_miss_ratio_curve_hit_ratio{memory_bytes="1048576"} 1\n')
    expect(metrics).toContain('slabkv_miss_ratio_curve_hit_ratio{memory_bytes="131072"} 0\n')
    expect(metrics).toMatch(/^slabkv_miss_ratio_curve_sampled_keys 200$/m)

    const reset = await fetch(`${server.url}/v1/stats/miss-ratio-curve/reset`, { method: 'POST' })
    expect(reset.status).toBe(202)
    await reset.arrayBuffer()
    const fresh = await curveWhen(server, (c) => c.since > curve.since)
    expect(fresh).toMatchObject({ accessCount: 0, sampledKeyCount: 0 })
  })

  it('models a store where a get that misses brings nothing back', async () => {
    // 400 entries of ~1 KiB in 256 KiB, then rounds of reads that nobody follows with a set:
    // the keys evicted by the sets stay gone, and the rest keep hitting. A model that counts a
    // read as a hit whenever the key was read within the last 256 KiB said 0.29 here.
    const { server, found } = await setThenRead('256KiB', 400)
    expect(found).toBeGreaterThan(0)
    expect(found).toBeLessThan(1200)
    const curve = await curveWhen(server, (c, s) => c.accessCount === s.hits + s.misses)
    const { hits, misses } = await stats(server)
    expect(hits).toBe(found)
    const atStoreSize = curve.points.find((point) => point.memorySize === 256 * 1024)!
    expect(atStoreSize.hitRatio).toBeCloseTo(hits / (hits + misses), 12)
  })

  it('is null, and cannot be reset, with --miss-ratio-curve off', async () => {
    const server = await startServer(['--threads', '1', '--miss-ratio-curve', 'off'])
    servers.push(server)
    await sleep(1200)
    expect((await stats(server)).missRatioCurve).toBeNull()
    const reset = await fetch(`${server.url}/v1/stats/miss-ratio-curve/reset`, { method: 'POST' })
    expect(reset.status).toBe(404)
    await reset.arrayBuffer()
    expect(await (await fetch(`${server.url}/metrics`)).text()).not.toContain('miss_ratio_curve')
  })
})
