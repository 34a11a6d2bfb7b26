import { createRoute, z } from '@hono/zod-openapi'
import { type App, type AppDeps, refusedResponse, whenDurable, whenLogged } from '../app.js'
import { decodeMediaType, tagJson } from '../media-type.js'
import { pathKey } from '../path-key.js'
import { seedValidationError } from '../validation.js'

// The PyKV-compatible routes, with the seed's exact status codes and bodies so its clients and
// its UI work unchanged. Unlike the seed, keys may hold '/' (percent-encoded in the path) and
// values may hold '|' and newlines: values are stored as JSON text, not in a delimited line.

const notFound = { detail: 'Key not found' } as const
const invalidPathKey = seedValidationError(
  'value_error',
  ['path', 'key'],
  'Key is not well-formed UTF-8',
)
const keyParam = z.object({ key: z.string().openapi({ description: 'The key, percent-encoded' }) })
const detailSchema = z.object({ detail: z.unknown() })

const setRoute = createRoute({
  method: 'post',
  path: '/set',
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
      content: { 'application/json': { schema: z.object({ status: z.literal('success') }) } },
    },
    413: {
      description: 'Value or body too large',
      content: { 'application/json': { schema: detailSchema } },
    },
    422: {
      description: 'Invalid input',
      content: { 'application/json': { schema: detailSchema } },
    },
  },
})

const getRoute = createRoute({
  method: 'get',
  path: '/get/{key}',
  summary: 'Read a value (PyKV-compatible)',
  request: { params: keyParam },
  responses: {
    200: {
      description: 'The key and its value',
      content: {
        'application/json': { schema: z.object({ key: z.string(), value: z.unknown() }) },
      },
    },
    404: { description: 'No such key', content: { 'application/json': { schema: detailSchema } } },
  },
})

const deleteRoute = createRoute({
  method: 'delete',
  path: '/delete/{key}',
  summary: 'Delete a key (PyKV-compatible)',
  request: { params: keyParam },
  responses: {
    200: {
      description: 'Deleted',
      content: { 'application/json': { schema: z.object({ status: z.literal('deleted') }) } },
    },
    404: { description: 'No such key', content: { 'application/json': { schema: detailSchema } } },
  },
})

// ignoreBOM: a value that begins with U+FEFF is returned with it, as it was stored.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true })

export function registerSeedRoutes(app: App, { store, durability, config }: AppDeps): void {
  app.openapi(setRoute, async (c) => {
    const body = c.req.valid('json')
    if (!('value' in body))
      return c.json(seedValidationError('missing', ['body', 'value'], 'Field required'), 422)
    const { key, value, ttl } = body
    const bytes = Buffer.from(JSON.stringify(value), 'utf8')
    if (bytes.byteLength > config.limits.valueSizeMax)
      return c.json({ detail: 'Value too large' }, 413)
    const result = await whenLogged(durability, () => {
      const set = store.set(key, bytes, {
        contentType: tagJson,
        ...(ttl !== undefined && { ttlMs: ttl * 1000 }),
      })
      return !set.ok && set.code === 'log_full' ? set.code : set
    })
    if (typeof result === 'string') return refusedResponse(c, result) as never
    if (!result.ok) {
      if (result.code === 'value_too_large' || result.code === 'entry_too_large') {
        return c.json({ detail: 'Value too large' }, 413)
      }
      return c.json(
        seedValidationError(
          result.code,
          ['body', result.code === 'ttl_invalid' ? 'ttl' : 'key'],
          messageOf(result.code),
        ),
        422,
      )
    }
    await durability.waitFor(result.version)
    return c.json({ status: 'success' as const }, 200)
  })

  app.openapi(getRoute, (c) => {
    const key = pathKey(c, '/get/')
    if (key === undefined) return c.json(invalidPathKey, 422) as never
    const entry = store.get(key)
    if (entry === undefined) {
      return whenDurable(durability, store.missSequence, () => c.json(notFound, 404)) as never
    }
    return whenDurable(durability, entry.version, () => {
      const { body } = decodeMediaType(entry.contentType, entry.value)
      const text = decoder.decode(body)
      return c.json({ key, value: entry.contentType === tagJson ? parseOrText(text) : text }, 200)
    }) as never
  })

  app.openapi(deleteRoute, async (c) => {
    const key = pathKey(c, '/delete/')
    if (key === undefined) return c.json(invalidPathKey, 422) as never
    const result = await whenLogged(durability, () => {
      const deleted = store.delete(key)
      return !deleted.ok && deleted.code === 'log_full' ? deleted.code : deleted
    })
    if (typeof result === 'string') return refusedResponse(c, result) as never
    if (!result.ok) {
      await durability.waitFor(store.sequence) // The absence may be a delete not yet durable.
      return c.json(notFound, 404)
    }
    await durability.waitFor(result.sequence)
    return c.json({ status: 'deleted' as const }, 200)
  })
}

/** A value PUT as application/json need not be valid JSON; it is then returned as text. */
function parseOrText(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
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
