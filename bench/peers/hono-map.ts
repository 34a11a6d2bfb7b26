import { serve } from '@hono/node-server'
import { Hono } from 'hono'

// The reference the HTTP benchmark measures slabkv against: the least a Hono server on Node
// needs to answer the benchmark's requests from a plain Map. Same framework, same Node
// adapter, same routes, status codes, headers and body shapes as slabkv, so the difference is
// what slabkv adds: OpenAPI validation, the shared buffer and its lock, copying values out,
// the LRU, the limits. No validation beyond what the benchmark's requests need, no eviction,
// no TTL, no conditions. Usage: node dist/bench/peers/hono-map.js <port>; it prints one JSON
// line with msg "listening" once it accepts connections, as slabkv serve does.

interface Entry {
  value: Uint8Array
  contentType: string
  version: number
}

const octetStream = 'application/octet-stream'
const json = 'application/json'
const decoder = new TextDecoder()
const encoder = new TextEncoder()
const map = new Map<string, Entry>()
/** Increases on every write, as slabkv's versions do, so ETags change the same way. */
let version = 0

function put(key: string, value: Uint8Array, contentType: string): boolean {
  const created = !map.has(key)
  map.set(key, { value, contentType, version: ++version })
  return created
}

const notFoundProblem = JSON.stringify({
  type: 'about:blank',
  title: 'Not Found',
  status: 404,
  code: 'not_found',
})

interface BatchOp {
  op: 'get' | 'set'
  key: string
  value?: string
}

const app = new Hono()

app.put('/v1/kv/:key', async (c) => {
  const value = new Uint8Array(await c.req.arrayBuffer())
  const created = put(c.req.param('key'), value, c.req.header('content-type') ?? octetStream)
  return c.json({ version }, created ? 201 : 200, { ETag: `"${version}"` })
})

app.get('/v1/kv/:key', (c) => {
  const entry = map.get(c.req.param('key'))
  if (entry === undefined) {
    return c.body(notFoundProblem, 404, { 'Content-Type': 'application/problem+json' })
  }
  return c.body(entry.value as Uint8Array<ArrayBuffer>, 200, {
    'Content-Type': entry.contentType,
    'Content-Length': String(entry.value.byteLength),
    ETag: `"${entry.version}"`,
  })
})

app.post('/set', async (c) => {
  const { key, value } = await c.req.json<{ key: string; value: unknown }>()
  put(key, encoder.encode(JSON.stringify(value)), json)
  return c.json({ status: 'success' }, 200)
})

app.get('/get/:key', (c) => {
  const key = c.req.param('key')
  const entry = map.get(key)
  if (entry === undefined) return c.json({ detail: 'Key not found' }, 404)
  const text = decoder.decode(entry.value)
  return c.json({ key, value: entry.contentType === json ? JSON.parse(text) : text }, 200)
})

app.post('/v1/batch', async (c) => {
  const { ops } = await c.req.json<{ ops: BatchOp[] }>()
  const results = ops.map((op) => {
    if (op.op === 'set') {
      put(op.key, encoder.encode(op.value ?? ''), octetStream)
      return { version }
    }
    const entry = map.get(op.key)
    if (entry === undefined) return { found: false }
    return {
      value: decoder.decode(entry.value),
      encoding: 'utf8',
      contentType: entry.contentType,
      version: entry.version,
    }
  })
  return c.json({ results }, 200)
})

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node dist/bench/peers/hono-map.js <port>\n')
  process.exit(2)
}
const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, (info) => {
  process.stdout.write(
    `${JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'listening', url: `http://127.0.0.1:${info.port}`, mode: 'main-thread', node: process.version })}\n`,
  )
})
process.once('SIGTERM', () => server.close(() => process.exit(0)))
