import type { HttpBindings } from '@hono/node-server'
import type { Context } from 'hono'

// The body of a PUT, read straight from Node's request stream when it can be.
//
// Hono's c.req.arrayBuffer() on the Node adapter collects the same chunks and then copies them
// into a fresh ArrayBuffer (ArrayBuffer.prototype.slice): an off-heap allocation per request
// that the store copies out of again at once. In a CPU profile of PUT with 100-byte values it was
// the costliest JavaScript function of the request (4.6% of the server's busy time). Here a body
// that arrives in one chunk, as small bodies do, is handed on as that chunk: PUT of 100 bytes,
// Node 20, --fsync always, wrk -c32, went from 28.5k to 29.5k and from 23.6k to 25.4k req/s
// (medians of 4 and of 6 interleaved rounds, on a machine that slowed between the two sets).
//
// Only a body with a Content-Length comes this way: its size has been checked against the limit
// before the handler runs (src/http/app.ts), and Node's parser never reads past it. A chunked
// body, or a request not served by the Node adapter (app.request() in tests), goes through Hono,
// whose bodyLimit counts it as it streams.

/** The client closed the connection before its body was complete: there is nothing to answer. */
export class ClientGoneError extends Error {
  constructor() {
    super('the client closed the connection before the body was complete')
  }
}

export function readBody(c: Context): Promise<Uint8Array> {
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming
  if (
    incoming === undefined ||
    incoming.readableDidRead ||
    incoming.readableEnded ||
    // Gone before the handler ran (a middleware may await I/O first, as bearerAuth does): no
    // event would ever settle the read. Hono's reader recovers a body that arrived whole.
    incoming.destroyed ||
    incoming.errored !== null ||
    c.req.header('content-length') === undefined ||
    c.req.header('transfer-encoding') !== undefined
  ) {
    return c.req.arrayBuffer().then((buffer) => new Uint8Array(buffer))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const onData = (chunk: Buffer) => chunks.push(chunk)
    const onEnd = () => {
      done()
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
    }
    // The client went away before the body was complete: there is nothing to store or answer.
    const onClose = () => {
      done()
      reject(new ClientGoneError())
    }
    // An error on a request stream is its connection failing (a reset, a parse error in what
    // follows): the client's side, like a close.
    const onError = () => {
      done()
      reject(new ClientGoneError())
    }
    const done = () => {
      incoming.off('data', onData)
      incoming.off('end', onEnd)
      incoming.off('close', onClose)
      incoming.off('error', onError)
    }
    incoming.on('data', onData)
    incoming.on('end', onEnd)
    incoming.on('close', onClose)
    incoming.on('error', onError)
  })
}
