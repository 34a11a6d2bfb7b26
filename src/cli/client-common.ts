import {
  type ClientRequest,
  request as httpRequest,
  type IncomingHttpHeaders,
  type RequestOptions,
} from 'node:http'
import { envName } from '../config.js'
import { exitServer, exitUsage } from '../exit-codes.js'
import { commandHelp } from './help.js'

// What every client command (src/cli/client.ts, src/cli/watch.ts) shares: the server's address
// and token from the options or the environment, requests over node:http, and an error answer
// put into words and an exit code.

/**
 * A key as the last segment of a request path (or a query value): the UTF-8 of every character
 * but the unreserved ones percent-encoded ('/' as %2F, '%' as %25), since the server reads the
 * key from the target as sent (src/http/path-key.ts). '.' and '..' go as %2E and %2E%2E: the
 * server takes those spellings, and a URL parser is never given the path (see openRequest),
 * which would drop them as dot segments even so.
 */
export function keySegment(key: string): string {
  const encoded = encodeURIComponent(key).replace(
    /[!'()*]/g,
    (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`,
  )
  return key === '.' || key === '..' ? encoded.replaceAll('.', '%2E') : encoded
}

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

/** The Authorization header for --token or SLABKV_TOKEN, when either is given. */
export function tokenHeaders(tokenOption: string | undefined): Record<string, string> {
  const token = tokenOption ?? process.env[envName('token')]
  return token ? { Authorization: `Bearer ${token}` } : {}
}

/** The request could not be made, or its answer not read: no server there, or a broken connection. */
export class RequestError extends Error {}

export interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/**
 * A request to the server, not yet ended. node:http, not fetch: fetch parses the URL, and a URL
 * parser removes a last segment of '.' or '..' (or %2E, %2E%2E) before sending, so those keys
 * could never be reached; http.request sends the path exactly as given.
 */
export async function openRequest(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string | number>,
): Promise<ClientRequest> {
  const request = base.protocol === 'https:' ? (await import('node:https')).request : httpRequest
  const options: RequestOptions = {
    protocol: base.protocol,
    hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'), // An IPv6 literal, without brackets.
    port: base.port,
    method,
    path: base.pathname.replace(/\/$/, '') + path,
    headers,
  }
  if (base.username !== '' || base.password !== '') {
    options.auth = `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`
  }
  return request(options)
}

/** One request to the server, its answer read whole. */
export async function send(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Uint8Array,
): Promise<Answer> {
  const outgoing = await openRequest(
    base,
    method,
    path,
    body === undefined ? headers : { ...headers, 'Content-Length': body.byteLength },
  )
  return readAnswer(outgoing, body)
}

/** Ends the request (with the body, if any) and reads its answer whole. */
export function readAnswer(outgoing: ClientRequest, body?: Uint8Array): Promise<Answer> {
  return new Promise((resolve, reject) => {
    outgoing.on('response', (response) => {
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

export interface Problem {
  code?: string
  title?: string
  detail?: string
  [extension: string]: unknown
}

/** The problem+json body of an answer (src/errors.ts), or undefined when it is not one. */
export function problemOf(answer: Answer): Problem | undefined {
  if (!/^application\/problem\+json\b/i.test(answer.headers['content-type'] ?? '')) return undefined
  try {
    const parsed: unknown = JSON.parse(answer.body.toString('utf8'))
    return parsed !== null && typeof parsed === 'object' ? (parsed as Problem) : undefined
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
export function serverError(command: string, answer: Answer): number {
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
