import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { evictionLogIntervalMs } from '../../src/http/evictions.js'
import {
  keyPath,
  killAll,
  type LogLine,
  type RunningServer,
  startServer,
} from '../support/server.js'

// Evictions are not silent (docs/api.md and docs/configuration.md): the answer to a write
// that evicted says how many keys it evicted (Slabkv-Evicted), on every write route, and the
// server logs a warning when evictions start, then at most one line per interval and thread with
// the count since, naming the flag whose limit made them. Against the real server process, its
// JSON log lines read from stdout.

/** Full by bytes long before by count. */
let byMemory: RunningServer
/** Full by count long before by bytes. */
let byCount: RunningServer

beforeAll(async () => {
  ;[byMemory, byCount] = await Promise.all([
    startServer(['--max-memory', '64KiB', '--max-entries', '1000']),
    startServer(['--max-entries', '10']),
  ])
})

afterAll(async () => {
  await Promise.all([byMemory?.stop(), byCount?.stop()])
  await killAll()
})

const evictedMessage = 'evicted keys to make room: the store is full'

async function evictionCount(server: RunningServer): Promise<number> {
  const stats = (await (await fetch(`${server.url}/v1/stats`)).json()) as { evictions: number }
  return stats.evictions
}

function put(server: RunningServer, key: string, size: number): Promise<Response> {
  return fetch(`${server.url}/v1/kv/${keyPath(key)}`, { method: 'PUT', body: 'v'.repeat(size) })
}

function batch(server: RunningServer, ops: Record<string, unknown>[]): Promise<Response> {
  return fetch(`${server.url}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ops }),
  })
}

/** The header as a number, or null without it; the answer must be a success. */
async function evictedBy(response: Response | Promise<Response>): Promise<number | null> {
  const answer = await response
  expect(answer.status, await answer.clone().text()).toBeLessThan(300)
  const header = answer.headers.get('slabkv-evicted')
  return header === null ? null : Number(header)
}

/** Runs a write and checks its header against the server's eviction counter. */
async function expectEvictedHeader(
  server: RunningServer,
  write: () => Promise<Response>,
): Promise<number> {
  const before = await evictionCount(server)
  const header = await evictedBy(write())
  const evicted = (await evictionCount(server)) - before
  expect(header).toBe(evicted === 0 ? null : evicted)
  return evicted
}

const warnings = (server: RunningServer): LogLine[] =>
  server.logs.filter((line) => line.level === 'warn' && line.msg === evictedMessage)

const evictedInLines = (server: RunningServer) =>
  warnings(server).reduce((sum, line) => sum + Number(line.evicted), 0)

describe('a write that evicts', () => {
  it('says how many keys it evicted, in Slabkv-Evicted, on PUT, POST /set and a batch', async () => {
    // 60 entries of about 1 KiB fill most of 64 KiB: nothing is evicted yet, nor said.
    const fill = Array.from({ length: 60 }, (_, i) => ({
      op: 'set',
      key: `fill/${String(i).padStart(2, '0')}`,
      value: 'f'.repeat(1000),
    }))
    expect(await expectEvictedHeader(byMemory, () => batch(byMemory, fill))).toBe(0)

    // 20 KB more: the oldest entries go, and the answer counts them.
    const firstEvicted = await expectEvictedHeader(byMemory, () => put(byMemory, 'big', 20_000))
    expect(firstEvicted).toBeGreaterThan(10)
    // Replaced at the same size, it needs no room: no header.
    expect(await expectEvictedHeader(byMemory, () => put(byMemory, 'big', 20_000))).toBe(0)

    const set = () =>
      fetch(`${byMemory.url}/set`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: 'seed/big', value: 's'.repeat(20_000) }),
      })
    expect(await expectEvictedHeader(byMemory, set)).toBeGreaterThan(0)
    const twoSets = () =>
      batch(byMemory, [
        { op: 'set', key: 'batch/a', value: 'a'.repeat(15_000) },
        { op: 'get', key: 'big' },
        { op: 'set', key: 'batch/b', value: 'b'.repeat(15_000) },
      ])
    expect(await expectEvictedHeader(byMemory, twoSets)).toBeGreaterThan(0)
    // A batch that only reads evicts nothing.
    expect(await evictedBy(batch(byMemory, [{ op: 'get', key: 'batch/a' }]))).toBeNull()

    // The warning came when evictions started: the first evicting write's thread told its
    // count at once (each thread tells its own first).
    await expect.poll(() => warnings(byMemory).length).toBeGreaterThan(0)
    const told = warnings(byMemory).find((line) => line.evicted === firstEvicted)
    expect(told).toMatchObject({
      evictedFor: { '--max-memory': firstEvicted, '--max-entries': 0 },
      hint: 'raise --max-memory (65536 bytes of keys and values now) to keep more keys',
      bytesMax: 65536,
      entriesMax: 1000,
    })
  })

  it('logs at most a line per interval and thread, which together count every eviction', async () => {
    const linesBefore = warnings(byMemory).length
    // Each of these evicts: 30 writes of a third of the store.
    const writes = 30
    for (let i = 0; i < writes; i++) {
      expect(await evictedBy(put(byMemory, `burst/${i}`, 20_000))).toBeGreaterThan(0)
    }
    // What waits for the interval is told when it ends: every eviction ends up in a line.
    const total = await evictionCount(byMemory)
    await expect
      .poll(() => evictedInLines(byMemory), { timeout: 3 * evictionLogIntervalMs })
      .toBe(total)
    // Far fewer lines than evicting writes: the count is summed, not a line per write.
    expect(warnings(byMemory).length - linesBefore).toBeLessThan(writes / 2)
  })

  it('names --max-entries when the count is what is full', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => ({ op: 'set', key: `k${i}`, value: 'x' }))
    expect(await expectEvictedHeader(byCount, () => batch(byCount, keys))).toBe(0)
    expect(await expectEvictedHeader(byCount, () => put(byCount, 'one-more', 1))).toBe(1)
    await expect.poll(() => warnings(byCount)).toHaveLength(1)
    expect(warnings(byCount)[0]).toMatchObject({
      evicted: 1,
      evictedFor: { '--max-memory': 0, '--max-entries': 1 },
      hint: 'raise --max-entries (10 entries now) to keep more keys',
      entries: 10,
      entriesMax: 10,
    })
  })
})

describe('the OpenAPI document', () => {
  it('declares Slabkv-Evicted on the answers of the writes that can evict', async () => {
    const document = (await (await fetch(`${byMemory.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, { headers?: object }> }>>
    }
    const declared = (path: string, method: string, status: string) =>
      Object.keys(document.paths[path]?.[method]?.responses[status]?.headers ?? {})
    expect(declared('/v1/kv/{key}', 'put', '200')).toEqual(['Slabkv-Evicted'])
    expect(declared('/v1/kv/{key}', 'put', '201')).toEqual(['Slabkv-Evicted'])
    expect(declared('/set', 'post', '200')).toEqual(['Slabkv-Evicted'])
    expect(declared('/v1/batch', 'post', '200')).toEqual(['Slabkv-Evicted'])
  })
})
