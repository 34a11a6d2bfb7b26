import { isUtf8 } from 'node:buffer'

// A value inside a JSON answer (a batch's reads, the change feed's set events): as text when its
// bytes are UTF-8, else base64, saying which, so that every value round-trips through JSON.
// isUtf8 and Buffer#toString use simdutf; a fatal TextDecoder goes through ICU and was most of a
// batch's server time.

export interface ValueText {
  value: string
  encoding: 'utf8' | 'base64'
}

export function valueText(body: Uint8Array): ValueText {
  const bytes = Buffer.isBuffer(body)
    ? body
    : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const utf8 = isUtf8(bytes)
  return { value: bytes.toString(utf8 ? 'utf8' : 'base64'), encoding: utf8 ? 'utf8' : 'base64' }
}
