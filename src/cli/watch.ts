import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { Connection } from '../client/transport.js'
import { followChanges } from '../client/watch.js'
import { exitOk } from '../exit-codes.js'
import {
  clientOptions,
  failure,
  jsonString,
  serverAddress,
  tokenOf,
  usageFailure,
} from './client-common.js'
import { commandHelp } from './help.js'

// slabkv watch: the change feed (GET /v1/watch) as JSON lines on stdout, one per change, until
// SIGINT or SIGTERM. The client's watch (src/client/watch.ts) resumes a lost stream from the last
// id the server sent, so that no change is printed twice or left out, and throws when the first
// connection fails: a wrong --url should not look like a quiet feed. Each change is printed as
// the server sent it, fields the client does not know included.

const changeTypes = ['set', 'delete', 'expire', 'evict', 'clear']
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
  return {
    base,
    since: since === 'now' ? since : Number(since),
    prefix,
    values: values.values === true,
    types,
    token: tokenOf(values.token),
    idleTimeoutMs,
  }
}

interface WatchRequest {
  base: URL
  /** Where the first attempt starts; later ones resume from the last id. */
  since: number | 'now'
  prefix: string
  values: boolean
  types: string[] | undefined
  token: string | undefined
  idleTimeoutMs: number
}

/** Streams and prints until stopped, or until an answer the watch cannot go past. */
async function follow(request: WatchRequest, signal: AbortSignal): Promise<number> {
  const { base, since, prefix, values, types, token, idleTimeoutMs } = request
  const changes = followChanges(new Connection({ url: base, token }), {
    prefix,
    since,
    values,
    ...(types === undefined ? {} : { types }),
    idleTimeoutMs,
    signal,
    onReconnect: ({ reason, delayMs, lastEventId }) => {
      const from = lastEventId === '' ? `since ${since}` : `after id ${lastEventId}`
      process.stderr.write(`slabkv watch: ${reason}; resuming ${from} in ${delayMs} ms\n`)
    },
  })
  try {
    for await (const { id, type, data } of changes) {
      // id and event first, and not overwritten by fields of the same names in the data.
      const line = { id, event: type, ...data }
      line.id = id
      line.event = type
      // stdout cannot take more for now: read no more of the stream until it can.
      if (!process.stdout.write(`${JSON.stringify(line)}\n`)) {
        await once(process.stdout, 'drain', { signal })
      }
    }
  } catch (error) {
    if (signal.aborted) return exitOk
    return failure('watch', base, error)
  }
  return exitOk
}
