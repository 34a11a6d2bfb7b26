import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { type ChangeEvent, Slabkv, SlabkvProtocolError } from '../../../src/client/index.js'

// The Node client's watch (src/client/watch.ts, event-stream.ts) against a scripted
// event-stream server in this process: a consumer that lags holds the connection back instead
// of buffering the stream, kinds it does not know are skipped, what it is told before resuming,
// and a stream it cannot read. The real server: test/e2e/typed-client-watch.test.ts; the same
// engine through `slabkv watch`: test/unit/cli/watch.test.ts.

const servers: Server[] = []

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((server) => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(resolve))
    }),
  )
})

async function scripted(
  handler: (response: ServerResponse, attempt: number, lastEventId?: string) => void,
): Promise<string> {
  let attempts = 0
  const server = createServer((request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/event-stream' })
    handler(response, ++attempts, request.headers['last-event-id'] as string | undefined)
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const setBlock = (id: number, key: string, extra = '') =>
  `id: ${id}\nevent: set\ndata: {"key":"${key}","version":${id},"size":1,"contentType":"text/plain","expiresAt":null${extra}}\n\n`

describe("the Node client's watch against a scripted server", () => {
  it('holds the connection back while the consumer lags, and loses nothing', async () => {
    const total = 4000
    const padding = `,"pad":"${'x'.repeat(10_000)}"`
    let written = 0
    const url = await scripted((response) => {
      const writeMore = () => {
        while (written < total) {
          written++
          if (!response.write(setBlock(written, `k${written}`, padding))) {
            response.once('drain', writeMore)
            return
          }
        }
      }
      writeMore()
    })
    const changes = new Slabkv({ url }).watch({ since: 0, signal: AbortSignal.timeout(60_000) })
    const first = await changes.next()
    expect(first.value).toMatchObject({ type: 'set', sequence: 1, key: 'k1' })
    // 40 MB offered; a consumer that reads nothing for a while lets only the socket buffers and
    // a bounded queue fill, so the server cannot write them all.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(written).toBeLessThan(total / 2)
    let last = 1
    for await (const change of changes) {
      expect(change.sequence).toBe(last + 1)
      last = change.sequence
      if (last === total) break
    }
    expect(written).toBe(total)
  })

  it('skips kinds it does not know, and tells why and where it resumes', async () => {
    const url = await scripted((response, attempt, lastEventId) => {
      if (attempt === 1) {
        response.end(
          `retry: 100\nid: 4\n\n${setBlock(5, 'a')}id: 6\nevent: rename\ndata: {"key":"a"}\n\n`,
        )
      } else {
        response.write(`${setBlock(5, 'a')}${setBlock(7, `b after ${lastEventId}`)}`)
      }
    })
    const reconnects: unknown[] = []
    const seen: ChangeEvent[] = []
    for await (const change of new Slabkv({ url }).watch({
      onReconnect: (reconnect) => reconnects.push(reconnect),
      signal: AbortSignal.timeout(10_000),
    })) {
      seen.push(change)
      if (seen.length === 2) break
    }
    expect(seen.map((change) => `${change.sequence} ${change.key}`)).toEqual(['5 a', '7 b after 6'])
    expect(reconnects).toEqual([
      { reason: 'the server closed the stream', delayMs: expect.any(Number), lastEventId: '6' },
    ])
  })

  it('throws a SlabkvProtocolError for an event it cannot read', async () => {
    const url = await scripted((response) => {
      response.write('id: 3\nevent: set\ndata: not json\n\n')
    })
    const changes = new Slabkv({ url }).watch({ signal: AbortSignal.timeout(10_000) })
    await expect(changes.next()).rejects.toThrow(SlabkvProtocolError)
    await expect(changes.next()).resolves.toEqual({ done: true, value: undefined })
  })
})
