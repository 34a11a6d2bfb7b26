import assert from 'node:assert/strict'

// How each system spells the benchmark's logical requests. Every scenario is written once,
// against these operations (get a key, set a key, get many, set many); a dialect maps them to
// one system's URLs and bodies, twice: for fetch (preloading, and the check of each scenario's
// answers before any load) and as Lua functions for wrk's scripts.
//
// - slabkv: slabkv's native routes, which fastify + lru-cache and Hono + Map copy exactly.
//   GET /v1/kv/{key} answers the bytes (200) or 404; PUT /v1/kv/{key} with the raw body answers
//   200 or 201; POST /v1/batch {"ops":[…]} answers {"results":[…]} in one lock hold.
// - webdis: Redis commands in the URL. GET /GET/{key}.txt answers the bytes as they are (the
//   .txt extension; without it webdis wraps them in JSON) or 404 with no body on a missing key;
//   PUT /SET/{key} takes the value from the body and answers {"SET":[true,"OK"]}. webdis answers
//   a Redis error with 200 and [false,"ERR …"], so a write counts only on that exact body.
//   Batches: MGET and MSET, one Redis command each (webdis runs no MULTI/EXEC), so a batch is
//   all gets or all sets; MGET's keys ride in the URL, MSET's keys and values in a POST body.

export type DialectName = 'slabkv' | 'webdis'

export interface Answer {
  status: number
  body: string
}

export interface Dialect {
  name: DialectName
  /** The path of a single GET, for autocannon. */
  getPath(key: string): string
  get(url: string, key: string): Promise<Answer>
  /** Throws unless the system acknowledged the write. */
  set(url: string, key: string, value: string): Promise<void>
  /** The values, in order, null for a missing key. */
  getMany(url: string, keys: string[]): Promise<(string | null)[]>
  /** Throws unless the system acknowledged every write. */
  setMany(url: string, entries: [string, string][]): Promise<void>
  /**
   * Lua defining getRequest(key), setRequest(key, value), getManyRequest(keys),
   * setManyRequest(keys, values) (each returns a wrk request string), setOk(status, body) and
   * setManyOk(status, body, n); getManyRequest's answer is checked by the scenario. It may use
   * count(text, needle) from the prologue in wrk.ts.
   */
  lua: string
}

async function answer(response: Response): Promise<Answer> {
  return { status: response.status, body: await response.text() }
}

function expect(got: Answer, status: number[], what: string): void {
  assert(status.includes(got.status), `${what}: ${got.status} ${got.body.slice(0, 200)}`)
}

const octetHeaders = { 'Content-Type': 'application/octet-stream' }
const jsonHeaders = { 'Content-Type': 'application/json' }

const slabkv: Dialect = {
  name: 'slabkv',
  getPath: (key) => `/v1/kv/${encodeURIComponent(key)}`,
  async get(url, key) {
    return answer(await fetch(url + this.getPath(key)))
  },
  async set(url, key, value) {
    const init = { method: 'PUT', headers: octetHeaders, body: value }
    expect(await answer(await fetch(url + this.getPath(key), init)), [200, 201], `PUT ${key}`)
  },
  async getMany(url, keys) {
    const got = await batch(
      url,
      keys.map((key) => ({ op: 'get', key })),
    )
    return got.map((result) => (typeof result.value === 'string' ? result.value : null))
  },
  async setMany(url, entries) {
    const got = await batch(
      url,
      entries.map(([key, value]) => ({ op: 'set', key, value })),
    )
    assert(
      got.every((result) => typeof result.version === 'number'),
      'a batch set was not acknowledged',
    )
  },
  lua: `
local octet = { ["Content-Type"] = "application/octet-stream" }
local json = { ["Content-Type"] = "application/json" }
function getRequest(key) return wrk.format("GET", "/v1/kv/" .. key) end
function setRequest(key, value) return wrk.format("PUT", "/v1/kv/" .. key, octet, value) end
function setOk(status, body) return (status == 200 or status == 201) and string.sub(body, 1, 11) == '{"version":' end
local function batchRequest(ops) return wrk.format("POST", "/v1/batch", json, '{"ops":[' .. table.concat(ops, ",") .. "]}") end
function getManyRequest(keys)
  local ops = {}
  for i, key in ipairs(keys) do ops[i] = '{"op":"get","key":"' .. key .. '"}' end
  return batchRequest(ops)
end
function setManyRequest(keys, values)
  local ops = {}
  for i, key in ipairs(keys) do ops[i] = '{"op":"set","key":"' .. key .. '","value":"' .. values[i] .. '"}' end
  return batchRequest(ops)
end
function setManyOk(status, body, n) return status == 200 and count(body, '"version":') == n end
`,
}

async function batch(
  url: string,
  ops: object[],
): Promise<{ value?: unknown; version?: unknown }[]> {
  const init = { method: 'POST', headers: jsonHeaders, body: JSON.stringify({ ops }) }
  const got = await answer(await fetch(`${url}/v1/batch`, init))
  expect(got, [200], 'POST /v1/batch')
  const { results } = JSON.parse(got.body) as { results: { value?: unknown }[] }
  assert.equal(results.length, ops.length, 'a batch answered another number of results')
  return results
}

/** webdis reads `/` as an argument separator and `.` as the output format: both must be escaped. */
const webdisArg = (text: string) =>
  encodeURIComponent(text).replaceAll('.', '%2E').replaceAll('%3A', ':')

const webdis: Dialect = {
  name: 'webdis',
  getPath: (key) => `/GET/${webdisArg(key)}.txt`,
  async get(url, key) {
    return answer(await fetch(url + this.getPath(key)))
  },
  async set(url, key, value) {
    const init = { method: 'PUT', headers: octetHeaders, body: value }
    const got = await answer(await fetch(`${url}/SET/${webdisArg(key)}`, init))
    assert.equal(got.body, '{"SET":[true,"OK"]}', `webdis SET ${key}: ${got.status} ${got.body}`)
  },
  async getMany(url, keys) {
    const got = await answer(await fetch(`${url}/MGET/${keys.map(webdisArg).join('/')}`))
    expect(got, [200], 'webdis MGET')
    return (JSON.parse(got.body) as { MGET: (string | null)[] }).MGET
  },
  async setMany(url, entries) {
    const body = `MSET/${entries.flat().map(webdisArg).join('/')}`
    const got = await answer(await fetch(`${url}/`, { method: 'POST', body }))
    assert.equal(got.body, '{"MSET":[true,"OK"]}', `webdis MSET: ${got.status} ${got.body}`)
  },
  // Keys and values in the scenarios hold no "/" or "." (checked in scenarios.ts), so the Lua
  // side needs no escaping.
  lua: `
local octet = { ["Content-Type"] = "application/octet-stream" }
function getRequest(key) return wrk.format("GET", "/GET/" .. key .. ".txt") end
function setRequest(key, value) return wrk.format("PUT", "/SET/" .. key, octet, value) end
function setOk(status, body) return status == 200 and body == '{"SET":[true,"OK"]}' end
function getManyRequest(keys) return wrk.format("GET", "/MGET/" .. table.concat(keys, "/")) end
function setManyRequest(keys, values)
  local args = {}
  for i, key in ipairs(keys) do args[2 * i - 1], args[2 * i] = key, values[i] end
  return wrk.format("POST", "/", nil, "MSET/" .. table.concat(args, "/"))
end
function setManyOk(status, body, n) return status == 200 and body == '{"MSET":[true,"OK"]}' end
`,
}

export const dialects: Record<DialectName, Dialect> = { slabkv, webdis }
