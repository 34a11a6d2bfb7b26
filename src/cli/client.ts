import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { exitFailed, exitOk, exitServer } from '../exit-codes.js'
import { parseTtlSeconds, ttlRefusal } from '../http/ttl.js'
import {
  type Answer,
  clientOptions,
  jsonString,
  keySegment,
  problemOf,
  RequestError,
  send,
  serverAddress,
  serverError,
  tokenHeaders,
  usageFailure,
} from './client-common.js'
import { commandHelp } from './help.js'

// slabkv get, set, del and ls: a terminal client for a running server.

/** get and del of a missing key. */
const exitNotFound = exitFailed

/** True when the answer is the server's 404 for a missing key, not for a missing route. */
function isNotFound(answer: Answer): boolean {
  return answer.status === 404 && problemOf(answer)?.code === 'not_found'
}

export type ClientCommand = 'get' | 'set' | 'del' | 'ls'

export async function client(command: ClientCommand, argv: string[]): Promise<number> {
  const usageError = (message: string) => usageFailure(command, message)
  let values: { url?: string; token?: string; json?: boolean; help?: boolean; ttl?: string }
  let positionals: string[]
  try {
    const parsed = parseArgs({
      args: argv,
      // --ttl is an option of set alone: given to another command it is refused, not ignored.
      options: command === 'set' ? { ...clientOptions, ttl: { type: 'string' } } : clientOptions,
      allowPositionals: true,
    })
    values = parsed.values as typeof values
    positionals = parsed.positionals
  } catch (error) {
    return usageError((error as Error).message)
  }
  if (values.help) {
    process.stdout.write(commandHelp[command]!)
    return exitOk
  }
  const arity = { get: 1, set: 2, del: 1, ls: 0 }[command]
  if (command === 'ls' ? positionals.length > 1 : positionals.length !== arity) {
    return usageError('wrong arguments')
  }
  const base = serverAddress(values.url)
  if (typeof base === 'string') return usageError(base)
  let ttl = ''
  if (values.ttl !== undefined) {
    // The server's own check, made before anything is sent.
    if (Number.isNaN(parseTtlSeconds(values.ttl))) {
      return usageError(`--ttl ${JSON.stringify(values.ttl)}: ${ttlRefusal}`)
    }
    ttl = `?ttl=${values.ttl}`
  }
  const [keyText = '', value] = positionals
  // ls without a PREFIX lists every key, --json or not.
  const key = values.json && positionals.length > 0 ? jsonString(keyText) : keyText
  if (key === undefined) {
    return usageError(`--json: ${keyText} is not a JSON string (such as "a\\u0000b")`)
  }
  if (command !== 'ls' && key === '') return usageError('the key is empty')
  // A lone surrogate has no UTF-8: sent as U+FFFD, it would name another key.
  if (!key.isWellFormed()) return usageError('the key has a lone surrogate, which no key can have')
  const headers = tokenHeaders(values.token)
  const keyPath = `/v1/kv/${keySegment(key)}`
  try {
    if (command === 'get') {
      const answer = await send(base, 'GET', keyPath, headers)
      if (isNotFound(answer)) {
        process.stderr.write(`not found: ${keyText}\n`)
        return exitNotFound
      }
      if (answer.status !== 200) return serverError(command, answer)
      process.stdout.write(answer.body)
      return exitOk
    }
    if (command === 'set') {
      const body = value === '-' ? readFileSync(0) : Buffer.from(value!, 'utf8')
      const answer = await send(base, 'PUT', keyPath + ttl, headers, body)
      if (answer.status === 412) return exitNotFound
      return answer.status === 200 || answer.status === 201 ? 0 : serverError(command, answer)
    }
    if (command === 'del') {
      const answer = await send(base, 'DELETE', keyPath, headers)
      if (isNotFound(answer)) {
        process.stderr.write(`not found: ${keyText}\n`)
        return exitNotFound
      }
      return answer.status >= 200 && answer.status < 300 ? 0 : serverError(command, answer)
    }
    let cursor: string | null = '0'
    const prefix = keySegment(key)
    while (cursor !== null) {
      const answer = await send(
        base,
        'GET',
        `/v1/kv?prefix=${prefix}&cursor=${cursor}&limit=1000`,
        headers,
      )
      if (answer.status !== 200) return serverError(command, answer)
      const page = JSON.parse(answer.body.toString('utf8')) as {
        items: { key: string }[]
        cursor: string | null
      }
      const lines = page.items.map((item) => (values.json ? JSON.stringify(item.key) : item.key))
      if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`)
      cursor = page.cursor
    }
    return exitOk
  } catch (error) {
    const what =
      error instanceof RequestError ? `cannot reach ${base.origin}` : 'cannot read the answer'
    process.stderr.write(`slabkv ${command}: ${what}: ${(error as Error).message}\n`)
    return exitServer
  }
}
