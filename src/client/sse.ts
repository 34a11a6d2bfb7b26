// A text/event-stream parser, as the HTML standard's EventSource reads one (its "Server-sent
// events" section): bytes in any chunking, decoded as UTF-8; lines ending in LF, CR or CRLF;
// ':' comments; `field: value` with one optional space removed; a blank line dispatches. It
// does no I/O: the client's watch (src/client/event-stream.ts) feeds it what arrives on each
// connection.

export interface ServerSentEvent {
  /** The `event:` field, or 'message' without one. */
  type: string
  /** The `data:` lines joined with LF. */
  data: string
  /** The last `id:` seen on this stream (or before it) when the event was dispatched. */
  lastEventId: string
}

const lineBreak = /[\r\n]/g

export class EventStreamParser {
  // ignoreBOM keeps a BOM as text, as every decoder of the product does (a key may start with
  // one); the one BOM the standard drops, at the very start of the stream, #pushText drops.
  readonly #decoder = new TextDecoder('utf-8', { ignoreBOM: true })
  #atStreamStart = true
  readonly #onEvent: (event: ServerSentEvent) => void
  /** The text of a line whose end has not arrived yet. */
  #partialLine = ''
  /** The last chunk ended in CR: an LF at the start of the next one ends no second line. */
  #lineEndedInCarriageReturn = false
  #data = ''
  #hasData = false
  #type = ''
  #idBuffer: string
  #lastEventId: string
  #retryMs: number | undefined

  /**
   * `lastEventId` carries over from an earlier stream of the same watch, as EventSource keeps
   * it across reconnections.
   */
  constructor(onEvent: (event: ServerSentEvent) => void, lastEventId = '') {
    this.#onEvent = onEvent
    this.#idBuffer = lastEventId
    this.#lastEventId = lastEventId
  }

  /**
   * Where a resume starts: the `id:` of the last block that was complete, with data or not (a
   * heartbeat). An `id:` of a block cut off before its blank line does not count, since its
   * event was never dispatched.
   */
  get lastEventId(): string {
    return this.#lastEventId
  }

  /** The last `retry:` the stream gave, in milliseconds. */
  get retryMs(): number | undefined {
    return this.#retryMs
  }

  push(chunk: Uint8Array): void {
    this.#pushText(this.#decoder.decode(chunk, { stream: true }))
  }

  /**
   * The stream has ended. An event whose blank line did not arrive is dropped, as the standard
   * says; only a character cut short by the end is decoded (as U+FFFD) into the partial line.
   */
  end(): void {
    this.#pushText(this.#decoder.decode())
  }

  #pushText(text: string): void {
    let start = 0
    if (this.#atStreamStart && text.length > 0) {
      this.#atStreamStart = false
      if (text[0] === '\uFEFF') start = 1
    }
    if (this.#lineEndedInCarriageReturn && text.length > 0) {
      this.#lineEndedInCarriageReturn = false
      if (text[0] === '\n') start = 1
    }
    lineBreak.lastIndex = start
    for (let match = lineBreak.exec(text); match !== null; match = lineBreak.exec(text)) {
      const end = match.index
      const line = this.#partialLine + text.slice(start, end)
      this.#partialLine = ''
      start = end + 1
      if (text[end] === '\r') {
        if (start === text.length) this.#lineEndedInCarriageReturn = true
        else if (text[start] === '\n') start++
      }
      lineBreak.lastIndex = start
      this.#line(line)
    }
    this.#partialLine += text.slice(start)
  }

  #line(line: string): void {
    if (line === '') {
      this.#dispatch()
      return
    }
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') this.#type = value
    else if (field === 'data') {
      this.#data += this.#hasData ? `\n${value}` : value
      this.#hasData = true
    } else if (field === 'id') {
      if (!value.includes('\0')) this.#idBuffer = value
    } else if (field === 'retry') {
      if (/^[0-9]+$/.test(value)) this.#retryMs = Number(value)
    }
    // Any other field is ignored, as the standard says.
  }

  #dispatch(): void {
    this.#lastEventId = this.#idBuffer
    const event = this.#hasData
      ? { type: this.#type === '' ? 'message' : this.#type, data: this.#data }
      : undefined
    this.#data = ''
    this.#hasData = false
    this.#type = ''
    if (event !== undefined) this.#onEvent({ ...event, lastEventId: this.#lastEventId })
  }
}
