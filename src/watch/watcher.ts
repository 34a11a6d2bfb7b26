import { Change, type ChangeOp } from './change.js'
import type { ChangeFeed, FeedEnd } from './feed.js'
import { LogReader } from './log-reader.js'

// One GET /v1/watch stream: the changes after a position, under a prefix, as Server-Sent
// Events. It is pulled: the next slice is read and encoded only when the connection has taken
// the last one, so a watcher that reads slowly holds one slice, never a backlog, and never slows
// a writer. It reads from its thread's feed buffer (src/watch/feed.ts) while that still holds its
// position, and from the log on disk once it has fallen behind it (or asked for history), until
// it catches up. A client that stops reading altogether is cut by --send-timeout-ms.
//
// Every block carries an `id:`, the position to resume from: the first block sends the start,
// each event its change's sequence, and each heartbeat how far the log was read for this
// watcher, so a resume never re-reads history nobody matched. A stream the server ends itself
// says so first: `event: end` with the reason and the position to resume after.

export interface WatchRequest {
  prefix: string
  types: ReadonlySet<ChangeOp>
  values: boolean
  /** Changes after this sequence are sent. */
  after: number
}

export interface WatchOptions {
  dir: string
  heartbeatMs: number
  /** Called once when the stream is over, whoever ended it. */
  onClose(): void
}

export type WatchEnd = FeedEnd | 'history_gone'

/** How many buffered changes one pull takes at most. */
const sliceCount = 512
/** Bytes of log one pull reads from disk at most. */
const diskReadBudget = 256 * 1024
/** A disk read that found nothing yet (the writer is rotating) is retried after this. */
const unreadyRetryMs = 2
/** What EventSource waits before it reconnects. */
const reconnectDelayMs = 1000
/**
 * A stream that is keeping up sends at most once per this interval: changes that come in
 * between go out together, one write instead of one per group commit. With 100 watchers of a
 * busy prefix that was most of the server's time (a writev and a UTF-8 encoding per watcher per
 * group commit). The first change after a quiet spell goes out at once.
 */
const sendIntervalMs = 5

export function watchStream(
  feed: ChangeFeed,
  request: WatchRequest,
  options: WatchOptions,
): ReadableStream<Uint8Array> {
  let position = request.after
  let started = false
  let finished = false
  let lastSentMs = Date.now()
  /** The last send was changes from the end of the buffer: the next waits for sendIntervalMs. */
  let pacing = false
  let ownReader: LogReader | undefined
  let cancelWait = () => {}
  feed.join()

  const finish = () => {
    if (finished) return
    finished = true
    cancelWait()
    feed.leave()
    void ownReader?.close()
    ownReader = undefined
    options.onClose()
  }

  /** What the request's filters pass, as one buffer; empty when nothing passes. */
  const matching = (changes: readonly Change[]): Uint8Array => {
    let text = ''
    for (const change of changes) {
      if (request.types.has(change.op) && change.concerns(request.prefix)) {
        text += change.block(request.values)
      }
    }
    return Buffer.from(text, 'utf8')
  }
  // Watchers with the same filters at the same position get the same bytes: encoded once.
  const filterKey = `${request.values}\0${[...request.types].sort().join(',')}\0${request.prefix}`

  /** The next changes after `position` and how far they cover, or why the stream ends. */
  const next = async (): Promise<
    { bytes: Uint8Array; position: number; tail: boolean } | { end: WatchEnd } | undefined
  > => {
    const slice = feed.slice(position, sliceCount)
    if (slice.kind === 'changes') {
      // Caught up with the buffer: the disk is no longer needed.
      void ownReader?.close()
      ownReader = undefined
      const bytes = feed.encoded(filterKey, position, slice.position, () => matching(slice.changes))
      return { bytes, position: slice.position, tail: slice.position === feed.position }
    }
    if (slice.kind === 'caught-up') return undefined
    ownReader ??= new LogReader(options.dir, position)
    const read = await ownReader.read(feed.durableSequence(), diskReadBudget)
    if (read.kind === 'gone') return { end: 'history_gone' }
    if (read.kind === 'damaged') return { end: 'log_unreadable' }
    if (ownReader.position === position) {
      await new Promise((resolve) => setTimeout(resolve, unreadyRetryMs))
    }
    const changes = read.records.flatMap((record) =>
      record.op === 'commit' ? [] : [new Change(record)],
    )
    return { bytes: matching(changes), position: ownReader.position, tail: false }
  }

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const send = (bytes: string | Uint8Array, tail = false) => {
          controller.enqueue(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes)
          lastSentMs = Date.now()
          pacing = tail
        }
        const end = (reason: WatchEnd) => {
          send(`event: end\ndata: ${JSON.stringify({ reason, resumeAfter: position })}\n\n`)
          finish()
          controller.close()
        }
        if (!started) {
          // Sent at once: the headers go out with it, and the client knows where it starts.
          started = true
          send(`retry: ${reconnectDelayMs}\nid: ${position}\n\n`)
          return
        }
        const pauseMs = lastSentMs + sendIntervalMs - Date.now()
        if (pacing && pauseMs > 0) {
          const pause = feed.pause(pauseMs)
          cancelWait = pause.cancel
          await pause.done
        }
        while (!finished) {
          const ended = feed.ended
          if (ended !== undefined) return end(ended)
          const step = await next()
          if (finished) return
          if (step !== undefined && 'end' in step) return end(step.end)
          if (step !== undefined) {
            position = step.position
            if (step.bytes.byteLength > 0) return send(step.bytes, step.tail)
          }
          const heartbeatInMs = lastSentMs + options.heartbeatMs - Date.now()
          if (heartbeatInMs <= 0) return send(`: heartbeat\nid: ${position}\n\n`)
          if (step === undefined) {
            const wait = feed.wait(heartbeatInMs)
            cancelWait = wait.cancel
            await wait.done
          }
        }
      },
      cancel() {
        // The client went away (or the server cut a connection that stopped reading).
        finish()
      },
    },
    // Nothing is read or encoded ahead of what the connection asks for.
    { highWaterMark: 0 },
  )
}
