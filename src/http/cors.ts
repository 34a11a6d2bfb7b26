import type { MiddlewareHandler } from 'hono'

// Cross-origin requests from browsers (--cors-origins; docs/api.md, "Browsers on other
// origins"). A browser lets a page on another origin read an answer only if the answer names
// that origin in Access-Control-Allow-Origin, and before a request no plain form could send (a
// PUT, a DELETE, a JSON body, an Authorization header) it asks first with a preflight: OPTIONS
// with Origin and Access-Control-Request-Method. With no origin listed, none of this exists and
// browsers refuse every cross-origin call, as they always did here. The exposure each choice
// makes is the user's to decide, so it is an explicit list, matched exactly.

/** The methods the API has; OPTIONS itself is never asked for. */
export const corsAllowedMethods = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE']

/**
 * The request headers the routes read that a browser does not allow by itself: Content-Type
 * (only three form types are safelisted; JSON is not), the conditions of PUT, GET and DELETE on
 * /v1/kv, the bearer token, and the position a watch resumes from.
 */
export const corsAllowedHeaders = [
  'Content-Type',
  'If-Match',
  'If-None-Match',
  'Authorization',
  'Last-Event-ID',
]

/**
 * The response headers the routes send that a page may not read unless they are listed
 * (Content-Type and Content-Length it always may): the version, the TTL left, the evictions a
 * write caused, the sequence a listing reflects, and the scheme a 401 asks for.
 */
export const corsExposedHeaders = [
  'ETag',
  'Slabkv-Ttl',
  'Slabkv-Evicted',
  'Slabkv-Sequence',
  'WWW-Authenticate',
]

/**
 * How long a browser may reuse a preflight's answer. Short, because a cached preflight lets a
 * page keep sending writes after its origin was removed from the list (it can no longer read
 * the answers, but the writes happen): a restart with a shorter list takes effect within this.
 */
export const corsMaxAgeSeconds = 600

const preflightHeaders = {
  'Access-Control-Allow-Methods': corsAllowedMethods.join(', '),
  'Access-Control-Allow-Headers': corsAllowedHeaders.join(', '),
  'Access-Control-Max-Age': String(corsMaxAgeSeconds),
}
const exposedHeaders = corsExposedHeaders.join(', ')

/**
 * Why an entry of --cors-origins cannot be used, or undefined when it can. An origin is written
 * the way browsers send it in the Origin header, so that an exact string match is the test:
 * scheme://host[:port], lowercase, no default port, no path, no trailing slash. `null` is the
 * origin of a page opened from disk (and of any opaque origin). `*` is refused: see
 * docs/api.md for why a list is required.
 */
export function corsOriginRefusal(entry: string): string | undefined {
  if (entry === 'null') return undefined
  if (entry === '*') {
    return "--cors-origins does not take '*': list the origins whose pages may call this server (any page on the web could otherwise read and write it, and send it a token a user gave that page)"
  }
  let origin: string | undefined
  try {
    const url = new URL(entry)
    if (url.protocol === 'http:' || url.protocol === 'https:') origin = url.origin
  } catch {
    origin = undefined
  }
  if (origin === entry) return undefined
  const suggestion = origin === undefined ? '' : `; write it as ${origin}`
  return `--cors-origins must list origins as browsers send them (http or https://host[:port], or null), not '${entry}'${suggestion}`
}

/**
 * Answers preflights from the listed origins, and marks every other answer for them as
 * readable. Registered before the bearer token check, because a preflight never carries the
 * token: the browser sends it only on the request the preflight allows. Requests from any other
 * origin, or from none, pass through untouched, except for Vary: Origin, which every answer of
 * a server with a list carries so that a cache never hands one origin's answer to another.
 */
export function corsHandler(origins: readonly string[]): MiddlewareHandler | undefined {
  if (origins.length === 0) return undefined
  const allowed = new Set(origins)
  return async (c, next) => {
    const origin = c.req.header('origin')
    const isAllowed = origin !== undefined && allowed.has(origin)
    if (
      isAllowed &&
      c.req.method === 'OPTIONS' &&
      c.req.header('access-control-request-method') !== undefined
    ) {
      // Whatever method or headers were asked for: the browser compares them with the lists
      // and refuses the request itself if one is missing.
      return c.body(null, 204, {
        ...preflightHeaders,
        'Access-Control-Allow-Origin': origin,
        Vary: 'Origin',
      })
    }
    await next()
    const headers = c.res.headers
    headers.append('Vary', 'Origin')
    if (!isAllowed) return
    headers.set('Access-Control-Allow-Origin', origin)
    headers.set('Access-Control-Expose-Headers', exposedHeaders)
  }
}
