import { SlabkvProtocolError } from './errors.js'
import {
  type Answer,
  Connection,
  type ConnectionOptions,
  errorOf,
  isKeyNotFound,
  jsonOf,
  keySegment,
  versionOfEtag,
} from './transport.js'
import type {
  BatchEntry,
  BatchOp,
  BatchResults,
  CallOptions,
  ChangeEvent,
  DeleteOptions,
  Entry,
  ListEntry,
  ListOptions,
  ListPage,
  SetOptions,
  SetResult,
  Stats,
  WatchOptions,
} from './types.js'
import { followChanges, type RawChange } from './watch.js'

// slabkv's client for Node: `import { Slabkv } from 'slabkv/client'` (docs/client.md). One
// method per route of the native API, over node:http (src/client/transport.ts); the change feed
// through src/client/watch.ts. A miss is undefined (get) or false (delete), as with a Map; every
// other refusal is thrown, typed with the problem's code (src/client/errors.ts).

export * from './errors.js'
export type { ConnectionOptions as SlabkvOptions } from './transport.js'
export type * from './types.js'

/** What a string value is stored as unless told otherwise (fetch sends a string body as it too). */
const textContentType = 'text/plain; charset=utf-8'

export class Slabkv {
  readonly #connection: Connection

  /** `url` defaults to http://127.0.0.1:8000. Nothing is sent until the first call. */
  constructor(options: ConnectionOptions = {}) {
    this.#connection = new Connection(options)
  }

  /** The server's address. */
  get url(): string {
    return this.#connection.base.href
  }

  /** The value of `key` with its metadata, or undefined when there is no such key. */
  async get(key: string, options: CallOptions = {}): Promise<Entry | undefined> {
    const answer = await this.#send('GET', kvPath(key), options)
    if (isKeyNotFound(answer)) return undefined
    if (answer.status !== 200) throw errorOf(answer)
    const ttl = answer.headers['slabkv-ttl']
    return {
      value: answer.body,
      contentType: answer.headers['content-type'] ?? 'application/octet-stream',
      version: versionOf(answer),
      ttlSeconds: ttl === undefined ? null : Number(ttl),
    }
  }

  /** The value decoded as UTF-8 (U+FFFD for bytes that are not), or undefined. */
  async getText(key: string, options: CallOptions = {}): Promise<string | undefined> {
    const entry = await this.get(key, options)
    return entry?.value.toString('utf8')
  }

  /** The value parsed as JSON, or undefined; a value that is not JSON throws a SyntaxError. */
  async getJson<T = unknown>(key: string, options: CallOptions = {}): Promise<T | undefined> {
    const text = await this.getText(key, options)
    return text === undefined ? undefined : (JSON.parse(text) as T)
  }

  /** Stores `value` (a string is stored as its UTF-8) and answers its new version. */
  async set(key: string, value: string | Uint8Array, options: SetOptions = {}): Promise<SetResult> {
    const headers: Record<string, string> = {}
    const contentType = options.contentType ?? (typeof value === 'string' ? textContentType : '')
    if (contentType !== '') headers['Content-Type'] = contentType
    if (options.ifVersion !== undefined) headers['If-Match'] = `"${versionText(options.ifVersion)}"`
    if (options.ifAbsent) headers['If-None-Match'] = '*'
    const ttl = options.ttlSeconds === undefined ? '' : `?ttl=${ttlText(options.ttlSeconds)}`
    const answer = await this.#send('PUT', kvPath(key) + ttl, options, headers, bytesOf(value))
    if (answer.status !== 200 && answer.status !== 201) throw errorOf(answer)
    return {
      version: versionOf(answer),
      created: answer.status === 201,
      evicted: Number(answer.headers['slabkv-evicted'] ?? 0),
    }
  }

  /** Stores JSON.stringify(value) as application/json. */
  setJson(key: string, value: unknown, options: SetOptions = {}): Promise<SetResult> {
    const text = JSON.stringify(value)
    if (text === undefined) throw new TypeError('the value has no JSON (undefined, a function)')
    return this.set(key, text, {
      ...options,
      contentType: options.contentType ?? 'application/json',
    })
  }

  /** Deletes `key`: true when it was deleted, false when there was no such key. */
  async delete(key: string, options: DeleteOptions = {}): Promise<boolean> {
    const headers: Record<string, string> = {}
    if (options.ifVersion !== undefined) headers['If-Match'] = `"${versionText(options.ifVersion)}"`
    const answer = await this.#send('DELETE', kvPath(key), options, headers)
    if (isKeyNotFound(answer)) return false
    if (answer.status !== 204 && answer.status !== 200) throw errorOf(answer)
    return true
  }

  /**
   * Every key under `prefix` with its metadata, across as many pages as it takes, requested as
   * the iteration reaches them. A key present for the whole listing comes exactly once; keys
   * come in no particular order.
   */
  async *list(options: ListOptions = {}): AsyncGenerator<ListEntry, void, undefined> {
    for await (const page of this.listPages(options)) yield* page.entries
  }

  /** The listing a page at a time, each with its cursor and sequence (GET /v1/kv). */
  async *listPages(options: ListOptions = {}): AsyncGenerator<ListPage, void, undefined> {
    const { prefix = '', pageSize = 1000 } = options
    let cursor: string | null = options.cursor ?? '0'
    while (cursor !== null) {
      const query = [
        ...(prefix === '' ? [] : [`prefix=${keySegment(prefix)}`]),
        `cursor=${encodeURIComponent(cursor)}`,
        `limit=${pageSize}`,
      ]
      const answer = await this.#send('GET', `/v1/kv?${query.join('&')}`, options)
      if (answer.status !== 200) throw errorOf(answer)
      const page = pageOf(jsonOf(answer), answer)
      cursor = page.cursor
      yield page
    }
  }

  /** Runs the ops atomically (POST /v1/batch): all apply, or none does (and it throws). */
  async batch<const Ops extends readonly BatchOp[]>(
    ops: Ops,
    options: CallOptions = {},
  ): Promise<BatchResults<Ops>> {
    const body = Buffer.from(JSON.stringify({ ops: ops.map(opOf) }), 'utf8')
    const headers = { 'Content-Type': 'application/json' }
    const answer = await this.#send('POST', '/v1/batch', options, headers, body)
    if (answer.status !== 200) throw errorOf(answer)
    const results = (jsonOf(answer) as { results?: unknown } | null)?.results
    if (!Array.isArray(results) || results.length !== ops.length) {
      throw new SlabkvProtocolError(
        `the batch answer has no result for each of its ${ops.length} ops`,
      )
    }
    return ops.map((op, i) => resultOf(op, results[i])) as BatchResults<Ops>
  }

  /** The server's counters and gauges (GET /v1/stats). */
  async stats(options: CallOptions = {}): Promise<Stats> {
    const answer = await this.#send('GET', '/v1/stats', options)
    if (answer.status !== 200) throw errorOf(answer)
    return jsonOf(answer) as Stats
  }

  /**
   * The changes to keys under `prefix`, in the order the server's log committed them, each once,
   * resuming by itself across lost connections and server restarts (GET /v1/watch). It throws
   * when the first connection fails, when the server refuses the watch (401, 400), and with a
   * WatchHistoryGoneError (410) when the changes to resume from are no longer held; aborting
   * `signal` rejects with its reason; `break` ends it.
   */
  async *watch(options: WatchOptions = {}): AsyncGenerator<ChangeEvent, never, undefined> {
    for await (const change of followChanges(this.#connection, options)) {
      const event = changeEventOf(change)
      if (event !== undefined) yield event
    }
    throw new Error('unreachable: a watch ends only by throwing')
  }

  #send(
    method: string,
    path: string,
    options: CallOptions,
    headers?: Record<string, string>,
    body?: Uint8Array,
  ): Promise<Answer> {
    const signal = this.#connection.signalFor(options.signal, true)
    return this.#connection.send(method, path, { headers, body, signal })
  }
}

function kvPath(key: string): string {
  return `/v1/kv/${keySegment(key)}`
}

function bytesOf(value: string | Uint8Array): Uint8Array {
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (value instanceof Uint8Array) return value
  throw new TypeError('a value is a string or a Uint8Array (a Buffer is one)')
}

function versionText(version: number): string {
  if (!Number.isSafeInteger(version) || version < 0) {
    throw new TypeError(`ifVersion ${version}: a version is a non-negative integer`)
  }
  return String(version)
}

/** A TTL as ?ttl= takes it: a decimal, never an exponent; the server judges its range. */
function ttlText(seconds: number): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) {
    throw new TypeError(`ttlSeconds ${String(seconds)}: a number of seconds`)
  }
  const text = String(seconds)
  // 1e-7 is 0.0000001; 1e+21 is past the server's limit however it is written.
  return text.includes('e-') ? seconds.toFixed(20).replace(/0+$/, '') : text
}

function versionOf(answer: Answer): number {
  const version = versionOfEtag(answer.headers.etag)
  if (version === undefined) {
    throw new SlabkvProtocolError(`the ${answer.status} answer has no version ETag`)
  }
  return version
}

function pageOf(body: unknown, answer: Answer): ListPage {
  const page = body as { items?: unknown; cursor?: unknown } | null
  if (!Array.isArray(page?.items) || !(page.cursor === null || typeof page.cursor === 'string')) {
    throw new SlabkvProtocolError('the listing is not {"items":[…],"cursor":…}')
  }
  const sequence = Number(answer.headers['slabkv-sequence'])
  return {
    entries: (page.items as (Omit<ListEntry, 'ttlSeconds'> & { ttl: number | null })[]).map(
      ({ key, size, contentType, version, ttl }) => ({
        key,
        size,
        contentType,
        version,
        ttlSeconds: ttl,
      }),
    ),
    cursor: page.cursor,
    sequence,
  }
}

/** An op as POST /v1/batch takes it: bytes as base64, a string as UTF-8 text. */
function opOf(op: BatchOp): Record<string, unknown> {
  if (op.op !== 'set') return { ...op }
  const { value, ttlSeconds, contentType, ...rest } = op
  const sent: Record<string, unknown> = { ...rest }
  if (typeof value === 'string') {
    sent.value = value
    sent.contentType = contentType ?? textContentType
  } else {
    sent.value = Buffer.from(bytesOf(value)).toString('base64')
    sent.encoding = 'base64'
    if (contentType !== undefined) sent.contentType = contentType
  }
  if (ttlSeconds !== undefined) sent.ttl = ttlSeconds
  return sent
}

function resultOf(
  op: BatchOp,
  result: unknown,
): BatchEntry | { version: number } | boolean | undefined {
  const fields = (result ?? {}) as Record<string, unknown>
  if (op.op === 'delete') return fields.deleted === true
  if (op.op === 'set') return { version: fields.version as number }
  if (fields.found === false) return undefined
  return {
    value: valueBytes(fields),
    contentType: fields.contentType as string,
    version: fields.version as number,
  }
}

/** A value inside JSON (src/http/value-text.ts) back into its bytes. */
function valueBytes(fields: Record<string, unknown>): Buffer {
  if (typeof fields.value !== 'string')
    throw new SlabkvProtocolError('a value that is not a string')
  return Buffer.from(fields.value, fields.encoding === 'base64' ? 'base64' : 'utf8')
}

/** A change as its type says; undefined for a kind this client does not know (a newer server's). */
function changeEventOf({ id, type, data }: RawChange): ChangeEvent | undefined {
  const base = { sequence: id, version: typeof data.version === 'number' ? data.version : id }
  if (type === 'set') {
    return {
      ...base,
      type,
      key: data.key as string,
      size: data.size as number,
      contentType: data.contentType as string,
      expiresAt: (data.expiresAt ?? null) as number | null,
      ...(data.value === undefined ? {} : { value: valueBytes(data) }),
    }
  }
  if (type === 'delete' || type === 'expire' || type === 'evict') {
    return { ...base, type, key: data.key as string }
  }
  if (type === 'clear') return { ...base, type, key: null }
  return undefined
}
