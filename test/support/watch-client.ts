import { type ClientRequest, type IncomingMessage, request } from 'node:http'

// A GET /v1/watch client for tests: one stream over node:http, its events parsed as they come,
// the position to resume from taken from every block's id (events and heartbeats alike), and
// the stream closed by the test whenever it likes. Not a general SSE parser: the server writes
// LF line ends only, and the tests hold it to that.

export interface WatchEvent {
  id: number
  event: string
  data: { key: string | null; version: number; [field: string]: unknown }
}

export interface WatchEnd {
  reason: string
  resumeAfter: number
}

export class WatchStream {
  readonly events: WatchEvent[] = []
  /** The last id of any block: where a resume starts. */
  lastId: number | undefined
  /** The first block's id: where the stream started. */
  startId: number | undefined
  ended: WatchEnd | undefined
  /** Bytes received so far. */
  receivedSize = 0
  readonly #request: ClientRequest
  #response: IncomingMessage | undefined
  #pending = ''
  #listeners = new Set<() => void>()
  readonly closed: Promise<void>

  /** Starts the request; `opened` says how it was answered. */
  constructor(
    base: string,
    query: string,
    options: { lastEventId?: number; token?: string; pause?: boolean } = {},
  ) {
    const headers: Record<string, string> = {}
    if (options.lastEventId !== undefined) headers['Last-Event-ID'] = String(options.lastEventId)
    if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`
    this.#request = request(`${base}/v1/watch${query}`, { headers, agent: false })
    this.closed = new Promise((resolve) => {
      this.#request.once('close', () => {
        resolve()
        this.#notify()
      })
    })
    this.opened = new Promise((resolve, reject) => {
      // After the answer began, an error (a reset, a killed server) only ends the stream.
      this.#request.on('error', (error) => {
        if (this.#response === undefined) reject(error)
      })
      this.#request.once('response', (response) => {
        this.#response = response
        if (response.statusCode !== 200) {
          let body = ''
          response.setEncoding('utf8')
          response.on('data', (chunk: string) => (body += chunk))
          response.once('end', () => resolve({ status: response.statusCode ?? 0, body }))
          return
        }
        response.setEncoding('utf8')
        if (options.pause) response.pause()
        response.on('data', (chunk: string) => this.#take(chunk))
        response.on('error', () => {})
        resolve({ status: 200, body: '' })
      })
    })
    this.#request.end()
  }

  readonly opened: Promise<{ status: number; body: string }>

  /** Stops reading without closing (a slow consumer); resume() reads again. */
  pause(): void {
    this.#response?.pause()
  }

  resume(): void {
    this.#response?.resume()
  }

  /** Closes the connection, as a client that goes away does. */
  close(): void {
    this.#request.destroy()
  }

  /** Resolves once `done()` holds, rejects after `timeoutMs` with what was received. */
  until(done: () => boolean, timeoutMs: number, what = 'the condition'): Promise<void> {
    if (done()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done()) return
        clearTimeout(timer)
        this.#listeners.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#listeners.delete(check)
        reject(
          new Error(
            `watch: ${what} did not happen within ${timeoutMs} ms (${this.events.length} events, last id ${this.lastId}, ended ${JSON.stringify(this.ended)})`,
          ),
        )
      }, timeoutMs)
      this.#listeners.add(check)
    })
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener()
  }

  #take(chunk: string): void {
    this.receivedSize += Buffer.byteLength(chunk)
    this.#pending += chunk
    for (let end = this.#pending.indexOf('\n\n'); end !== -1; end = this.#pending.indexOf('\n\n')) {
      const block = this.#pending.slice(0, end)
      this.#pending = this.#pending.slice(end + 2)
      this.#block(block)
    }
    this.#notify()
  }

  #block(block: string): void {
    const fields = new Map<string, string>()
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const name = colon === -1 ? line : line.slice(0, colon)
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (fields.has(name)) throw new Error(`watch: field ${name} twice in one block: ${block}`)
      fields.set(name, value)
    }
    const id = fields.get('id')
    if (id !== undefined) {
      const sequence = Number(id)
      if (this.lastId !== undefined && sequence < this.lastId) {
        throw new Error(`watch: id ${sequence} after ${this.lastId}`)
      }
      this.startId ??= sequence
      this.lastId = sequence
    }
    const event = fields.get('event')
    const data = fields.get('data')
    if (event === 'end') this.ended = JSON.parse(data ?? '{}') as WatchEnd
    else if (event !== undefined && data !== undefined && id !== undefined) {
      this.events.push({ id: Number(id), event, data: JSON.parse(data) as WatchEvent['data'] })
    }
  }
}
