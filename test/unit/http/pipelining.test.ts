import { type AddressInfo, connect, type Socket } from 'node:net'
import { Hono } from 'hono'
import { afterEach, describe, expect, it } from 'vitest'
import { resolveConfig } from '../../../src/config.js'
import {
  createHttpServer,
  markApplied,
  unfinishedResponseCountMax,
} from '../../../src/http/server.js'
import { createLog } from '../../../src/log.js'
import { RawConnection, type RawResponse } from '../../support/raw-http.js'

// The requests pipelined on one connection, driven in process with handlers that can be held,
// so that nothing depends on disk speed or timing: a request starts only once the one before it
// has applied its change or sent its answer, requests queued behind a closed connection never
// run, and a client can run only so far ahead of the answers it takes.

const closers: (() => void)[] = []

afterEach(() => {
  for (const close of closers.splice(0)) close()
})

const oneMiB = Buffer.alloc(1024 * 1024, 0x61)

async function heldServer(flags: Record<string, string> = {}) {
  const resolved = resolveConfig(flags, {})
  if (!resolved.ok) throw new Error(resolved.message)
  let release!: () => void
  const held = new Promise<void>((resolve) => {
    release = resolve
  })
  const counts = { parsed: 0, ran: 0, big: 0, writes: 0 }
  const app = new Hono()
  app.get('/held', async (c) => {
    await held
    return c.text('held')
  })
  app.get('/x', (c) => {
    counts.ran++
    return c.text(`x${counts.ran}`)
  })
  app.get('/big', (c) => {
    counts.big++
    return c.body(oneMiB, 200, { 'Content-Type': 'application/octet-stream' })
  })
  // A write whose change is applied at once and whose answer waits (as for durability).
  app.put('/write', async (c) => {
    counts.writes++
    markApplied(c)
    await held
    return c.text('written')
  })
  const server = createHttpServer(
    app.fetch,
    resolved.config,
    createLog(() => {}),
  )
  server.on('request', () => {
    counts.parsed++
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(() => {
    release()
    server.closeAllConnections()
    server.close()
  })
  const { port } = server.address() as AddressInfo
  return { port, release: () => release(), counts }
}

async function openSocket(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.on('data', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  closers.push(() => socket.destroy())
  return socket
}

async function openRaw(port: number): Promise<RawConnection> {
  const connection = await RawConnection.open(port)
  closers.push(() => connection.destroy())
  return connection
}

const request = (method: string, path: string) =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${method === 'PUT' ? 'Content-Length: 0\r\n' : ''}\r\n`
const tick = () => new Promise((resolve) => setImmediate(resolve))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('requests pipelined behind a held one', () => {
  it('do not run once the client has closed the connection', async () => {
    const server = await heldServer()
    const socket = await openSocket(server.port)
    socket.write(request('GET', '/held') + request('GET', '/x').repeat(100))
    await expect.poll(() => server.counts.parsed).toBe(101)
    socket.destroy()
    await sleep(100)
    server.release()
    await sleep(200)
    expect(server.counts.ran, 'handlers run for a connection that had closed').toBe(0)
  })

  it('stop being parsed: 100,000 of them are not all queued', async () => {
    const server = await heldServer()
    const socket = await openSocket(server.port)
    socket.write(request('GET', '/held'))
    const thousand = Buffer.from(request('GET', '/x').repeat(1000))
    // 3.7 MB of requests. A server that stops reading leaves them in the client's buffer.
    for (let i = 0; i < 100; i++) {
      socket.write(thousand)
      await tick()
    }
    await sleep(500)
    // One read of 64 KiB holds about 1,770 of these requests: a server that cuts the connection
    // once its queue is full may parse a read or two past that, never 100,000.
    expect(server.counts.parsed, 'requests parsed behind the held one').toBeLessThan(5_000)
  })

  it('are served up to --max-pipelined-requests; the next is answered 429 naming the flag', async () => {
    const limit = 8
    const server = await heldServer({ 'max-pipelined-requests': String(limit) })
    // Exactly the limit: the held request and limit - 1 behind it.
    const within = await openRaw(server.port)
    within.write(request('GET', '/held') + request('GET', '/x').repeat(limit - 1))
    // One more on another connection: the last request is one too many.
    const over = await openRaw(server.port)
    over.write(request('GET', '/held') + request('GET', '/x').repeat(limit))
    await expect.poll(() => server.counts.parsed).toBe(2 * limit + 1)
    server.release()
    const statuses = async (connection: RawConnection, count: number) => {
      const responses: RawResponse[] = []
      for (let i = 0; i < count; i++) responses.push(await connection.read())
      return responses
    }
    const withinAnswers = await statuses(within, limit)
    expect(withinAnswers.map((response) => response.status)).toEqual(Array(limit).fill(200))
    const overAnswers = await statuses(over, limit + 1)
    expect(overAnswers.slice(0, limit).map((response) => response.status)).toEqual(
      Array(limit).fill(200),
    )
    const refused = overAnswers[limit]!
    expect(refused.status).toBe(429)
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/)
    const body = JSON.parse(refused.body.toString()) as { code: string; detail: string }
    expect(body.code).toBe('too_many_pipelined_requests')
    expect(body.detail).toContain('--max-pipelined-requests')
    expect(body.detail).toContain(String(limit))
    expect(refused.headers.connection).toBe('close')
    expect(await over.waitClosed(2_000), 'the connection closes after the 429').toBe(true)
  })
})

describe('a client that pipelines reads and does not read the answers', () => {
  it('gets only as many answers built as the connection takes', async () => {
    const server = await heldServer()
    const socket = await openSocket(server.port)
    socket.pause()
    // 200 requests of 41 bytes, each for a 1 MiB answer: one read of the server.
    socket.write(request('GET', '/big').repeat(200))
    await expect.poll(() => server.counts.parsed).toBe(200)
    await sleep(500)
    // The kernel's buffers on both ends take a few MiB; every answer past them would be held in
    // the server's memory until the client read it or --send-timeout-ms cut it off.
    expect(server.counts.big, 'answers of 1 MiB built for a client that reads none').toBeLessThan(
      32,
    )
  })
})

describe('a pipelined request behind a write', () => {
  it('runs once the write is applied, while its answer still waits; answers stay in order', async () => {
    const server = await heldServer()
    const connection = await openRaw(server.port)
    connection.write(request('PUT', '/write') + request('GET', '/x'))
    await expect
      .poll(() => server.counts.ran, { message: 'the read ran before the write answered' })
      .toBe(1)
    server.release()
    const first = await connection.read()
    const second = await connection.read()
    expect([first.body.toString(), second.body.toString()]).toEqual(['written', 'x1'])
  })

  it('starts no more requests than the unfinished answers a connection may hold', async () => {
    const server = await heldServer()
    const connection = await openRaw(server.port)
    connection.write(request('PUT', '/write').repeat(100))
    await expect.poll(() => server.counts.parsed).toBe(100)
    await expect.poll(() => server.counts.writes).toBe(unfinishedResponseCountMax)
    await sleep(100)
    expect(server.counts.writes).toBe(unfinishedResponseCountMax)
    server.release()
    for (let i = 0; i < 100; i++) expect((await connection.read()).body.toString()).toBe('written')
  })
})
