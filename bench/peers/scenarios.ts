import assert from 'node:assert/strict'
import type { AutocannonOptions } from '../autocannon.js'
import type { Dialect } from '../dialects.js'
import { createRandom } from '../measure.js'
import { checkPreloaded, digits, type Keyspace, key, valueText } from '../preload.js'
import { getOkLua, prepareLua as prepare } from '../wrk.js'

// The scenarios: the same logical requests to every system, in each system's dialect. Keys are
// drawn at random per request from a seeded generator (wrk's math.random, seeded in
// bench/wrk.ts), so every system sees the same sequence. Every system is preloaded with keyCount
// keys of valueSize-byte values (bench/preload.ts) before the first scenario.
//
// Batches, and what is comparable: slabkv's /v1/batch runs any mix of gets and sets under one
// lock hold; Redis has MGET and MSET, one command each, and webdis cannot send MULTI/EXEC, so
// the batch scenarios are a batch of gets (/v1/batch with 100 get ops against MGET of 100 keys)
// and a batch of sets (100 set ops against MSET of 100 pairs). Both answer JSON with every
// value (gets) or one acknowledgement (sets); Redis's AOF writes (and with appendfsync always,
// fsyncs) an MSET once, as slabkv's group commit syncs a batch once. fastify + lru-cache and
// Hono + Map implement /v1/batch with slabkv's body shapes.

export const keyCount = 10_000
export const valueSize = 100
export const largeValueSize = 16 * 1024
export const batchOpCount = 100
export const keyspace: Keyspace = { keyCount, valueSize }
const mixSetShare = 0.1
/** Distinct precomputed batch requests per scenario, drawn at random per request. */
const batchGetPoolSize = 1024
const batchSetPoolSize = 256

// webdis reads "/" and "." in a URL as syntax; the Lua side sends keys and values unescaped.
assert(!/[/.]/.test(key(0) + valueText(0, 20)))

export interface Scenario {
  id: string
  title: string
  generator: 'wrk' | 'autocannon'
  /** Store operations per request: req/s × this is ops/s. */
  opsPerRequest: number
  /**
   * Lua defining prepare(), which wrk calls once per thread before any request (wrk.ts): it
   * precomputes requests and defines nextRequest() and ok(status, body), over the dialect's
   * request functions.
   */
  lua: string
  /** For autocannon: the request, drawn afresh for every measurement, and its answers' check. */
  autocannon?(dialect: Dialect): Pick<AutocannonOptions, 'request' | 'ok'>
  /** Sends a few such requests with fetch and checks every answer, before any load. */
  check(url: string, dialect: Dialect): Promise<void>
}

const getOk = getOkLua(valueSize)
const getsLua = `local gets = {}
for n = 0, keyCount - 1 do gets[n + 1] = getRequest(key(n)) end
`
/** Every key's SET, of a preloaded-size value, formatted once. */
const setsLua = `local sets = {}
for n = 0, keyCount - 1 do sets[n + 1] = setRequest(key(n), valueText(n, ${valueSize})) end
`

const checkGetHit = (url: string, dialect: Dialect) => checkPreloaded(url, dialect, keyspace)

async function checkSet(url: string, dialect: Dialect, size: number): Promise<void> {
  const checkKey = `check:set:${size}`
  const value = valueText(size, size)
  await dialect.set(url, checkKey, value)
  const got = await dialect.get(url, checkKey)
  assert.equal(got.status, 200, `GET ${checkKey} after SET: ${got.status}`)
  assert.equal(got.body, value, `GET ${checkKey} after SET answered other bytes`)
}

export const scenarios: Scenario[] = [
  {
    id: 'get-hit',
    title: 'GET hit',
    generator: 'wrk',
    opsPerRequest: 1,
    lua: prepare(
      `${getsLua}function nextRequest() return gets[math.random(keyCount)] end\n${getOk}`,
    ),
    check: checkGetHit,
  },
  {
    id: 'get-miss',
    title: 'GET miss',
    generator: 'wrk',
    opsPerRequest: 1,
    lua: prepare(`local misses = {}
for n = 0, keyCount - 1 do misses[n + 1] = getRequest(string.format("nokey:%012d", n)) end
function nextRequest() return misses[math.random(keyCount)] end
function ok(status, body) return status == 404 end
`),
    async check(url, dialect) {
      const got = await dialect.get(url, `nokey:${digits(7)}`)
      assert.equal(got.status, 404, `GET of a missing key: ${got.status} ${got.body}`)
    },
  },
  {
    // Replaces preloaded keys with values of the same size and shape, so GET hit stays valid.
    id: 'set-small',
    title: `SET ${valueSize} B`,
    generator: 'wrk',
    opsPerRequest: 1,
    lua: prepare(`${setsLua}function nextRequest() return sets[math.random(keyCount)] end
ok = setOk
`),
    check: (url, dialect) => checkSet(url, dialect, valueSize),
  },
  {
    // Keys of their own (big:<n>), first written during the warm-up: GET hit reads 100-byte
    // values throughout. Formatted per request: 10,000 precomputed 16 KiB requests would hold
    // 160 MiB in each of wrk's Lua states.
    id: 'set-large',
    title: 'SET 16 KiB',
    generator: 'wrk',
    opsPerRequest: 1,
    lua: prepare(`local big = valueText(0, ${largeValueSize})
function nextRequest() return setRequest(string.format("big:%012d", math.random(keyCount) - 1), big) end
ok = setOk
`),
    check: (url, dialect) => checkSet(url, dialect, largeValueSize),
  },
  {
    id: 'mix',
    title: '90% GET / 10% SET',
    generator: 'wrk',
    opsPerRequest: 1,
    lua: prepare(`${getsLua}${setsLua}function nextRequest()
  local n = math.random(keyCount)
  if math.random() < ${mixSetShare} then return sets[n] end
  return gets[n]
end
function ok(status, body)
  return (status == 200 and #body == 100 and string.sub(body, 1, 6) == "value:") or setOk(status, body)
end
`),
    async check() {}, // Its two requests are checked by GET hit and SET 100 B.
  },
  {
    id: 'batch-get',
    title: `batch of ${batchOpCount} GETs`,
    generator: 'wrk',
    opsPerRequest: batchOpCount,
    lua: prepare(`local pool = {}
for b = 1, ${batchGetPoolSize} do
  local keys = {}
  for i = 1, ${batchOpCount} do keys[i] = key(math.random(keyCount) - 1) end
  pool[b] = getManyRequest(keys)
end
function nextRequest() return pool[math.random(${batchGetPoolSize})] end
-- Each value found is a JSON string starting "value: (a missing key would be null or found:false).
function ok(status, body) return status == 200 and count(body, '"value:') == ${batchOpCount} end
`),
    async check(url, dialect) {
      const ns = Array.from({ length: batchOpCount }, (_, i) => (i * 97) % keyCount)
      const values = await dialect.getMany(url, ns.map(key))
      assert.deepEqual(
        values,
        ns.map((n) => valueText(n, valueSize)),
        'a batch of gets answered other values',
      )
    },
  },
  {
    id: 'batch-set',
    title: `batch of ${batchOpCount} SETs`,
    generator: 'wrk',
    opsPerRequest: batchOpCount,
    lua: prepare(`local pool = {}
for b = 1, ${batchSetPoolSize} do
  local keys, values = {}, {}
  for i = 1, ${batchOpCount} do
    local n = math.random(keyCount) - 1
    keys[i], values[i] = key(n), valueText(n, ${valueSize})
  end
  pool[b] = setManyRequest(keys, values)
end
function nextRequest() return pool[math.random(${batchSetPoolSize})] end
function ok(status, body) return setManyOk(status, body, ${batchOpCount}) end
`),
    async check(url, dialect) {
      const keys = Array.from({ length: batchOpCount }, (_, i) => `check:batch:${digits(i)}`)
      const values = keys.map((_, i) => valueText(i, valueSize))
      await dialect.setMany(
        url,
        keys.map((k, i) => [k, values[i]!]),
      )
      assert.deepEqual(await dialect.getMany(url, keys), values, 'a batch of sets was not stored')
    },
  },
  {
    // The same requests as GET hit, and the same check of every answer, from the Node-native
    // load generator (bench/autocannon.ts), in the benchmark's process.
    id: 'get-hit-autocannon',
    title: 'GET hit (autocannon)',
    generator: 'autocannon',
    opsPerRequest: 1,
    lua: '',
    autocannon(dialect) {
      const paths = Array.from({ length: keyCount }, (_, n) => dialect.getPath(key(n)))
      const random = createRandom(0x5eed)
      return {
        request: {
          method: 'GET',
          setupRequest(request) {
            request.path = paths[Math.floor(random() * keyCount)]!
            return request
          },
        },
        ok: (status, body) =>
          status === 200 && body.length === valueSize && body.startsWith('value:'),
      }
    },
    check: checkGetHit,
  },
]
