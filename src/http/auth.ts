import { createHash, timingSafeEqual } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { isDocsPath } from './docs.js'
import { problemResponse } from './respond.js'
import { isUiPath } from './ui.js'

// Bearer-token authentication for every route but the probes, the UI's static files and the API
// docs (the /docs page, its files and the OpenAPI document: the API's shape, no data). Both
// sides are hashed to 32 bytes before timingSafeEqual, so the comparison takes the same time
// whatever was presented, and not even the token's length leaks.

const probePaths = new Set(['/healthz', '/readyz'])

/** The probes: open to anyone, so a load balancer needs no token. */
export function isOpenPath(path: string): boolean {
  return probePaths.has(path)
}

export function bearerAuth(token: string): MiddlewareHandler {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest()
  const expected = digest(token)
  return async (c, next) => {
    const path = c.req.path
    if (isOpenPath(path) || isUiPath(path) || isDocsPath(path)) return next()
    const header = c.req.header('authorization') ?? ''
    // The scheme name is case-insensitive (RFC 9110 §11.1); the token is not.
    const bearer = header.slice(0, 7).toLowerCase() === 'bearer '
    const presented = digest(bearer ? header.slice(7) : '')
    if (bearer && timingSafeEqual(presented, expected)) return next()
    return problemResponse('unauthorized', undefined, undefined, {
      'WWW-Authenticate': 'Bearer realm="slabkv"',
    })
  }
}
