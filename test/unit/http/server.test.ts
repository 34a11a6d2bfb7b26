import type { AddressInfo } from 'node:net'
import { Hono } from 'hono'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { resolveConfig } from '../../../src/config.js'
import { createHttpServer } from '../../../src/http/server.js'
import { createLog, type Fields } from '../../../src/log.js'

// The Node server around the app: an error that escapes a request, even one thrown while the
// response is being written, is logged with its route and answered 500, and the process goes on.

const servers: { close(): void }[] = []

afterEach(() => {
  for (const server of servers.splice(0)) server.close()
})

async function serve(app: Hono) {
  const resolved = resolveConfig({}, {})
  if (!resolved.ok) throw new Error(resolved.message)
  const lines: Fields[] = []
  const log = createLog((line) => lines.push(JSON.parse(line) as Fields))
  const server = createHttpServer(app.fetch, resolved.config, log)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, lines }
}

describe('an error in one request', () => {
  it('is logged with its route and answered 500 internal, and the server goes on', async () => {
    const app = new Hono()
    // A header Node refuses to write: thrown from inside the adapter, after the handler returned.
    app.get('/sync', (c) => c.body('x', 200, { 'Content-Type': 'text/\u0001' }))
    app.get('/async', async (c) => {
      await new Promise((resolve) => setTimeout(resolve, 1))
      return c.body('x', 200, { 'Content-Type': 'text/\u0001' })
    })
    app.get('/ok', (c) => c.text('ok'))
    const { url, lines } = await serve(app)
    for (const path of ['/sync', '/async']) {
      const response = await fetch(`${url}${path}`)
      expect(response.status, path).toBe(500)
      expect(response.headers.get('content-type'), path).toMatch(/^application\/problem\+json/)
      const body = (await response.json()) as { code: string; detail: string }
      expect(body.code).toBe('internal')
      expect(body.detail, 'no internal message leaks').not.toMatch(/header|character/i)
      const logged = lines.filter((line) => line.level === 'error' && line.path === path)
      expect(logged.length, path).toBe(1)
      expect(logged[0]?.method).toBe('GET')
    }
    expect(await (await fetch(`${url}/ok`)).text()).toBe('ok')
  })
})

describe('an error in the middle of a streamed answer', () => {
  it('is logged with its route, not only printed on stderr, and the server goes on', async () => {
    const app = new Hono()
    app.get('/stream', (c) => {
      let sent = 0
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 3) controller.enqueue(new Uint8Array(64 * 1024))
          else controller.error(new RangeError('Invalid string length'))
        },
      })
      return c.body(body, 200, { 'Content-Type': 'application/octet-stream' })
    })
    app.get('/ok', (c) => c.text('ok'))
    const { url, lines } = await serve(app)
    // The adapter prints the error on stderr too; only the structured log is checked here.
    const printed = vi.spyOn(console, 'error').mockImplementation(() => {})
    try {
      const response = await fetch(`${url}/stream`)
      await expect(response.arrayBuffer()).rejects.toThrow()
      await expect
        .poll(() => lines.filter((line) => line.level === 'error' && line.path === '/stream'))
        .toHaveLength(1)
      const logged = lines.find((line) => line.path === '/stream')
      expect(logged?.method).toBe('GET')
      expect(String(logged?.error)).toContain('Invalid string length')
    } finally {
      printed.mockRestore()
    }
    expect(await (await fetch(`${url}/ok`)).text()).toBe('ok')
  })
})
