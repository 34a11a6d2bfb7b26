import { send } from './api.js'

// The change feed, GET /v1/watch (docs/api.md), read with fetch rather than the browser's
// EventSource: EventSource cannot send headers, and a server started with --token wants the
// token in the Authorization header, which is the only place this UI ever puts it (api.js).
// Reading the stream ourselves costs the parsing and the reconnecting that EventSource would
// do, and both are done here the way it does them: the position is the last `id:` seen in any
// block (heartbeats included), and a reconnection asks for the original URL with that
// position in Last-Event-ID, which the server prefers to `since`.

/**
 * One change under the watched prefix, as the feed's data line describes it.
 * @typedef {{ type: 'set' | 'delete' | 'expire' | 'evict' | 'clear', key: string | null,
 *   version: number, size?: number, contentType?: string, expiresAt?: number | null }} Change
 */

/** @typedef {'connecting' | 'live' | 'reconnecting' | 'off'} FeedState */

const changeTypes = new Set(['set', 'delete', 'expire', 'evict', 'clear'])

/** The longest wait between two attempts, however many failed in a row. */
const retryMaxMs = 30_000

/**
 * With nothing received for this long, the connection is taken for dead and made again: a
 * half-open connection (a laptop that slept, a proxy that dropped it) never reports an error.
 * Three of the server's heartbeats at its default --watch-heartbeat-ms.
 */
const silenceMaxMs = 45_000

/** A block longer than this is not the feed (data lines carry no value here): reconnect. */
const bufferMaxChars = 1 << 20

/**
 * Follows the changes under `prefix` from `since` until closed, reconnecting by itself.
 * @param {{ prefix: string, since: number | 'now',
 *   onChange: (change: Change) => void,
 *   onState: (state: FeedState, detail: string) => void,
 *   onHistoryGone: () => void,
 *   onStart?: () => void }} options
 *   onHistoryGone: the server no longer holds the changes since the position (410
 *   watch_history_gone, or an end with reason history_gone); the feed has stopped, and only a
 *   new listing can say what the keys are now. onStart: the first connection is open, so every
 *   change from here on will come (a caller that started from 'now' checks the present then).
 * @returns {{ close: () => void, position: () => number | undefined }}
 */
export function watchChanges({ prefix, since, onChange, onState, onHistoryGone, onStart }) {
  /** The id of the last block read: where a reconnection resumes. */
  let position = since === 'now' ? undefined : since
  let closed = false
  let started = false
  /** The server's `retry:` advice, the first wait after a connection ends. */
  let retryMs = 1000
  let failures = 0
  const controller = new AbortController()

  const url = `/v1/watch?${new URLSearchParams(since === 'now' ? { prefix } : { prefix, since: String(since) })}`

  /**
   * One connection, read to its end. Resolves with what to do next.
   * @returns {Promise<{ next: 'retry' | 'gone' | 'off', why: string }>}
   */
  const connect = async () => {
    const attempt = new AbortController()
    const stop = () => attempt.abort()
    controller.signal.addEventListener('abort', stop)
    let silence = setTimeout(stop, silenceMaxMs)
    try {
      /** @type {Record<string, string>} */
      const headers = { Accept: 'text/event-stream' }
      if (started && position !== undefined) headers['Last-Event-ID'] = String(position)
      const response = await send(url, { headers, signal: attempt.signal })
      if (response.status === 410) return { next: 'gone', why: 'history gone' }
      if (!response.ok || response.body === null) {
        // The problem's code says why (too_many_watchers, say), in the state's tooltip.
        const code = /"code"\s*:\s*"([a-z_]+)"/.exec((await response.text()).slice(0, 2000))?.[1]
        const why = `${response.status}${code === undefined ? '' : ` ${code}`}`
        // 401 (no token yet), 429 (too many watchers) and 5xx may pass; anything else is this
        // page asking wrong, or a server without the feed, and asking again cannot help.
        const passing = [401, 408, 429].includes(response.status) || response.status >= 500
        return { next: passing ? 'retry' : 'off', why }
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      let afterCr = false
      /** @type {{ id?: string, event?: string, data?: string }} */
      let block = {}
      for (;;) {
        const { done, value } = await reader.read()
        if (done || closed) return { next: 'retry', why: 'the connection ended' }
        clearTimeout(silence)
        silence = setTimeout(stop, silenceMaxMs)
        // A line ends with \r\n, \n or \r: a chunk that ends with \r has ended its line, and
        // a \n opening the next chunk is the rest of that line end, not an empty line.
        buffer += afterCr && value.startsWith('\n') ? value.slice(1) : value
        afterCr = value.endsWith('\r')
        if (buffer.length > bufferMaxChars) return { next: 'retry', why: 'a block too long' }
        const lines = buffer.split(/\r\n|\r|\n/)
        // The last piece has no line end yet.
        buffer = lines.pop() ?? ''
        for (const line of lines) {
          if (line !== '') {
            const colon = line.indexOf(':')
            if (colon === 0) continue
            const field = colon < 0 ? line : line.slice(0, colon)
            const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
            if (field === 'id') block.id = text
            else if (field === 'event') block.event = text
            else if (field === 'data')
              block.data = block.data === undefined ? text : `${block.data}\n${text}`
            else if (field === 'retry' && /^\d+$/.test(text)) retryMs = Number(text)
            continue
          }
          // A blank line ends the block: its id is the position, whether or not it has data.
          const { id, event, data } = block
          block = {}
          if (id !== undefined && /^\d+$/.test(id)) position = Number(id)
          if (!started || failures > 0) {
            started = true
            failures = 0
            onState('live', '')
            onStart?.()
            onStart = undefined
          }
          if (data === undefined || closed) continue
          const parsed = JSON.parse(data)
          if (event === 'end') {
            if (typeof parsed.resumeAfter === 'number') position = parsed.resumeAfter
            if (parsed.reason === 'history_gone') return { next: 'gone', why: 'history gone' }
            return { next: 'retry', why: `the server ended the feed (${parsed.reason})` }
          }
          if (event !== undefined && changeTypes.has(event)) onChange({ ...parsed, type: event })
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return { next: 'off', why: 'closed' }
      if (attempt.signal.aborted) return { next: 'retry', why: 'no heartbeat' }
      return { next: 'retry', why: error instanceof Error ? error.message : String(error) }
    } finally {
      clearTimeout(silence)
      controller.signal.removeEventListener('abort', stop)
      attempt.abort()
    }
  }

  const run = async () => {
    onState('connecting', '')
    while (!closed) {
      const { next, why } = await connect()
      if (closed) return
      if (next === 'gone') {
        closed = true
        onHistoryGone()
        return
      }
      if (next === 'off') {
        closed = true
        onState('off', why)
        return
      }
      failures++
      onState('reconnecting', why)
      // Doubling from the server's advice, with some spread, so that the pages of a server
      // that just restarted do not all come back in the same millisecond.
      const waitMs = Math.min(retryMs * 2 ** (failures - 1), retryMaxMs) * (1 + Math.random() / 4)
      await new Promise((resolve) => {
        const wake = () => {
          clearTimeout(timer)
          resolve(undefined)
        }
        const timer = setTimeout(() => {
          controller.signal.removeEventListener('abort', wake)
          resolve(undefined)
        }, waitMs)
        controller.signal.addEventListener('abort', wake, { once: true })
      })
    }
  }
  void run()

  return {
    close: () => {
      closed = true
      controller.abort()
    },
    position: () => position,
  }
}
