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
  /** An error that ended the stream (a file error reading history): the operator's to see. */
  onError(error: unknown): void
}

export type WatchEnd = FeedEnd | 'history_gone'

/** How many buffered changes one pull takes at most. */
const sliceCount = 512
/** Bytes of log one pull reads from disk at most. */
const diskReadBudget = 256 * 1024
/** A disk read that found nothing yet (the writer is rotating) is retried after this. */
const unreadyRetryMs = 2
/**
 * Bytes enqueued per pull at most: what a connection that stops reading leaves the server
 * holding, beyond the socket's own buffers. An event larger than this goes out in pieces.
 */
const chunkSize = 64 * 1024
/** What EventSource waits before it reconnects. */
const reconnectDelayMs = 1000
/**
 * A stream that is keeping up sends at most once per this interval: changes that come in
 * between go out together, one write instead of one per group commit. With 100 watchers of a
 * busy prefix, a write and an encoding per watcher per group commit were most of the server's
 * time. The interval grows with the thread's watchers, so that a thread makes about 4,000
 * stream writes a second however many there are: 5 ms up to 20 watchers, 50 ms from 200 on.
 * The first change after a quiet spell goes out at once.
 */
function sendIntervalMs(watcherCount: number): number {
  return Math.min(50, Math.max(5, watcherCount / 4))
}

export function watchStream(
  feed: ChangeFeed,
  request: WatchRequest,
  options: WatchOptions,
): ReadableStream<Uint8Array> {
  let position = request.after
  let started = false
  let finished = false
  let pulling = false
  let lastSentMs = Date.now()
  /** The last send was changes from the end of the buffer: the next waits for sendIntervalMs. */
  let pacing = false
  let ownReader: LogReader | undefined
  /** Changes read but not sent yet (a chunk was full), and how far they cover. */
  let leftover: { changes: readonly Change[]; position: number; tail: boolean } | undefined
  /** An event too large for one chunk, being sent a piece per pull; then the position it ends. */
  let large: { bytes: Buffer; sent: number; position: number; tail: boolean } | undefined
  let cancelWait = () => {}
  let controller!: ReadableStreamDefaultController<Uint8Array>

  const finish = () => {
    if (finished) return
    finished = true
    cancelWait()
    unregister()
    feed.leave()
    void ownReader?.close()
    ownReader = undefined
    options.onClose()
  }
  feed.join()
  // At shutdown, a stream waiting for changes ends itself with `event: end`; one the client has
  // stopped reading could not take that event, and would hold the graceful close until its
  // timeout: it is cut instead.
  const unregister = feed.onClose(() => {
    if (pulling || finished) return
    finish()
    controller.error(new Error('the server is stopping'))
  })

  const passes = (change: Change) => request.types.has(change.op) && change.concerns(request.prefix)

  /**
   * The events of `changes` that the request's filters pass, about a chunk of them: the bytes,
   * and how far they cover (the rest is kept for the next pull).
   */
  const collect = (changes: readonly Change[], upTo: number, tail: boolean) => {
    const blocks: Buffer[] = []
    let size = 0
    for (const [index, change] of changes.entries()) {
      if (!passes(change)) continue
      const block = change.block(request.values)
      blocks.push(block)
      size += block.byteLength
      if (size >= chunkSize && index < changes.length - 1) {
        leftover = { changes: changes.slice(index + 1), position: upTo, tail }
        return { bytes: Buffer.concat(blocks), position: change.sequence, tail: false }
      }
    }
    const bytes = blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks)
    return { bytes, position: upTo, tail }
  }

  /** The next events after `position` and how far they cover, or why the stream ends. */
  const next = async (): Promise<
    { bytes: Buffer; position: number; tail: boolean } | { end: WatchEnd } | undefined
  > => {
    if (leftover !== undefined) {
      const { changes, position: upTo, tail } = leftover
      leftover = undefined
      return collect(changes, upTo, tail)
    }
    const slice = feed.slice(position, sliceCount)
    if (slice.kind === 'changes') {
      // Caught up with the buffer: the disk is no longer needed.
      void ownReader?.close()
      ownReader = undefined
      return collect(slice.changes, slice.position, slice.position === feed.position)
    }
    if (slice.kind === 'caught-up') return undefined
    ownReader ??= new LogReader(options.dir, position)
    // Kept here: a cancel during the read below clears ownReader.
    const reader = ownReader
    const read = await reader.read(feed.durableSequence(), diskReadBudget)
    if (read.kind === 'gone') return { end: 'history_gone' }
    if (read.kind === 'damaged') return { end: 'log_unreadable' }
    if (reader.position === position) {
      await new Promise((resolve) => setTimeout(resolve, unreadyRetryMs))
    }
    const changes = read.records.flatMap((record) =>
      record.op === 'commit' ? [] : [new Change(record)],
    )
    return collect(changes, reader.position, false)
  }

  const send = (bytes: string | Buffer, tail = false) => {
    controller.enqueue(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes)
    lastSentMs = Date.now()
    pacing = tail
  }

  /** Sends the next piece of an event too large for one chunk. */
  const sendPiece = (piece: NonNullable<typeof large>) => {
    const end = Math.min(piece.bytes.byteLength, piece.sent + chunkSize)
    send(piece.bytes.subarray(piece.sent, end))
    piece.sent = end
    if (end < piece.bytes.byteLength) return
    large = undefined
    position = piece.position
    pacing = piece.tail
  }

  const endBlock = (reason: WatchEnd) =>
    `event: end\ndata: ${JSON.stringify({ reason, resumeAfter: position })}\n\n`

  const end = (reason: WatchEnd) => {
    send(endBlock(reason))
    finish()
    controller.close()
  }

  /** One pull: sends one chunk (an event batch, a piece, a heartbeat) or ends the stream. */
  const pullOnce = async () => {
    if (!started) {
      // Sent at once: the headers go out with it, and the client knows where it starts.
      started = true
      send(`retry: ${reconnectDelayMs}\nid: ${position}\n\n`)
      return
    }
    if (large !== undefined) return sendPiece(large)
    const pauseMs = lastSentMs + sendIntervalMs(feed.watcherCount) - Date.now()
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
      if (step !== undefined && step.bytes.byteLength > chunkSize) {
        large = { bytes: step.bytes, sent: 0, position: step.position, tail: step.tail }
        return sendPiece(large)
      }
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
  }

  return new ReadableStream<Uint8Array>(
    {
      start(streamController) {
        controller = streamController
      },
      async pull() {
        pulling = true
        try {
          await pullOnce()
        } catch (error) {
          // A file error reading history, say: the stream ends as any other the server ends,
          // with where to resume, and gives back everything it held (its slot included).
          options.onError(error)
          if (finished) return
          finish()
          try {
            send(endBlock('log_unreadable'))
            controller.close()
          } catch {
            // The stream was already closed or errored: nothing more to tell the client.
          }
        } finally {
          pulling = false
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
