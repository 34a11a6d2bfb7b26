import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  ServerResponse,
  STATUS_CODES,
} from 'node:http'
import type { Socket } from 'node:net'
import { getRequestListener } from '@hono/node-server'
import type { ServerConfig } from '../config.js'
import { type ErrorCode, problem } from '../errors.js'
import type { Log } from '../log.js'

// The Node HTTP server around the app's fetch handler: what happens on a connection before and
// after the app sees a request. @hono/node-server's request listener turns each request into a
// fetch call; around it, this file keeps four promises the adapter alone does not:
//
// - Requests pipelined on one connection are applied in the order they were sent. Node emits
//   every request it parses at once, so a GET behind a PUT would run while the PUT still reads
//   its body; RFC 9112 §9.3.2 allows that only for safe methods.
// - An error that escapes a request (even one thrown while its response is written) is logged
//   with the route and answered 500, never left to end the process as an unhandled rejection.
// - Expect: 100-continue is answered only when the handler starts to read the body, so a request
//   refused before that (401, 413, 421) is refused before the client sends the body.
// - A connection whose client stops reading is closed after --send-timeout-ms, so clients that
//   never read cannot make the server hold their answers in memory forever.

type FetchHandler = Parameters<typeof getRequestListener>[0]

/** The timeouts a slow client runs into, so it cannot hold a connection or a thread. */
export function serverOptions(config: ServerConfig): ServerOptions {
  return {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    // Node checks the two timeouts above only this often; its default of 30 s would let a
    // slow client hold a connection up to 30 s past them.
    connectionsCheckingInterval: config.connectionCheckIntervalMs,
    // A request without Host is answered here, with a body that says why (Node's own 400 has
    // none), and HTTP/1.0 requests without Host get the same answer.
    requireHostHeader: false,
  }
}

export function createHttpServer(fetch: FetchHandler, config: ServerConfig, log: Log): Server {
  const handle = getRequestListener(fetch)

  /**
   * A response that cannot be written as the handler built it (Node refuses a header value, say)
   * goes out as a 500 instead: writeHead throws before anything is sent, so the status line and
   * headers can still be replaced, and what the handler then writes is dropped.
   */
  class GuardedResponse extends ServerResponse {
    #replaced = false

    override writeHead(...args: unknown[]): this {
      const writeHead = super.writeHead as (...args: unknown[]) => this
      try {
        return writeHead.apply(this, args)
      } catch (error) {
        if (this.headersSent) throw error
        this.#replaced = true
        reportFailure(log, this.req, error)
        // Headers set before (and kept by the failed call) belong to the answer that failed.
        for (const name of this.getHeaderNames()) this.removeHeader(name)
        const body = problemBody('internal')
        return writeHead.call(this, 500, STATUS_CODES[500], problemHeaders(body))
      }
    }

    override write(...args: unknown[]): boolean {
      if (this.#replaced) return true
      return (super.write as (...args: unknown[]) => boolean).apply(this, args)
    }

    override end(...args: unknown[]): this {
      const end = super.end as (...args: unknown[]) => this
      return this.#replaced ? end.call(this, problemBody('internal')) : end.apply(this, args)
    }
  }

  /** Runs one request to the end of its response; never rejects. */
  const serveOne = async (incoming: IncomingMessage, outgoing: ServerResponse) => {
    // A request queued behind another on a connection that has since closed has no one to answer.
    if (outgoing.destroyed) return
    // An empty Host names no one either.
    if (!incoming.headers.host && incoming.url?.startsWith('/')) {
      const detail = 'A Host header is required (HTTP/1.1 always; here HTTP/1.0 too)'
      respondProblem(outgoing, 'invalid_request', detail)
      return
    }
    try {
      await handle(incoming, outgoing)
    } catch (error) {
      if (clientWentAway(incoming)) {
        log.info('client went away', { method: incoming.method, path: pathOf(incoming.url) })
        return
      }
      reportFailure(log, incoming, error)
      if (outgoing.headersSent) outgoing.destroy()
      else respondProblem(outgoing, 'internal')
    }
  }

  // Each connection's requests form a chain: the next starts when the one before it settles.
  // Node parses requests as they arrive whatever the chain holds, so a client that pipelines
  // faster than its requests complete would make it grow without end; past pipelineDepthMax
  // waiting requests the connection is not read until the chain is short again.
  const chains = new WeakMap<Socket, Chain>()
  const listener = (incoming: IncomingMessage, outgoing: ServerResponse) => {
    const socket = incoming.socket
    let chain = chains.get(socket)
    if (chain === undefined) {
      chain = { tail: serveOne(incoming, outgoing), depth: 1, paused: false }
      chains.set(socket, chain)
    } else {
      chain.tail = chain.tail.then(() => serveOne(incoming, outgoing))
      chain.depth++
      if (chain.depth > pipelineDepthMax && !chain.paused) {
        chain.paused = true
        socket.pause()
      }
    }
    const settling = chain
    void chain.tail.then(() => {
      settling.depth--
      if (settling.depth === 0 && chains.get(socket) === settling) chains.delete(socket)
      if (settling.paused && settling.depth <= pipelineDepthMax / 2) {
        settling.paused = false
        socket.resume()
      }
    })
  }

  const server = createServer(
    // The class is Node's own, extended; its generic constructor type cannot be restated.
    { ...serverOptions(config), ServerResponse: GuardedResponse as typeof ServerResponse },
    listener,
  )

  // Until 100 Continue is sent, the client holds the body back. Reading the body resumes the
  // request stream, whoever reads it; a final answer sent first makes Node close the connection
  // after it, since the body the request announced will never follow.
  server.on('checkContinue', (incoming: IncomingMessage, outgoing: ServerResponse) => {
    incoming.once('resume', () => {
      if (!outgoing.headersSent && !outgoing.writableEnded) outgoing.writeContinue()
    })
    listener(incoming, outgoing)
  })
  server.on('checkExpectation', (incoming: IncomingMessage, outgoing: ServerResponse) => {
    const detail = `Only Expect: 100-continue is understood, not '${incoming.headers.expect}'`
    respondProblem(outgoing, 'expectation_failed', detail, { Connection: 'close' })
  })

  closeStalledConnections(server, config, log)
  return server
}

/** The requests of one connection: the last one's promise, and how many have not settled. */
interface Chain {
  tail: Promise<void>
  depth: number
  paused: boolean
}

/**
 * How many requests may wait behind the one in progress on a connection before it is no longer
 * read. Not a limit a client meets (nothing is refused; TCP flow control slows the sender), only
 * a bound on what one connection's queue holds.
 */
const pipelineDepthMax = 32

/**
 * Closes a connection whose client has not taken a byte of its answer for --send-timeout-ms.
 * Bytes the socket still holds are bytes the kernel would not take: its buffers are full
 * because the client is not reading. Progress is measured in writes completed (the socket's
 * bytes written, less what it still holds), so a client that reads slowly but steadily keeps
 * its connection; one that stops is cut, and the answer held for it is freed.
 */
function closeStalledConnections(server: Server, config: ServerConfig, log: Log): void {
  const watched = new Map<Socket, { sentSize: number; stalledSinceMs: number }>()
  server.on('connection', (socket: Socket) => {
    watched.set(socket, { sentSize: 0, stalledSinceMs: Number.NaN })
    socket.once('close', () => watched.delete(socket))
  })
  const check = () => {
    const nowMs = Date.now()
    for (const [socket, state] of watched) {
      const pendingSize = socket.writableLength
      if (pendingSize === 0) {
        state.stalledSinceMs = Number.NaN
        continue
      }
      const sentSize = (socket.bytesWritten ?? 0) - pendingSize
      if (Number.isNaN(state.stalledSinceMs) || sentSize !== state.sentSize) {
        state.sentSize = sentSize
        state.stalledSinceMs = nowMs
        continue
      }
      if (nowMs - state.stalledSinceMs >= config.sendTimeoutMs) {
        log.warn('closed a connection that stopped reading', {
          remote: socket.remoteAddress,
          pendingSize,
          sendTimeoutMs: config.sendTimeoutMs,
        })
        watched.delete(socket)
        socket.destroy()
      }
    }
  }
  const timer = setInterval(check, Math.min(config.connectionCheckIntervalMs, config.sendTimeoutMs))
  timer.unref()
  server.once('close', () => clearInterval(timer))
}

/** True when the request failed because its client closed the connection. */
function clientWentAway(incoming: IncomingMessage): boolean {
  return incoming.socket?.destroyed === true || (incoming.destroyed && !incoming.complete)
}

function reportFailure(log: Log, incoming: IncomingMessage, error: unknown): void {
  log.error('request failed', {
    method: incoming.method,
    path: pathOf(incoming.url),
    error: String(error),
  })
}

/** The path of a request target, without its query (which may hold anything a client sent). */
function pathOf(url: string | undefined): string {
  const path = url ?? ''
  const query = path.indexOf('?')
  return query === -1 ? path : path.slice(0, query)
}

function problemBody(code: ErrorCode, detail?: string): string {
  return JSON.stringify(problem(code, detail))
}

function problemHeaders(body: string): Record<string, string | number> {
  return {
    'Content-Type': 'application/problem+json',
    'Content-Length': Buffer.byteLength(body),
  }
}

function respondProblem(
  outgoing: ServerResponse,
  code: ErrorCode,
  detail?: string,
  headers: Record<string, string> = {},
): void {
  const body = problemBody(code, detail)
  outgoing.writeHead(problem(code).status, { ...problemHeaders(body), ...headers })
  outgoing.end(body)
}
