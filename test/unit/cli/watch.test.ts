import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort } from '../../support/server.js'
import { startWatch, stopWatchers } from '../../support/watcher.js'

// slabkv watch (the compiled command) against a scripted event-stream server in this process:
// what it prints, the Last-Event-ID it resumes from (a heartbeat's id too, never the id of a
// block cut off before its blank line), what it waits out and what makes it exit. The real
// server's feed is test/e2e/watch-cli.test.ts.

type Handler = (request: IncomingMessage, response: ServerResponse, attempt: number) => void

interface Scripted {
  url: string
  /** Each request's target and Last-Event-ID header, in order. */
  requests: { url: string; lastEventId: string | undefined }[]
  close: () => Promise<void>
}

const servers: Server[] = []

afterEach(async () => {
  await stopWatchers()
  await Promise.all(
    servers.splice(0).map((server) => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(resolve))
    }),
  )
})

async function scriptedServer(handler: Handler): Promise<Scripted> {
  const requests: Scripted['requests'] = []
  const server = createServer((request, response) => {
    const lastEventId = request.headers['last-event-id']
    requests.push({ url: request.url ?? '', lastEventId: lastEventId as string | undefined })
    handler(request, response, requests.length)
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

function eventStream(response: ServerResponse, text: string): void {
  response.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8' })
  response.write(text)
}

const block = (id: number, type: string, data: object) =>
  `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`
const set = (id: number, key: string) =>
  block(id, 'set', { key, version: id, size: 1, contentType: 'text/plain', expiresAt: null })

describe('slabkv watch against a scripted server', () => {
  it('prints events as JSON lines and resumes from the last id of any complete block', async () => {
    const server = await scriptedServer((_request, response, attempt) => {
      if (attempt === 1) {
        // A heartbeat's id moves the position; the block after it is cut before its blank line.
        eventStream(response, `retry: 100\nid: 10\n\n${set(11, 'a')}: heartbeat\nid: 15\n\n`)
        response.end('id: 16\nevent: set\ndata: {"key":"lost"}\n')
      } else if (attempt === 2) {
        // A server resending what was printed: printed once only. Then an end block.
        eventStream(response, `${set(11, 'a')}${set(16, 'b')}`)
        response.end('event: end\ndata: {"reason":"shutdown","resumeAfter":20}\n\n')
      } else {
        eventStream(
          response,
          `retry: 100\nid: 20\n\n${block(21, 'clear', { key: null, version: 21 })}`,
        )
      }
    })
    const watcher = startWatch(['user:', '--values', '--types', 'set,clear', '--url', server.url])
    await expect.poll(() => watcher.lines().length).toBe(3)
    expect(watcher.lines()).toEqual([
      {
        id: 11,
        event: 'set',
        key: 'a',
        version: 11,
        size: 1,
        contentType: 'text/plain',
        expiresAt: null,
      },
      {
        id: 16,
        event: 'set',
        key: 'b',
        version: 16,
        size: 1,
        contentType: 'text/plain',
        expiresAt: null,
      },
      { id: 21, event: 'clear', key: null, version: 21 },
    ])
    expect(server.requests.map((request) => request.lastEventId)).toEqual([undefined, '15', '20'])
    expect(server.requests[0]!.url).toBe(
      '/v1/watch?prefix=user%3A&values=true&types=set,clear&since=now',
    )
    expect(server.requests[2]!.url).toContain('since=20')
    expect(watcher.stderr()).toMatch(/the server closed the stream; resuming after id 15/)
    expect(watcher.stderr()).toMatch(
      /the server ended the stream \(shutdown\); resuming after id 20/,
    )
    watcher.child.kill('SIGTERM')
    expect(await watcher.exited).toBe(0)
    expect(
      watcher
        .stdout()
        .split('\n')
        .filter((line) => line !== ''),
    ).toHaveLength(3)
  })

  it('waits out a server that is down or busy once a stream has been open', async () => {
    const server = await scriptedServer((_request, response, attempt) => {
      if (attempt === 1) {
        eventStream(response, `retry: 100\nid: 3\n\n${set(4, 'k')}`)
        response.end()
      } else if (attempt === 2) {
        response.writeHead(503, { 'Content-Type': 'application/problem+json' })
        response.end('{"code":"shutting_down","title":"Shutting down","status":503}')
      } else if (attempt === 3) {
        response.writeHead(429, { 'Content-Type': 'application/problem+json' })
        response.end('{"code":"too_many_watchers","title":"Too many watchers","status":429}')
      } else {
        eventStream(response, `retry: 100\nid: 4\n\n${set(9, 'k')}`)
      }
    })
    const watcher = startWatch(['--since', '3', '--url', server.url])
    await expect.poll(() => watcher.lines().map((line) => line.id)).toEqual([4, 9])
    expect(server.requests.map((request) => request.lastEventId)).toEqual([
      undefined,
      '4',
      '4',
      '4',
    ])
    expect(server.requests[0]!.url).toBe('/v1/watch?since=3')
    expect(watcher.stderr()).toMatch(/answered 503 \(shutting_down\)/)
    expect(watcher.stderr()).toMatch(/answered 429 \(too_many_watchers\)/)
    watcher.child.kill('SIGINT')
    expect(await watcher.exited).toBe(0)
  })

  it('takes a stream silent for --idle-timeout for lost, and resumes it', async () => {
    const server = await scriptedServer((_request, response, attempt) => {
      eventStream(response, attempt === 1 ? `retry: 100\nid: 7\n\n` : set(8, 'k'))
      // Then nothing, not even a heartbeat, and the connection stays open.
    })
    const watcher = startWatch(['--idle-timeout', '0.3', '--url', server.url])
    await expect.poll(() => watcher.lines().map((line) => line.id)).toEqual([8])
    expect(server.requests[1]!.lastEventId).toBe('7')
    expect(watcher.stderr()).toMatch(/nothing came for 0.3 s; resuming after id 7/)
    watcher.child.kill('SIGTERM')
    expect(await watcher.exited).toBe(0)
  })

  it('exits 6 on 410, saying why and what the server still holds', async () => {
    const server = await scriptedServer((_request, response) => {
      response.writeHead(410, { 'Content-Type': 'application/problem+json' })
      response.end(
        JSON.stringify({
          type: 'about:blank',
          code: 'watch_history_gone',
          title: 'Watch history gone',
          status: 410,
          detail: 'since 5 is older than the history the server holds',
          oldestSequence: 40,
          newestSequence: 90,
        }),
      )
    })
    const watcher = startWatch(['--since', '5', '--url', server.url])
    expect(await watcher.exited).toBe(6)
    expect(watcher.stdout()).toBe('')
    expect(watcher.stderr()).toMatch(/since 5 is older than the history the server holds/)
    expect(watcher.stderr()).toMatch(/oldest sequence the server holds is 40, the newest 90/)
  })

  it('exits 3 when the first connection fails or is refused', async () => {
    const nobody = startWatch(['--url', `http://127.0.0.1:${await freePort()}`])
    expect(await nobody.exited).toBe(3)
    expect(nobody.stderr()).toMatch(/cannot reach/)
    for (const [status, code] of [
      [401, 'unauthorized'],
      [400, 'invalid_request'],
      [429, 'too_many_watchers'],
    ] as const) {
      const server = await scriptedServer((_request, response) => {
        response.writeHead(status, { 'Content-Type': 'application/problem+json' })
        response.end(JSON.stringify({ code, title: code, status, detail: `no: ${code}` }))
      })
      const watcher = startWatch(['--url', server.url, '--token', 't'])
      expect(await watcher.exited, watcher.stderr()).toBe(3)
      expect(watcher.stderr()).toBe(`slabkv watch: no: ${code} (${code})\n`)
    }
  })

  it('takes PREFIX as a JSON string with --json, for a prefix no argument can hold', async () => {
    const server = await scriptedServer((_request, response) => {
      eventStream(response, 'retry: 100\nid: 1\n\n')
    })
    const watcher = startWatch(['--json', '"a\\u0000/b"', '--url', server.url])
    await expect.poll(() => server.requests.length).toBe(1)
    expect(server.requests[0]!.url).toBe('/v1/watch?prefix=a%00%2Fb&since=now')
    watcher.child.kill('SIGTERM')
    expect(await watcher.exited).toBe(0)
  })

  it('refuses a bad option or PREFIX with exit 2, sending nothing', async () => {
    const server = await scriptedServer((_request, response) => response.end())
    for (const args of [
      ['--since', 'yesterday'],
      ['--types', 'set,frob'],
      ['--idle-timeout', '0'],
      ['--json', 'not-json'],
      ['a', 'b'],
    ]) {
      const watcher = startWatch([...args, '--url', server.url])
      expect(await watcher.exited, args.join(' ')).toBe(2)
    }
    expect(server.requests).toEqual([])
  })
})
