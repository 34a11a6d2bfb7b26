import { type ClientRequest, type IncomingMessage, request } from 'node:http'

// One watcher of GET /v1/watch, as a consumer that keeps up would be: a node:http request whose
// text/event-stream answer is read as it arrives and parsed block by block (RFC 8895's field
// lines; a blank line ends a block). Every block's `id:` line is the watcher's position, the
// blocks without data included (the first block, heartbeats). A block with data is an event:
// counted, its id checked to be above every id before it, its data checked to name that id as
// its `version`. An `end` event or the connection closing while it is still wanted is recorded,
// never ignored: a watcher that stopped early has not received the events after it.
//
// The data is not JSON.parsed: finding `"version":` is what a check needs, and a full parse of
// every event would make the watchers' process, not the server, the figure under measurement.

export interface WatchOptions {
  url: string
  prefix: string
  /** A sequence number, or 'now' (the server's default). */
  since?: number | 'now'
  /** Called for every event, with its id and when it arrived (performance.now()). */
  onEvent?: (id: number, atMs: number) => void
}

/** What a watcher has seen; the window counts only events with from < id <= to. */
export interface WatcherState {
  /** The id of the first block: where the server started the stream. */
  startId: number | undefined
  lastId: number
  events: number
  /** Events whose id was not above the id before it, or whose data named another version. */
  disorder: number
  disorderSample: string
  /** The `end` event's data, or why the stream stopped while wanted. */
  ended: string | undefined
  windowFrom: number
  windowTo: number
  windowEvents: number
  /** The sum of the window's ids: two watchers that got the same events have the same sum. */
  windowIdSum: number
  /** Reads of the stream (chunks of the answer): how many events the server sent together. */
  chunks: number
}

const versionField = '"version":'

export class Watcher {
  readonly state: WatcherState = {
    startId: undefined,
    lastId: -1,
    events: 0,
    disorder: 0,
    disorderSample: '',
    ended: undefined,
    windowFrom: 0,
    windowTo: Number.MAX_SAFE_INTEGER,
    windowEvents: 0,
    windowIdSum: 0,
    chunks: 0,
  }
  /** Resolves once the first block (the start id) arrived; rejects on an answer but 200. */
  readonly started: Promise<void>
  #request!: ClientRequest
  #closing = false
  #rest = ''
  #blockId: number | undefined
  #blockEvent = ''
  #blockData: string | undefined
  #onStart: () => void = () => {}
  #onEvent: WatchOptions['onEvent']
  #waiters: { id: number; resolve: () => void }[] = []

  constructor(options: WatchOptions) {
    this.#onEvent = options.onEvent
    const query = new URLSearchParams({ prefix: options.prefix })
    if (options.since !== undefined) query.set('since', String(options.since))
    this.started = new Promise((resolve, reject) => {
      this.#onStart = resolve
      this.#request = request(`${options.url}/v1/watch?${query}`, { agent: false })
      this.#request.once('error', (error) => {
        reject(error)
        this.#stop(`connection error: ${error.message}`)
      })
      this.#request.once('response', (response: IncomingMessage) => {
        if (response.statusCode !== 200) {
          let body = ''
          response.setEncoding('utf8')
          response.on('data', (chunk: string) => {
            body += chunk
          })
          response.once('end', () => reject(new Error(`${response.statusCode} ${body}`)))
          return
        }
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => this.#read(chunk))
        response.once('close', () => {
          this.#stop('the server closed the stream')
          if (this.state.startId === undefined) reject(new Error(this.state.ended))
        })
      })
      this.#request.end()
    })
  }

  /** Resolves once an id >= `id` has arrived (or at once when it has). */
  reached(id: number): Promise<void> {
    if (this.state.lastId >= id) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push({ id, resolve }))
  }

  close(): void {
    this.#closing = true
    this.#request.destroy()
  }

  #stop(why: string): void {
    if (!this.#closing && this.state.ended === undefined) this.state.ended = why
  }

  #read(chunk: string): void {
    this.state.chunks++
    const text = this.#rest === '' ? chunk : this.#rest + chunk
    let at = 0
    for (let end = text.indexOf('\n', at); end >= 0; end = text.indexOf('\n', at)) {
      const line = text.charCodeAt(end - 1) === 13 ? text.slice(at, end - 1) : text.slice(at, end)
      at = end + 1
      if (line === '') this.#dispatch()
      else this.#field(line)
    }
    this.#rest = text.slice(at)
  }

  #field(line: string): void {
    if (line.charCodeAt(0) === 58) return // ':' starts a comment (the heartbeat's).
    const colon = line.indexOf(':')
    const name = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (name === 'id') this.#blockId = Number(value)
    else if (name === 'event') this.#blockEvent = value
    else if (name === 'data')
      this.#blockData = this.#blockData === undefined ? value : `${this.#blockData}\n${value}`
  }

  #dispatch(): void {
    const id = this.#blockId
    const data = this.#blockData
    const event = this.#blockEvent
    this.#blockId = undefined
    this.#blockData = undefined
    this.#blockEvent = ''
    const state = this.state
    if (event === 'end') {
      state.ended = `end: ${data}`
      return
    }
    if (data !== undefined) {
      const at = data.indexOf(versionField)
      const version =
        at < 0 ? Number.NaN : Number.parseInt(data.slice(at + versionField.length), 10)
      if (id === undefined || id <= state.lastId || version !== id) {
        if (state.disorder++ === 0)
          state.disorderSample = `id ${id} after ${state.lastId}: ${event} ${data.slice(0, 120)}`
      }
      state.events++
      if (id !== undefined && id > state.windowFrom && id <= state.windowTo) {
        state.windowEvents++
        state.windowIdSum += id
      }
      if (id !== undefined) this.#onEvent?.(id, performance.now())
    } else if (id !== undefined && id < state.lastId && state.disorder++ === 0) {
      state.disorderSample = `a block without data went back from id ${state.lastId} to ${id}`
    }
    if (id === undefined || Number.isNaN(id)) return
    if (id > state.lastId) state.lastId = id
    if (state.startId === undefined) {
      state.startId = id
      this.#onStart()
    }
    if (this.#waiters.length > 0) {
      const due = this.#waiters.filter((waiter) => waiter.id <= id)
      this.#waiters = this.#waiters.filter((waiter) => waiter.id > id)
      for (const waiter of due) waiter.resolve()
    }
  }
}
