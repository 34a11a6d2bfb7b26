import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Slabkv, SlabkvError } from '../client/index.js'
import { exitFailed, exitOk } from '../exit-codes.js'
import { parseTtlSeconds, ttlRefusal } from '../http/ttl.js'
import {
  clientOptions,
  failure,
  jsonString,
  serverAddress,
  tokenOf,
  usageFailure,
} from './client-common.js'
import { commandHelp } from './help.js'

// slabkv get, set, del and ls: a terminal client for a running server, through the Node client
// (src/client/index.ts).

/** get and del of a missing key. */
const exitNotFound = exitFailed

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
  let ttlSeconds: number | undefined
  if (values.ttl !== undefined) {
    // The server's own check, made before anything is sent.
    ttlSeconds = parseTtlSeconds(values.ttl)
    if (ttlSeconds === undefined || Number.isNaN(ttlSeconds)) {
      return usageError(`--ttl ${JSON.stringify(values.ttl)}: ${ttlRefusal}`)
    }
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
  const kv = new Slabkv({ url: base, token: tokenOf(values.token) })
  try {
    if (command === 'get') {
      const entry = await kv.get(key)
      if (entry === undefined) {
        process.stderr.write(`not found: ${keyText}\n`)
        return exitNotFound
      }
      process.stdout.write(entry.value)
      return exitOk
    }
    if (command === 'set') {
      // Bytes, not a string: the value is stored as application/octet-stream, as sent.
      const body = value === '-' ? readFileSync(0) : Buffer.from(value!, 'utf8')
      try {
        await kv.set(key, body, ttlSeconds === undefined ? {} : { ttlSeconds })
      } catch (error) {
        if (error instanceof SlabkvError && error.status === 412) return exitNotFound
        throw error
      }
      return exitOk
    }
    if (command === 'del') {
      if (await kv.delete(key)) return exitOk
      process.stderr.write(`not found: ${keyText}\n`)
      return exitNotFound
    }
    for await (const page of kv.listPages({ prefix: key, pageSize: 1000 })) {
      const lines = page.entries.map((entry) =>
        values.json ? JSON.stringify(entry.key) : entry.key,
      )
      if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`)
    }
    return exitOk
  } catch (error) {
    return failure(command, base, error)
  }
}
