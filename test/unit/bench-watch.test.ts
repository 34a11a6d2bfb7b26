import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Watcher } from '../../bench/watch/stream.js'

// bench:watch's watcher (bench/watch/stream.ts) against streams written here: it must count
// what a consumer that keeps up receives, whatever the chunking, and its checks must be able to
// fail, or a benchmark whose watchers fell behind or got events out of order would still pass.

const event = (id: number, key = 'busy:1', version = id) =>
  `id: ${id}\nevent: set\ndata: {"key":"${key}","version":${version},"size":100,"contentType":"application/octet-stream","expiresAt":null}\n\n`

/** The stream each test asks for by prefix, written in chunks of `chunk` characters. */
const streams: Record<string, { text: string; chunk: number; close?: boolean }> = {
  plain: { text: `retry: 1000\nid: 10\n\n${event(11)}${event(13)}`, chunk: 1_000 },
  split: {
    text: `retry: 1000\r\nid: 10\r\n\r\n${event(11).replaceAll('\n', '\r\n')}: heartbeat\nid: 20\n\n${event(21)}`,
    chunk: 3,
  },
  backwards: { text: `id: 10\n\n${event(12)}${event(11)}`, chunk: 1_000 },
  mislabelled: { text: `id: 10\n\n${event(11, 'busy:1', 12)}`, chunk: 1_000 },
  ended: {
    text: `id: 10\n\n${event(11)}event: end\ndata: {"reason":"shutdown","resumeAfter":11}\n\n`,
    chunk: 1_000,
    close: true,
  },
}

let server: Server
let url: string

beforeAll(async () => {
  server = createServer((req, res) => {
    const prefix = new URL(req.url!, 'http://x').searchParams.get('prefix')!
    const stream = streams[prefix]
    if (stream === undefined) {
      res.writeHead(410, { 'Content-Type': 'application/problem+json' })
      res.end('{"code":"watch_history_gone"}')
      return
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8' })
    const { text, chunk } = stream
    let at = 0
    const next = () => {
      if (at >= text.length) {
        if (stream.close) res.end()
        return
      }
      res.write(text.slice(at, at + chunk))
      at += chunk
      setImmediate(next)
    }
    next()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

async function watch(prefix: string, until: number) {
  const watcher = new Watcher({ url, prefix })
  await watcher.started
  await watcher.reached(until)
  watcher.close()
  return watcher.state
}

describe("bench:watch's watcher", () => {
  it('counts every event and takes the start id from the first block', async () => {
    const state = await watch('plain', 13)
    expect(state).toMatchObject({ startId: 10, lastId: 13, events: 2, disorder: 0 })
    expect(state.windowIdSum).toBe(24)
  })

  it('parses a stream cut every 3 characters, CRLF lines and heartbeats alike', async () => {
    const state = await watch('split', 21)
    expect(state).toMatchObject({ startId: 10, lastId: 21, events: 2, disorder: 0 })
    expect(state.ended).toBeUndefined()
  })

  it('counts an id that goes backwards as disorder', async () => {
    const state = await watch('backwards', 12)
    expect(state.disorder).toBe(1)
    expect(state.disorderSample).toContain('id 11 after 12')
  })

  it('counts an event whose data names another version as disorder', async () => {
    expect((await watch('mislabelled', 11)).disorder).toBe(1)
  })

  it('records an end event and the server closing the stream', async () => {
    const watcher = new Watcher({ url, prefix: 'ended' })
    await watcher.started
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(watcher.state.ended).toMatch(/^end: .*shutdown/)
    watcher.close()
  })

  it('fails to start on an answer other than 200, with its body', async () => {
    await expect(new Watcher({ url, prefix: 'gone' }).started).rejects.toThrow(
      /410 .*watch_history_gone/,
    )
  })
})
