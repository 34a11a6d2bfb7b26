import { createRoute, z } from '@hono/zod-openapi'
import type { App, AppDeps } from '../deps.js'
import { decodeMediaType, tagInline } from '../media-type.js'
import { timedAs } from '../request-times.js'
import { problemContent, problemResponse } from '../respond.js'

// GET /v1/kv?prefix=&cursor=&limit=: one page of a scan over the store's slots. The cursor is
// the next slot to look at; a key resident for the whole listing keeps its slot, so it is
// listed exactly once whatever changes meanwhile (see Store.scan).
//
// A page ends when it is full and the next matching key is found (its slot is the cursor), or
// when the scan reaches the end (cursor null): a listing never ends in an empty page. One
// request examines at most scanCallsPerPageMax calls' worth of slots (262,144), so that a
// prefix few keys match cannot make one request walk a million slots: only then may a page
// hold fewer than `limit` keys, or none, with a cursor that is not null (docs/api.md, "GET /v1/kv").

const limitDefault = 100
const limitMax = 1000
/** Store.scan examines a bounded number of slots per call; at most this many calls per page. */
const scanCallsPerPageMax = 64

const itemSchema = z.object({
  key: z.string(),
  size: z.number(),
  contentType: z.string(),
  version: z.number(),
  ttl: z.number().nullable().openapi({ description: 'Seconds left, or null' }),
})

/** The sequence a listing reflects every change up to; a watch resumes from it. */
export const sequenceHeader = 'Slabkv-Sequence'

const listRoute = createRoute({
  method: 'get',
  path: '/v1/kv',
  operationId: 'listKeys',
  middleware: timedAs('listKeys'),
  summary: 'List keys by prefix, a page at a time',
  request: {
    query: z.object({
      prefix: z.string().optional(),
      cursor: z
        .string()
        .optional()
        .openapi({ description: 'From the previous page; absent to start' }),
      limit: z
        .string()
        .optional()
        .openapi({ description: `1 to ${limitMax}, default ${limitDefault}` }),
    }),
  },
  responses: {
    200: {
      description: 'A page of keys and the cursor for the next (null at the end)',
      headers: {
        [sequenceHeader]: {
          description:
            "Every change up to this sequence is reflected in the page: GET /v1/watch?since= the first page's value misses nothing after the listing",
          schema: { type: 'integer' },
        },
      },
      content: {
        'application/json': {
          schema: z.object({ items: z.array(itemSchema), cursor: z.string().nullable() }),
        },
      },
    },
    400: { description: 'Invalid cursor or limit', content: problemContent },
  },
})

export function registerListRoute(app: App, { store, durability }: AppDeps): void {
  app.openapi(listRoute, async (c) => {
    const {
      prefix = '',
      cursor: cursorText = '0',
      limit: limitText = String(limitDefault),
    } = c.req.valid('query')
    if (!/^\d+$/.test(cursorText) || !Number.isSafeInteger(Number(cursorText)))
      return problemResponse('invalid_request', 'cursor must come from a previous page')
    if (!/^\d+$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > limitMax) {
      return problemResponse('invalid_request', `limit must be 1 to ${limitMax}`)
    }
    const limit = Number(limitText)
    let cursor: number | null = Number(cursorText)
    // Every change up to here is in the store before the scan starts, so the page shows it or
    // something newer: a watch from this sequence on (GET /v1/watch?since=) misses nothing.
    const appliedBefore = store.sequence
    const now = Date.now()
    const items: z.infer<typeof itemSchema>[] = []
    // Each call stops at the next match once the page is full, at the end, or at its bound of
    // slots; only the bound leaves something to look at (a full page then looks on, limit 0,
    // for whether anything follows).
    let boundReached = true
    for (let call = 0; call < scanCallsPerPageMax && cursor !== null && boundReached; call++) {
      const page = store.scan(prefix, cursor, limit - items.length)
      cursor = page.cursor
      boundReached = page.boundReached
      for (const scanned of page.items) {
        let item = scanned
        let size = item.valueSize
        let contentType = decodeMediaType(item.contentType, new Uint8Array(0)).mediaType
        if (item.contentType === tagInline) {
          // Uncommon media types live inside the value; read it to report them exactly. The
          // entry read may be newer than the one scanned: everything shown is then the newer
          // one's, version included, so the wait below covers what is shown.
          const entry = store.peek(item.key)
          if (entry === undefined) continue
          const decoded = decodeMediaType(entry.contentType, entry.value)
          contentType = decoded.mediaType
          size = decoded.body.byteLength
          item = {
            key: item.key,
            valueSize: size,
            contentType: entry.contentType,
            version: entry.version,
            expiresAt: entry.expiresAt,
          }
        }
        const ttl = item.expiresAt === 0 ? null : Math.max(0, (item.expiresAt - now) / 1000)
        items.push({ key: item.key, size, contentType, version: item.version, ttl })
      }
    }
    // No version may be shown before it is durable, nor an absence a removal caused.
    await durability.waitFor(
      items.reduce((max, item) => Math.max(max, item.version), store.missSequence),
    )
    // A watch refuses a sequence that is not durable yet; one below appliedBefore only resends
    // changes the page may already show.
    const sequence = Math.min(appliedBefore, durability.durableSequence())
    return c.json({ items, cursor: cursor === null ? null : String(cursor) }, 200, {
      [sequenceHeader]: String(sequence),
    })
  })
}
