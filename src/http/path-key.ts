import type { IncomingMessage } from 'node:http'
import type { HttpBindings } from '@hono/node-server'
import type { Context } from 'hono'

// Keys travel in paths percent-encoded as UTF-8, and every route that takes one ends in /{key}.
// The key is read from the request target exactly as the client sent it, not from the URL the
// adapter builds: URL normalization removes a segment that is ".", "..", or either spelled with
// %2E, so the keys "." and ".." would vanish (GET /v1/kv/%2E became GET /v1/kv/), and Hono, when
// a parameter's encoding is not valid UTF-8 (%FF), quietly hands back the raw text. Here the
// last segment of the raw path is decoded strictly, or refused.
//
// Counting from the end keeps the key exact even when the route's prefix is itself
// percent-encoded (/v1/k%76/{key}); a key's own slashes arrive as %2F, which nothing here or in
// the router turns into a separator.

/** The raw target of each request whose last segment was replaced for routing. */
const rawTargets = new WeakMap<IncomingMessage, string>()

/** A last path segment that URL normalization would remove: ".", "..", or either with %2E. */
const dotSegmentLast = /\/(?:\.|%2e){1,2}$/i

/**
 * Lets a request whose key is a dot segment reach its route: the adapter is given the target
 * with that segment replaced by "_" (routes care only that a segment is there), and pathKey
 * reads the key from the target as sent, kept here. Called before the adapter sees the request.
 */
export function keepDotSegmentKey(incoming: IncomingMessage): void {
  const target = incoming.url
  if (target === undefined) return
  const path = pathOf(target)
  if (!dotSegmentLast.test(path)) return
  rawTargets.set(incoming, target)
  incoming.url = `${path.slice(0, path.lastIndexOf('/'))}/_${target.slice(path.length)}`
}

/** The request target as the client sent it. */
export function rawTargetOf(incoming: IncomingMessage): string {
  return rawTargets.get(incoming) ?? incoming.url ?? ''
}

/** The path of a request target, without its query (which may hold anything a client sent). */
export function pathOf(target: string): string {
  const end = target.search(/[?#]/)
  return end === -1 ? target : target.slice(0, end)
}

/** The decoded key, or undefined when its percent-encoding is not valid UTF-8. */
export function pathKey(c: Context): string | undefined {
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming
  // Without the Node adapter (app.request() in tests), the URL is all there is.
  const path = pathOf(incoming === undefined ? c.req.url : rawTargetOf(incoming))
  const segment = path.slice(path.lastIndexOf('/') + 1)
  if (!segment.includes('%')) return segment
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}
