import { z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { Durability, Refusal } from '../durability.js'
import { type ErrorCode, errorTable, problem } from '../errors.js'

// How the routes answer an error, and how they wait for the log: one module the routes and the
// app both import. Errors go out as problem+json (RFC 9457) on every route but the
// PyKV-compatible ones, which keep FastAPI's shapes so PyKV's clients read them unchanged.

/** The PyKV-compatible routes answer in FastAPI's shapes, not problem+json. */
export function isPykvPath(path: string): boolean {
  return path === '/set' || path.startsWith('/get/') || path.startsWith('/delete/')
}

/**
 * The problem+json body, as the OpenAPI document declares it (src/errors.ts builds it), under
 * one name so that the document refers to it rather than repeating it on every answer. Some
 * problems carry more members (a batch's failing `index`, a 410's sequences): extensions, as
 * RFC 9457 allows, which the object's open schema admits.
 */
export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string().openapi({ description: 'Stable; the table in docs/api.md lists them' }),
    detail: z.string().optional(),
  })
  .openapi('Problem')

/**
 * An answer's content as the document declares it, typed as possibly absent. Once every answer
 * a route declares has content, @hono/zod-openapi accepts from its handler only the typed
 * answers of c.json; the handlers answer errors with the plain Response problemResponse builds,
 * so their routes' error content goes through here to keep the handler's type open.
 */
export function untypedContent<T>(content: T): T | undefined {
  return content
}

/** A response's content in the OpenAPI document: a problem+json body. */
export const problemContent = untypedContent({
  'application/problem+json': { schema: problemSchema },
})

/**
 * What a write answers while the log cannot take writes (app.ts refuses it before the route,
 * and a route whose wait for room ends that way answers the same): nothing changed.
 */
export const logRefusalResponses = {
  503: {
    description: 'The log failed (code storage_failed): nothing changed',
    content: problemContent,
  },
  507: {
    description: 'The disk is full (code storage_full): nothing changed',
    content: problemContent,
  },
}

/** An application/problem+json answer for the error code, with the code's status. */
export function problemResponse(
  code: ErrorCode,
  detail?: string,
  extensions?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Response {
  const body = problem(code, detail, extensions)
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: { 'Content-Type': 'application/problem+json', ...headers },
  })
}

/**
 * The error in the shape the route's clients read: `{"detail": …}` with the code's status on a
 * PyKV-compatible route (the detail, or the code's title), problem+json on every other.
 */
export function errorResponse(c: Context, code: ErrorCode, detail?: string): Response {
  if (!isPykvPath(c.req.path)) return problemResponse(code, detail)
  return Response.json(
    { detail: detail ?? errorTable[code].title },
    { status: errorTable[code].status },
  )
}

/**
 * Runs a change until the log takes it. The store refuses a change whose record the log has no
 * room for right now (log_full, returned by `attempt` as that string) rather than wait with its
 * lock held; the wait is here, off the lock and off the event loop, and then the whole attempt
 * runs again, conditions included. A log that cannot take writes at all (the disk is full, or a
 * sync failed) ends it before any attempt: the request may have waited for its body meanwhile.
 */
export async function whenLogged<T>(
  durability: Durability,
  attempt: () => T | 'log_full',
): Promise<T | Refusal> {
  for (;;) {
    const refusal = durability.refusal()
    if (refusal !== undefined) return refusal
    const result = attempt()
    if (result !== 'log_full') return result
    // Announce the wait, then try once more: the writer may have freed room in between.
    const roomFreed = durability.announceLogRoomWait()
    const again = attempt()
    if (again !== 'log_full') return again
    await roomFreed
  }
}

/**
 * Answers with `respond()` once `sequence` is durable: at once (no promise, no tick) when it
 * already is, the common case. Reads use it so that no client sees a value, or the absence a
 * logged delete caused, before the log has it.
 */
export function whenDurable<T>(
  durability: Durability,
  sequence: number,
  respond: () => T,
): T | Promise<T> {
  const pending = durability.waitFor(sequence)
  return pending === undefined ? respond() : pending.then(respond)
}
