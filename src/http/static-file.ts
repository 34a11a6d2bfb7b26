import { createHash } from 'node:crypto'
import type { Context } from 'hono'

// A file served from memory (the web UI's, Swagger UI's): its bytes, read once, and an ETag, so
// a browser revalidating with If-None-Match gets a 304 and no body.

export interface StaticFile {
  body: Uint8Array<ArrayBuffer>
  etag: string
}

export function staticFile(body: Uint8Array<ArrayBuffer>): StaticFile {
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` }
}

/** The file, or a 304 when the request already holds this version; `headers` go on both. */
export function respondWithFile(
  c: Context,
  file: StaticFile,
  headers: Record<string, string>,
): Response {
  const withTag = { ...headers, ETag: file.etag }
  return c.req.header('if-none-match') === file.etag
    ? c.body(null, 304, withTag)
    : c.body(file.body, 200, withTag)
}
