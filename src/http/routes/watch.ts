import { createRoute, z } from '@hono/zod-openapi'
import { I32 } from '../../store/layout.js'
import { type ChangeOp, changeOps } from '../../watch/change.js'
import type { ChangeFeed } from '../../watch/feed.js'
import { oldestSequenceOnDisk } from '../../watch/log-reader.js'
import { watchStream } from '../../watch/watcher.js'
import type { App, AppDeps } from '../deps.js'
import { timedAs } from '../request-times.js'
import { problemContent, problemResponse } from '../respond.js'

// GET /v1/watch: the change feed, as Server-Sent Events (src/watch/watcher.ts says what a stream
// sends). A client resumes with Last-Event-ID (what EventSource sends when it reconnects) or
// ?since=; history the log no longer holds is answered 410, so the client knows to list again
// rather than miss changes without knowing it, as etcd answers a compacted revision.

const watchRoute = createRoute({
  method: 'get',
  path: '/v1/watch',
  operationId: 'watchChanges',
  middleware: timedAs('watchChanges'),
  summary: 'Follow changes to keys under a prefix, as Server-Sent Events, resumable',
  request: {
    query: z.object({
      prefix: z.string().optional().openapi({ description: 'Keys starting with it; default all' }),
      since: z.string().optional().openapi({
        description:
          'A sequence number: the changes after it; or `now` (the default). Last-Event-ID wins over it.',
      }),
      values: z
        .enum(['true', 'false'])
        .optional()
        .openapi({ description: 'true: set events carry the value (UTF-8 or base64)' }),
      types: z
        .string()
        .optional()
        .openapi({
          description: `Comma-separated kinds to send, among ${changeOps.join(', ')}; default all`,
        }),
    }),
    headers: z.object({
      'last-event-id': z
        .string()
        .optional()
        .openapi({ description: 'The last id the client received: resume after it' }),
    }),
  },
  responses: {
    200: {
      description:
        'An event stream: `id:` the sequence, `event:` the kind, `data:` JSON with key and version (and for a set size, contentType, expiresAt; value and encoding with values=true). Heartbeat blocks carry an id to resume from; `event: end` precedes a close by the server.',
      content: { 'text/event-stream': { schema: z.string() } },
    },
    400: { description: 'Invalid since, types or values', content: problemContent },
    410: {
      description:
        'The changes after `since` are no longer in the log (or the sequence is newer than any change): list again, then watch from the listing (code watch_history_gone, with oldestSequence and newestSequence)',
      content: problemContent,
    },
    429: {
      description:
        'As many streams are open as --max-watchers allows (code too_many_watchers), or more requests of this connection wait for their answers than --max-pipelined-requests allows (code too_many_pipelined_requests)',
      content: problemContent,
    },
  },
})

export function registerWatchRoute(app: App, deps: AppDeps, changes: ChangeFeed): void {
  const { config, store } = deps
  const header = store.views.headerI32
  app.openapi(watchRoute, async (c) => {
    const query = c.req.valid('query')
    const since = c.req.header('last-event-id')?.trim() || query.since || 'now'
    if (since !== 'now' && !isSequence(since)) {
      return problemResponse(
        'invalid_request',
        'since (or Last-Event-ID) must be a sequence number or now',
      )
    }
    const types = parseTypes(query.types)
    if (types === undefined) {
      return problemResponse(
        'invalid_request',
        `types must list kinds among ${changeOps.join(', ')}, separated by commas`,
      )
    }
    const newest = changes.durableSequence()
    const after = since === 'now' ? newest : Number(since)
    const gone = await historyGone(after, newest, config.dataDir)
    if (gone !== undefined) return gone
    if (c.req.method === 'HEAD') return c.body(null, 200, streamHeaders)

    // Counted across every thread; the count is given back when the stream ends.
    if (Atomics.add(header, I32.watcherCount, 1) >= config.watcherCountMax) {
      Atomics.sub(header, I32.watcherCount, 1)
      return problemResponse(
        'too_many_watchers',
        `${config.watcherCountMax} watch streams are open, the limit (--max-watchers)`,
      )
    }
    const stream = watchStream(
      changes,
      { prefix: query.prefix ?? '', types, values: query.values === 'true', after },
      {
        dir: config.dataDir,
        heartbeatMs: config.watchHeartbeatMs,
        onClose: () => Atomics.sub(header, I32.watcherCount, 1),
        onError: (error) => deps.log.error('a watch stream failed', { error: String(error) }),
      },
    )
    return new Response(stream, { status: 200, headers: streamHeaders })
  })
}

const streamHeaders = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-store',
  // nginx would otherwise buffer the stream (docs/scale-out.md).
  'X-Accel-Buffering': 'no',
}

function isSequence(text: string): boolean {
  return /^\d+$/.test(text) && Number.isSafeInteger(Number(text))
}

function parseTypes(text: string | undefined): ReadonlySet<ChangeOp> | undefined {
  if (text === undefined) return new Set(changeOps)
  const names = text.split(',').map((name) => name.trim())
  if (!names.every((name): name is ChangeOp => (changeOps as readonly string[]).includes(name)))
    return undefined
  return new Set(names)
}

/**
 * The 410 for a resume the log cannot serve: `after` older than its oldest segment (a snapshot
 * made the rest redundant, and it was deleted), or newer than anything durable (this is not the
 * history the client followed: another data directory, say).
 */
async function historyGone(
  after: number,
  newest: number,
  dir: string,
): Promise<Response | undefined> {
  if (after === newest) return undefined
  const oldest = (await oldestSequenceOnDisk(dir)) ?? newest + 1
  if (after > newest || after < oldest - 1) {
    const detail =
      after > newest
        ? `Sequence ${after} is newer than any change this server has made durable (${newest}): list the keys again, then watch from the listing`
        : `The changes after ${after} are no longer in the log, which starts at ${oldest}: list the keys again, then watch from the listing`
    return problemResponse('watch_history_gone', detail, {
      oldestSequence: oldest,
      newestSequence: newest,
    })
  }
  return undefined
}
