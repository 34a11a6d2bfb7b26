import {
  SlabkvConnectionError,
  SlabkvError,
  SlabkvProtocolError,
  WatchHistoryGoneError,
} from '../client/index.js'
import { envName } from '../config.js'
import { exitHistoryGone, exitServer, exitUsage } from '../exit-codes.js'
import { commandHelp } from './help.js'

// What every client command (src/cli/client.ts, src/cli/watch.ts) shares: the server's address
// and token from the options or the environment, and what the client (src/client/) throws put
// into words and an exit code.

/** Every client command takes these; `set` takes --ttl too, `watch` its own. */
export const clientOptions = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** A usage error: the reason and the command's synopsis on stderr; exit 2. */
export function usageFailure(command: string, message: string): number {
  const synopsis = commandHelp[command]!.split('\n')[0]
  process.stderr.write(
    `slabkv ${command}: ${message}\n${synopsis}\n(slabkv ${command} --help says more)\n`,
  )
  return exitUsage
}

/** The string a JSON string literal spells, or undefined when the text is not one. */
export function jsonString(text: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(text)
    return typeof parsed === 'string' ? parsed : undefined
  } catch {
    return undefined
  }
}

/** The server to talk to, from --url or SLABKV_URL; a string says why the address is refused. */
export function serverAddress(urlOption: string | undefined): URL | string {
  const url = urlOption ?? process.env[envName('url')] ?? 'http://127.0.0.1:8000'
  const urlSource = urlOption === undefined ? envName('url') : '--url'
  let base: URL
  try {
    base = new URL(url)
  } catch {
    return `${urlSource} ${url} is not a URL`
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    return `${urlSource} ${url} is not an http: or https: URL`
  }
  return base
}

/** The bearer token of --token or SLABKV_TOKEN, when either is given. */
export function tokenOf(tokenOption: string | undefined): string | undefined {
  return tokenOption ?? process.env[envName('token')]
}

/** Refusals of what the command was given (the key, the value, the TTL): usage errors. */
const argumentRefusals = new Set([
  'key_empty',
  'key_invalid',
  'key_too_large',
  'ttl_invalid',
  'value_too_large',
  'body_too_large',
])

/**
 * Says why the command failed, in words (never the raw body): what the server refused and why
 * (exit 2 for the arguments, 3 otherwise), that it could not be reached or its answer not read
 * (exit 3), or that the history to resume a watch from is gone (exit 6). Anything else is a bug.
 */
export function failure(command: string, base: URL, error: unknown): number {
  const say = (what: string) => process.stderr.write(`slabkv ${command}: ${what}\n`)
  if (error instanceof WatchHistoryGoneError) {
    const { oldestSequence, newestSequence } = error
    const held =
      oldestSequence === undefined
        ? ''
        : `; the oldest sequence the server holds is ${oldestSequence}` +
          (newestSequence === undefined ? '' : `, the newest ${newestSequence}`)
    const what =
      error.problem === undefined
        ? `the history to resume from is gone (${error.status})`
        : error.message
    say(
      `${what}${held}. List the keys again (GET /v1/kv answers Slabkv-Sequence) and watch from ` +
        'there with --since',
    )
    return exitHistoryGone
  }
  if (error instanceof SlabkvError) {
    say(error.message)
    return error.code !== undefined && argumentRefusals.has(error.code) ? exitUsage : exitServer
  }
  if (error instanceof SlabkvConnectionError) {
    say(`cannot reach ${base.origin}: ${error.message}`)
    return exitServer
  }
  if (error instanceof SlabkvProtocolError) {
    say(`cannot read the ${command === 'watch' ? 'stream' : 'answer'}: ${error.message}`)
    return exitServer
  }
  throw error
}
