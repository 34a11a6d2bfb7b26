import { expect } from 'vitest'

// Assertions shared by the end-to-end tests. Each failure message carries the whole response,
// so a report can quote what the server actually answered.

export interface Problem {
  type: unknown
  title: unknown
  status: unknown
  code: unknown
  detail: unknown
  [field: string]: unknown
}

/** Reads the body as text and describes the response for failure messages. */
export async function describeResponse(
  response: Response,
): Promise<{ text: string; what: string }> {
  const text = await response.text()
  const type = response.headers.get('content-type')
  return { text, what: `${response.status} (${type}) ${text.slice(0, 500)}` }
}

/** A JSON response with this status; returns the parsed body. */
export async function expectJson<T = unknown>(response: Response, status: number): Promise<T> {
  const { text, what } = await describeResponse(response)
  expect(response.status, what).toBe(status)
  expect(response.headers.get('content-type'), what).toMatch(/^application\/json/)
  return JSON.parse(text) as T
}

/**
 * An application/problem+json error with this status and code (docs/api.md, "Errors":
 * `{"type","title","status","code","detail"}`). `codes` may list several acceptable codes.
 * `detail` is checked by one test of its own (kv-api), so that its absence fails once.
 */
export async function expectProblem(
  response: Response,
  status: number,
  codes: string | string[],
): Promise<Problem> {
  const { text, what } = await describeResponse(response)
  expect(response.status, what).toBe(status)
  expect(response.headers.get('content-type'), what).toMatch(/^application\/problem\+json/)
  const body = JSON.parse(text) as Problem
  expect(typeof body.type, what).toBe('string')
  expect(typeof body.title, what).toBe('string')
  expect(body.status, what).toBe(status)
  expect([codes].flat(), what).toContain(body.code)
  return body
}

/** FastAPI's 422: `{"detail":[{"type","loc","msg"},…]}`; optionally one item at this loc. */
export async function expectValidationError(
  response: Response,
  loc?: (string | number)[],
): Promise<void> {
  const { text, what } = await describeResponse(response)
  expect(response.status, what).toBe(422)
  expect(response.headers.get('content-type'), what).toMatch(/^application\/json/)
  const body = JSON.parse(text) as { detail: unknown }
  expect(Array.isArray(body.detail), what).toBe(true)
  const detail = body.detail as { type: unknown; loc: unknown; msg: unknown }[]
  expect(detail.length, what).toBeGreaterThan(0)
  for (const item of detail) {
    expect(typeof item.type, what).toBe('string')
    expect(Array.isArray(item.loc), what).toBe(true)
    expect((item.loc as unknown[])[0], what).toBe('body')
    expect(typeof item.msg, what).toBe('string')
  }
  if (loc !== undefined) {
    expect(
      detail.map((item) => item.loc),
      what,
    ).toContainEqual(loc)
  }
}

export function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}
