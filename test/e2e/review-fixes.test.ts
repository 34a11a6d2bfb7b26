import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keyPath, killAll, type RunningServer, runCli, startServer } from '../support/server.js'
import { expectJson, expectProblem, expectValidationError } from './http.js'

// Regressions for what a review of the HTTP layer found: each test is a request that once
// answered wrongly (a 500, a half-applied batch, a write that should have been refused).

let server: RunningServer

beforeAll(async () => {
  server = await startServer(['--token', 'secret', '--max-key-size', '16'])
})

afterAll(async () => {
  await server?.stop()
  await killAll()
})

const auth = { Authorization: 'Bearer secret' }
const url = (path: string) => `${server.url}${path}`

describe('requests a review found answered wrongly', () => {
  it('refuses a batch whose TTL overflows in milliseconds, applying none of it', async () => {
    // Keys within this server's 16-byte limit, so the TTL is the only thing wrong.
    const first = 'ttl-first'
    const ops = [
      { op: 'set', key: first, value: 'v' },
      { op: 'set', key: 'ttl-second', value: 'v', ttl: 1e306 },
    ]
    const response = await fetch(url('/v1/batch'), {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ ops }),
    })
    await expectProblem(response, 400, 'ttl_invalid')
    await expectProblem(
      await fetch(url(`/v1/kv/${keyPath(first)}`), { headers: auth }),
      404,
      'not_found',
    )
  })

  it('answers 400 for a listing cursor too large to be a slot', async () => {
    await expectProblem(
      await fetch(url('/v1/kv?cursor=99999999999999999999'), { headers: auth }),
      400,
      'invalid_request',
    )
  })

  it('refuses a PUT carrying both If-Match and If-None-Match: *, writing nothing', async () => {
    const key = 'both-conditions'
    const response = await fetch(url(`/v1/kv/${keyPath(key)}`), {
      method: 'PUT',
      headers: { ...auth, 'If-Match': '"999"', 'If-None-Match': '*' },
      body: 'v',
    })
    await expectProblem(response, 412, 'precondition_failed')
    await expectProblem(
      await fetch(url(`/v1/kv/${keyPath(key)}`), { headers: auth }),
      404,
      'not_found',
    )
  })

  it('returns a value PUT as application/json that is not JSON as text on GET /get', async () => {
    const key = 'not-json'
    await fetch(url(`/v1/kv/${keyPath(key)}`), {
      method: 'PUT',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: 'not json',
    })
    expect(
      await expectJson(await fetch(url(`/get/${keyPath(key)}`), { headers: auth }), 200),
    ).toEqual({ key, value: 'not json' })
  })

  it('answers 400 key_too_large, not 404, to GET and DELETE of a key over the limit', async () => {
    const key = 'k'.repeat(17)
    await expectProblem(await fetch(url(`/v1/kv/${key}`), { headers: auth }), 400, 'key_too_large')
    await expectProblem(
      await fetch(url(`/v1/kv/${key}`), { method: 'DELETE', headers: auth }),
      400,
      'key_too_large',
    )
  })

  it('accepts the bearer scheme in any case', async () => {
    const response = await fetch(url('/v1/stats'), { headers: { Authorization: 'bearer secret' } })
    expect(response.status).toBe(200)
    await response.arrayBuffer()
  })

  it('answers 422 to POST /set with a body not declared as JSON', async () => {
    const response = await fetch(url('/set'), {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'key=a&value=b',
    })
    await expectValidationError(response)
  })

  it('refuses a header timeout longer than the request timeout as configuration (exit 2)', async () => {
    const result = await runCli(['serve', '--port', '0', '--headers-timeout-ms', '60000'])
    expect(result.code).toBe(2)
    expect(result.stdout + result.stderr).toMatch(/headers-timeout-ms/)
  })
})
