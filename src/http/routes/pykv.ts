import { createRoute, z } from '@hono/zod-openapi'
import { entryRefusal, keyRefusal, valueRefusal } from '../../errors.js'
import type { App, RouteDeps } from '../deps.js'
import { evictedHeader, evictedHeaderDoc } from '../evictions.js'
import { decodeMediaType, tagJson } from '../media-type.js'
import { pathKey } from '../path-key.js'
import { timedAs } from '../request-times.js'
import { errorResponse, untypedContent, whenDurable, whenLogged } from '../respond.js'
import { markApplied } from '../server.js'
import { isTtlSeconds, ttlSecondsMax } from '../ttl.js'
import { pykvValidationError } from '../validation.js'

// The PyKV-compatible routes, with PyKV's exact status codes and bodies so its clients and
// its UI work unchanged. Unlike PyKV, keys may hold '/' (percent-encoded in the path) and
// values may hold '|' and newlines: values are stored as JSON text, not in a delimited line.

const notFound = { detail: 'Key not found' } as const
const invalidPathKey = pykvValidationError(
  'value_error',
  ['path', 'key'],
  'Key is not well-formed UTF-8',
)
const keyParam = z.object({ key: z.string().openapi({ description: 'The key, percent-encoded' }) })
// FastAPI's error shapes, under the names FastAPI's own documents give them, so that a client
// generated from PyKV's document and one generated from this one read the same types.
const httpError = untypedContent({
  'application/json': { schema: z.object({ detail: z.string() }).openapi('HTTPError') },
})
const validationError = untypedContent({
  'application/json': {
    schema: z
      .object({
        detail: z.array(
          z
            .object({
              loc: z.array(z.union([z.string(), z.number().int()])),
              msg: z.string(),
              type: z.string(),
            })
            .openapi('ValidationError'),
        ),
      })
      .openapi('HTTPValidationError'),
  },
})

/** A write the log cannot take: {"detail": <the error's title>}. */
const logRefusals = {
  503: { description: 'The log failed (storage_failed): nothing changed', content: httpError },
  507: { description: 'The disk is full (storage_full): nothing changed', content: httpError },
}

const setRoute = createRoute({
  method: 'post',
  path: '/set',
  operationId: 'pykvSet',
  middleware: timedAs('pykvSet'),
  summary: 'Store a key-value pair (PyKV-compatible)',
  request: {
    body: {
      required: true,
      content: {
        'application/json': {
          schema: z.object({
            key: z.string(),
            // Any JSON value, null included. z.unknown() documents as "any"; that the field is
            // present is checked in the handler (a custom schema has no OpenAPI form).
            value: z.unknown().openapi({ description: 'Any JSON value (required)' }),
            ttl: z.number().positive().optional().openapi({ description: 'Seconds to live' }),
          }),
        },
      },
    },
  },
  responses: {
    200: {
      description: 'Stored',
      headers: { [evictedHeader]: evictedHeaderDoc },
      content: { 'application/json': { schema: z.object({ status: z.literal('success') }) } },
    },
    413: { description: 'Value, entry or body too large', content: httpError },
    422: { description: 'Invalid input', content: validationError },
    ...logRefusals,
  },
})

const getRoute = createRoute({
  method: 'get',
  path: '/get/{key}',
  operationId: 'pykvGet',
  middleware: timedAs('pykvGet'),
  summary: 'Read a value (PyKV-compatible)',
  request: { params: keyParam },
  responses: {
    200: {
      description: 'The key and its value',
      content: {
        'application/json': { schema: z.object({ key: z.string(), value: z.unknown() }) },
      },
    },
    404: { description: 'No such key', content: httpError },
    422: { description: 'The key is not well-formed UTF-8', content: validationError },
  },
})

const deleteRoute = createRoute({
  method: 'delete',
  path: '/delete/{key}',
  operationId: 'pykvDelete',
  middleware: timedAs('pykvDelete'),
  summary: 'Delete a key (PyKV-compatible)',
  request: { params: keyParam },
  responses: {
    200: {
      description: 'Deleted',
      content: { 'application/json': { schema: z.object({ status: z.literal('deleted') }) } },
    },
    404: { description: 'No such key', content: httpError },
    422: { description: 'The key is not well-formed UTF-8', content: validationError },
    ...logRefusals,
  },
})

// ignoreBOM: a value that begins with U+FEFF is returned with it, as it was stored.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true })

/** As on every value response (routes/kv.ts): a stored value is never a page of this origin. */
const valueHeaders = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': 'sandbox',
} as const

export function registerPykvRoutes(
  app: App,
  { store, durability, config, evictions }: RouteDeps,
): void {
  app.openapi(setRoute, async (c) => {
    const body = c.req.valid('json')
    if (!('value' in body))
      return c.json(pykvValidationError('missing', ['body', 'value'], 'Field required'), 422)
    const { key, value, ttl } = body
    // Checked before the value is serialized, which would run out of stack thousands deep.
    if (jsonDepthOf(value, config.jsonDepthMax) > config.jsonDepthMax) {
      const message = `Value is nested deeper than ${config.jsonDepthMax} levels of arrays and objects (--max-json-depth)`
      return c.json(pykvValidationError('json_too_deep', ['body', 'value'], message), 422)
    }
    if (ttl !== undefined && !isTtlSeconds(ttl)) {
      const message = `Input should be less than or equal to ${ttlSecondsMax.toFixed(0)}`
      return c.json(pykvValidationError('less_than_equal', ['body', 'ttl'], message), 422)
    }
    const bytes = Buffer.from(JSON.stringify(value), 'utf8')
    if (bytes.byteLength > config.limits.valueSizeMax) {
      return c.json({ detail: valueRefusal(bytes.byteLength, config.limits) }, 413)
    }
    const { tally, attempt } = evictions.counting(() => {
      const set = store.set(key, bytes, {
        contentType: tagJson,
        ...(ttl !== undefined && { ttlMs: ttl * 1000 }),
      })
      return !set.ok && set.code === 'log_full' ? set.code : set
    })
    const result = await whenLogged(durability, attempt)
    markApplied(c)
    evictions.report(c, tally)
    if (typeof result === 'string') return errorResponse(c, result)
    if (!result.ok) {
      if (result.code === 'value_too_large' || result.code === 'entry_too_large') {
        const entrySize = Buffer.byteLength(key) + bytes.byteLength
        return c.json({ detail: entryRefusal(entrySize, config.limits) }, 413)
      }
      return c.json(
        pykvValidationError(
          result.code,
          ['body', result.code === 'ttl_invalid' ? 'ttl' : 'key'],
          keyRefusal(result.code, key, config.limits) ?? messageOf(result.code),
        ),
        422,
      )
    }
    await durability.waitFor(result.version)
    return c.json({ status: 'success' as const }, 200)
  })

  app.openapi(getRoute, (c) => {
    const key = pathKey(c)
    if (key === undefined) return c.json(invalidPathKey, 422)
    const entry = store.get(key)
    if (entry === undefined) {
      return whenDurable(durability, store.missSequence, () => c.json(notFound, 404))
    }
    return whenDurable(durability, entry.version, () => {
      const { body } = decodeMediaType(entry.contentType, entry.value)
      const text = decoder.decode(body)
      // Stored JSON goes out as the text it is, not parsed and serialized again: serializing runs
      // out of stack on a value nested thousands deep (PUT stores any bytes), and parsing never
      // does. The text is spliced in only once it has parsed, so the answer is always JSON.
      const valueJson = entry.contentType === tagJson && isJson(text) ? text : JSON.stringify(text)
      return c.body(`{"key":${JSON.stringify(key)},"value":${valueJson}}`, 200, {
        'Content-Type': 'application/json',
        ...valueHeaders,
      })
    })
  })

  app.openapi(deleteRoute, async (c) => {
    const key = pathKey(c)
    if (key === undefined) return c.json(invalidPathKey, 422)
    const result = await whenLogged(durability, () => {
      const deleted = store.delete(key)
      return !deleted.ok && deleted.code === 'log_full' ? deleted.code : deleted
    })
    markApplied(c)
    if (typeof result === 'string') return errorResponse(c, result)
    if (!result.ok) {
      await durability.waitFor(store.sequence) // The absence may be a delete not yet durable.
      return c.json(notFound, 404)
    }
    await durability.waitFor(result.sequence)
    return c.json({ status: 'deleted' as const }, 200)
  })
}

/** A value PUT as application/json need not be valid JSON; it is then returned as text. */
function isJson(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/**
 * How deeply arrays and objects nest in a parsed JSON value (0 for a scalar), counted without
 * recursion and only as far as depthMax + 1: past that, the exact depth does not matter.
 */
function jsonDepthOf(value: unknown, depthMax: number): number {
  let deepest = 0
  const pending: [unknown, number][] = [[value, 0]]
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const [node, depth] = item
    if (node === null || typeof node !== 'object') continue
    const inner = depth + 1
    if (inner > deepest) deepest = inner
    if (inner > depthMax) return inner
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') pending.push([child, inner])
    }
  }
  return deepest
}

function messageOf(code: string): string {
  switch (code) {
    case 'key_empty':
      return 'String should have at least 1 character'
    case 'key_too_large':
      return 'Key is larger than the key size limit'
    case 'key_invalid':
      return 'Key is not well-formed UTF-8'
    case 'ttl_invalid':
      return 'Input should be greater than 0'
    default:
      return code
  }
}
