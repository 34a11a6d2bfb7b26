import type { Context } from 'hono'

// Keys travel in paths percent-encoded as UTF-8. Hono decodes the parameter, but when the
// encoding is not valid UTF-8 (%FF, an encoded lone surrogate) it quietly hands back the raw
// text, which would store "%FF" as a literal key. So a key that still holds a % after decoding
// is decoded again from the raw URL, strictly; only such keys pay for the check.
//
// The key is always the path's last segment: every route that takes one ends in /{key}, and a
// key's own slashes arrive as %2F, which neither Hono nor the URL parser turns into a separator.
// Counting from the end keeps the key exact even when the route's prefix is itself
// percent-encoded (/v1/k%76/{key}), which a cut at the decoded prefix's length would shift.

/** The decoded key, or undefined when its percent-encoding is not valid UTF-8. */
export function pathKey(c: Context): string | undefined {
  const key = c.req.param('key') ?? ''
  if (!key.includes('%')) return key
  const url = c.req.url
  const pathStart = url.indexOf('/', url.indexOf('//') + 2)
  const queryStart = url.indexOf('?', pathStart)
  const path = url.slice(pathStart, queryStart === -1 ? undefined : queryStart)
  try {
    return decodeURIComponent(path.slice(path.lastIndexOf('/') + 1))
  } catch {
    return undefined
  }
}
