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

// RFC 9110 §8.3.1: media-type = type "/" subtype parameters, where type and subtype are tokens
// (§5.6.2) and parameters = *( OWS ";" OWS [ parameter ] ), a parameter being a token, "=", and a
// token or a quoted-string (§5.6.4: tab, space and visible characters, obs-text \x80-\xFF, and
// backslash pairs). Anything else could not be sent back as a Content-Type header: Node refuses
// control characters and anything above \xFF, and a client would read leading or trailing
// whitespace away. The pattern is written so that each character has one way to match (the
// whitespace after a ";" belongs to the parameter that follows, or ends the text), and it only
// ever sees text of at most inlineSizeMax characters, so no input makes it backtrack for long.
const token = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
const quotedString = String.raw`"(?:[\t \x21\x23-\x5B\x5D-\x7E\x80-\xFF]|\\[\t \x21-\x7E\x80-\xFF])*"`
const parameter = `${token}=(?:${token}|${quotedString})`
const mediaTypeGrammar = new RegExp(
  String.raw`^${token}/${token}(?:[ \t]*;(?:[ \t]*${parameter}|[ \t]*$)?)*$`,
)

/** True when the text is a media type as RFC 9110 defines it. */
export function isMediaType(text: string): boolean {
  return text.length <= inlineSizeMax && mediaTypeGrammar.test(text)
}

/** The encoded media type, or why it cannot be kept. */
export function encodeMediaType(
  header: string | undefined,
): EncodedMediaType | 'invalid' | 'too_long' {
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
  if (known !== undefined && isMediaType(header)) return { tag: known, prefix: noPrefix }
  // Characters first: a text of more characters than the prefix keeps bytes is too long anyway,
  // and is never given to the pattern.
  if (header.length > inlineSizeMax) return 'too_long'
  if (!isMediaType(header)) return 'invalid'
  const bytes = new TextEncoder().encode(header)
  if (bytes.length > inlineSizeMax) return 'too_long'
  const prefix = new Uint8Array(1 + bytes.length)
  prefix[0] = bytes.length
  prefix.set(bytes, 1)
  return { tag: tagInline, prefix }
}

/** What a client is told when encodeMediaType refuses its content type. */
export function mediaTypeRefusal(text: string, why: 'invalid' | 'too_long'): string {
  return why === 'too_long'
    ? `The content type is ${new TextEncoder().encode(text).length} bytes; at most ${inlineSizeMax} are kept`
    : `${JSON.stringify(text)} is not a media type: type/subtype, then optional ; name=value parameters (RFC 9110 §8.3.1)`
}

export interface DecodedValue {
  mediaType: string
  body: Uint8Array
}

export function decodeMediaType(tag: number, stored: Uint8Array): DecodedValue {
  if (tag !== tagInline) return { mediaType: table[tag] ?? table[0], body: stored }
  const size = stored[0]!
  const mediaType = new TextDecoder('utf-8', { ignoreBOM: true }).decode(
    stored.subarray(1, 1 + size),
  )
  return {
    // An older version stored any text it was given; what is not a media type is never sent.
    mediaType: isMediaType(mediaType) ? mediaType : table[0],
    body: stored.subarray(1 + size),
  }
}

/** The size of the value a client stored, without an inline media type. */
export function bodySizeOf(tag: number, stored: Uint8Array): number {
  return tag === tagInline ? stored.byteLength - 1 - stored[0]! : stored.byteLength
}
