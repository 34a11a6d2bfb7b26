import { SlabkvConnectionError, SlabkvProtocolError, WatchHistoryGoneError } from './errors.js'
import { eventStream, type StreamOutcome } from './event-stream.js'
import type { ServerSentEvent } from './sse.js'
import { type Answer, type Connection, errorOf, keySegment, problemOf } from './transport.js'

// The change feed (GET /v1/watch) as an async iterator that resumes by itself: once a stream has
// been open, a lost one (the server restarted, a proxy cut it, nothing came for idleTimeoutMs)
// is resumed from the last id the server sent, events and heartbeats alike, after a wait that
// starts at the server's retry: and doubles up to 5 s, so that no change is handed out twice or
// left out. A first connection that fails throws instead, as `kubectl get -w` and `etcdctl
// watch` do: a wrong address should not look like a quiet feed. `slabkv watch` (src/cli/watch.ts)
// prints what this yields; Slabkv#watch (src/client/index.ts) types it.

/** The first wait before resuming, when the server sends no `retry:`; it doubles per failure. */
const firstDelayMs = 100
/** Waits never grow past this; a stream that lasted this long starts the doubling over. */
const longestDelayMs = 5_000
/** Four heartbeats at the server's default --watch-heartbeat-ms (15 s). */
export const defaultIdleTimeoutMs = 60_000

export interface FollowOptions {
  /** Keys starting with it; every key by default. */
  prefix?: string
  /** The changes after this sequence number, or 'now' (the default): from now on. */
  since?: number | 'now'
  /** Set events carry the value too. */
  values?: boolean
  /** Only these kinds of change; all by default. */
  types?: readonly string[]
  /** Ends the watch: the iterator then rejects with the signal's reason. */
  signal?: AbortSignal
  /** A stream that brings nothing for this long, not even a heartbeat, is resumed. */
  idleTimeoutMs?: number
  /** Told before each wait to resume: why, for how long, and after which id. */
  onReconnect?: (reconnect: Reconnect) => void
}

export interface Reconnect {
  /** What happened to the stream, in words. */
  reason: string
  /** How long the watch waits before it resumes. */
  delayMs: number
  /** The last id the server sent, where the watch resumes; '' when none came yet. */
  lastEventId: string
}

/** One change as the server sent it: its id (sequence number), kind, and data. */
export interface RawChange {
  id: number
  type: string
  data: Record<string, unknown>
}

/** The changes, resumed across lost streams, until the signal aborts or a refusal is thrown. */
export async function* followChanges(
  connection: Connection,
  options: FollowOptions = {},
): AsyncGenerator<RawChange, never, undefined> {
  const since = options.since ?? 'now'
  if (since !== 'now' && !(Number.isSafeInteger(since) && since >= 0)) {
    throw new TypeError(`since ${String(since)}: a sequence number, or 'now'`)
  }
  const idleTimeoutMs = options.idleTimeoutMs ?? defaultIdleTimeoutMs
  if (!(idleTimeoutMs >= 1 && idleTimeoutMs <= 2 ** 31 - 1)) {
    throw new TypeError(`idleTimeoutMs ${idleTimeoutMs}: a number of milliseconds, at least 1`)
  }
  const prefix = options.prefix ?? ''
  const query = [
    ...(prefix === '' ? [] : [`prefix=${keySegment(prefix)}`]),
    ...(options.values ? ['values=true'] : []),
    ...(options.types === undefined ? [] : [`types=${options.types.join(',')}`]),
  ]
  const signal = connection.signalFor(options.signal, false)
  let lastEventId = ''
  /** The id of the last change handed out: a server resending one after a resume is skipped. */
  let deliveredThrough = -1
  /** A stream has been open: from now on, failures are waited out. */
  let established = false
  let failures = 0
  let retryMs = firstDelayMs
  for (;;) {
    const openedAt = Date.now()
    const position = lastEventId === '' ? String(since) : lastEventId
    const stream = eventStream(connection, {
      path: `/v1/watch?${[...query, `since=${position}`].join('&')}`,
      lastEventId,
      signal,
      idleTimeoutMs,
    })
    let step: IteratorResult<ServerSentEvent, StreamOutcome>
    try {
      for (step = await stream.next(); !step.done; step = await stream.next()) {
        established = true
        const change = changeOf(step.value)
        if (change.id <= deliveredThrough) continue
        deliveredThrough = change.id
        yield change
      }
    } finally {
      await stream.return({ kind: 'stopped' })
    }
    const outcome = step.value
    let reason: string
    if (outcome.kind === 'stopped') throw signal!.reason
    if (outcome.kind === 'refused') {
      const { answer } = outcome
      if (answer.status === 410) throw historyGone(answer)
      if (!established || !isPassing(answer)) throw errorOf(answer)
      const code = problemOf(answer)?.code
      reason = `the server answered ${answer.status}${code === undefined ? '' : ` (${code})`}`
    } else if (outcome.kind === 'unreachable') {
      if (!established) throw new SlabkvConnectionError(outcome.reason, { cause: outcome.cause })
      reason = `cannot reach ${connection.base.origin}: ${outcome.reason}`
    } else {
      established = true
      reason = outcome.reason
      lastEventId = outcome.lastEventId
      if (outcome.retryMs !== undefined) {
        retryMs = Math.min(Math.max(outcome.retryMs, firstDelayMs), longestDelayMs)
      }
      if (Date.now() - openedAt >= longestDelayMs) failures = 0
    }
    const delayMs = backoff(retryMs, failures++)
    options.onReconnect?.({ reason, delayMs, lastEventId })
    await sleep(delayMs, signal)
  }
}

/** An event as a change: its id a sequence number, its data a JSON object. */
function changeOf(event: ServerSentEvent): RawChange {
  if (!/^[0-9]{1,16}$/.test(event.lastEventId)) {
    throw new SlabkvProtocolError(
      `a ${event.type} event whose id is not a sequence number: ${JSON.stringify(event.lastEventId)}`,
    )
  }
  const id = Number(event.lastEventId)
  let data: unknown
  try {
    data = JSON.parse(event.data)
  } catch {
    data = undefined
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new SlabkvProtocolError(`event ${id} (${event.type}) has data that is not a JSON object`)
  }
  return { id, type: event.type, data: data as Record<string, unknown> }
}

/** 410 is history gone whatever its body says. */
function historyGone(answer: Answer): WatchHistoryGoneError {
  const error = errorOf(answer)
  return error instanceof WatchHistoryGoneError
    ? error
    : new WatchHistoryGoneError(answer.status, error.problem, answer.body.toString('utf8'))
}

/** Answers worth waiting out once a stream has been open: too many watchers, a server error. */
function isPassing(answer: Answer): boolean {
  return answer.status === 429 || answer.status >= 500
}

/**
 * The wait before the next attempt: doubling, at most longestDelayMs, spread over its upper half
 * so that the watchers of a restarted server do not all come back at the same moment.
 */
function backoff(firstMs: number, failures: number): number {
  const ceiling = Math.min(firstMs * 2 ** Math.min(failures, 16), longestDelayMs)
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2)
}

/** Waits, or rejects with the signal's reason once it aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
