import type { IncomingMessage } from 'node:http'
import { type Answer, openRequest } from './client-common.js'
import { EventStreamParser, type ServerSentEvent } from './sse.js'

// One connection of `slabkv watch` (src/cli/watch.ts): GET /v1/watch, its event stream fed
// through the parser until it ends, however it ends. Deciding what to do next (print, retry,
// exit) is the caller's.

export type StreamOutcome =
  /** SIGINT or SIGTERM (or stdout closed): the caller is stopping. */
  | { kind: 'stopped' }
  /** No answer: nothing listening there, a refused or broken connection, a timeout. */
  | { kind: 'unreachable'; reason: string }
  /** An answer that is not an event stream, read whole. */
  | { kind: 'refused'; answer: Answer }
  /** The stream was open and has ended: the server's `event: end`, a close, a broken connection. */
  | { kind: 'ended'; reason: string; lastEventId: string }
  /** The stream said something a watch cannot take (an event that is not a JSON object). */
  | { kind: 'unreadable'; reason: string }

export interface StreamRequest {
  base: URL
  path: string
  headers: Record<string, string>
  /** Where the stream resumes (the last event id of the streams before), or '' for a first one. */
  lastEventId: string
  /** Given each event the parser dispatches; a string return ends the stream as unreadable. */
  onEvent: (event: ServerSentEvent) => string | undefined
  /** Given the stream's `retry:` once it ends, when it sent one. */
  onRetry: (retryMs: number) => void
  /** Paused by the caller while stdout cannot take more. */
  onResponse: (response: IncomingMessage) => void
  signal: AbortSignal
  /** A stream that brings nothing for this long, not even a heartbeat, is taken for lost. */
  idleTimeoutMs: number
}

/** Opens one stream and resolves once it is over, with how it ended. */
export async function watchStream(request: StreamRequest): Promise<StreamOutcome> {
  if (request.signal.aborted) return { kind: 'stopped' }
  const headers: Record<string, string> = { ...request.headers, Accept: 'text/event-stream' }
  if (request.lastEventId !== '') headers['Last-Event-ID'] = request.lastEventId
  const outgoing = await openRequest(request.base, 'GET', request.path, headers)
  let parser: EventStreamParser | undefined
  return new Promise((resolve) => {
    let settled = false
    const finish = (outcome: StreamOutcome) => {
      if (settled) return
      settled = true
      request.signal.removeEventListener('abort', stop)
      if (parser?.retryMs !== undefined) request.onRetry(parser.retryMs)
      outgoing.destroy()
      resolve(outcome)
    }
    const stop = () => finish({ kind: 'stopped' })
    request.signal.addEventListener('abort', stop, { once: true })
    if (request.signal.aborted) stop() // While the request was being made.
    const ended = (reason: string): Extract<StreamOutcome, { kind: 'ended' }> => ({
      kind: 'ended',
      reason,
      lastEventId: parser?.lastEventId ?? request.lastEventId,
    })
    // A peer gone without a FIN, or a proxy that hangs, would otherwise stall the watch forever.
    outgoing.setTimeout(request.idleTimeoutMs, () =>
      outgoing.destroy(new Error(`nothing came for ${request.idleTimeoutMs / 1000} s`)),
    )
    outgoing.on('error', (error) =>
      finish(
        parser === undefined
          ? { kind: 'unreachable', reason: error.message }
          : ended(`the connection failed: ${error.message}`),
      ),
    )
    outgoing.on('response', (response) => {
      const contentType = response.headers['content-type'] ?? ''
      if (response.statusCode !== 200 || !/^text\/event-stream\b/i.test(contentType)) {
        readRefusal(response).then(
          (answer) => finish({ kind: 'refused', answer }),
          (error: Error) => finish({ kind: 'unreachable', reason: error.message }),
        )
        return
      }
      const streamParser = new EventStreamParser((event) => {
        if (settled) return
        if (event.type === 'end') {
          const end = endOf(event.data)
          const outcome = ended(`the server ended the stream (${end.reason})`)
          if (isAfter(end.resumeAfter, outcome.lastEventId)) {
            outcome.lastEventId = end.resumeAfter
          }
          finish(outcome)
          return
        }
        const unreadable = request.onEvent(event)
        if (unreadable !== undefined) finish({ kind: 'unreadable', reason: unreadable })
      }, request.lastEventId)
      parser = streamParser
      request.onResponse(response)
      response.on('data', (chunk: Buffer) => streamParser.push(chunk))
      response.on('end', () => {
        streamParser.end()
        finish(ended('the server closed the stream'))
      })
      response.on('error', (error) => finish(ended(`the connection failed: ${error.message}`)))
    })
    outgoing.end()
  })
}

/**
 * What an `event: end` block says: why the server ends the stream, and where to resume (as
 * Last-Event-ID), which may be past the last id line if the server read further since.
 */
function endOf(data: string): { reason: string; resumeAfter: string } {
  try {
    const parsed = JSON.parse(data) as { reason?: unknown; resumeAfter?: unknown }
    return {
      reason: typeof parsed.reason === 'string' ? parsed.reason : 'no reason given',
      resumeAfter: Number.isSafeInteger(parsed.resumeAfter) ? String(parsed.resumeAfter) : '',
    }
  } catch {
    return { reason: 'no reason given', resumeAfter: '' }
  }
}

/** True when `position` is a sequence number later than `than` (or `than` is none). */
function isAfter(position: string, than: string): boolean {
  if (!/^[0-9]+$/.test(position)) return false
  return !/^[0-9]+$/.test(than) || Number(position) > Number(than)
}

function readRefusal(response: IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    response.on('data', (chunk: Buffer) => chunks.push(chunk))
    response.on('error', reject)
    response.on('end', () =>
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        body: Buffer.concat(chunks),
      }),
    )
  })
}
