// The store keeps a one-byte content-type tag per entry. Common media types get a tag of their
// own; any other Content-Type is carried inside the stored value, behind a one-byte length,
// under the tag `inline`. So every Content-Type round-trips, and the common ones cost nothing.

const table = [
  'application/octet-stream',
  'application/json',
  'text/plain; charset=utf-8',
  'text/plain',
  'text/html; charset=utf-8',
  'text/csv',
  'application/xml',
  'application/x-www-form-urlencoded',
  'application/cbor',
  'application/msgpack',
  'application/x-protobuf',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/svg+xml',
] as const

export const tagOctetStream = 0
export const tagJson = 1
/** The media type is stored in the value: [length u8][media type bytes][value bytes]. */
export const tagInline = 255
const inlineSizeMax = 255
/** The most an inline media type adds to a stored value: its length byte and its bytes. */
export const inlinePrefixSizeMax = 1 + inlineSizeMax

const tagOf = new Map<string, number>(table.map((type, tag) => [type, tag]))

export interface EncodedMediaType {
  tag: number
  /** The prefix to store before the value (empty unless the tag is inline). */
  prefix: Uint8Array
}

const noPrefix = new Uint8Array(0)

/** Undefined when the Content-Type header is too long to keep. */
export function encodeMediaType(header: string | undefined): EncodedMediaType | undefined {
  if (header === undefined || header === '') return { tag: tagOctetStream, prefix: noPrefix }
  // Clients spell the same type many ways (text/plain;charset=UTF-8 is what fetch sends);
  // compare a canonical form: lowercase, one space after each semicolon.
  const known =
    tagOf.get(header) ??
    tagOf.get(
      header
        .toLowerCase()
        .replace(/\s*;\s*/g, '; ')
        .trim(),
    )
  if (known !== undefined) return { tag: known, prefix: noPrefix }
  const bytes = new TextEncoder().encode(header)
  if (bytes.length > inlineSizeMax) return undefined
  const prefix = new Uint8Array(1 + bytes.length)
  prefix[0] = bytes.length
  prefix.set(bytes, 1)
  return { tag: tagInline, prefix }
}

export interface DecodedValue {
  mediaType: string
  body: Uint8Array
}

export function decodeMediaType(tag: number, stored: Uint8Array): DecodedValue {
  if (tag !== tagInline) return { mediaType: table[tag] ?? table[0], body: stored }
  const size = stored[0]!
  return {
    mediaType: new TextDecoder('utf-8', { ignoreBOM: true }).decode(stored.subarray(1, 1 + size)),
    body: stored.subarray(1 + size),
  }
}
