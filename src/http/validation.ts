import type { Context } from 'hono'
import type { ZodError } from 'zod'
import { problemResponse } from './respond.js'

// What a request that fails its route's schema gets back. The PyKV-compatible routes answer
// as FastAPI does (422, detail: a list of {type, loc, msg}) so PyKV's clients can read the
// errors; the /v1 routes answer 400 application/problem+json with code invalid_request.

export interface PykvErrorItem {
  type: string
  loc: (string | number)[]
  msg: string
}

export function pykvValidationError(type: string, loc: (string | number)[], msg: string) {
  return { detail: [{ type, loc, msg }] satisfies PykvErrorItem[] }
}

const locationOf: Record<string, string> = {
  json: 'body',
  param: 'path',
  query: 'query',
  header: 'header',
}

function pykvItems(error: ZodError, target: string, input: unknown): PykvErrorItem[] {
  return error.issues.map((issue) => {
    const loc = [
      locationOf[target] ?? target,
      ...issue.path.map((part) => (typeof part === 'symbol' ? String(part) : part)),
    ]
    let value: unknown = input
    for (const part of issue.path)
      value = (value as Record<PropertyKey, unknown> | undefined)?.[part]
    if (value === undefined) return { type: 'missing', loc, msg: 'Field required' }
    if (issue.code === 'invalid_type') {
      return {
        type: `${issue.expected}_type`,
        loc,
        msg: `Input should be a valid ${issue.expected}`,
      }
    }
    return { type: 'value_error', loc, msg: issue.message }
  })
}

type HookResult =
  | { success: true }
  | { success: false; error: ZodError; target?: string; data?: unknown }

export function validationHook(result: HookResult, c: Context) {
  if (result.success) return
  const target = result.target ?? 'json'
  if (
    c.req.path === '/set' ||
    c.req.path.startsWith('/get/') ||
    c.req.path.startsWith('/delete/')
  ) {
    return c.json({ detail: pykvItems(result.error, target, result.data) }, 422)
  }
  const detail = result.error.issues
    .map(
      (issue) =>
        `${[locationOf[target] ?? target, ...issue.path.map(String)].join('.')}: ${issue.message}`,
    )
    .join('; ')
  return problemResponse('invalid_request', detail)
}
