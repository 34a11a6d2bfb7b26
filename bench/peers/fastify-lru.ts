import Fastify from 'fastify'
import { LRUCache } from 'lru-cache'

// What a Node developer writes by hand for a cache over HTTP: fastify and lru-cache, one
// process, one thread. The same routes, status codes, headers and body shapes as slabkv's
// /v1/kv/{key} and /v1/batch, so the peers benchmark sends it the very requests it sends
// slabkv; no validation beyond what those requests need, no TTL, no conditions, no log. The
// cache holds at most as many entries as slabkv's default --max-entries and evicts the least
// recently used beyond that, as slabkv does. Usage: node dist/bench/peers/fastify-lru.js <port>;
// it prints one JSON line with msg "listening" once it accepts connections, as slabkv serve does.

interface Entry {
  value: Buffer
  contentType: string
  version: number
}

interface BatchOp {
  op: 'get' | 'set'
  key: string
  value?: string
}

const octetStream = 'application/octet-stream'
const entryCountMax = 1_000_000
const notFoundProblem = JSON.stringify({
  type: 'about:blank',
  title: 'Not Found',
  status: 404,
  code: 'not_found',
})

const cache = new LRUCache<string, Entry>({ max: entryCountMax })
/** Increases on every write, as slabkv's versions do, so ETags change the same way. */
let version = 0

function put(key: string, value: Buffer, contentType: string): boolean {
  const created = !cache.has(key)
  cache.set(key, { value, contentType, version: ++version })
  return created
}

// Options written out: fastify's defaults change between major versions.
const app = Fastify({
  logger: false,
  bodyLimit: 4 * 1024 * 1024, // slabkv's default --max-body-size.
  keepAliveTimeout: 5000,
  requestTimeout: 30_000,
  caseSensitive: true,
  ignoreTrailingSlash: false,
})

// Values are raw bytes of any content type; only /v1/batch is JSON.
app.removeAllContentTypeParsers()
app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
  try {
    done(null, JSON.parse(body as string))
  } catch (error) {
    done(error as Error, undefined)
  }
})
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))

app.put<{ Params: { key: string }; Body: Buffer }>('/v1/kv/:key', (request, reply) => {
  const contentType = request.headers['content-type'] ?? octetStream
  const created = put(request.params.key, request.body, contentType)
  void reply
    .code(created ? 201 : 200)
    .header('ETag', `"${version}"`)
    .send({ version })
})

app.get<{ Params: { key: string } }>('/v1/kv/:key', (request, reply) => {
  const entry = cache.get(request.params.key)
  if (entry === undefined) {
    void reply.code(404).header('Content-Type', 'application/problem+json').send(notFoundProblem)
    return
  }
  void reply
    .header('Content-Type', entry.contentType)
    .header('ETag', `"${entry.version}"`)
    .send(entry.value)
})

app.post<{ Body: { ops: BatchOp[] } }>('/v1/batch', (request, reply) => {
  const results = request.body.ops.map((op) => {
    if (op.op === 'set') {
      put(op.key, Buffer.from(op.value ?? ''), octetStream)
      return { version }
    }
    const entry = cache.get(op.key)
    if (entry === undefined) return { found: false }
    return {
      value: entry.value.toString('utf8'),
      encoding: 'utf8',
      contentType: entry.contentType,
      version: entry.version,
    }
  })
  void reply.send({ results })
})

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node dist/bench/peers/fastify-lru.js <port>\n')
  process.exit(2)
}
await app.listen({ host: '127.0.0.1', port })
process.stdout.write(
  `${JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'listening', url: `http://127.0.0.1:${port}`, mode: 'main-thread', node: process.version })}\n`,
)
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)))
