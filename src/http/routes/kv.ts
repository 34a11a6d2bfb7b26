import { isAscii } from 'node:buffer'
import { createRoute, z } from '@hono/zod-openapi'
import type { ServerConfig } from '../../config.js'
import {
  codeOfStoreError,
  type ErrorCode,
  entryRefusal,
  keyRefusal,
  valueRefusal,
} from '../../errors.js'
import type { Store } from '../../store/store.js'
import type { Entry, SetOptions, StoreResult } from '../../store/types.js'
import { readBody } from '../body.js'
import type { App, RouteDeps } from '../deps.js'
import { etagOf, parseEtags, versionsOf } from '../etag.js'
import { evictedHeader, evictedHeaderDoc } from '../evictions.js'
import { decodeMediaType, encodeMediaType, mediaTypeRefusal } from '../media-type.js'
import { pathKey } from '../path-key.js'
import { answeredBy, timedAs } from '../request-times.js'
import {
  logRefusalResponses,
  problemContent,
  problemResponse,
  whenDurable,
  whenLogged,
} from '../respond.js'
import { markApplied } from '../server.js'
import { formatTtlSeconds, parseTtlSeconds, ttlRefusal } from '../ttl.js'

// /v1/kv/{key}: raw bytes in and out, with their Content-Type, ETags from versions, and
// conditional requests (RFC 9110 §13): If-Match for compare-and-set, If-None-Match: * for
// create-only, If-None-Match on reads for 304.

const keyParam = z.object({ key: z.string().openapi({ description: 'The key, percent-encoded' }) })
// The conditional headers are documented here rather than declared as a schema: a declared
// header schema is validated on every request, which cost a tenth of a GET's server time, and
// the handlers parse these two headers themselves anyway.
const conditions =
  'Conditional requests: If-Match: "n" (or a list, or *) writes or deletes only at that version; ' +
  'If-None-Match: * writes only when the key is absent; on GET, If-None-Match: "n" answers 304.'

const putRoute = createRoute({
  method: 'put',
  path: '/v1/kv/{key}',
  operationId: 'putKey',
  summary: 'Store the request body under the key, with its Content-Type',
  description: conditions,
  request: {
    params: keyParam,
    query: z.object({
      ttl: z.string().optional().openapi({ description: 'Seconds to live, > 0' }),
    }),
    body: {
      content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
    },
  },
  responses: {
    200: {
      description: 'Replaced',
      headers: { [evictedHeader]: evictedHeaderDoc },
      content: { 'application/json': { schema: z.object({ version: z.number() }) } },
    },
    201: {
      description: 'Created',
      headers: { [evictedHeader]: evictedHeaderDoc },
      content: { 'application/json': { schema: z.object({ version: z.number() }) } },
    },
    400: { description: 'Invalid key, TTL, Content-Type or condition', content: problemContent },
    412: { description: 'A condition failed; nothing changed', content: problemContent },
    413: {
      description: 'Value or entry too large, or the body over --max-body-size',
      content: problemContent,
    },
    ...logRefusalResponses,
  },
})

const getRoute = createRoute({
  method: 'get',
  path: '/v1/kv/{key}',
  operationId: 'getKey',
  summary: 'Read the bytes (HEAD: only the headers, without refreshing recency)',
  description: conditions,
  request: { params: keyParam },
  responses: {
    200: {
      description: 'The bytes, with Content-Type, ETag and, for an entry with a TTL, Slabkv-Ttl',
      content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
    },
    304: { description: 'Not modified (If-None-Match matched)' },
    400: { description: 'Invalid key', content: problemContent },
    404: { description: 'No such key', content: problemContent },
  },
})

const deleteRoute = createRoute({
  method: 'delete',
  path: '/v1/kv/{key}',
  operationId: 'deleteKey',
  middleware: timedAs('deleteKey'),
  summary: 'Delete the key',
  description: conditions,
  request: { params: keyParam },
  responses: {
    204: { description: 'Deleted' },
    400: { description: 'Invalid key or If-Match', content: problemContent },
    404: { description: 'No such key', content: problemContent },
    412: { description: 'If-Match failed; nothing changed', content: problemContent },
    ...logRefusalResponses,
  },
})

/**
 * The versions If-Match accepts: 'any' for *, a list (empty when no tag names a version of
 * ours, which then fails like any other mismatch), or undefined when the header is malformed.
 */
function ifMatchVersions(header: string): number[] | 'any' | undefined {
  const tags = parseEtags(header)
  return tags === undefined || tags === 'any' ? tags : versionsOf(tags, 'strong')
}

/** Names in lower case, as every other answer's (fetch Headers lower-case them). */
function entryHeaders(entry: Entry, mediaType: string, size: number): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': mediaType,
    'content-length': String(size),
    etag: etagOf(entry.version),
    // A stored value is never a page of this origin: no content sniffing, and a page stored as
    // text/html runs sandboxed, without the origin's cookies, storage or API (DNS rebinding
    // and stored scripts get nothing from the UI's origin).
    'x-content-type-options': 'nosniff',
    'content-security-policy': 'sandbox',
  }
  if (entry.expiresAt !== 0) headers['slabkv-ttl'] = formatTtlSeconds(entry.expiresAt, Date.now())
  return headers
}

export function registerKvRoutes(
  app: App,
  { store, durability, config, evictions }: RouteDeps,
): void {
  // Hono answers HEAD with the GET handler (which then uses peek); the route is declared here
  // only so the OpenAPI document lists it.
  app.openAPIRegistry.registerPath({
    method: 'head',
    path: '/v1/kv/{key}',
    operationId: 'headKey',
    summary: 'The headers of a GET, without the body; does not refresh recency',
    request: { params: keyParam },
    responses: {
      200: { description: 'Content-Type, Content-Length, ETag and, with a TTL, Slabkv-Ttl' },
      // A HEAD answer has no body: the problem a GET would carry is not sent.
      400: { description: 'Invalid key' },
      404: { description: 'No such key' },
    },
  })
  const valueSizeMax = config.limits.valueSizeMax
  // A key route without a key is a request for the empty key, which no key can be.
  app.on(['PUT', 'GET', 'DELETE'], '/v1/kv/', () => problemResponse('key_empty'))
  // Like GET below, documented from its declaration but served by a plain Hono route: the
  // handler checks the key, query and headers itself, so zod would only parse them twice.
  app.openAPIRegistry.registerPath(putRoute)
  app.put('/v1/kv/:key', async (c) => {
    answeredBy(c, 'putKey')
    const key = pathKey(c)
    if (key === undefined) return problemResponse('key_invalid')
    const keyError = store.checkKey(key)
    if (keyError !== undefined) return keyProblem(keyError, key, config)
    const ttlSeconds = parseTtlSeconds(c.req.query('ttl'))
    if (Number.isNaN(ttlSeconds)) return problemResponse('ttl_invalid', ttlRefusal)
    const contentType = c.req.header('content-type')
    const mediaType = encodeMediaType(contentType)
    if (typeof mediaType === 'string') {
      const detail = mediaTypeRefusal(contentType ?? '', mediaType)
      return problemResponse('content_type_invalid', detail)
    }
    const body = await readBody(c)
    // The limit is on the body; an uncommon media type stored inline does not count against it.
    if (body.byteLength > valueSizeMax) {
      const detail = valueRefusal(body.byteLength, config.limits)
      return problemResponse('value_too_large', detail)
    }
    const value = mediaType.prefix.length === 0 ? body : concat(mediaType.prefix, body)
    const options: SetOptions = { contentType: mediaType.tag }
    if (ttlSeconds !== undefined) options.ttlMs = ttlSeconds * 1000

    const ifMatch = c.req.header('if-match')
    const ifNoneMatch = c.req.header('if-none-match')
    const wanted = ifMatch === undefined ? undefined : ifMatchVersions(ifMatch)
    if (ifMatch !== undefined && wanted === undefined) {
      return problemResponse('invalid_request', 'If-Match must be * or a list of ETags')
    }
    if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
      return problemResponse('invalid_request', 'On PUT, If-None-Match must be *')
    }
    // Single-ETag conditions are the store's own ifAbsent / ifVersion; * and lists check and
    // write in one lock hold, so nothing can slip in between.
    const write = (): { version: number; created: boolean } | ErrorCode | 'log_full' => {
      // If-Match is evaluated first (RFC 9110 §13.2.2) and holds only for an existing key, which
      // If-None-Match: * then refuses: together they can never both hold.
      if (ifMatch !== undefined && ifNoneMatch !== undefined) return 'precondition_failed'
      if (ifNoneMatch !== undefined) {
        return settle(store.set(key, value, { ...options, ifAbsent: true }))
      }
      if (wanted === undefined) return settle(store.set(key, value, options))
      if (wanted !== 'any' && wanted.length === 1) {
        return settle(store.set(key, value, { ...options, ifVersion: wanted[0]! }))
      }
      return store.atomically((tx) => {
        const version = tx.peekVersion(key)
        if (version === undefined || (wanted !== 'any' && !wanted.includes(version))) {
          return 'precondition_failed' as const
        }
        return settle(tx.set(key, value, options))
      })
    }
    const { tally, attempt } = evictions.counting(write)
    const outcome = await whenLogged(durability, attempt)
    markApplied(c)
    // A plain Response with plain headers, for the reason respondBytes gives.
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    evictions.reportInto(headers, tally)
    if (typeof outcome === 'string') {
      // A failed condition reveals state, which may be a write not yet durable.
      if (outcome === 'precondition_failed') await durability.waitFor(store.sequence)
      // The value fits its own limit (checked above): the store refused it as larger than itself.
      const detail =
        outcome === 'value_too_large'
          ? entryRefusal(
              Buffer.byteLength(key) + body.byteLength,
              config.limits,
              mediaType.prefix.byteLength,
            )
          : undefined
      const { 'content-type': _json, ...evicted } = headers
      return problemResponse(outcome, detail, undefined, evicted)
    }
    await durability.waitFor(outcome.version)
    headers.etag = etagOf(outcome.version)
    return new Response(JSON.stringify({ version: outcome.version }), {
      status: outcome.created ? 201 : 200,
      headers,
    })
  })

  // The hottest route is documented from its declaration but served by a plain Hono route:
  // declared through app.openapi(), its path parameter would go through zod on every read,
  // and the handler decodes and checks the key itself (pathKey, then the store).
  app.openAPIRegistry.registerPath(getRoute)
  app.get('/v1/kv/:key', (c) => {
    answeredBy(c, c.req.method === 'HEAD' ? 'headKey' : 'getKey')
    const key = pathKey(c)
    if (key === undefined) return problemResponse('key_invalid')
    const keyError = store.checkKey(key)
    if (keyError !== undefined) return keyProblem(keyError, key, config)
    // HEAD is an inspection: it answers from peek, so it neither refreshes recency nor counts.
    const entry = c.req.method === 'HEAD' ? store.peek(key) : store.get(key)
    if (entry === undefined) {
      return whenDurable(durability, store.missSequence, () => problemResponse('not_found'))
    }
    return whenDurable(durability, entry.version, () => {
      const ifNoneMatch = c.req.header('if-none-match')
      if (ifNoneMatch !== undefined) {
        // If-None-Match compares weakly (RFC 9110 §13.1.2): W/"n" matches version n too.
        const tags = parseEtags(ifNoneMatch)
        if (tags === 'any' || (tags && versionsOf(tags, 'weak').includes(entry.version))) {
          return c.body(null, 304, { ETag: etagOf(entry.version) })
        }
      }
      const { mediaType, body } = decodeMediaType(entry.contentType, entry.value)
      return respondBytes(body, entryHeaders(entry, mediaType, body.byteLength))
    })
  })

  app.openapi(deleteRoute, async (c) => {
    const key = pathKey(c)
    if (key === undefined) return problemResponse('key_invalid')
    const keyError = store.checkKey(key)
    if (keyError !== undefined) return keyProblem(keyError, key, config)
    const ifMatch = c.req.header('if-match')
    const wanted = ifMatch === undefined ? undefined : ifMatchVersions(ifMatch)
    if (ifMatch !== undefined && wanted === undefined) {
      return problemResponse('invalid_request', 'If-Match must be * or a list of ETags')
    }
    const outcome = await whenLogged(durability, () =>
      store.atomically((tx) => {
        if (wanted !== undefined && wanted !== 'any') {
          const version = tx.peekVersion(key)
          if (version === undefined) return 'not_found' as const
          if (!wanted.includes(version)) return 'precondition_failed' as const
        }
        const result = tx.delete(key)
        if (result.ok) return result.sequence
        return result.code === 'log_full' ? result.code : codeOfStoreError(result.code)
      }),
    )
    markApplied(c)
    if (outcome === 'not_found' || outcome === 'precondition_failed') {
      // Absent, or at another version: state that may come from a write not yet durable.
      await durability.waitFor(store.sequence)
    }
    if (typeof outcome === 'string') return problemResponse(outcome)
    await durability.waitFor(outcome)
    return c.body(null, 204)
  })
}

function keyProblem(
  code: NonNullable<ReturnType<Store['checkKey']>>,
  key: string,
  config: ServerConfig,
) {
  return problemResponse(codeOfStoreError(code), keyRefusal(code, key, config.limits))
}

/**
 * Values up to this size that are ASCII go out as a string. Node writes a string body in one
 * write with the head it follows, where a bytes body goes through a corked second chunk and a
 * writev; a string of ASCII is the same bytes in UTF-8, which @hono/node-server sends it as.
 * The head then goes out in UTF-8 too, where it is otherwise written as Latin-1: so only when
 * every header is ASCII. Of a read's headers, only the stored media type can be otherwise (a
 * client may send Latin-1 in a parameter); the rest are digits and fixed words.
 */
const stringBodySizeMax = 1024
const nonAscii = /[\u0080-\uffff]/

/**
 * The answer of a read, as a Response with its headers as a plain object: @hono/node-server
 * writes those straight to the socket, where c.body() with more than one header builds a
 * fetch Headers object, then copies it out again (several µs of a read that takes about 35).
 * Nothing on the read path sets headers through the context (c.header) that this would drop;
 * middleware that changes c.res afterwards (CORS) still can.
 */
function respondBytes(body: Uint8Array, headers: Record<string, string>) {
  const sent =
    body.byteLength <= stringBodySizeMax &&
    isAscii(body) &&
    !nonAscii.test(headers['content-type']!)
      ? Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1')
      : (body as Uint8Array<ArrayBuffer>)
  return new Response(sent, { status: 200, headers })
}

function settle(result: StoreResult<{ version: number; created: boolean }>) {
  if (result.ok) return { version: result.version, created: result.created }
  return result.code === 'log_full' ? result.code : codeOfStoreError(result.code)
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length)
  joined.set(a)
  joined.set(b, a.length)
  return joined
}
