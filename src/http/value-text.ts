import { isUtf8 } from 'node:buffer'

// A value inside a JSON answer (a batch's reads, the change feed's set events): as text when its
// bytes are UTF-8, else base64, saying which, so that every value round-trips through JSON.
// isUtf8 and Buffer#toString use simdutf; a fatal TextDecoder goes through ICU and was most of a
// batch's server time.
//
// UTF-8 that JSON must escape heavily goes as base64 too: a control character takes six bytes in
// JSON (\u0001), so a value of them would be six times its size as text, where base64 is 4/3.
// The answer's size then stays within 4/3 of the value's (and what a watch stream holds for a
// client that stopped reading with it).

export interface ValueText {
  value: string
  encoding: 'utf8' | 'base64'
}

export function valueText(body: Uint8Array): ValueText {
  const bytes = Buffer.isBuffer(body)
    ? body
    : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const utf8 = isUtf8(bytes) && jsonTextSize(bytes) <= base64Size(bytes.byteLength)
  return { value: bytes.toString(utf8 ? 'utf8' : 'base64'), encoding: utf8 ? 'utf8' : 'base64' }
}

/** The bytes of UTF-8 `bytes` inside a JSON string, without the quotes. */
function jsonTextSize(bytes: Uint8Array): number {
  let size = bytes.byteLength
  for (const byte of bytes) {
    if (byte >= 0x20 && byte !== 0x22 && byte !== 0x5c) continue
    // \" \\ \b \f \n \r \t take two bytes; any other control character \u00XX six.
    size +=
      byte === 0x22 || byte === 0x5c || (byte >= 0x08 && byte <= 0x0d && byte !== 0x0b) ? 1 : 5
  }
  return size
}

function base64Size(size: number): number {
  return 4 * Math.ceil(size / 3)
}
