import type { StoreLimits } from './store/layout.js'
import type { StoreErrorCode } from './store/types.js'

// Every error a client can cause, in one table: stable code → HTTP status → title. Routes
// under /v1 answer with application/problem+json (RFC 9457) built from this table; the
// PyKV-compatible routes keep FastAPI's shapes (see http/routes/pykv.ts).

export const errorTable = {
  invalid_json: { status: 400, title: 'The request body is not valid JSON' },
  invalid_request: { status: 400, title: 'The request is malformed' },
  key_empty: { status: 400, title: 'The key is empty' },
  key_invalid: { status: 400, title: 'The key is not well-formed UTF-8' },
  key_too_large: { status: 400, title: 'The key is larger than the key size limit' },
  ttl_invalid: { status: 400, title: 'The TTL must be a positive number of seconds' },
  content_type_invalid: { status: 400, title: 'The content type is not a media type' },
  unauthorized: { status: 401, title: 'A valid bearer token is required' },
  not_found: { status: 404, title: 'No such key' },
  route_not_found: { status: 404, title: 'No such route' },
  request_timeout: { status: 408, title: 'The request was not sent in time' },
  watch_history_gone: {
    status: 410,
    title: 'The changes to resume from are no longer in the log: list the keys again, then watch',
  },
  precondition_failed: { status: 412, title: 'A condition of the request failed' },
  value_too_large: { status: 413, title: 'The value is too large to store' },
  body_too_large: { status: 413, title: 'The request body is larger than the body size limit' },
  batch_too_large: { status: 413, title: 'The batch has more ops than the limit' },
  batch_read_too_large: {
    status: 413,
    title: 'The values the batch reads are larger than the batch read limit',
  },
  expectation_failed: { status: 417, title: 'The Expect header asks for what is not supported' },
  host_not_allowed: {
    status: 421,
    title: 'This server does not answer to that Host name',
  },
  too_many_pipelined_requests: {
    status: 429,
    title: 'The connection has more requests waiting for their answers than the limit',
  },
  too_many_watchers: {
    status: 429,
    title: 'As many watch streams are open as the limit allows',
  },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  internal: { status: 500, title: 'Internal error' },
  transfer_coding_unsupported: {
    status: 501,
    title: 'The request body has a transfer coding other than chunked',
  },
  storage_failed: {
    status: 503,
    title: 'The write-ahead log failed; the write is not acknowledged and the server is exiting',
  },
  storage_full: {
    status: 507,
    title: 'The disk is full: the server is read-only until space returns',
  },
} as const satisfies Record<string, { status: number; title: string }>

export type ErrorCode = keyof typeof errorTable

export interface Problem {
  type: string
  title: string
  status: number
  code: ErrorCode
  detail: string
  [extension: string]: unknown
}

export function problem(
  code: ErrorCode,
  detail?: string,
  extensions?: Record<string, unknown>,
): Problem {
  const { status, title } = errorTable[code]
  return {
    type: `urn:slabkv:${code}`, // No public URL documents these; docs/api.md does.
    title,
    status,
    code,
    detail: detail ?? title,
    ...extensions,
  }
}

/**
 * The client-facing code for a refusal the store returned as a value. log_full is not one: it
 * means "try again once the log drains", which whenLogged (src/http/respond.ts) does.
 */
export function codeOfStoreError(code: Exclude<StoreErrorCode, 'log_full'>): ErrorCode {
  switch (code) {
    case 'key_exists':
    case 'version_mismatch':
      return 'precondition_failed'
    case 'entry_too_large':
      return 'value_too_large'
    default:
      return code
  }
}

// The details of refusals that a limit decides: each names the limit and the flag that sets it,
// so whoever reads the error knows both what to send instead and what an operator could change.

/** The detail of a refused key, for the codes that have more to say than their title. */
export function keyRefusal(
  code: StoreErrorCode,
  key: string,
  limits: Pick<StoreLimits, 'keySizeMax'>,
): string | undefined {
  if (code !== 'key_too_large') return undefined
  return `The key is ${Buffer.byteLength(key)} bytes of UTF-8; the limit is ${limits.keySizeMax} bytes (--max-key-size)`
}

/** A value over --max-value-size. */
export function valueRefusal(valueSize: number, limits: Pick<StoreLimits, 'valueSizeMax'>): string {
  return `The value is ${valueSize} bytes; the limit is ${limits.valueSizeMax} bytes (--max-value-size)`
}

/**
 * A key and value that together would not fit even in an empty store. The sizes are those the
 * client sent; a media type kept inline with the value (http/media-type.ts) is named apart, in
 * the bytes it takes in the store, since it counts against --max-memory too.
 */
export function entryRefusal(
  sentSize: number,
  limits: Pick<StoreLimits, 'memorySizeMax'>,
  mediaTypeSize = 0,
): string {
  const mediaType =
    mediaTypeSize === 0
      ? ''
      : `, and the media type kept with the value ${mediaTypeSize} more (${sentSize + mediaTypeSize} in all)`
  return `The key and value are ${sentSize} bytes${mediaType}, more than the whole store holds: ${limits.memorySizeMax} bytes (--max-memory)`
}
