import type { Agent, ClientRequest, IncomingHttpHeaders, RequestOptions } from 'node:http'
import { request as httpRequest } from 'node:http'
import {
  type Problem,
  SlabkvConnectionError,
  SlabkvError,
  SlabkvProtocolError,
  WatchHistoryGoneError,
} from './errors.js'

// Requests to a slabkv server over node:http, for the client (src/client/index.ts) and its watch.
// node:http, not fetch: fetch parses the URL, and a URL parser removes a last segment of '.' or
// '..' (or %2E, %2E%2E) before sending, so those keys could never be reached; http.request sends
// the path exactly as given.

export interface ConnectionOptions {
  /** The server, http: or https:, with a path prefix if it is served under one. */
  url?: string | URL
  /** The bearer token of a server started with --token. */
  token?: string
  /** Sent with every request (a proxy's own header, say). */
  headers?: Record<string, string>
  /** The agent for the connections; Node's global agent (keep-alive) by default. */
  agent?: Agent
  /** Each request but a watch's rejects after this long, with a TimeoutError. No limit by default. */
  timeoutMs?: number
  /** Aborts every call of this client, watches included. */
  signal?: AbortSignal
}

export const defaultUrl = 'http://127.0.0.1:8000'

export interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/**
 * A key as the last segment of a request path (or a query value): the UTF-8 of every character
 * but the unreserved ones percent-encoded ('/' as %2F, '%' as %25), since the server reads the
 * key from the target as sent (src/http/path-key.ts). '.' and '..' go as %2E and %2E%2E: the
 * server takes those spellings, and no URL parser is ever given the path, which would drop them
 * as dot segments even so. A lone surrogate has no UTF-8, so no key holds one: a TypeError.
 */
export function keySegment(key: string): string {
  if (typeof key !== 'string') throw new TypeError(`a key is a string, not ${typeof key}`)
  if (!key.isWellFormed()) {
    throw new TypeError(
      `the key ${JSON.stringify(key)} has a lone surrogate, which no key can have`,
    )
  }
  const encoded = encodeURIComponent(key).replace(
    /[!'()*]/g,
    (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`,
  )
  return key === '.' || key === '..' ? encoded.replaceAll('.', '%2E') : encoded
}

/** One server's address and credentials, and the requests made to it. */
export class Connection {
  readonly base: URL
  readonly #headers: Record<string, string>
  readonly #agent: Agent | undefined
  readonly #timeoutMs: number | undefined
  readonly #signal: AbortSignal | undefined

  constructor(options: ConnectionOptions = {}) {
    const url = options.url ?? defaultUrl
    let base: URL
    try {
      base = new URL(url)
    } catch {
      throw new TypeError(`${String(url)} is not a URL`)
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new TypeError(`${base.href} is not an http: or https: URL`)
    }
    const { timeoutMs } = options
    if (timeoutMs !== undefined && !(timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)) {
      throw new TypeError(`timeoutMs ${timeoutMs}: a number of milliseconds above 0`)
    }
    this.base = base
    this.#headers = { ...options.headers }
    if (options.token !== undefined && options.token !== '') {
      this.#headers.Authorization = `Bearer ${options.token}`
    }
    this.#agent = options.agent
    this.#timeoutMs = timeoutMs
    this.#signal = options.signal
  }

  /** What aborts one call: the client's signal, the call's, and (but for watch) the timeout. */
  signalFor(callSignal: AbortSignal | undefined, timeout: boolean): AbortSignal | undefined {
    const signals = [this.#signal, callSignal].filter((signal) => signal !== undefined)
    if (timeout && this.#timeoutMs !== undefined) signals.push(AbortSignal.timeout(this.#timeoutMs))
    return signals.length <= 1 ? signals[0] : AbortSignal.any(signals)
  }

  /** A request to the server, not yet ended; `path` starts with '/' and is sent as it is. */
  async open(
    method: string,
    path: string,
    headers: Record<string, string | number>,
  ): Promise<ClientRequest> {
    const { base } = this
    const request = base.protocol === 'https:' ? (await import('node:https')).request : httpRequest
    const options: RequestOptions = {
      protocol: base.protocol,
      hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'), // An IPv6 literal, without brackets.
      port: base.port,
      method,
      path: base.pathname.replace(/\/$/, '') + path,
      headers: { ...this.#headers, ...headers },
    }
    if (this.#agent !== undefined) options.agent = this.#agent
    if (base.username !== '' || base.password !== '') {
      options.auth = `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`
    }
    return request(options)
  }

  /** One request, its answer read whole. Rejects with the signal's reason once it aborts. */
  async send(
    method: string,
    path: string,
    options: { headers?: Record<string, string>; body?: Uint8Array; signal?: AbortSignal } = {},
  ): Promise<Answer> {
    const { body, signal } = options
    signal?.throwIfAborted()
    const headers: Record<string, string | number> = { ...options.headers }
    if (body !== undefined) headers['Content-Length'] = body.byteLength
    const outgoing = await this.open(method, path, headers)
    return readAnswer(outgoing, body, signal)
  }
}

/** Ends the request (with the body, if any) and reads its answer whole. */
function readAnswer(
  outgoing: ClientRequest,
  body: Uint8Array | undefined,
  signal: AbortSignal | undefined,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let settled = false
    const settle = (outcome: () => void) => {
      if (settled) return
      settled = true
      signal?.removeEventListener('abort', onAbort)
      outcome()
    }
    const fail = (error: Error) =>
      settle(() => reject(new SlabkvConnectionError(error.message, { cause: error })))
    const onAbort = () =>
      settle(() => {
        outgoing.destroy()
        reject(signal!.reason)
      })
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) onAbort()
    outgoing.on('response', (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('error', fail)
      response.on('end', () =>
        settle(() =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
          }),
        ),
      )
    })
    outgoing.on('error', fail)
    outgoing.end(body)
  })
}

/** The problem+json body of an answer (src/errors.ts), or undefined when it is not one. */
export function problemOf(answer: Answer): Problem | undefined {
  if (!/^application\/problem\+json\b/i.test(answer.headers['content-type'] ?? '')) return undefined
  try {
    const parsed: unknown = JSON.parse(answer.body.toString('utf8'))
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Problem)
      : undefined
  } catch {
    return undefined
  }
}

/** The error an answer the call did not expect stands for. */
export function errorOf(answer: Answer): SlabkvError {
  const problem = problemOf(answer)
  const text = problem === undefined ? answer.body.toString('utf8') : ''
  return problem?.code === 'watch_history_gone'
    ? new WatchHistoryGoneError(answer.status, problem, text)
    : new SlabkvError(answer.status, problem, text)
}

/** True when the answer is the server's 404 for a missing key, not for a missing route. */
export function isKeyNotFound(answer: Answer): boolean {
  return answer.status === 404 && problemOf(answer)?.code === 'not_found'
}

/** The answer's JSON body, or a SlabkvProtocolError. */
export function jsonOf(answer: Answer): unknown {
  try {
    return JSON.parse(answer.body.toString('utf8'))
  } catch (error) {
    throw new SlabkvProtocolError(
      `the ${answer.status} answer is not JSON: ${(error as Error).message}`,
    )
  }
}

/** The version an ETag header names ("n"), or undefined. */
export function versionOfEtag(etag: string | undefined): number | undefined {
  const match = /^"(\d{1,16})"$/.exec(etag ?? '')
  return match === null ? undefined : Number(match[1])
}
