import { connect, type Socket } from 'node:net'

// A bare HTTP/1.1 client over one TCP connection, for what fetch will not send: pipelined
// requests, a missing Host, HTTP/1.0, bytes in a path exactly as written, a client that never
// reads. Requests go out as raw bytes; responses are parsed one at a time, in order.

export interface RawResponse {
  status: number
  /** Header names lowercased; repeated headers joined with ', '. */
  headers: Record<string, string>
  body: Buffer
}

export interface ReadOptions {
  /** The response answers a HEAD request: it has headers only, whatever they announce. */
  head?: boolean
  /** Return a 1xx interim response instead of skipping it (to see a 100 Continue). */
  interim?: boolean
  timeoutMs?: number
}

const readTimeoutMsDefault = 10_000

export class RawConnection {
  readonly socket: Socket
  #received = Buffer.alloc(0)
  #closed = false
  /** The socket's error, if one ended it (a reset, a refused write): for messages. */
  #error: Error | undefined
  #wake: (() => void) | undefined

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk])
      this.#wake?.()
    })
    socket.on('close', () => {
      this.#closed = true
      this.#wake?.()
    })
    socket.on('error', (error) => {
      // A reset shows as a close; read() then says what was missing.
      this.#error = error
    })
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => resolve(new RawConnection(socket)))
      socket.once('error', reject)
    })
  }

  get closed(): boolean {
    return this.#closed
  }

  /** How the connection ended, for a failure's message: by the peer, or by a socket error. */
  get closeReason(): string {
    if (!this.#closed) return 'open'
    const error = this.#error as NodeJS.ErrnoException | undefined
    const unread = this.#received.length
    return `${error === undefined ? 'closed by the peer' : `socket error ${error.code ?? error.message}`}, ${unread} bytes unread`
  }

  write(data: string | Uint8Array): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
  }

  /** Resolves once the server has closed the connection, or false after timeoutMs. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!this.#closed && Date.now() < deadline) await this.#waitForData(deadline)
    return this.#closed
  }

  /** The next complete response on the connection. */
  async read(options: ReadOptions = {}): Promise<RawResponse> {
    const deadline = Date.now() + (options.timeoutMs ?? readTimeoutMsDefault)
    for (;;) {
      const response = this.#parse(options.head === true)
      if (response !== undefined) {
        if (response.status >= 200 || options.interim) return response
        continue
      }
      if (this.#closed || Date.now() >= deadline) {
        const what = this.#closed ? 'the connection closed' : 'no complete response in time'
        throw new Error(`${what}; received: ${JSON.stringify(this.#received.toString('latin1'))}`)
      }
      await this.#waitForData(deadline)
    }
  }

  destroy(): void {
    this.socket.destroy()
  }

  #waitForData(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(1, deadline - Date.now()))
      function done() {
        clearTimeout(timer)
        resolve()
      }
      this.#wake = () => {
        this.#wake = undefined
        done()
      }
    })
  }

  /** Takes one response off the received bytes, or undefined while it is incomplete. */
  #parse(head: boolean): RawResponse | undefined {
    const data = this.#received
    const headEnd = data.indexOf('\r\n\r\n')
    if (headEnd < 0) return undefined
    const lines = data.subarray(0, headEnd).toString('latin1').split('\r\n')
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1])
    if (!Number.isInteger(status)) throw new Error(`not an HTTP response: ${lines[0]}`)
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      const name = line.slice(0, colon).toLowerCase()
      const value = line.slice(colon + 1).trim()
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    }
    const bodyStart = headEnd + 4
    const bodyless = head || status < 200 || status === 204 || status === 304
    if (bodyless) return this.#take(bodyStart, { status, headers, body: Buffer.alloc(0) })
    if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      return this.#parseChunked(bodyStart, status, headers)
    }
    const length = headers['content-length']
    if (length === undefined) {
      // The body runs to the end of the connection.
      if (!this.#closed) return undefined
      return this.#take(data.length, { status, headers, body: data.subarray(bodyStart) })
    }
    const end = bodyStart + Number(length)
    if (data.length < end) return undefined
    return this.#take(end, { status, headers, body: data.subarray(bodyStart, end) })
  }

  #parseChunked(
    start: number,
    status: number,
    headers: Record<string, string>,
  ): RawResponse | undefined {
    const data = this.#received
    const pieces: Buffer[] = []
    let at = start
    for (;;) {
      const lineEnd = data.indexOf('\r\n', at)
      if (lineEnd < 0) return undefined
      const size = Number.parseInt(data.subarray(at, lineEnd).toString('latin1'), 16)
      if (size === 0) {
        const end = data.indexOf('\r\n\r\n', lineEnd)
        if (end < 0) return undefined
        return this.#take(end + 4, { status, headers, body: Buffer.concat(pieces) })
      }
      const pieceEnd = lineEnd + 2 + size
      if (data.length < pieceEnd + 2) return undefined
      pieces.push(data.subarray(lineEnd + 2, pieceEnd))
      at = pieceEnd + 2
    }
  }

  #take(end: number, response: RawResponse): RawResponse {
    response.body = Buffer.from(response.body)
    this.#received = this.#received.subarray(end)
    return response
  }
}

/** One request's bytes: a request line, headers (Host first unless given), and a body. */
export function rawRequest(
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string | Uint8Array,
  version = 'HTTP/1.1',
): Buffer {
  const lines = [`${method} ${target} ${version}`]
  const names = Object.keys(headers).map((name) => name.toLowerCase())
  if (version === 'HTTP/1.1' && !names.includes('host')) lines.push('Host: 127.0.0.1')
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  const bytes = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body
  if (bytes !== undefined && !names.includes('content-length')) {
    lines.push(`Content-Length: ${bytes.byteLength}`)
  }
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1')
  return bytes === undefined ? head : Buffer.concat([head, bytes])
}
