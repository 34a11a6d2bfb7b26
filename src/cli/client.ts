import { readFileSync } from 'node:fs'
import { request as httpRequest, type IncomingHttpHeaders, type RequestOptions } from 'node:http'
import { parseArgs } from 'node:util'
import { envName } from '../config.js'
import { exitFailed, exitOk, exitServer, exitUsage } from '../exit-codes.js'
import { parseTtlSeconds, ttlRefusal } from '../http/ttl.js'
import { commandHelp } from './help.js'

// slabkv get, set, del and ls: a terminal client for a running server.

/** get and del of a missing key. */
const exitNotFound = exitFailed

/**
 * A key as the last segment of a request path: the UTF-8 of every character but the unreserved
 * ones percent-encoded ('/' as %2F, '%' as %25), since the server reads the key from the target
 * as sent (src/http/path-key.ts). '.' and '..' go as %2E and %2E%2E: the server takes those
 * spellings, and a URL parser is never given the path (see send), which would drop them as dot
 * segments even so.
 */
function keySegment(key: string): string {
  const encoded = encodeURIComponent(key).replace(
    /[!'()*]/g,
    (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`,
  )
  return key === '.' || key === '..' ? encoded.replaceAll('.', '%2E') : encoded
}

/** The request could not be made, or its answer not read: no server there, or a broken connection. */
class RequestError extends Error {}

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/**
 * One request to the server, its answer read whole. node:http, not fetch: fetch parses the URL,
 * and a URL parser removes a last segment of '.' or '..' (or %2E, %2E%2E) before sending, so
 * those keys could never be reached; http.request sends the path exactly as given.
 */
async function send(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Uint8Array,
): Promise<Answer> {
  const request = base.protocol === 'https:' ? (await import('node:https')).request : httpRequest
  const options: RequestOptions = {
    protocol: base.protocol,
    hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'), // An IPv6 literal, without brackets.
    port: base.port,
    method,
    path: base.pathname.replace(/\/$/, '') + path,
    headers: body === undefined ? headers : { ...headers, 'Content-Length': body.byteLength },
  }
  if (base.username !== '' || base.password !== '') {
    options.auth = `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`
  }
  return new Promise((resolve, reject) => {
    const outgoing = request(options, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('error', (error) => reject(new RequestError(error.message)))
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks),
        }),
      )
    })
    outgoing.on('error', (error) => reject(new RequestError(error.message)))
    outgoing.end(body)
  })
}

/** The problem+json body of an answer (src/errors.ts), or undefined when it is not one. */
function problemOf(answer: Answer): { code?: string; title?: string; detail?: string } | undefined {
  if (!/^application\/problem\+json\b/i.test(answer.headers['content-type'] ?? '')) return undefined
  try {
    const parsed: unknown = JSON.parse(answer.body.toString('utf8'))
    return parsed !== null && typeof parsed === 'object' ? parsed : undefined
  } catch {
    return undefined
  }
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

/** Says why the server did not do it, in words (never the raw body); exit 2 or 3. */
function serverError(command: string, answer: Answer): number {
  const problem = problemOf(answer)
  if (problem === undefined) {
    const text = answer.body.toString('utf8').trim().slice(0, 200)
    process.stderr.write(
      `slabkv ${command}: the server answered ${answer.status}${text === '' ? '' : `: ${text}`}\n`,
    )
    return exitServer
  }
  const what = problem.detail ?? problem.title ?? 'no reason given'
  process.stderr.write(`slabkv ${command}: ${what} (${problem.code ?? answer.status})\n`)
  return problem.code !== undefined && argumentRefusals.has(problem.code) ? exitUsage : exitServer
}

/** True when the answer is the server's 404 for a missing key, not for a missing route. */
function isNotFound(answer: Answer): boolean {
  return answer.status === 404 && problemOf(answer)?.code === 'not_found'
}

/** Every client command takes these; `set` takes --ttl too. */
const clientOptions = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

export type ClientCommand = 'get' | 'set' | 'del' | 'ls'

export async function client(command: ClientCommand, argv: string[]): Promise<number> {
  const usageError = (message: string) => {
    const synopsis = commandHelp[command]!.split('\n')[0]
    process.stderr.write(
      `slabkv ${command}: ${message}\n${synopsis}\n(slabkv ${command} --help says more)\n`,
    )
    return exitUsage
  }
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
  let base: URL
  const url = values.url ?? process.env[envName('url')] ?? 'http://127.0.0.1:8000'
  const urlSource = values.url === undefined ? envName('url') : '--url'
  try {
    base = new URL(url)
  } catch {
    return usageError(`${urlSource} ${url} is not a URL`)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    return usageError(`${urlSource} ${url} is not an http: or https: URL`)
  }
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
  const token = values.token ?? process.env[envName('token')]
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {}
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

/** The string a JSON string literal spells, or undefined when the text is not one. */
function jsonString(text: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(text)
    return typeof parsed === 'string' ? parsed : undefined
  } catch {
    return undefined
  }
}
