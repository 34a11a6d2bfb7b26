import assert from 'node:assert/strict'
import type { AutocannonRequest as Request } from '../autocannon.js'
import { dialects } from '../dialects.js'
import { createRandom } from '../measure.js'
import { checkPreloaded, digits, type Keyspace, key } from '../preload.js'

// What bench:http sends, with autocannon: one request template per scenario, which draws its key
// (or body) per request from a seeded generator, and a check of each scenario's answers with
// fetch before any load. Every system is preloaded with keyCount keys of valueSize-byte values
// (bench/preload.ts).

export const keyCount = 10_000
export const valueSize = 100
export const keyspace: Keyspace = { keyCount, valueSize }
export const batchOpCount = 100
export const batchSetCount = 10
/** Distinct request bodies per batch scenario, drawn at random per request. */
const batchBodyCount = 1024
export const mixSetPerMille = 100
export const seed = 0x5eed

/** The preloaded keys (16 bytes, as in the store bench); /set writes its own keys so /v1/kv values stay bytes. */
const kvKeys = Array.from({ length: keyCount }, (_, n) => key(n))
const setKeys = Array.from({ length: keyCount }, (_, n) => `set:${digits(n)}`)
const kvPaths = kvKeys.map((key) => `/v1/kv/${key}`)
const missPaths = kvKeys.map((_, n) => `/v1/kv/nokey:${digits(n)}`)
/** 100 ASCII characters, so the same text is 100 bytes as a body and 100 chars in JSON. */
const tagged = (tag: string, n: number) => `${tag}:${n}:`.padEnd(valueSize, 'x')
const putBody = Buffer.from(tagged('put', 0))
const setBodies = setKeys.map((key, n) =>
  Buffer.from(JSON.stringify({ key, value: tagged('set', n) })),
)
const octetHeaders = { 'Content-Type': 'application/octet-stream' }
const jsonHeaders = { 'Content-Type': 'application/json' }
assert.equal(putBody.byteLength, valueSize)

/** 90 gets and 10 sets at random places, on random preloaded keys. */
function batchBodies(random: () => number): Buffer[] {
  const pick = () => kvKeys[Math.floor(random() * keyCount)]!
  return Array.from({ length: batchBodyCount }, (_, b) => {
    const ops: object[] = Array.from({ length: batchOpCount }, () => ({ op: 'get', key: pick() }))
    for (let s = 0; s < batchSetCount; s++) {
      let index = Math.floor(random() * batchOpCount)
      while ((ops[index] as { op: string }).op === 'set') index = (index + 1) % batchOpCount
      ops[index] = { op: 'set', key: pick(), value: tagged('batch', b) }
    }
    return Buffer.from(JSON.stringify({ ops }))
  })
}
const batchPool = batchBodies(createRandom(seed ^ 0xba7c4))

export interface Scenario {
  title: string
  /** Statuses that count as throughput; any other fails the benchmark. */
  statuses: number[]
  /** Store operations per request: req/s × this is ops/s. */
  opsPerRequest: number
  /** One request template for autocannon, drawing from `random` per request. */
  request(random: () => number): Request
  /** Sends one such request with fetch and checks the answer, before any load. */
  check(url: string): Promise<void>
}

const pickOf = (random: () => number) => Math.floor(random() * keyCount)

async function expectStatus(response: Response, status: number, what: string): Promise<string> {
  const text = await response.text()
  assert.equal(response.status, status, `${what}: ${response.status} ${text.slice(0, 200)}`)
  return text
}

export const scenarios: Scenario[] = [
  {
    title: 'GET /v1/kv hit',
    statuses: [200],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'GET',
      setupRequest: (request) => {
        request.path = kvPaths[pickOf(random)]!
        return request
      },
    }),
    check: (url) => checkPreloaded(url, dialects.slabkv, keyspace),
  },
  {
    title: 'GET /v1/kv miss',
    statuses: [404],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'GET',
      setupRequest: (request) => {
        request.path = missPaths[pickOf(random)]!
        return request
      },
    }),
    async check(url) {
      const got = await dialects.slabkv.get(url, `nokey:${digits(7)}`)
      assert.equal(got.status, 404, `GET miss: ${got.status} ${got.body.slice(0, 200)}`)
    },
  },
  {
    title: 'PUT /v1/kv',
    statuses: [200, 201],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'PUT',
      headers: octetHeaders,
      body: putBody,
      setupRequest: (request) => {
        request.path = kvPaths[pickOf(random)]!
        return request
      },
    }),
    async check(url) {
      const init = { method: 'PUT', headers: octetHeaders, body: putBody }
      await expectStatus(await fetch(url + kvPaths[keyCount - 1]!, init), 200, 'PUT replace')
      const text = await expectStatus(await fetch(url + kvPaths[keyCount - 1]!), 200, 'GET')
      assert.equal(text, putBody.toString(), 'PUT did not store its body')
    },
  },
  {
    title: 'POST /set',
    statuses: [200],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'POST',
      path: '/set',
      headers: jsonHeaders,
      setupRequest: (request) => {
        request.body = setBodies[pickOf(random)]!
        return request
      },
    }),
    async check(url) {
      const init = { method: 'POST', headers: jsonHeaders, body: setBodies[7]! }
      const text = await expectStatus(await fetch(`${url}/set`, init), 200, 'POST /set')
      assert.deepEqual(JSON.parse(text), { status: 'success' })
      const read = await expectStatus(await fetch(`${url}/get/${setKeys[7]!}`), 200, 'GET /get')
      assert.deepEqual(JSON.parse(read), { key: setKeys[7], value: tagged('set', 7) })
    },
  },
  {
    title: 'mix 90% GET / 10% PUT',
    statuses: [200, 201],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'GET',
      setupRequest: (request) => {
        request.path = kvPaths[pickOf(random)]!
        if (random() * 1000 < mixSetPerMille) {
          request.method = 'PUT'
          request.headers = { ...octetHeaders }
          request.body = putBody
        }
        return request
      },
    }),
    async check() {}, // Its two requests are checked by the GET hit and PUT scenarios.
  },
  {
    title: `POST /v1/batch, ${batchOpCount} ops`,
    statuses: [200],
    opsPerRequest: batchOpCount,
    request: (random) => ({
      method: 'POST',
      path: '/v1/batch',
      headers: jsonHeaders,
      setupRequest: (request) => {
        request.body = batchPool[Math.floor(random() * batchBodyCount)]!
        return request
      },
    }),
    async check(url) {
      const init = { method: 'POST', headers: jsonHeaders, body: batchPool[0]! }
      const text = await expectStatus(await fetch(`${url}/v1/batch`, init), 200, 'batch')
      const { results } = JSON.parse(text) as { results: { value?: string; version?: number }[] }
      assert.equal(results.length, batchOpCount)
      const ops = (JSON.parse(batchPool[0]!.toString()) as { ops: { op: string }[] }).ops
      for (const [index, op] of ops.entries()) {
        const result = results[index]!
        if (op.op === 'get') assert.equal(result.value?.length, valueSize, 'a batch get missed')
        else assert.equal(typeof result.version, 'number', 'a batch set failed')
      }
    },
  },
]
export const getHitName = scenarios[0]!.title
