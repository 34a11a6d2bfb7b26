import type { IncomingMessage } from 'node:http'
import { parseArgs } from 'node:util'
import { exitHistoryGone, exitOk, exitServer } from '../exit-codes.js'
import {
  type Answer,
  clientOptions,
  jsonString,
  keySegment,
  problemOf,
  serverAddress,
  serverError,
  tokenHeaders,
  usageFailure,
} from './client-common.js'
import { commandHelp } from './help.js'
import type { ServerSentEvent } from './sse.js'
import { watchStream } from './watch-stream.js'

// slabkv watch: the change feed (GET /v1/watch) as JSON lines on stdout, one per change, until
// SIGINT or SIGTERM. Once a stream is open, a lost one is resumed from the last id the server
// sent (events and heartbeats alike), so that no change is printed twice or left out; a first
// connection that fails exits instead, as `kubectl get -w` and `etcdctl watch` do: a wrong
// --url should not look like a quiet feed.

const changeTypes = ['set', 'delete', 'expire', 'evict', 'clear']
/** The first wait before resuming, when the server sends no `retry:`; it doubles per failure. */
const firstDelayMs = 100
/** Waits never grow past this; a stream that lasted this long starts the doubling over. */
const longestDelayMs = 5_000
/** Four heartbeats at the server's default --watch-heartbeat-ms (15 s). */
const defaultIdleTimeoutSeconds = '60'

interface WatchOptions {
  url?: string
  token?: string
  json?: boolean
  help?: boolean
  since?: string
  values?: boolean
  types?: string
  'idle-timeout'?: string
}

export async function watch(argv: string[]): Promise<number> {
  const usageError = (message: string) => usageFailure('watch', message)
  let values: WatchOptions
  let positionals: string[]
  try {
    const parsed = parseArgs({
      args: argv,
      options: {
        ...clientOptions,
        since: { type: 'string' },
        values: { type: 'boolean' },
        types: { type: 'string' },
        'idle-timeout': { type: 'string' },
      },
      allowPositionals: true,
    })
    values = parsed.values
    positionals = parsed.positionals
  } catch (error) {
    return usageError((error as Error).message)
  }
  if (values.help) {
    process.stdout.write(commandHelp.watch!)
    return exitOk
  }
  const request = watchRequestOf(values, positionals)
  if (typeof request === 'string') return usageError(request)
  const stop = new AbortController()
  const onSignal = () => stop.abort()
  // The reader of stdout has gone (`slabkv watch | head -n 3`): nobody is left to print for.
  const onStdoutError = () => stop.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.stdout.on('error', onStdoutError)
  try {
    return await follow(request, stop.signal)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.stdout.off('error', onStdoutError)
  }
}

/** What the options and PREFIX ask for, or why they cannot be taken (a usage error). */
function watchRequestOf(values: WatchOptions, positionals: string[]): WatchRequest | string {
  if (positionals.length > 1) return 'wrong arguments'
  const base = serverAddress(values.url)
  if (typeof base === 'string') return base
  const since = values.since ?? 'now'
  // As the server reads it: a sequence number is a safe integer.
  if (since !== 'now' && !(/^[0-9]{1,16}$/.test(since) && Number.isSafeInteger(Number(since)))) {
    return `--since ${JSON.stringify(since)}: a sequence number, or now`
  }
  const types = values.types?.split(',')
  const unknownType = types?.find((type) => !changeTypes.includes(type))
  if (unknownType !== undefined) {
    return `--types: ${JSON.stringify(unknownType)} is not one of ${changeTypes}`
  }
  const idleTimeout = values['idle-timeout'] ?? defaultIdleTimeoutSeconds
  const idleTimeoutMs = Math.round(Number(idleTimeout) * 1000)
  if (
    !/^[0-9]+(\.[0-9]+)?$/.test(idleTimeout) ||
    idleTimeoutMs < 1 ||
    idleTimeoutMs > 2 ** 31 - 1
  ) {
    return `--idle-timeout ${JSON.stringify(idleTimeout)}: a number of seconds, above 0`
  }
  const prefixText = positionals[0] ?? ''
  const prefix = values.json && positionals.length > 0 ? jsonString(prefixText) : prefixText
  if (prefix === undefined)
    return `--json: ${prefixText} is not a JSON string (such as "a\\u0000b")`
  if (!prefix.isWellFormed()) return 'the prefix has a lone surrogate'
  const query = [
    ...(prefix === '' ? [] : [`prefix=${keySegment(prefix)}`]),
    ...(values.values ? ['values=true'] : []),
    ...(types === undefined ? [] : [`types=${types.join(',')}`]),
  ]
  return { base, since, query, headers: tokenHeaders(values.token), idleTimeoutMs }
}

interface WatchRequest {
  base: URL
  /** The --since of the first attempt; later ones resume from the last id. */
  since: string
  /** The query parameters but since, which each attempt sets. */
  query: string[]
  headers: Record<string, string>
  idleTimeoutMs: number
}

/** Streams, prints and resumes until stopped, or until an answer the watch cannot go past. */
async function follow(
  { base, since, query, headers, idleTimeoutMs }: WatchRequest,
  signal: AbortSignal,
): Promise<number> {
  let lastEventId = ''
  /** The id of the last change printed: a server resending one after a resume is not printed. */
  let printedThrough = -1
  let response: IncomingMessage | undefined
  /** A stream has been open: from now on, failures are waited out. */
  let established = false
  let failures = 0
  let retryMs = firstDelayMs

  const print = (event: ServerSentEvent): string | undefined => {
    if (!/^[0-9]+$/.test(event.lastEventId)) {
      return `a ${event.type} event whose id is not a sequence number: ${JSON.stringify(event.lastEventId)}`
    }
    const id = Number(event.lastEventId)
    let data: unknown
    try {
      data = JSON.parse(event.data)
    } catch {
      data = undefined
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      return `event ${id} (${event.type}) has data that is not a JSON object`
    }
    if (id <= printedThrough) return undefined
    printedThrough = id
    // id and event first, and not overwritten by fields of the same names in the data.
    const line = { id, event: event.type, ...data }
    line.id = id
    line.event = event.type
    if (!process.stdout.write(`${JSON.stringify(line)}\n`) && response?.isPaused() === false) {
      // stdout cannot take more for now: read no more of the stream until it can.
      const paused = response
      paused.pause()
      process.stdout.once('drain', () => paused.resume())
    }
    return undefined
  }

  for (;;) {
    const openedAt = Date.now()
    const position = lastEventId === '' ? since : lastEventId
    const outcome = await watchStream({
      base,
      path: `/v1/watch?${[...query, `since=${position}`].join('&')}`,
      headers,
      lastEventId,
      onEvent: print,
      onRetry: (ms) => {
        retryMs = Math.min(Math.max(ms, firstDelayMs), longestDelayMs)
      },
      onResponse: (opened) => {
        response = opened
        established = true
      },
      signal,
      idleTimeoutMs,
    })
    response = undefined
    let reason: string
    if (outcome.kind === 'stopped') return exitOk
    if (outcome.kind === 'unreadable') {
      process.stderr.write(`slabkv watch: cannot read the stream: ${outcome.reason}\n`)
      return exitServer
    }
    if (outcome.kind === 'refused') {
      const { answer } = outcome
      if (answer.status === 410) return historyGone(answer)
      if (!established || !isPassing(answer)) return serverError('watch', answer)
      const problem = problemOf(answer)
      reason = `the server answered ${answer.status}${problem?.code === undefined ? '' : ` (${problem.code})`}`
    } else if (outcome.kind === 'unreachable') {
      reason = `cannot reach ${base.origin}: ${outcome.reason}`
      if (!established) {
        process.stderr.write(`slabkv watch: ${reason}\n`)
        return exitServer
      }
    } else {
      reason = outcome.reason
      lastEventId = outcome.lastEventId
      if (Date.now() - openedAt >= longestDelayMs) failures = 0
    }
    const delayMs = backoff(retryMs, failures++)
    const from = lastEventId === '' ? `since ${since}` : `after id ${lastEventId}`
    process.stderr.write(`slabkv watch: ${reason}; resuming ${from} in ${delayMs} ms\n`)
    await sleep(delayMs, signal)
    if (signal.aborted) return exitOk
  }
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

/** 410: the server no longer holds the changes after the position (or never had them). */
function historyGone(answer: Answer): number {
  const problem = problemOf(answer)
  const what = problem?.detail ?? problem?.title ?? 'the history to resume from is gone'
  const held =
    problem?.oldestSequence === undefined
      ? ''
      : `; the oldest sequence the server holds is ${problem.oldestSequence}` +
        (problem.newestSequence === undefined ? '' : `, the newest ${problem.newestSequence}`)
  process.stderr.write(
    `slabkv watch: ${what} (${problem?.code ?? answer.status})${held}. List the keys again ` +
      `(GET /v1/kv answers Slabkv-Sequence) and watch from there with --since\n`,
  )
  return exitHistoryGone
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
