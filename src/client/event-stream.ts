import type { IncomingMessage } from 'node:http'
import { EventStreamParser, type ServerSentEvent } from './sse.js'
import type { Answer, Connection } from './transport.js'

// One connection of a watch (src/client/watch.ts): GET /v1/watch, its event stream fed through
// the parser, the events handed out as the caller takes them, until the stream ends, however it
// ends. The connection is paused while the caller has not taken the events already parsed, so a
// slow consumer holds back the server (which then reads the log from disk for it) instead of
// filling this process's memory. Deciding what to do next (resume, throw) is the caller's.

export type StreamOutcome =
  /** The signal aborted. */
  | { kind: 'stopped' }
  /** No answer: nothing listening there, a refused or broken connection. */
  | { kind: 'unreachable'; reason: string; cause: Error }
  /** An answer that is not an event stream, read whole. */
  | { kind: 'refused'; answer: Answer }
  /** The stream was open and has ended: the server's `event: end`, a close, a broken connection. */
  | { kind: 'ended'; reason: string; lastEventId: string; retryMs: number | undefined }

export interface StreamRequest {
  path: string
  /** Where the stream resumes (the last event id of the streams before), or '' for a first one. */
  lastEventId: string
  signal: AbortSignal | undefined
  /** A stream that brings nothing for this long, not even a heartbeat, is taken for lost. */
  idleTimeoutMs: number
}

/** Events parsed and not yet taken past which the connection is paused. */
const pauseAt = 256

/** Yields each event of one stream; returns how the stream ended. */
export async function* eventStream(
  connection: Connection,
  request: StreamRequest,
): AsyncGenerator<ServerSentEvent, StreamOutcome, undefined> {
  const { signal, idleTimeoutMs } = request
  if (signal?.aborted) return { kind: 'stopped' }
  const headers: Record<string, string> = { Accept: 'text/event-stream' }
  if (request.lastEventId !== '') headers['Last-Event-ID'] = request.lastEventId
  const outgoing = await connection.open('GET', request.path, headers)
  const queue: ServerSentEvent[] = []
  let outcome: StreamOutcome | undefined
  let parser: EventStreamParser | undefined
  let response: IncomingMessage | undefined
  let wake: (() => void) | undefined
  const finish = (ending: StreamOutcome) => {
    if (outcome !== undefined) return
    outcome = ending
    outgoing.destroy()
    wake?.()
  }
  const stop = () => finish({ kind: 'stopped' })
  const ended = (reason: string): StreamOutcome => ({
    kind: 'ended',
    reason,
    lastEventId: parser?.lastEventId ?? request.lastEventId,
    retryMs: parser?.retryMs,
  })
  signal?.addEventListener('abort', stop, { once: true })
  try {
    if (signal?.aborted) stop() // While the request was being made.
    // A peer gone without a FIN, or a proxy that hangs, would otherwise stall the watch forever.
    outgoing.setTimeout(idleTimeoutMs)
    outgoing.on('timeout', () =>
      outgoing.destroy(new Error(`nothing came for ${idleTimeoutMs / 1000} s`)),
    )
    outgoing.on('error', (error) =>
      finish(
        parser === undefined
          ? { kind: 'unreachable', reason: error.message, cause: error }
          : ended(`the connection failed: ${error.message}`),
      ),
    )
    outgoing.on('response', (opened) => {
      const contentType = opened.headers['content-type'] ?? ''
      if (opened.statusCode !== 200 || !/^text\/event-stream\b/i.test(contentType)) {
        readRefusal(opened).then(
          (answer) => finish({ kind: 'refused', answer }),
          (error: Error) => finish({ kind: 'unreachable', reason: error.message, cause: error }),
        )
        return
      }
      response = opened
      const streamParser = new EventStreamParser((event) => {
        if (outcome !== undefined) return
        if (event.type !== 'end') {
          queue.push(event)
          return
        }
        const end = endOf(event.data)
        const ending = ended(`the server ended the stream (${end.reason})`)
        if (ending.kind === 'ended' && isAfter(end.resumeAfter, ending.lastEventId)) {
          ending.lastEventId = end.resumeAfter
        }
        finish(ending)
      }, request.lastEventId)
      parser = streamParser
      opened.on('data', (chunk: Buffer) => {
        streamParser.push(chunk)
        if (queue.length >= pauseAt && !opened.isPaused()) {
          opened.pause()
          outgoing.setTimeout(0) // Not idle: waiting for the caller.
        }
        wake?.()
      })
      opened.on('end', () => {
        streamParser.end()
        finish(ended('the server closed the stream'))
      })
      opened.on('error', (error) => finish(ended(`the connection failed: ${error.message}`)))
    })
    outgoing.end()
    for (;;) {
      if (outcome?.kind === 'stopped') return outcome
      const event = queue.shift()
      if (event !== undefined) {
        yield event
        continue
      }
      if (outcome !== undefined) return outcome
      if (response?.isPaused()) {
        outgoing.setTimeout(idleTimeoutMs)
        response.resume()
      }
      await new Promise<void>((resolve) => {
        wake = resolve
      })
      wake = undefined
    }
  } finally {
    signal?.removeEventListener('abort', stop)
    outgoing.destroy()
  }
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
