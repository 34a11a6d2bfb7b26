import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  ServerResponse,
  STATUS_CODES,
} from 'node:http'
import type { Socket } from 'node:net'
import { getRequestListener, type HttpBindings, RequestError } from '@hono/node-server'
import type { Context } from 'hono'
import type { ServerConfig } from '../config.js'
import { type ErrorCode, problem } from '../errors.js'
import type { Log } from '../log.js'
import { hostCheck } from './host.js'
import { keepDotSegmentKey, pathOf, rawTargetOf } from './path-key.js'
import { operationOther, type RequestTimes, type TimedResponse } from './request-times.js'

// The Node HTTP server around the app's fetch handler: what happens on a connection before and
// after the app sees a request. @hono/node-server's request listener turns each request into a
// fetch call; around it, this file keeps the promises the adapter alone does not:
//
// - Requests pipelined on one connection are applied in the order they were sent. Node emits
//   every request it parses at once, so a GET behind a PUT would run while the PUT still reads
//   its body; RFC 9112 §9.3.2 allows that only for safe methods. What a connection holds is
//   bounded: answers are built only as the client takes them, and requests queue only up to
//   --max-pipelined-requests.
// - An error that escapes a request (even one thrown while its response is written) is logged
//   with the route and answered 500, never left to end the process as an unhandled rejection.
//   A request the adapter cannot turn into a URL gets a 400 with a body saying why.
// - A request for a name this server does not answer to is refused 421 before the app sees it
//   (DNS rebinding: src/http/host.ts), once the adapter has read its URL.
// - A body in a transfer coding other than chunked is refused with 501 (RFC 9112 §6.1).
// - Expect: 100-continue is answered only when the handler starts to read the body, so a request
//   refused before that (401, 413, 421) is refused before the client sends the body.
// - A connection whose client stops reading is closed after --send-timeout-ms, so clients that
//   never read cannot make the server hold their answers in memory forever.
// - Each request is timed from its start to its head being written, into requestTimes.

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

export function createHttpServer(
  fetch: FetchHandler,
  config: ServerConfig,
  log: Log,
  requestTimes?: RequestTimes,
): Server {
  // A name this server does not answer to gets its 421 before the app sees the request (and
  // after the adapter, whose 400 for a Host it cannot read comes first): src/http/host.ts.
  const checkHost = hostCheck(config)
  const checkedFetch: FetchHandler =
    checkHost === undefined
      ? fetch
      : (request, env) => {
          const refusal = checkHost(env.incoming)
          if (refusal === undefined) return fetch(request, env)
          const body = problemBody('host_not_allowed', refusal)
          const status = problem('host_not_allowed').status
          return new Response(body, {
            status,
            headers: problemHeaders(body) as Record<string, string>,
          })
        }
  const handle = getRequestListener(checkedFetch, {
    // The adapter answers a target or Host it cannot make a URL of (a backslash in the path,
    // OPTIONS *, Host: localhost:abc) with an empty 400; here the answer says why. Any other
    // error is the app's, rethrown for serveOne to log with its route.
    errorHandler: (error) => {
      if (!(error instanceof RequestError)) throw error
      const body = problemBody(
        'invalid_request',
        `The request target or Host cannot be read as a URL: ${error.message}`,
      )
      return new Response(body, {
        status: 400,
        headers: problemHeaders(body) as Record<string, string>,
      })
    },
  })

  /**
   * A response that cannot be written as the handler built it (Node refuses a header value, say)
   * goes out as a 500 instead: writeHead throws before anything is sent, so the status line and
   * headers can still be replaced, and what the handler then writes is dropped.
   */
  class GuardedResponse extends ServerResponse implements TimedResponse {
    startedAtMs = Number.NaN
    operation = operationOther
    #replaced = false
    /** Some of the body went out through write(): the answer is being streamed. */
    #streamed = false
    /** The server cut this answer itself, so its socket being gone is no client's doing. */
    #cut = false
    #failureLogged = false

    override writeHead(...args: unknown[]): this {
      if (!Number.isNaN(this.startedAtMs)) {
        requestTimes?.observe(this.operation, (performance.now() - this.startedAtMs) / 1000)
        this.startedAtMs = Number.NaN
      }
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
      this.#streamed = true
      return (super.write as (...args: unknown[]) => boolean).apply(this, args)
    }

    override end(...args: unknown[]): this {
      const end = super.end as (...args: unknown[]) => this
      if (this.#replaced) return end.call(this, problemBody('internal'))
      // A streamed answer ends with end() and no data. The adapter ends one whose stream failed
      // midway with its error's text as the last data, and then destroys it: sent as a last
      // chunk, that would make a cut answer look whole to the client. The connection is cut
      // instead, so the client sees the answer fail; destroy() then logs why.
      if (this.#streamed && args[0] !== undefined && typeof args[0] !== 'function') {
        this.#cut = true
        super.destroy()
        return this
      }
      return end.apply(this, args)
    }

    /**
     * The adapter ends a response whose body failed midway (a stream that threw) by destroying
     * it with the error, after printing it on stderr: here it is logged with its route too.
     */
    override destroy(error?: Error): this {
      if (error !== undefined && !this.#failureLogged && (this.#cut || !clientWentAway(this.req))) {
        this.#failureLogged = true
        reportFailure(log, this.req, error)
      }
      return super.destroy(error)
    }
  }

  /** Runs one request to the end of its response; never rejects. */
  const serveOne = async (incoming: IncomingMessage, outgoing: ServerResponse) => {
    ;(outgoing as GuardedResponse).startedAtMs = performance.now()
    // An empty Host names no one either.
    if (!incoming.headers.host && incoming.url?.startsWith('/')) {
      const detail = 'A Host header is required (HTTP/1.1 always; here HTTP/1.0 too)'
      respondProblem(outgoing, 'invalid_request', detail)
      return
    }
    // Node's parser undoes chunked, the last coding, and hands on the body still in the codings
    // before it (gzip, say), which no handler would undo: RFC 9112 §6.1 says 501. The body's
    // framing is not trusted further, so the connection closes after the answer.
    const transferEncoding = incoming.headers['transfer-encoding']
    if (transferEncoding !== undefined && !/^[ \t]*chunked[ \t]*$/i.test(transferEncoding)) {
      const detail = `Transfer-Encoding: ${transferEncoding} is not implemented; only chunked is`
      respondProblem(outgoing, 'transfer_coding_unsupported', detail, { Connection: 'close' })
      return
    }
    try {
      await handle(incoming, outgoing)
    } catch (error) {
      if (clientWentAway(incoming)) {
        log.info('client went away', {
          method: incoming.method,
          path: pathOf(rawTargetOf(incoming)),
        })
        return
      }
      reportFailure(log, incoming, error)
      if (outgoing.headersSent) outgoing.destroy()
      else respondProblem(outgoing, 'internal')
    }
  }

  // Each connection's requests start one at a time, in the order they were sent. Node parses
  // and emits every request it reads, whatever the ones before them are doing; the chain holds
  // each until the one before it is done with the store: its change is applied (markApplied), or
  // its answer has left (finished, or closed with the connection). An answer counts as left
  // only once its bytes are in the socket, so a client that does not read holds up its own next
  // request, and Node's own backpressure then stops parsing it: nothing is built for it that it
  // does not take. Answers that wait for durability after their change is applied are bounded
  // too (unfinishedResponseCountMax), and so is the queue (--max-pipelined-requests): Node keeps
  // parsing a connection whose requests are waiting on a held one, so past the limit the next
  // request is answered 429 and the connection closes after it.
  const connections = new WeakMap<Socket, Connection>()
  const pipelinedRequestCountMax = config.pipelinedRequestCountMax
  const refusedDetail = `More than ${pipelinedRequestCountMax} requests of this connection are waiting for their answers, the limit (--max-pipelined-requests); read the answers before sending more`

  const pump = (connection: Connection) => {
    while (
      !connection.busy &&
      connection.unfinishedCount < unfinishedResponseCountMax &&
      connection.waiting.length > 0
    ) {
      const [incoming, outgoing] = connection.waiting.shift()!
      // A request queued behind another on a connection that has since closed (the client, or
      // --send-timeout-ms) has no one to answer: it never runs. Node destroys such requests when
      // their socket closes, but not their responses.
      if (incoming.socket?.destroyed || incoming.destroyed) {
        connection.outstandingCount--
        continue
      }
      start(connection, incoming, outgoing)
    }
  }

  const start = (connection: Connection, incoming: IncomingMessage, outgoing: ServerResponse) => {
    connection.busy = true
    connection.unfinishedCount++
    let released = false
    let finished = false
    const release = () => {
      if (released) return
      released = true
      appliedSignals.delete(incoming)
      connection.busy = false
      pump(connection)
    }
    const finish = () => {
      if (finished) return
      finished = true
      connection.unfinishedCount--
      connection.outstandingCount--
      if (released) pump(connection)
      else release()
    }
    appliedSignals.set(incoming, release)
    // on, not once: finish runs its course once anyway, and once wraps each listener.
    outgoing.on('finish', finish)
    outgoing.on('close', finish)
    void serveOne(incoming, outgoing).then(() => {
      // A response the handler never ended would hold the connection forever.
      if (!outgoing.writableEnded && !outgoing.destroyed) finish()
    })
  }

  const listener = (incoming: IncomingMessage, outgoing: ServerResponse) => {
    keepDotSegmentKey(incoming)
    const socket = incoming.socket
    let connection = connections.get(socket)
    if (connection === undefined) {
      connection = {
        waiting: [],
        busy: false,
        unfinishedCount: 0,
        outstandingCount: 0,
        refused: false,
      }
      connections.set(socket, connection)
      // Whatever still waits has no one to answer; requests already running end on their own.
      const closing = connection
      socket.once('close', () => {
        closing.waiting.length = 0
      })
    }
    if (connection.refused) {
      // Behind the 429: never run. Node still holds each request it parses until the 429 has
      // gone out; a client that sends as many again meanwhile is cut off at once.
      if (++connection.outstandingCount > 2 * pipelinedRequestCountMax) socket.destroy()
      return
    }
    if (connection.outstandingCount >= pipelinedRequestCountMax) {
      connection.refused = true
      connection.outstandingCount++
      log.warn('refused a request past the pipelining limit', {
        remote: socket.remoteAddress,
        pipelinedRequestCountMax,
      })
      respondProblem(outgoing, 'too_many_pipelined_requests', refusedDetail, {
        Connection: 'close',
      })
      return
    }
    connection.outstandingCount++
    connection.waiting.push([incoming, outgoing])
    pump(connection)
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

  // What Node's parser refuses never reaches a handler: Node would answer it 400, 408 or 431
  // with an empty body. The same answers go out here with a body that says why, under Node's
  // own rule: only while no answer of the connection has started, since bytes written into the
  // middle of one would corrupt what the client reads. Either way the connection ends.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
    if (socket.writable && (inFlight == null || !inFlight.headersSent)) {
      const [code, detail]: [ErrorCode, string] =
        error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [
              'request_timeout',
              `The request was not complete in time: its headers within ${config.headersTimeoutMs} ms (--headers-timeout-ms), all of it within ${config.requestTimeoutMs} ms (--request-timeout-ms)`,
            ]
          : error.code === 'HPE_HEADER_OVERFLOW'
            ? [
                'headers_too_large',
                "The request headers are larger than Node's limit (16 KiB by default)",
              ]
            : ['invalid_request', `The request is not valid HTTP/1.1 (${error.code ?? 'unknown'})`]
      const body = problemBody(code, detail)
      const head = Object.entries({ ...problemHeaders(body), Connection: 'close' })
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('')
      const status = problem(code).status
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${head}\r\n${body}`)
    }
    socket.destroy(error)
  })

  closeStalledConnections(server, config, log)
  return server
}

/** The requests of one connection, and how far along they are. */
interface Connection {
  /** Requests parsed and not yet started, in order. */
  waiting: [IncomingMessage, ServerResponse][]
  /** The latest request started has neither applied its change nor finished its answer. */
  busy: boolean
  /** Requests started whose answers have not finished. */
  unfinishedCount: number
  /** Requests parsed whose answers have not finished: waiting, started, or behind a 429. */
  outstandingCount: number
  /** A request past --max-pipelined-requests was answered 429: nothing after it runs. */
  refused: boolean
}

/**
 * How many answers of one connection may be unfinished at once: writes whose change is applied
 * and whose answer waits for durability, so that pipelined writes share a group commit. Their
 * handlers hold their request bodies until then; this bounds what one connection holds.
 */
export const unfinishedResponseCountMax = 32

/** The release of each running request, called once its change is in the store. */
const appliedSignals = new WeakMap<IncomingMessage, () => void>()

/**
 * Called by a route once its change is in the store (or it will make none), before it waits
 * for durability: the connection's next request may start, since it will see the change (RFC
 * 9112 §9.3.2 needs no more), while the answers still go out in order.
 */
export function markApplied(c: Context): void {
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming
  if (incoming !== undefined) appliedSignals.get(incoming)?.()
}

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
    path: pathOf(rawTargetOf(incoming)),
    error: String(error),
  })
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
