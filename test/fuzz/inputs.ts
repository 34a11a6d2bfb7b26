// What the generative test sends: keys from all of Unicode, values at and over the limits, media
// types valid and not, TTLs at their edges. Each input carries what the server must make of it,
// decided here by construction, never by asking the server's own code.

/** The limits the fuzzed server runs with (the flags in fuzzFlags). */
export const limits = {
  keySizeMax: 48,
  valueSizeMax: 48 * 1024,
  bodySizeMax: 160 * 1024,
  batchOpCountMax: 8,
  // Two values at the limit fill it exactly; a third is over.
  batchReadSizeMax: 2 * 48 * 1024,
  jsonDepthMax: 16,
} as const

export const fuzzFlags = [
  '--max-key-size',
  String(limits.keySizeMax),
  '--max-value-size',
  String(limits.valueSizeMax),
  '--max-body-size',
  String(limits.bodySizeMax),
  '--max-batch-ops',
  String(limits.batchOpCountMax),
  '--max-batch-read-size',
  String(limits.batchReadSizeMax),
  '--max-json-depth',
  String(limits.jsonDepthMax),
  // Room for every key the test writes, so nothing is evicted: the model has no LRU.
  '--max-memory',
  '256MiB',
  '--max-entries',
  '200000',
  '--threads',
  '2',
]

/** A seeded source of choices. */
export class Choices {
  readonly #random: () => number
  constructor(random: () => number) {
    this.#random = random
  }
  /** An integer in [low, high]. */
  int(low: number, high: number): number {
    return low + Math.floor(this.#random() * (high - low + 1))
  }
  chance(probability: number): boolean {
    return this.#random() < probability
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#random() * items.length)]!
  }
  bytes(size: number): Buffer {
    const bytes = Buffer.alloc(size)
    for (let i = 0; i < size; i++) bytes[i] = Math.floor(this.#random() * 256)
    return bytes
  }
}

// Characters keys are made of: ASCII that URLs and JSON treat specially, controls, NUL, the BOM,
// noncharacters, line and paragraph separators, combining marks, astral characters.
const keyCharacters = [
  'a',
  'Z',
  '7',
  '/',
  '%',
  '%2F',
  ' ',
  '?',
  '#',
  '&',
  '+',
  '.',
  '..',
  '~',
  '"',
  '\\',
  '\u0000',
  '\u0001',
  '\u001f',
  '\u007f',
  '\u0085',
  '\u00a0',
  'é',
  '€',
  '中',
  '\u0301',
  '\u2028',
  '\ufeff',
  '\ufdd0',
  '\ufffe',
  '\uffff',
  '😀',
  '\u{10ffff}',
]

/** A key of the partition: its prefix, then characters from anywhere, at most sizeMax bytes. */
export function randomKey(choices: Choices, prefix: string, atLimit: boolean): string {
  let key = prefix
  const count = atLimit ? 40 : choices.int(1, 8)
  for (let i = 0; i < count; i++) {
    const next = key + choices.pick(keyCharacters)
    if (Buffer.byteLength(next) > limits.keySizeMax) break
    key = next
  }
  if (atLimit) key += 'x'.repeat(limits.keySizeMax - Buffer.byteLength(key))
  return key
}

export type KeyFault = 'key_invalid' | 'key_too_large' | 'key_empty'

/** A key the server must refuse, and why. */
export function faultyKey(choices: Choices, prefix: string): { key: string; fault: KeyFault } {
  switch (choices.int(0, 2)) {
    case 0:
      // A lone surrogate: not a Unicode scalar value, so not UTF-8 either.
      return {
        key: `${prefix}${choices.pick(['\ud800', '\udfff', 'a\udc00b'])}`,
        fault: 'key_invalid',
      }
    case 1: {
      const key = `${prefix}${'y'.repeat(limits.keySizeMax)}`.slice(0, limits.keySizeMax + 1)
      return { key: choices.chance(0.5) ? key : `${key.slice(0, -2)}é`, fault: 'key_too_large' }
    }
    default:
      return { key: '', fault: 'key_empty' }
  }
}

/**
 * A key as a path segment: percent-encoded UTF-8. A lone surrogate has no UTF-8 form;
 * it goes as the three bytes a careless encoder would write (WTF-8), which are not UTF-8.
 */
export function keySegment(key: string): string {
  // Keys that are a whole dot segment, as a raw client must send them: the server reads the key
  // from the target as sent, where URL normalization would have removed it.
  if (key === '.') return '.'
  if (key === '..') return '%2E%2E'
  let segment = ''
  for (const unit of key) {
    const code = unit.codePointAt(0)!
    if (code >= 0xd800 && code <= 0xdfff) {
      const bytes = [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
      segment += bytes.map((byte) => `%${byte.toString(16).toUpperCase()}`).join('')
    } else {
      segment += encodeURIComponent(unit)
    }
  }
  return segment
}

/** Media types that must be kept and sent back exactly as written. */
export const validMediaTypes = [
  'application/octet-stream',
  'application/json',
  'text/plain',
  'text/plain; charset=utf-8',
  'image/png',
  'text/html; charset=utf-8',
  'application/vnd.fuzz+json',
  'text/x-fuzz; a=1; b="q \\" x"',
  'application/x-fuzz;;',
  "application/x-!#$%&'*+.^_`|~",
  'text/x-fuzz; v="\u00e9"',
  `application/${'l'.repeat(243)}`,
] as const

/** Media types that must be refused: a header can carry these (no controls, nothing past Latin-1). */
export const invalidHeaderMediaTypes = [
  'text',
  'text/',
  '/plain',
  'a b/c',
  'text/plain; charset',
  'text/plain; q="open',
  'text/\u00e2\u0082\u00ac',
  `application/${'l'.repeat(244)}`,
]

/** More that only a JSON string can carry. */
export const invalidJsonMediaTypes = [
  ...invalidHeaderMediaTypes,
  '\u0001',
  '\u0000',
  '\u007f',
  'text/plain\r\nX-Injected: 1',
  'text/€',
  ' text/plain',
  'text/plain ',
]

/** A PUT's ?ttl= query value, and what it means. */
export type QueryTtl = { text: string; seconds: number } | { text: string; invalid: true }

export const longTtlSeconds = [864_000, 86_400.5, 999_999_999_999]
export const shortTtlSeconds = [0.05, 0.3, 1, 2.5]
export const invalidQueryTtls = ['0', '-1', 'abc', '1e3', '', '1000000000001', '1'.padEnd(24, '0')]
export const invalidJsonTtls = [0, -5, 1e13, 1e308]

/** A nested JSON array of this depth, such as [[[]]] for 3. */
export function nestedJson(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`
}

/** A JSON value of some shape, as text; depth counts nested arrays and objects. */
export function randomJson(choices: Choices, depth: number): string {
  if (depth === 0) {
    return choices.pick(['0', '-1.5e300', 'true', 'null', '"é\\u0000😀"', '"\\ud800"', '""'])
  }
  if (choices.chance(0.5)) {
    const items = Array.from({ length: choices.int(1, 3) }, (_, i) =>
      i === 0 ? randomJson(choices, depth - 1) : randomJson(choices, 0),
    )
    return `[${items.join(',')}]`
  }
  return `{"k${choices.int(0, 9)}":${randomJson(choices, depth - 1)},"\\u2028":1}`
}

/**
 * The bytes of a value: empty, small, or (with the chance given) at the limit or one byte past
 * it; text or binary.
 */
export function randomValue(choices: Choices, limitChance = 0.3): Buffer {
  const size = choices.chance(limitChance)
    ? choices.pick([limits.valueSizeMax, limits.valueSizeMax + 1])
    : choices.pick([0, 1, choices.int(2, 64), choices.int(65, 2000)])
  if (choices.chance(0.5)) return choices.bytes(size)
  return Buffer.alloc(size, choices.pick(['a', 'é', '\u0000', '"']))
}
