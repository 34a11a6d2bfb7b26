import { describe, expect, it } from 'vitest'
import { EventStreamParser, type ServerSentEvent } from '../../../src/client/sse.js'
import { prng, testSeed } from '../../support/random.js'

// The text/event-stream parser of the client's watch (and so of slabkv watch): the HTML standard's examples, then generated
// streams (every line ending, comments, fields with and without their space, ids, retries,
// characters of every UTF-8 length, a last block cut off) whose events are known from how they
// were built, parsed whole and in random chunkings, which must not change what is parsed.

interface Parsed {
  events: ServerSentEvent[]
  lastEventId: string
  retryMs: number | undefined
}

function parse(chunks: Uint8Array[], lastEventId = ''): Parsed {
  const events: ServerSentEvent[] = []
  const parser = new EventStreamParser((event) => events.push(event), lastEventId)
  for (const chunk of chunks) parser.push(chunk)
  parser.end()
  return { events, lastEventId: parser.lastEventId, retryMs: parser.retryMs }
}

const utf8 = (text: string) => new TextEncoder().encode(text)

describe('EventStreamParser: the standard', () => {
  it('joins data lines with LF', () => {
    const { events } = parse([utf8('data: YHOO\ndata: +2\ndata: 10\n\n')])
    expect(events).toEqual([{ type: 'message', data: 'YHOO\n+2\n10', lastEventId: '' }])
  })

  it('takes ids, an empty id resets it, and a block without its blank line is not dispatched', () => {
    const stream =
      ': test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n'
    const parsed = parse([utf8(stream)])
    expect(parsed.events).toEqual([
      { type: 'message', data: 'first event', lastEventId: '1' },
      { type: 'message', data: 'second event', lastEventId: '' },
    ])
    expect(parsed.lastEventId).toBe('')
  })

  it('dispatches a field with no colon as an empty value, and removes one space only', () => {
    const { events } = parse([utf8('data\n\ndata\ndata\n\ndata:  two\n\ndata:')])
    expect(events.map((event) => event.data)).toEqual(['', '\n', ' two'])
  })

  it('ends lines at CR, LF or CRLF, skips a leading BOM, and ignores NUL ids and bad retries', () => {
    const stream =
      '\uFEFFretry: 1000\r\nid: 7\rid: 8\u0000\nevent: set\r\ndata: {"key":"a"}\r\rretry: x\n\n'
    const parsed = parse([utf8(stream)])
    expect(parsed.events).toEqual([{ type: 'set', data: '{"key":"a"}', lastEventId: '7' }])
    expect(parsed.retryMs).toBe(1000)
  })

  it('sets the last event id from a block with no data (the watch heartbeat)', () => {
    const parsed = parse([utf8('retry: 1000\nid: 41\n\n: heartbeat\nid: 57\n\n')], '3')
    expect(parsed.events).toEqual([])
    expect(parsed.lastEventId).toBe('57')
  })

  it('keeps the id of a complete block, not of one cut off before its blank line', () => {
    const parsed = parse([utf8('id: 5\nevent: set\ndata: {}\n\nid: 6\nevent: set\ndata: {}\n')])
    expect(parsed.events.map((event) => event.lastEventId)).toEqual(['5'])
    expect(parsed.lastEventId).toBe('5')
  })
})

/** A generated stream: its bytes and what parsing them must give. */
interface Generated {
  bytes: Uint8Array
  expected: Parsed
}

const alphabet = ['a', 'z', '0', ' ', ':', '{', '"', '\t', 'é', '€', '中', '😀', '\uFEFF']

function generateStream(random: () => number): Generated {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const text = (max: number) =>
    Array.from({ length: Math.floor(random() * (max + 1)) }, () => pick(alphabet)).join('')
  let previousEnd = ''
  /** A line ending; after a CR, never an LF, which would only complete that CRLF. */
  const lineEnd = () => {
    previousEnd = pick(previousEnd === '\r' ? ['\r', '\r\n'] : ['\n', '\r', '\r\n'])
    return previousEnd
  }
  /** `field: value` in one of the spellings that mean the same. */
  const fieldLine = (field: string, value: string) => {
    if (value === '' && random() < 0.3) return field
    return value.startsWith(' ') || random() < 0.5 ? `${field}: ${value}` : `${field}:${value}`
  }
  const expected: Parsed = { events: [], lastEventId: '', retryMs: undefined }
  let stream = random() < 0.2 ? '\uFEFF' : ''
  let idBuffer = ''
  const blockCount = Math.floor(random() * 12)
  for (let block = 0; block <= blockCount; block++) {
    const isCutOff = block === blockCount
    let data: string[] = []
    let type = ''
    const lineCount = Math.floor(random() * 6)
    let lastKind = ''
    for (let line = 0; line < lineCount; line++) {
      const kind = pick(['data', 'data', 'event', 'id', 'comment', 'retry', 'other'])
      lastKind = kind
      let written: string
      if (kind === 'data') {
        const value = text(8)
        data = [...data, value]
        written = fieldLine('data', value)
      } else if (kind === 'event') {
        type = text(4)
        written = fieldLine('event', type)
      } else if (kind === 'id') {
        const value = random() < 0.7 ? String(Math.floor(random() * 1e6)) : text(3)
        if (random() < 0.1) written = fieldLine('id', `${value}\u0000`)
        else {
          if (!isCutOff) idBuffer = value
          written = fieldLine('id', value)
        }
      } else if (kind === 'retry') {
        const value = random() < 0.7 ? String(Math.floor(random() * 5000)) : `${text(2)}x`
        if (/^[0-9]+$/.test(value)) expected.retryMs = Number(value)
        written = fieldLine('retry', value)
      } else if (kind === 'comment') written = `:${text(8)}`
      else written = fieldLine(pick(['ids', 'Data', 'x', ' data']), text(4))
      stream += written + lineEnd()
    }
    if (isCutOff) {
      // Its last line without its ending, sometimes. Not a retry: line, which is taken when
      // its line ends, even in a block that is never dispatched.
      if (lineCount > 0 && lastKind !== 'retry' && random() < 0.5)
        stream = stream.replace(/(\r\n|\r|\n)$/, '')
      break
    }
    stream += lineEnd()
    expected.lastEventId = idBuffer
    if (data.length > 0) {
      expected.events.push({
        type: type === '' ? 'message' : type,
        data: data.join('\n'),
        lastEventId: idBuffer,
      })
    }
  }
  return { bytes: utf8(stream), expected }
}

/** The bytes cut at random places: sometimes many tiny chunks, sometimes a few large ones. */
function randomChunks(random: () => number, bytes: Uint8Array): Uint8Array[] {
  const cutCount = Math.floor(random() * Math.min(bytes.length, random() < 0.3 ? 64 : 6))
  const cuts = Array.from({ length: cutCount }, () => Math.floor(random() * (bytes.length + 1)))
  cuts.sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let start = 0
  for (const cut of [...cuts, bytes.length]) {
    chunks.push(bytes.subarray(start, cut)) // Empty chunks too: a read may give nothing.
    start = cut
  }
  return chunks
}

describe('EventStreamParser: generated streams', () => {
  it('parses each stream as it was built, whole, byte by byte and in random chunks', () => {
    const seed = testSeed('sse chunkings')
    const random = prng(seed)
    for (let round = 0; round < 400; round++) {
      const { bytes, expected } = generateStream(random)
      const context = `seed ${seed}, round ${round}: ${JSON.stringify(new TextDecoder().decode(bytes))}`
      const whole = parse([bytes])
      expect(whole, context).toEqual(expected)
      const byteByByte = Array.from(bytes, (_, index) => bytes.subarray(index, index + 1))
      expect(parse(byteByByte), context).toEqual(whole)
      for (let chunking = 0; chunking < 20; chunking++) {
        expect(parse(randomChunks(random, bytes)), context).toEqual(whole)
      }
    }
  })

  it('splits between CR and LF and inside every multi-byte character', () => {
    const stream = utf8('id: 1\r\nevent: s€t\r\ndata: 😀中é\r\n\r\nid: 2\r\n\r\ndata: x\r\r')
    const whole = parse([stream])
    expect(whole.events).toEqual([
      { type: 's€t', data: '😀中é', lastEventId: '1' },
      { type: 'message', data: 'x', lastEventId: '2' },
    ])
    for (let cut = 0; cut <= stream.length; cut++) {
      expect(parse([stream.subarray(0, cut), stream.subarray(cut)]), `cut at ${cut}`).toEqual(whole)
    }
  })
})
