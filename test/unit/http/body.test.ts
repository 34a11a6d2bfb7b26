import { PassThrough } from 'node:stream'
import type { Context } from 'hono'
import { describe, expect, it } from 'vitest'
import { readBody } from '../../../src/http/body.js'

// readBody against a real stream standing in for Node's IncomingMessage; the e2e tests in
// test/e2e/kv-api.test.ts drive it through a real server.

/** A context whose request has a Content-Length, and whose Hono reader says it was used. */
function contextOf(incoming: PassThrough): Context {
  return {
    env: { incoming },
    req: {
      header: (name: string) => (name === 'content-length' ? '6' : undefined),
      arrayBuffer: () => Promise.resolve(new TextEncoder().encode('hono').buffer),
    },
  } as unknown as Context
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

describe('readBody', () => {
  it('joins the chunks of a body that arrives in pieces', async () => {
    const incoming = new PassThrough()
    const body = readBody(contextOf(incoming))
    incoming.write('abc')
    setImmediate(() => incoming.end('def'))
    expect(text(await body)).toBe('abcdef')
  })

  it('hands a stream destroyed before the handler ran to Hono, instead of waiting forever', async () => {
    const incoming = new PassThrough()
    incoming.destroy()
    expect(text(await readBody(contextOf(incoming)))).toBe('hono')
  })

  it('fails when the client goes away mid-body', async () => {
    const incoming = new PassThrough()
    const body = readBody(contextOf(incoming))
    incoming.write('abc')
    setImmediate(() => incoming.destroy())
    await expect(body).rejects.toThrow(/before the body was complete/)
  })
})
